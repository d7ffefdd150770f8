"""`analytics-pipelines`: generate sample data, run the main job, query the warehouse.

analytics-pipelines generate [--scale small] [--seed 42] [--target URL] [--dirty --manifest F] [--truth F]
analytics-pipelines run [--from DAY --to DAY] [--job main_job]
analytics-pipelines backfill --from DAY --to DAY [--job main_job] [--group G ...] [--wait SECONDS]
analytics-pipelines sql "select ..." [--format table|csv|json]
analytics-pipelines api [--host 127.0.0.1] [--port 8000] [--workers 1]
analytics-pipelines token --tenant UUID [--venue UUID] [--role user] [--permission analytics.read ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

from analytics_pipelines.paths import PROJECT_ROOT, data_dir


def _setup_dagster_home() -> Path:
    """Local Dagster storage under the project unless DAGSTER_HOME says otherwise (see dagster.yaml)."""
    from analytics_pipelines.instance import storage_env

    os.environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT))
    # batch the per-partition materialization events of single-run backfills (see instance.py)
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "1000")
    root = os.environ.get("TT_DAGSTER_STORAGE", str(PROJECT_ROOT / ".dagster"))
    for key, value in storage_env(root).items():
        os.environ.setdefault(key, value)
    Path(root).mkdir(parents=True, exist_ok=True)
    return Path(os.environ["DAGSTER_HOME"])


def cmd_generate(args: argparse.Namespace) -> int:
    from analytics_pipelines.generator.run import generate
    from analytics_pipelines.resources import default_source_url

    url = args.target or default_source_url()
    started = time.perf_counter()
    counts = generate(
        url,
        scale=args.scale,
        seed=args.seed,
        as_of=date.fromisoformat(args.as_of),
        dirty=args.dirty,
        dirty_rate=args.dirty_rate,
        manifest_path=Path(args.manifest) if args.manifest else None,
        progress=not args.quiet,
        truth_path=Path(args.truth) if args.truth else data_dir() / "truth.json",
        behavior_dir=data_dir() / "mongo",
        mongo_url=args.mongo_url,
        plant_insights=args.plant_insights,
    )
    _print_counts(f"generated '{args.scale}' (seed {args.seed}) into {url}", counts)
    print(f"took {time.perf_counter() - started:.1f} s")
    return 0


def _print_counts(title: str, counts: dict[str, int]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title)
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, n in counts.items():
        t.add_row(name, f"{n:,}")
    Console().print(t)


def _landing_key_ready() -> bool:
    """Whether personal data may land: a run over the embedded generated sample (no TT_SOURCE_URL: its
    people are synthetic) is development unless TT_ENV says otherwise, and lands with the fixed development
    pseudonym key (with a warning). A run over a real platform (TT_SOURCE_URL) keeps TT_ENV as given, so in
    production a missing TT_LANDING_PSEUDONYM_KEY refuses here, before anything runs (docs/privacy.md)."""
    from analytics_pipelines.privacy import PseudonymKeyError, landing_key

    if not os.environ.get("TT_SOURCE_URL") and not os.environ.get("TT_ENV"):
        os.environ["TT_ENV"] = "development"
        print(
            "TT_ENV=development (the embedded sample source): personal data lands with the development "
            "pseudonym key",
            file=sys.stderr,
        )
    try:
        landing_key()
    except PseudonymKeyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return False
    return True


def cmd_run(args: argparse.Namespace) -> int:
    if not _landing_key_ready():
        return 2
    _setup_dagster_home()
    import dagster as dg

    from analytics_pipelines.resources import default_source_url, default_warehouse_url
    from analytics_pipelines.runner import everything_else, never_materialized, run_job, summary

    source_url = default_source_url()
    if source_url.startswith("duckdb:///") and not Path(source_url.removeprefix("duckdb:///")).exists():
        from analytics_pipelines.generator.run import generate

        print(f"no source at {source_url}: generating '{args.scale}' sample data first")
        generate(
            source_url,
            scale=args.scale,
            seed=args.seed,
            progress=not args.quiet,
            truth_path=data_dir() / "truth.json",
            behavior_dir=data_dir() / "mongo",
        )
    started = time.perf_counter()
    result = run_job(args.job, first=args.first, last=args.last)
    results = [(args.job, result)]
    if result.success and args.job == "main_job" and args.last is None and not args.main_only:
        # every other output once (KPIs, customer analytics and models, one report of each format); the
        # schedules keep them going from here
        results += everything_else(default_warehouse_url())
    elapsed = time.perf_counter() - started
    summary(results, elapsed, source_url, default_warehouse_url())
    result = next((r for _, r in results if not r.success), result)
    if len(results) > 1 and never_materialized(dg.DagsterInstance.get()):
        return 1  # the full run builds every output; the summary names what it left out
    return 0 if result.success else 1


def cmd_backfill(args: argparse.Namespace) -> int:
    """Submit a Dagster asset backfill (what the UI's "Materialize partitions" does); the daemon runs it."""
    import dagster as dg

    _setup_dagster_home()
    from analytics_pipelines.backfill import submit_backfill, wait_for_backfill
    from analytics_pipelines.definitions import defs

    instance = dg.DagsterInstance.get()
    try:
        tags = dict(t.split("=", 1) for t in args.tag or [])
        sub = submit_backfill(instance, defs, args.job, args.first, args.last, tags=tags, groups=args.group)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"backfill {sub.backfill_id}: {sub.assets} assets x {sub.partitions} partitions of {args.job}")
    if not args.wait:
        print("the daemon launches its runs (`make dev` runs one); the UI's Backfills tab shows progress")
        return 0
    seen: set[str] = set()

    def progress(state: str, runs: list[str]) -> None:
        for run_id in sorted(set(runs) - seen):
            print(f"  run {run_id} launched", flush=True)
        seen.update(runs)

    state, _ = wait_for_backfill(instance, sub.backfill_id, timeout=args.wait, progress=progress)
    print(f"backfill {sub.backfill_id}: {state}")
    return 0 if state == "succeeded" else 1


