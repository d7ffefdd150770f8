"""Price elasticity against the generator's planted truth, through the real jobs (prints; nothing written).

Generates `--scale` data with its truth (data/truth.json beside it), runs main_job over the history, then
pricing_job (the clock pinned to the generator's as-of), and reports: pricing_job's wall time, per category
the estimate, its 95 % interval and the planted value, the share of categories with enough price changes
whose planted elasticity lies in the interval (goal >= 90 %), and the holdout metrics against the seed's -1.5.

    python benchmarks/bench_pricing.py [--scale small] [--seed 7] [--dir /tmp/bench_pricing]
    python benchmarks/bench_pricing.py --reuse --dir D      # pricing_job only, on a warehouse built under D
    python benchmarks/bench_pricing.py --data-dir COPY      # pricing_job only, on a COPY of a built data dir
    python benchmarks/bench_pricing.py --from-source         # no Dagster: the pure functions over the
        generated tables held in memory (evaluation.inputs_from_source: the same panel as the warehouse's for
        clean data), timing each stage (panel, full fit, cross-fitting, category-at-venue fit)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def planted(truth: dict) -> dict[str, float]:
    """{category id or name: planted elasticity} from truth["pricing"]["elasticity_by_category"]."""
    raw = (truth.get("pricing") or {}).get("elasticity_by_category") or {}
    out = {}
    items = raw.items() if isinstance(raw, dict) else ((r.get("category"), r) for r in raw)
    for key, v in items:
        value = v.get("elasticity") if isinstance(v, dict) else v
        if value is not None:
            out[str(key)] = float(value)
    return out


def coverage(table, truth: dict[str, float]) -> tuple[list[tuple], float | None]:
    import polars as pl

    rows = []
    est = table.filter((pl.col("scope") == "category") & (pl.col("status") == "estimated"))
    for r in est.iter_rows(named=True):
        value = truth.get(r["category"], truth.get(r["category_name"] or ""))
        if value is None:
            continue
        inside = r["ci_low"] <= value <= r["ci_high"]
        rows.append(
            (
                r["tenant_id"][:8],
                r["category_name"],
                r["elasticity"],
                r["ci_low"],
                r["ci_high"],
                value,
                inside,
                r["n_price_changes"],
            )
        )
    share = sum(r[6] for r in rows) / len(rows) if rows else None
    return rows, share


def from_source(scale: str, seed: int) -> int:
    """The model and its cross-fitted holdout on generated tables, without ingestion (timed per stage)."""
    import polars as pl

    from analytics_pipelines.generator import synth
    from analytics_pipelines.generator.truth import planted_truth
    from analytics_pipelines.pricing import evaluation as ev
    from analytics_pipelines.pricing.model import estimate
    from analytics_pipelines.pricing.panel import daily_panel

    t = time.time()
    tables = synth.generate_tables(scale, seed=seed)
    truth = planted(planted_truth(scale, seed))
    print(f"generate {scale} seed {seed} (in memory): {time.time() - t:.0f} s")
    t, cpu = time.time(), time.process_time()
    x = ev.inputs_from_source(tables)
    cat_names = dict(tables["event_categories"].select("id", "name").iter_rows())
    del tables
    panel, _ = daily_panel(
        x["types"], x["events"], x["sales"], x["prices"], x["currencies"], x["sales"]["day"].max()
    )
    stages = {"inputs + panel": (time.time() - t, time.process_time() - cpu)}
    print(f"panel: {panel.height} rows, {panel['price_change'].sum()} price changes")
    kw = dict(min_changes=5, version="bench", trained_at=datetime.now(UTC), names=None)
    t, cpu = time.time(), time.process_time()
    full = estimate(panel, "category", **kw)
    stages["category fit"] = (time.time() - t, time.process_time() - cpu)
    t, cpu = time.time(), time.process_time()
    perf = ev.cross_fit(panel, full, kw, None, None)
    stages[f"cross-fitting ({ev.FOLDS} folds)"] = (time.time() - t, time.process_time() - cpu)
    t, cpu = time.time(), time.process_time()
    estimate(panel, "category_venue", warm=full, controls=full, **kw)  # as the asset fits it
    stages["category_venue fit"] = (time.time() - t, time.process_time() - cpu)
    for k, (wall, c) in stages.items():
        print(f"  {k}: {wall:.1f} s wall, {c:.1f} s cpu")
    table = full.table.with_columns(
        pl.col("category").replace_strict(cat_names, default=None).alias("category_name")
    )
    rows, share = coverage(table, truth)
    _report(rows, share, table, perf, f"scale {scale}, seed {seed} (from source)")
    return 0


def _report(rows, share, table, perf, what: str) -> None:
    import polars as pl

    print(f"estimated category rows: {len(rows)}")
    print("tenant   category        estimate   ci_low  ci_high  planted inside changes")
    for r in rows:
        print(
            f"{r[0]} {str(r[1])[:14]:14} {r[2]:9.2f} {r[3]:8.2f} {r[4]:8.2f} {r[5]:8.2f} {str(r[6]):6} {r[7]:7}"
        )
    status = table.filter(pl.col("scope") == "category").group_by("status").len()
    print("\ncategory rows by status:", dict(status.iter_rows()))
    print(f"share of estimated categories whose planted elasticity is inside the 95 % interval: {share}")
    print(perf.select("model", "metric", "value", "n"))
    print(f"as of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {what}, load {os.getloadavg()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", default="small")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", default="/tmp/bench_pricing")
    ap.add_argument("--reuse", action="store_true", help="reuse a warehouse built before under --dir")
    ap.add_argument("--from-source", action="store_true", help="pure functions over generated tables")
    ap.add_argument(
        "--data-dir",
        help="pricing_job only, on a built data dir (source.duckdb, warehouse/, truth.json) of any scale, "
        "e.g. a COPY of a large build; Dagster's scratch state goes under --dir",
    )
    args = ap.parse_args()
    os.environ.setdefault("TT_ENV", "development")
    if args.from_source:
        return from_source(args.scale, args.seed)
    from materialized import materialize_everything

    from analytics_pipelines.generator.run import generate

    base = Path(args.dir) / f"{args.scale}-{args.seed}"
    data = base / "data"
    src, wh_url = f"duckdb:///{data / 'source.duckdb'}", None
    if args.data_dir:
        data, args.reuse = Path(args.data_dir), True
        src, wh_url = f"duckdb:///{data / 'source.duckdb'}", f"duckdb:///{data / 'warehouse'}"
        base = Path(args.dir) / "data-dir"
    if not args.reuse:
        data.mkdir(parents=True, exist_ok=True)
        t = time.time()
        generate(src, scale=args.scale, seed=args.seed, progress=False, truth_path=data / "truth.json")
        print(f"generate {args.scale}: {time.time() - t:.0f} s")
    t = time.time()
    runs = (("main_job", "2025-11-01", "2026-10-31"),) if not args.reuse else ()
    load = os.getloadavg()
    m = materialize_everything(
        base, warehouse_url=wh_url, source_url=src, runs=(*runs, ("pricing_job", None, None))
    )
    print(f"main_job + pricing_job: {time.time() - t:.0f} s (load before {load}, after {os.getloadavg()})")
    result = m.results["pricing_job"]
    steps = {
        e.step_key: e.event_specific_data.duration_ms
        for e in result.all_events
        if e.event_type_value == "STEP_SUCCESS" and hasattr(e.event_specific_data, "duration_ms")
    }
    for k, ms in steps.items():
        print(f"  step {k}: {ms / 1000:.1f} s")
    for e in result.all_events:
        if e.event_type_value == "ASSET_MATERIALIZATION":
            md = e.event_specific_data.materialization.metadata
            if "stages" in md:
                print(
                    f"  {e.asset_key.to_user_string()} cpu {md['cpu_seconds'].value} s; stages (wall, cpu):"
                )
                print(md["stages"].value)
    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(m.warehouse_url)
    table = wh.read_table("price_elasticity")
    truth_file = data / "truth.json"
    truth = planted(json.loads(truth_file.read_text())) if truth_file.exists() else {}
    rows, share = coverage(table, truth)
    print(f"\nplanted categories: {len(truth)}")
    perf = wh.read_table("pricing_model_performance")
    what = f"data dir {args.data_dir}" if args.data_dir else f"scale {args.scale}, seed {args.seed}"
    _report(rows, share, table, perf, what)
    return 0


if __name__ == "__main__":
    sys.exit(main())
