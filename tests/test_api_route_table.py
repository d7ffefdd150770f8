"""docs/api.md's table of the old service's routes against the app and the seed (issue 20): every route the
table says is served is in the OpenAPI document (path parameter names aside); a route still marked planned
that the app now serves fails (flip it to served); every route of every seed route file has its row, and no
row names a seed route that does not exist."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from analytics_pipelines.api import Settings, create_app

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"
SEED_NAME = "004_2b319350f4ca3dd3.txt"
SECTION = "## The old service's routes, and ours"
STATUSES = ("served", "planned (issue 20)", "planned (issue 21)", "not carried over")
ROUTE = re.compile(r"(GET|POST|PUT|PATCH|DELETE) (/[^\s,]*)")


def norm(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path.rstrip("/") or "/")


def table_rows(text: str) -> list[dict]:
    """The rows of the section's table: file, seed (method, path), ours [(method, path)], status, note."""
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    rows = []
    for line in text[start : end if end > 0 else None].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 5 or cells[0] in ("seed file", "") or set(cells[0]) <= {"-"}:
            continue
        seed = ROUTE.fullmatch(cells[1])
        assert seed, f"seed route cell not 'METHOD /path': {line}"
        ours = ROUTE.findall(cells[2])
        rows.append(
            {
                "file": cells[0],
                "seed": (seed[1], seed[2]),
                "ours": [(m, p) for m, p in ours],
                "ours_text": cells[2],
                "status": cells[3],
                "note": cells[4],
                "line": line,
            }
        )
    return rows


def seed_routes(text: str) -> set[tuple[str, str, str]]:
    """(file, method, path) of every route in the seed's route overview (its `routes/` section)."""
    start = text.index("### routes/")
    end = text.index("### services/", start)
    out, current = set(), None
    for line in text[start:end].splitlines():
        heading = re.match(r"#### \*\*(.+?)\*\*", line)
        if heading:
            current = heading[1]
            continue
        route = re.match(r"- `(GET|POST|PUT|PATCH|DELETE) (\S+)`", line)
        if route:
            assert current, line
            out.add((current, route[1], route[2]))
    return out


#: the seed's route overview (its lines 1-160), kept with the tests so that a clone without shared/ checks it
VENDORED = ROOT / "tests" / "data" / "seed_004_route_overview.txt"


def _seed_text() -> str:
    for base in (ROOT.parent / "shared", ROOT / "shared"):
        path = base / "seeds" / SEED_NAME
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    if VENDORED.is_file():
        return VENDORED.read_text(encoding="utf-8", errors="replace")
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI=true but the seed {SEED_NAME} is not in shared/seeds beside the repository")
    pytest.skip(f"the seed {SEED_NAME} is not in shared/seeds beside the repository")


def _openapi_routes(tmp_path) -> set[tuple[str, str]]:
    settings = Settings(warehouse_url=f"duckdb:///{tmp_path / 'wh'}", jwt_secret="x" * 40)
    doc = create_app(settings).openapi()
    return {(m.upper(), norm(p)) for p, ops in doc["paths"].items() for m in ops}


def test_table_is_well_formed():
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    assert len(rows) > 90
    for r in rows:
        assert r["status"] in STATUSES, r["line"]
        if r["status"] == "served":
            assert r["ours"], f"a served row names no route of ours: {r['line']}"
        if r["status"] == "not carried over":
            assert len(r["note"]) > 20, f"say why it is not carried over: {r['line']}"
        for _, path in r["ours"]:
            assert path.startswith(("/v1/", "/health")), r["line"]


def test_served_routes_are_in_the_openapi_document(tmp_path):
    served = _openapi_routes(tmp_path)
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    missing = [
        f"{m} {p}  ({r['file']} {' '.join(r['seed'])})"
        for r in rows
        if r["status"] == "served"
        for m, p in r["ours"]
        if (m, norm(p)) not in served
    ]
    assert not missing, "listed as served in docs/api.md but not in the OpenAPI document:\n" + "\n".join(
        missing
    )
    now_served = [
        f"{m} {p}  ({r['status']})"
        for r in rows
        if r["status"].startswith("planned")
        for m, p in r["ours"]
        if (m, norm(p)) in served
    ]
    assert not now_served, "served now, still marked planned in docs/api.md (flip to served):\n" + "\n".join(
        now_served
    )


def test_every_seed_route_has_its_row():
    seed = seed_routes(_seed_text())
    files = {f for f, _, _ in seed}
    assert len(files) == 14 and len(seed) > 100  # 13 route files and index.ts
    rows = table_rows(DOC.read_text(encoding="utf-8"))
    listed = {(r["file"], *r["seed"]) for r in rows}
    assert not (files - {f for f, _, _ in listed}), (
        f"seed route files without rows: {files - {f for f, _, _ in listed}}"
    )
    assert not (seed - listed), f"seed routes without a row: {sorted(seed - listed)}"
    assert not (listed - seed), f"rows naming no seed route: {sorted(listed - seed)}"
    assert len(listed) == len(rows), "a seed route listed twice"


def test_the_checks_can_fail(tmp_path):
    """The parser and the comparison catch a served route that does not exist and a dropped seed row."""
    text = DOC.read_text(encoding="utf-8")
    broken = text.replace(
        "| GET /v1/revenue/projections | served |", "| GET /v1/revenue/forecasts/{id} | served |"
    )
    served = _openapi_routes(tmp_path)
    bad = [
        p
        for r in table_rows(broken)
        if r["status"] == "served"
        for m, p in r["ours"]
        if (m, norm(p)) not in served
    ]
    assert bad == ["/v1/revenue/forecasts/{id}"]
    dropped = "\n".join(line for line in text.splitlines() if "| GET /:widgetId/data |" not in line)
    assert len(table_rows(dropped)) == len(table_rows(text)) - 1
