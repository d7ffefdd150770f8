"""The request of the query layer, in the shape of Cube's REST `/load` query (measures, dimensions, a time
dimension with granularity and date range, filters, order, limit, offset). Members are `<mart>.<name>` of the
registry's cubes; the compiler (compile.py) resolves them, so everything here only bounds sizes and types."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Member = Annotated[
    str,
    Field(min_length=1, max_length=130, description="`<mart>.<member>`, e.g. venue_analytics.gross_revenue"),
]
Value = Annotated[str, Field(max_length=200)] | int | float | bool
Direction = Literal["asc", "desc"]
OPERATORS = (
    "equals",
    "notEquals",
    "contains",
    "startsWith",
    "gt",
    "gte",
    "lt",
    "lte",
    "set",
    "notSet",
    "inDateRange",
    "beforeDate",
    "afterDate",
)
Operator = Literal.__getitem__(OPERATORS)  # type: ignore[valid-type]


class TimeDimension(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    dimension: Member
    granularity: Annotated[str, Field(max_length=20)] | None = Field(
        None, description="hour, day, week, month, quarter or year (those the dimension allows)"
    )
    date_range: tuple[date, date] | None = Field(
        None, alias="dateRange", description="[first, last] day, inclusive (UTC)"
    )


class Filter(BaseModel):
    model_config = ConfigDict(extra="forbid")
    member: Member
    operator: Operator
    values: list[Value] = Field(default_factory=list, max_length=100)


class QueryRequest(BaseModel):
    """POST /v1/query's body (snake_case; Cube's camelCase `timeDimension`/`dateRange` are accepted too)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    measures: list[Member] = Field(default_factory=list, max_length=20)
    dimensions: list[Member] = Field(default_factory=list, max_length=10)
    time_dimension: TimeDimension | None = Field(None, alias="timeDimension")
    filters: list[Filter] = Field(default_factory=list, max_length=20)
    order: dict[Member, Direction] | list[tuple[Member, Direction]] | None = Field(
        None, description='{"<member>": "asc"|"desc"} or [["<member>", "asc"|"desc"], ...]'
    )
    limit: int | None = Field(None, ge=1, description="Rows to return (at most the configured bound)")
    offset: int = Field(0, ge=0, le=10_000_000)

    def order_pairs(self) -> list[tuple[str, str]]:
        if self.order is None:
            return []
        return list(self.order.items()) if isinstance(self.order, dict) else [tuple(x) for x in self.order]
