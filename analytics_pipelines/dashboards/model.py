"""Bodies of the dashboard and widget routes, with the seed's validation: a dashboard's name is 1-100
characters of [a-zA-Z0-9 _-]; a widget sits on a 12-column grid, width and height 1-12, x + width <= 12.
A widget's query is a query-layer request (QueryRequest); that its members exist is checked by compiling it
(analytics_pipelines/query/compile.py), not here. Free text (descriptions, titles, share subjects) is stored
as given through bound parameters; control characters are refused."""

from __future__ import annotations

import json
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from analytics_pipelines.query.model import QueryRequest

GRID_COLUMNS = 12
NAME_PATTERN = r"^[a-zA-Z0-9 _-]{1,100}$"
WIDGET_TYPES = ("number", "line", "bar", "table", "pie")
WidgetType = Literal["number", "line", "bar", "table", "pie"]
ACCESS = ("view", "edit")
#: the largest layout / options JSON kept (they are the client's presentation settings, not data)
MAX_JSON_CHARS = 20_000

Name = Annotated[
    str, Field(pattern=NAME_PATTERN, description="1-100 characters: letters, digits, space, _ and -")
]
Size = Annotated[int, Field(ge=1, le=GRID_COLUMNS, description="Grid cells, 1-12")]
X = Annotated[int, Field(ge=0, le=GRID_COLUMNS - 1, description="Grid column, 0-11")]
Y = Annotated[int, Field(ge=0, le=10_000, description="Grid row, 0-10000")]
Subject = Annotated[str, Field(min_length=1, max_length=100, description="A user id (a token's `sub`)")]


def _no_control(v: str | None) -> str | None:
    if v is not None and any(ord(ch) < 32 and ch not in "\t\n" for ch in v):
        raise ValueError("control characters are not allowed")
    return v


def _bounded_json(v: dict) -> dict:
    if len(json.dumps(v, default=str)) > MAX_JSON_CHARS:
        raise ValueError(f"at most {MAX_JSON_CHARS} characters of JSON")
    return v


class DashboardBody(BaseModel):
    """POST /v1/dashboards and PUT /v1/dashboards/{id} (which replaces these fields)."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    description: str | None = Field(None, max_length=2000)
    layout: dict = Field(default_factory=dict, description="The client's grid settings (JSON, kept as given)")
    venue_id: UUID | None = Field(
        None, description="Admins: the venue the dashboard belongs to (default: the token's venue)"
    )

    _text = field_validator("description")(_no_control)
    _layout = field_validator("layout")(_bounded_json)


class CloneBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = Field(None, description="Default: 'Copy of <name>' (cut to 100 characters)")


class Share(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: Subject
    access: Literal["view", "edit", "none"] = Field(description="none revokes the user's share")

    _text = field_validator("user")(_no_control)


class ShareBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shares: list[Share] = Field(min_length=1, max_length=100)


class WidgetBody(BaseModel):
    """POST /v1/dashboards/{id}/widgets and PUT /v1/widgets/{id} (the whole widget)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    type: WidgetType
    query: QueryRequest
    x: X = 0
    y: Y = 0
    width: Size = 6
    height: Size = 4
    options: dict = Field(default_factory=dict, description="Presentation settings (JSON, kept as given)")

    _text = field_validator("title")(_no_control)
    _options = field_validator("options")(_bounded_json)

    @field_validator("width")
    @classmethod
    def _fits(cls, width: int, info: ValidationInfo) -> int:
        if "x" in info.data:
            check_fits(info.data["x"], width)
        return width


class MoveBody(BaseModel):
    """POST /v1/widgets/{id}/move: the new position and/or size (omitted fields keep their value)."""

    model_config = ConfigDict(extra="forbid")
    x: X | None = None
    y: Y | None = None
    width: Size | None = None
    height: Size | None = None

    @model_validator(mode="after")
    def _some(self):
        if self.x is None and self.y is None and self.width is None and self.height is None:
            raise ValueError("name at least one of x, y, width, height")
        return self


class DuplicateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dashboard_id: int | None = Field(
        None, ge=1, le=2**31 - 1, description="Copy onto this dashboard (default: the same one)"
    )


class LayoutError(ValueError):
    def __init__(self, field: str, msg: str):
        super().__init__(msg)
        self.field = field


def check_fits(x: int, width: int) -> None:
    """A widget stays inside the 12-column grid (raises LayoutError naming `width`)."""
    if x + width > GRID_COLUMNS:
        raise LayoutError("width", f"x + width = {x + width}: the grid has {GRID_COLUMNS} columns")


def moved(current: dict, move: MoveBody) -> dict:
    """The widget's position and size after `move` (validated: inside the grid)."""
    out = {
        k: getattr(move, k) if getattr(move, k) is not None else current[k]
        for k in ("x", "y", "width", "height")
    }
    check_fits(out["x"], out["width"])
    return out


def copy_name(name: str) -> str:
    """'Copy of <name>', cut to the 100 characters a name may have."""
    return f"Copy of {name}"[:100].rstrip() or "Copy"


def stored_widget(body: WidgetBody) -> dict:
    """The widget's columns from its body (the query as the layer's JSON, aliases by field name)."""
    data = body.model_dump(mode="json", exclude_none=True)
    data["query"] = body.query.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    return data
