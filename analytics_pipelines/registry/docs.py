"""Regenerate docs/marts.md's table index from the registry: `python -m analytics_pipelines.registry.docs`.
A test fails when the committed index differs from the registry's."""

from __future__ import annotations

from analytics_pipelines.registry import default_registry
from analytics_pipelines.settings import PROJECT_ROOT

BEGIN, END = "<!-- registry index: begin -->\n", "<!-- registry index: end -->"


def main() -> None:
    path = PROJECT_ROOT / "docs" / "marts.md"
    doc = path.read_text()
    head, rest = doc.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    path.write_text(head + BEGIN + default_registry().markdown_index() + END + tail)
    print(f"wrote the table index of {path}")


if __name__ == "__main__":
    main()