def cmd_sql(args: argparse.Namespace) -> int:
    from analytics_pipelines.resources import default_warehouse_url
    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(args.warehouse or default_warehouse_url())
    try:
        df = wh.read(args.query)
    except Exception as exc:  # analysts get the database's message, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "csv":
        sys.stdout.write(df.write_csv())
    elif args.format == "json":
        sys.stdout.write(json.dumps(df.to_dicts(), default=str, indent=1) + "\n")
    else:
        import polars as pl

        with pl.Config(tbl_rows=args.limit, tbl_cols=-1, fmt_str_lengths=60, tbl_width_chars=200):
            print(df)
    return 0


def _uuid_arg(value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from analytics_pipelines.api import ConfigError, Settings, create_app

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    try:
        app = create_app(Settings.from_env())  # also checks the configuration before any worker starts
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    opts = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log)
    if args.workers > 1:  # each worker process builds its own app from the same environment
        uvicorn.run("analytics_pipelines.api.app:create_app", factory=True, workers=args.workers, **opts)
    else:
        uvicorn.run(app, **opts)
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from analytics_pipelines.api import ConfigError, Settings
    from analytics_pipelines.api.auth import PERMISSIONS, mint_token

    settings = Settings.from_env()
    key = Path(args.private_key).read_text() if args.private_key else None
    try:
        print(
            mint_token(
                settings,
                tenant_id=args.tenant,
                venue_id=args.venue,
                user_id=args.user,
                role=args.role,
                permissions=args.permission or [PERMISSIONS[0]],
                expires_in=args.expires_in,
                private_key=key,
            )
        )
    except (ConfigError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="analytics-pipelines", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="write synthetic TicketToken platform data into a source database")
    g.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--as-of", default="2026-11-01", help="the generator's 'now' (no purchase after it)")
    g.add_argument(
        "--target",
        help="postgresql://... or duckdb:///path (default: TT_SOURCE_URL or the "
        f"embedded source under {data_dir()})",
    )
    g.add_argument("--dirty", action="store_true", help="inject every bad-row kind (landing-shaped source)")
    g.add_argument("--dirty-rate", type=float, default=0.01)
    g.add_argument("--manifest", help="where --dirty writes its JSON manifest of injected rows")
    g.add_argument(
        "--truth",
        help="where the planted truth is written as JSON (default: data/truth.json; models never read it)",
    )
    g.add_argument(
        "--plant-insights",
        action="store_true",
        help="also plant venue-insight truth (a venue's sales jump, an event's stall, a venue's recent orders "
        "bought by its lapsed customers (a segment shift); recorded in the truth "
        "under 'insights'; off by default, docs/insights.md)",
    )
    g.add_argument(
        "--mongo-url",
        help="also load the behavioral collections into this MongoDB (they are always written as Extended "
        "JSON files under data/mongo)",
    )
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=cmd_generate)

    r = sub.add_parser("run", help="materialize every asset for every partition (the main job), in-process")
    r.add_argument("--job", default="main_job")
    r.add_argument("--from", dest="first", help="first partition (default: the first)")
    r.add_argument("--to", dest="last", help="last partition (default: today)")
    r.add_argument("--scale", default="small", help="scale to generate when no embedded source exists")
    r.add_argument("--seed", type=int, default=42)
    r.add_argument("--quiet", action="store_true")
    r.add_argument("--main-only", action="store_true", help="main_job only (no KPIs, customers or reports)")
    r.set_defaults(func=cmd_run)

    b = sub.add_parser(
        "backfill", help="submit a Dagster asset backfill over a partition range (the daemon runs it)"
    )
    b.add_argument("--job", default="main_job")
    b.add_argument("--from", dest="first", required=True, help="first partition key")
    b.add_argument("--to", dest="last", required=True, help="last partition key")
    b.add_argument("--tag", action="append", help="KEY=VALUE run tag (repeatable)")
    b.add_argument(
        "--group", action="append", help="only the job's assets of this group (repeatable; default: all)"
    )
    b.add_argument("--wait", type=float, default=0, help="seconds to wait for it to finish (0: do not wait)")
    b.set_defaults(func=cmd_backfill)

    s = sub.add_parser("sql", help="read-only SQL over the warehouse (never blocks or is blocked by a run)")
    s.add_argument("query")
    s.add_argument("--format", default="table", choices=["table", "csv", "json"])
    s.add_argument("--limit", type=int, default=50, help="rows shown in table format")
    s.add_argument("--warehouse", help="warehouse URL (default: TT_WAREHOUSE_URL or the embedded one)")
    s.set_defaults(func=cmd_sql)

    a = sub.add_parser("api", help="serve the read API (JWT; TT_API_JWT_SECRET or TT_API_MODE=development)")
    a.add_argument("--host", default="127.0.0.1")
    a.add_argument("--port", type=int, default=8000)
    a.add_argument("--log-level", default="info")
    a.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=True)
    a.add_argument(
        "--workers",
        type=int,
        default=1,
        help="uvicorn worker processes (rate-limit counters are shared only with TT_API_RATE_LIMIT_STORAGE=redis://...)",
    )
    a.set_defaults(func=cmd_api)

    t = sub.add_parser("token", help="mint a development JWT the API accepts (same env as the API)")
    t.add_argument("--tenant", required=True, type=_uuid_arg, help="tenant_id claim")
    t.add_argument("--venue", type=_uuid_arg, help="venue_id claim (omit for a tenant-wide admin)")
    t.add_argument("--user", default="dev-user", help="sub claim")
    t.add_argument("--role", default="user", help="role claim (admin: every venue of the tenant)")
    t.add_argument(
        "--permission",
        action="append",
        choices=["analytics.read", "analytics.export", "analytics.admin"],
        help="repeatable; default analytics.read",
    )
    t.add_argument("--expires-in", type=int, default=3600, help="seconds (default 3600)")
    t.add_argument("--private-key", help="PEM file, when the API verifies RS256 with TT_API_JWT_PUBLIC_KEY")
    t.set_defaults(func=cmd_token)

    from analytics_pipelines.pricing.cli import add_parser as add_pricing

    add_pricing(sub)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
