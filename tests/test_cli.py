"""The console script: sql output formats, read-only refusal, and a clear error for bad SQL."""

from __future__ import annotations

import json

import polars as pl
import pytest

from analytics_pipelines.cli import main
from analytics_pipelines.warehouse import open_warehouse


@pytest.fixture
def wh_url(tmp_path):
    url = f"duckdb:///{tmp_path / 'warehouse'}"
    open_warehouse(url).replace_table(
        "venue_totals", pl.DataFrame({"venue": ["a", "b"], "cents": [100, 250]})
    )
    return url


def test_sql_formats(wh_url, capsys):
    assert (
        main(["sql", "select * from venue_totals order by venue", "--format", "json", "--warehouse", wh_url])
        == 0
    )
    assert json.loads(capsys.readouterr().out) == [{"venue": "a", "cents": 100}, {"venue": "b", "cents": 250}]
    assert (
        main(
            ["sql", "select sum(cents) as total from venue_totals", "--format", "csv", "--warehouse", wh_url]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == ["total", "350"]
    assert main(["sql", "select * from venue_totals", "--warehouse", wh_url]) == 0
    assert "venue" in capsys.readouterr().out


def test_sql_refuses_writes_and_reports_errors(wh_url, capsys):
    assert main(["sql", "drop view venue_totals", "--warehouse", wh_url]) == 2
    assert "read-only" in capsys.readouterr().err
    assert main(["sql", "select nope from venue_totals", "--warehouse", wh_url]) == 2
    assert "nope" in capsys.readouterr().err
