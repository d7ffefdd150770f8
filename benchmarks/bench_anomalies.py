"""KPI anomaly detection against the planted truth (prints; `--record` writes benchmarks/results/anomalies.md).

For each scale: the generator's data (in memory), the hourly series (analytics_pipelines.anomalies.series,
the same code the asset runs) from the facts' rules, the detector over every hour after a 4-week warm-up,
alert episodes, and the seed's z-score rule on the same series. At `small` the episodes are also replayed
hour by hour through the alert engine (SQLite ops database) to count instances per planted anomaly.

    python benchmarks/bench_anomalies.py [--scales small,medium] [--record]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import polars as pl
import sqlalchemy as sa

from analytics_pipelines.alerting import Notifier
from analytics_pipelines.anomalies import alerts as AL
from analytics_pipelines.anomalies import detector as D
from analytics_pipelines.anomalies import evaluation as EV
from analytics_pipelines.anomalies.assets import to_anomalies
from analytics_pipelines.anomalies.series import hourly_series
from analytics_pipelines.generator.synth import generate_tables
from analytics_pipelines.generator.truth import planted_truth
from analytics_pipelines.ops.alerts import alert_instances, alert_rules
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.settings import AnomalySettings

ROOT = Path(__file__).resolve().parent.parent


def engine_alerts(scored, venues, cfg) -> tuple[pl.DataFrame, float]:
    eng = ops_engine(f"sqlite:///{Path(tempfile.mkdtemp()) / 'ops.sqlite'}")
    hours = sorted(scored["hour"].unique().to_list())
    t = time.perf_counter()
    AL.evaluate_anomaly_alerts(
        eng, to_anomalies(scored, cfg), venues, hours, cfg, Notifier(sleep=lambda s: None)
    )
    seconds = time.perf_counter() - t
    with eng.connect() as conn:
        rows = (
            conn.execute(
                sa.select(
                    alert_instances.c.venue_id,
                    alert_rules.c.metric,
                    alert_instances.c.triggered_at,
                    alert_instances.c.resolved_at,
                ).join(alert_rules, alert_rules.c.id == alert_instances.c.rule_id)
            )
            .mappings()
            .all()
        )
    df = pl.DataFrame(rows).select(
        "venue_id",
        pl.col("metric").str.replace("anomaly:", ""),
        (pl.col("triggered_at").cast(pl.Datetime("us", "UTC")) - pl.duration(hours=1)).alias("opened"),
        pl.col("resolved_at").cast(pl.Datetime("us", "UTC")).alias("resolved"),
    )
    return df, seconds


def run(scale: str, seed: int, cfg: AnomalySettings, through_engine: bool) -> dict:
    t0 = time.perf_counter()
    tables = generate_tables(scale, seed=seed)
    facts, venues = EV.facts_from_tables(tables)
    del tables
    truth = EV.truth_frame(planted_truth(scale, seed))
    first = facts["fct_orders"]["recognized_at"].min().replace(minute=0, second=0)
    last = facts["fct_orders"]["recognized_at"].max().replace(minute=0, second=0)
    series = hourly_series(facts, venues, first, last)
    score_from = first + timedelta(days=28)
    t1 = time.perf_counter()
    scored, _ = D.detect(series, cfg, score_from, last)
    eps = D.episodes(scored, cfg)
    t2 = time.perf_counter()
    out = {
        "scale": scale,
        "series_hours": series.height,
        "generate_s": round(t1 - t0, 1),
        "detect_s": round(t2 - t1, 1),
        "ours": EV.score_detections(eps, truth, score_from, last, venues.height),
    }
    z = D.seed_zscore(series, score_from)
    out["seed_per_hour"] = EV.score_detections(
        EV.seed_alerts(z, dedupe=False), truth, score_from, last, venues.height
    )
    out["seed_deduped"] = EV.score_detections(
        EV.seed_alerts(z, dedupe=True), truth, score_from, last, venues.height
    )
    if through_engine:
        alerts, seconds = engine_alerts(scored, venues, cfg)
        out["engine"] = EV.score_detections(alerts, truth, score_from, last, venues.height)
        out["engine_s"] = round(seconds, 1)
    return out


def row(name: str, r: dict) -> str:
    return (
        f"| {name} | {r['planted']} | {r['found']} | {r['recall']} | {r['alerts']} | {r['false_alerts']} | "
        f"{r['false_per_venue_week']} | {r['alerts_opened_per_anomaly_max']} ({r['alerts_per_found_anomaly_max']}) | "
        + ", ".join(f"{k} {v}" for k, v in r["by_kind"].items())
        + " |"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", default="small,medium")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--record", action="store_true", help="write benchmarks/results/anomalies.md")
    args = ap.parse_args()
    cfg = AnomalySettings()
    lines = [
        "# KPI anomaly detection vs. the planted truth",
        "",
        f"`python benchmarks/bench_anomalies.py --scales {args.scales}` (seed {args.seed}) on "
        f"{platform.machine()} / Python {platform.python_version()}; detector `{D.DETECTOR_VERSION}`, "
        f"thresholds {cfg.thresholds}, windows {cfg.windows} h, baseline {cfg.baseline_weeks} weeks, alert from "
        f"`{cfg.alert_severity}`, resolve after {cfg.resolve_hours} normal hours. Scored: every hour after a "
        "4-week warm-up. A planted anomaly is found when an alert of its venue and metric is open during "
        "[start, end + 24 h); an alert matching no planted anomaly is false. Series from the generated "
        "tables with the facts' rules (in memory, not through the Dagster job; the job's code path is the "
        "same `hourly_series` + `detect`, tested in tests/test_anomalies.py).",
        "",
    ]
    for scale in args.scales.split(","):
        r = run(scale, args.seed, cfg, through_engine=(scale != "medium"))
        print(r)
        lines += [
            f"## {scale}: {r['series_hours']:,} venue-metric-hours (generate {r['generate_s']} s, detect {r['detect_s']} s"
            + (f", engine replay {r['engine_s']} s" if "engine_s" in r else "")
            + ")",
            "",
            "| detector | planted | found | recall | alerts | false alerts | false / venue-week | max alerts opened per anomaly (incl. already open) | found by kind |",
            "|---|---|---|---|---|---|---|---|---|",
            row("robust weekday x hour (episodes)", r["ours"]),
            *([row("same, instances through the alert engine", r["engine"])] if "engine" in r else []),
            row("seed z-score > 3, one alert per flagged hour (as the seed)", r["seed_per_hour"]),
            row("seed z-score > 3, consecutive hours merged", r["seed_deduped"]),
            "",
        ]
    print("\n".join(lines))
    if args.record:
        out = ROOT / "benchmarks" / "results" / "anomalies.md"
        out.write_text("\n".join(lines) + "\n")
        print(out)


if __name__ == "__main__":
    main()
