"""Regenerate docs/marts.md's table index and docs/query.md's catalogue of measures and dimensions from the
registry: `python -m analytics_pipelines.registry.docs`. Tests fail when a committed one differs."""

from __future__ import annotations

from pathlib import Path

from analytics_pipelines.registry import default_registry
from analytics_pipelines.registry.semantic import cubes_markdown
from analytics_pipelines.settings import PROJECT_ROOT

BEGIN, END = "<!-- registry index: begin -->\n", "<!-- registry index: end -->"
CUBES_BEGIN, CUBES_END = "<!-- query layer catalogue: begin -->\n", "<!-- query layer catalogue: end -->"


def _replace(path: Path, begin: str, end: str, text: str) -> None:
    doc = path.read_text()
    head, rest = doc.split(begin, 1)
    tail = rest.split(end, 1)[1]
    path.write_text(head + begin + text + end + tail)
    print(f"wrote the generated part of {path}")


def main() -> None:
    registry = default_registry()
    _replace(PROJECT_ROOT / "docs" / "marts.md", BEGIN, END, registry.markdown_index())
    _replace(PROJECT_ROOT / "docs" / "query.md", CUBES_BEGIN, CUBES_END, cubes_markdown(registry.cubes()))


if __name__ == "__main__":
    main()
