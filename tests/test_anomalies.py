"""KPI anomaly detection (issue 17): the detector on constructed series, the planted truth, the acceptance
figures on generator data, deduplicated alert instances through the alert engine (SQLite ops database,
real SMTP and HTTP servers), and the Dagster wiring on the shared fixture."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import sqlalchemy as sa
from notify_servers import http_server, smtp_server

from analytics_pipelines import notify
from analytics_pipelines.alerting import notifier as N
from analytics_pipelines.anomalies import alerts as AL
from analytics_pipelines.anomalies import detector as D
from analytics_pipelines.anomalies import evaluation as EV
from analytics_pipelines.anomalies.assets import to_anomalies
from analytics_pipelines.anomalies.series import hourly_series
from analytics_pipelines.generator.synth import generate_tables
from analytics_pipelines.generator.truth import planted_truth
from analytics_pipelines.ops.alerts import alert_instances, alert_notifications, alert_rules
from analytics_pipelines.ops.db import ops_engine
from analytics_pipelines.settings import AnomalySettings

T = "11111111-1111-1111-1111-111111111111"
V = [f"aaaaaaaa-0000-0000-0000-00000000000{i}" for i in range(3)]
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
CFG = AnomalySettings()
QUIET = N.Notifier(sleep=lambda s: None)


def seasonal(
    weeks: int = 10, venue: str = V[0], metric: str = "hourly_orders", seed: int = 1
) -> pl.DataFrame:
    """Poisson counts with a strong weekday x hour pattern (busy evenings, quiet nights, busy Fridays)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(weeks * 168)
    hod, dow = hours % 24, (hours // 24) % 7
    rate = 0.2 + 3.0 * ((hod >= 17) & (hod <= 21)) + 2.0 * (dow == 4)
    return pl.DataFrame(
        {
            "tenant_id": [T] * hours.size,
            "venue_id": [venue] * hours.size,
            "metric": [metric] * hours.size,
            "hour": [START + timedelta(hours=int(h)) for h in hours],
            "value": rng.poisson(rate).astype(float),
        }
    ).with_columns(pl.col("hour").cast(pl.Datetime("us", "UTC")))


def with_value(df: pl.DataFrame, hour: datetime, value: float, hours: int = 1) -> pl.DataFrame:
    inside = (pl.col("hour") >= hour) & (pl.col("hour") < hour + timedelta(hours=hours))
    return df.with_columns(pl.when(inside).then(pl.lit(value)).otherwise(pl.col("value")).alias("value"))


# -- the detector ---------------------------------------------------------------------------------------


def test_seasonality_is_not_anomalous_and_a_spike_is():
    s = seasonal()
    first = START + timedelta(weeks=8)
    last = START + timedelta(weeks=10) - timedelta(hours=1)
    scored, baselines = D.detect(s, CFG, first, last)
    assert scored.height == 14 * 24 and scored["score"].null_count() == 0
    # busy Friday evenings are busy every week: the baseline carries them, they are not anomalies
    fri_evening = scored.filter((pl.col("hour").dt.weekday() == 5) & (pl.col("hour").dt.hour() == 19))
    assert fri_evening["baseline"].min() >= 3 and fri_evening["severity"].null_count() == fri_evening.height
    alerts = D.episodes(scored, CFG)
    assert alerts.height <= 1  # pure noise: at most one false alert over two weeks
    spike_at = START + timedelta(weeks=9, hours=3)  # a Monday 03:00, normally ~0 orders
    scored2, _ = D.detect(with_value(s, spike_at, 25.0), CFG, first, last)
    hit = scored2.filter(pl.col("hour") == spike_at).row(0, named=True)
    assert hit["severity"] == "critical" and hit["score"] > 15 and hit["window_hours"] == 1
    eps = D.episodes(scored2, CFG).filter(  # the one episode open at the spike (it may have opened earlier)
        (pl.col("opened") <= spike_at) & (pl.col("resolved").is_null() | (pl.col("resolved") > spike_at))
    )
    assert eps.height == 1 and eps["peak_severity"][0] == "critical"
    # the persisted baselines: 168 slots per window, medians and MADs from the 8 weeks before
    assert baselines.group_by("window_hours").len()["len"].to_list() == [168] * len(CFG.windows)
    assert (baselines["status"] == "fitted").all() and baselines["scale"].min() >= 1


def test_a_day_long_drop_is_found_by_the_24_hour_window():
    s = seasonal(seed=3)
    drop_at = START + timedelta(weeks=9, days=2)  # Wednesday, a whole day without sales
    scored, _ = D.detect(
        with_value(s, drop_at, 0.0, hours=24),
        CFG,
        START + timedelta(weeks=8),
        START + timedelta(weeks=10) - timedelta(hours=1),
    )
    during = scored.filter((pl.col("hour") >= drop_at) & (pl.col("hour") < drop_at + timedelta(hours=30)))
    assert (during["severity"].is_not_null() & (during["score"] < 0)).any()
    assert during.filter(pl.col("severity").is_not_null())["window_hours"].min() >= 6


def test_every_severity_is_reachable():
    s = seasonal(seed=5)
    first = START + timedelta(weeks=8)
    scored, _ = D.detect(s, CFG, first, first + timedelta(hours=23))
    night = scored.filter(pl.col("hour").dt.hour() == 3)["hour"][0]  # baseline ~0, scale 1
    seen = set()
    for v in (5, 8, 12, 30):
        out, _ = D.detect(with_value(s, night, float(v)), CFG, night, night)
        seen.add(out["severity"][0])
    assert seen == set(D.SEVERITIES)


def test_one_hour_of_history_no_crash_no_nan():
    one = seasonal(weeks=1).head(1)
    scored, baselines = D.detect(one, CFG, one["hour"][0], one["hour"][0])
    assert scored.height == 1 and scored["score"][0] is None and scored["severity"][0] is None
    assert (baselines["status"] == "insufficient_history").all()
    for df in (scored, baselines):
        for c, t in df.schema.items():
            if t == pl.Float64:
                assert df[c].is_nan().sum() == 0
    assert D.episodes(scored, CFG).is_empty()
    assert D.seed_zscore(one, one["hour"][0])["flagged"].to_list() == [False]
    empty, b = D.detect(one.clear(), CFG, one["hour"][0], one["hour"][0])
    assert empty.is_empty() and b.is_empty()


def test_constant_series_has_a_floor_not_a_division_by_zero():
    s = seasonal().with_columns(pl.lit(0.0).alias("value"))
    scored, _ = D.detect(s, CFG, START + timedelta(weeks=8), START + timedelta(weeks=9))
    assert scored["scale"].min() == 1.0 and scored["score"].abs().max() == 0
    assert D.seed_zscore(s, START + timedelta(weeks=8))["z"].null_count() > 0  # the seed divides by 0


def test_episodes_deduplicate_and_resolve():
    cfg = AnomalySettings(resolve_hours=3)
    base = datetime(2026, 3, 2, tzinfo=UTC)
    sev = [None, "low", None, "high", None, None, None, None, "medium", None, None, None]
    scored = pl.DataFrame(
        {
            "tenant_id": [T] * 12,
            "venue_id": [V[0]] * 12,
            "metric": ["hourly_orders"] * 12,
            "hour": [base + timedelta(hours=i) for i in range(12)],
            "score": [5.0 if x else 0.0 for x in sev],
            "severity": sev,
        }
    ).with_columns(pl.col("hour").cast(pl.Datetime("us", "UTC")))
    eps = D.episodes(scored, cfg)
    # hours 1 and 3 are within 3 hours: one episode, resolved at hour 6 (3 normal hours after hour 3);
    # hour 8 opens a second one, resolved at hour 11
    assert eps.select("opened", "resolved").rows() == [
        (base + timedelta(hours=1), base + timedelta(hours=6)),
        (base + timedelta(hours=8), base + timedelta(hours=11)),
    ]
    # still open at the last scored hour: resolved is NULL
    assert D.episodes(scored.head(10), cfg)["resolved"].to_list()[-1] is None
    assert eps["peak_severity"].to_list() == ["high", "medium"]


# -- the planted truth and the acceptance figures -------------------------------------------------------


def test_planted_truth_is_deterministic_and_complete():
    a, b = planted_truth("tiny", 42), planted_truth("tiny", 42)
    assert a["monitoring"] == b["monitoring"] and a["monitoring"]["anomalies"]
    for x in planted_truth("small", 42)["monitoring"]["anomalies"]:
        assert set(x) == {
            "tenant_id",
            "venue_id",
            "metric",
            "start_hour",
            "end_hour",
            "kind",
            "magnitude",
            "delta",
        }
        assert x["metric"] in ("hourly_orders", "hourly_refunds") and x["start_hour"] < x["end_hour"]
        assert (x["delta"] > 0) == (x["kind"] in ("spike", "level_shift_up", "refund_spike"))


facts_of = EV.facts_from_tables


def acceptance(scale: str, seed: int = 42) -> tuple[dict, dict, pl.DataFrame, pl.DataFrame]:
    tables = generate_tables(scale, seed=seed)
    facts, venues = facts_of(tables)
    last = facts["fct_orders"]["recognized_at"].max().replace(minute=0, second=0)
    first = facts["fct_orders"]["recognized_at"].min().replace(minute=0, second=0)
    series = hourly_series(facts, venues, first, last)
    score_from = first + timedelta(days=28)
    scored, _ = D.detect(series, CFG, score_from, last)
    truth = EV.truth_frame(planted_truth(scale, seed))
    ours = EV.score_detections(D.episodes(scored, CFG), truth, score_from, last, venues.height)
    z = D.seed_zscore(series, score_from)
    seed_rule = EV.score_detections(EV.seed_alerts(z, dedupe=True), truth, score_from, last, venues.height)
    return ours, seed_rule, scored, venues


def test_acceptance_on_small_generator_data():
    ours, seed_rule, _, _ = acceptance("small")
    print("small: ours", ours, "seed", seed_rule)
    assert ours["planted"] >= 50
    assert ours["recall"] >= 0.9
    assert ours["false_per_venue_week"] <= 1.0
    assert (
        ours["recall"] > seed_rule["recall"] - 1e-9
        and ours["false_per_venue_week"] < seed_rule["false_per_venue_week"]
    )
    assert ours["alerts_opened_per_anomaly_max"] == 1  # no anomaly opens two alerts


# -- alert instances through the engine -----------------------------------------------------------------


def test_alert_instances_one_per_episode_and_resolved(tmp_path):
    eng = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    s = seasonal(seed=11)
    spike_at = START + timedelta(weeks=9, hours=3)
    s = with_value(s, spike_at, 25.0, hours=2)
    first, last = START + timedelta(weeks=8), START + timedelta(weeks=10) - timedelta(hours=1)
    scored, _ = D.detect(s, CFG, first, last)
    anomalies = to_anomalies(scored, CFG)
    venues = pl.DataFrame({"tenant_id": [T], "venue_id": [V[0]]})
    hours = [first + timedelta(hours=i) for i in range(int((last - first) / timedelta(hours=1)) + 1)]
    AL.evaluate_anomaly_alerts(eng, anomalies, venues, hours, CFG, QUIET)
    with eng.connect() as conn:
        rules = {r.name: r.id for r in conn.execute(sa.select(alert_rules))}
        inst = conn.execute(sa.select(alert_instances).order_by(alert_instances.c.id)).mappings().all()
    assert {
        "kpi_anomaly_hourly_orders",
        "kpi_anomaly_hourly_refunds",
        "high_velocity",
        "sellout_imminent",
        "fraud_spike",
    } <= set(rules)
    eps = D.episodes(scored, CFG)
    assert len(inst) == eps.height  # one instance per episode, none per alerting hour
    spike = [i for i in inst if i["triggered_at"].replace(tzinfo=UTC) == spike_at + timedelta(hours=1)]
    assert len(spike) == 1 and spike[0]["status"] == "resolved" and spike[0]["scope_key"] == f"venue:{V[0]}"
    assert spike[0]["resolved_at"].replace(tzinfo=UTC) == spike_at + timedelta(
        hours=1 + CFG.resolve_hours + 1
    )
    # re-running the same hours (a retry, a second sensor tick) opens nothing new
    again = AL.evaluate_anomaly_alerts(eng, anomalies, venues, hours, CFG, QUIET)
    with eng.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(alert_instances)).scalar() == len(inst)
    assert not again.triggered


def test_anomaly_alert_delivered_by_email_and_webhook(tmp_path):
    eng = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    h = datetime(2026, 3, 2, 12, tzinfo=UTC)
    anomalies = pl.DataFrame(
        {"hour": [h], "tenant_id": [T], "venue_id": [V[1]], "metric": ["hourly_orders"], "alerting": [True]}
    ).with_columns(pl.col("hour").cast(pl.Datetime("us", "UTC")))
    venues = pl.DataFrame({"tenant_id": [T, T], "venue_id": [V[1], V[2]]})
    with smtp_server() as (port, inbox), http_server([]) as (url, received):
        notifier = N.Notifier(
            smtp=notify.SmtpSettings(host="127.0.0.1", port=port),
            emails=("ops@example.com",),
            webhook_url=url,
            sleep=lambda s: None,
        )
        s = AL.evaluate_anomaly_alerts(eng, anomalies, venues, [h, h + timedelta(hours=1)], CFG, notifier)
    assert s.triggered == [("kpi_anomaly_hourly_orders", f"venue:{V[1]}")]
    assert len(inbox) == 1 and "kpi_anomaly_hourly_orders" in inbox[0][1]["Subject"]
    assert len(received) == 1
    with eng.connect() as conn:
        sent = conn.execute(sa.select(alert_notifications.c.channel, alert_notifications.c.status)).all()
    assert sorted(c for c, st in sent if st == "sent") == ["email", "log", "webhook"]


def test_one_alert_instance_per_planted_anomaly_tiny(tmp_path):
    """Through the engine over the whole tiny history: every planted anomaly found by exactly one instance."""
    tables = generate_tables("tiny", seed=42)
    facts, venues = facts_of(tables)
    last = facts["fct_orders"]["recognized_at"].max().replace(minute=0, second=0)
    first = last - timedelta(days=100)
    series = hourly_series(facts, venues, first - timedelta(weeks=9), last)
    scored, _ = D.detect(series, CFG, first, last)
    eng = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    hours = sorted(scored["hour"].unique().to_list())
    AL.evaluate_anomaly_alerts(eng, to_anomalies(scored, CFG), venues, hours, CFG, QUIET)
    with eng.connect() as conn:
        inst = pl.DataFrame(
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
    alerts = inst.select(
        "venue_id",
        pl.col("metric").str.replace("anomaly:", ""),
        (pl.col("triggered_at").cast(pl.Datetime("us", "UTC")) - pl.duration(hours=1)).alias("opened"),
        pl.col("resolved_at").cast(pl.Datetime("us", "UTC")).alias("resolved"),
    )
    truth = EV.truth_frame(planted_truth("tiny", 42))
    res = EV.score_detections(alerts, truth, first, last, venues.height)
    print("tiny through the engine:", res)
    assert res["planted"] >= 3 and res["recall"] == 1.0
    assert res["alerts_per_found_anomaly_max"] == 1 and res["alerts_opened_per_anomaly_max"] == 1
    assert res["false_per_venue_week"] <= 1.0


# -- Dagster wiring and the API -------------------------------------------------------------------------


def test_assets_materialized_in_the_fixture(materialized):
    from analytics_pipelines.warehouse import open_warehouse

    assert materialized.results["anomaly_job"].success
    assert materialized.results["monitoring_alert_job"].success
    wh = open_warehouse(materialized.warehouse_url)
    assert {"kpi_anomalies", "kpi_baselines"} <= set(wh.tables())
    b = wh.read_table("kpi_baselines")
    assert b.height and set(b["status"].unique()) <= {"fitted", "insufficient_history"}
    assert not [c for c in materialized.failed_checks() if c[0] in ("kpi_anomalies", "kpi_baselines")]
    names = {c.check_name for c in materialized.checks() if c.asset_key.to_user_string() == "kpi_anomalies"}
    assert "scores_valid" in names
    eng = ops_engine(materialized.env["TT_OPS_URL"])
    with eng.connect() as conn:
        seeded = set(conn.execute(sa.select(alert_rules.c.name)).scalars())
    assert {"kpi_anomaly_hourly_orders", "high_velocity", "sellout_imminent", "fraud_spike"} <= seeded
    assert not math.isnan(wh.read("SELECT coalesce(sum(scale), 0) AS s FROM kpi_baselines")["s"][0])


def _fixture_spike() -> tuple[dict, tuple[str, str]]:
    """The fixture data's (tiny, seed 7) latest planted anomaly and the hour keys around it."""
    spikes = [
        a
        for a in planted_truth("tiny", 7)["monitoring"]["anomalies"]
        if "2026-07-01" <= a["start_hour"] < "2026-10-30"
    ]
    spike = max(spikes, key=lambda a: a["start_hour"])
    start = datetime.fromisoformat(spike["start_hour"].replace("Z", "+00:00"))
    keys = tuple((start + timedelta(hours=h)).strftime("%Y-%m-%d-%H:%M") for h in (-28, 20))
    return spike, keys


def test_planted_spike_end_to_end_through_dagster_alerts_and_api(materialized, tmp_path):
    """kpi_job and anomaly_job over the hours around a planted anomaly of the fixture's data, then the
    monitoring alert evaluation and the route: one deduplicated instance, the anomaly served to its venue."""
    from api_helpers import SECRET
    from fastapi.testclient import TestClient

    from analytics_pipelines.api import Settings as ApiSettings
    from analytics_pipelines.api import create_app
    from analytics_pipelines.api.auth import mint_token
    from analytics_pipelines.jobs.anomaly_alerts import run_monitoring_alerts
    from analytics_pipelines.settings import Settings
    from analytics_pipelines.warehouse import open_warehouse
    from analytics_pipelines.warehouse.readers import open_reader

    spike, hours = _fixture_spike()
    venue = spike["venue_id"]
    for job in ("kpi_job", "anomaly_job"):
        assert materialized.rerun(job, *hours).success, job
    checks = [
        e.event_specific_data
        for e in materialized.rerun("anomaly_job", *hours).all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    scores_valid = [c for c in checks if c.check_name == "scores_valid"]
    assert scores_valid and scores_valid[0].passed
    assert scores_valid[0].metadata["snapshot_values_compared"].value > 0
    wh = open_warehouse(materialized.warehouse_url)
    rows = wh.read_partitions("kpi_anomalies", "hour_key", *hours).filter(
        (pl.col("venue_id") == venue) & (pl.col("metric") == spike["metric"]) & pl.col("alerting")
    )
    start = datetime.fromisoformat(spike["start_hour"].replace("Z", "+00:00"))
    assert rows.filter((pl.col("hour") >= start) & (pl.col("hour") < start + timedelta(hours=2))).height >= 1
    assert rows["direction"].to_list()[0] == "up" and rows["detector_version"][0] == D.DETECTOR_VERSION

    eng = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    cfg = Settings.from_env(materialized.env).anomaly
    first, last = (datetime.strptime(k, "%Y-%m-%d-%H:%M").replace(tzinfo=UTC) for k in hours)
    out = run_monitoring_alerts(wh, eng, cfg, first, last, QUIET)
    again = run_monitoring_alerts(wh, eng, cfg, first, last, QUIET)
    assert out["hours"] == 49 and again["anomaly_triggered"] == 0
    with eng.connect() as conn:
        inst = conn.execute(
            sa.select(alert_instances.c.venue_id, alert_rules.c.name, alert_instances.c.triggered_at)
            .join(alert_rules, alert_rules.c.id == alert_instances.c.rule_id)
            .where(
                alert_instances.c.venue_id == venue, alert_rules.c.name == f"kpi_anomaly_{spike['metric']}"
            )
        ).all()
    assert len(inst) == 1

    settings = ApiSettings(
        warehouse_url=materialized.warehouse_url,
        jwt_secret=SECRET,
        ops_url=f"sqlite:///{tmp_path / 'api.db'}",
    )
    reader = open_reader(materialized.warehouse_url)
    try:
        client = TestClient(create_app(settings, reader=reader))
        tenant = spike["tenant_id"]

        def get(url, venue):
            token = mint_token(settings, tenant_id=tenant, venue_id=venue, permissions=["analytics.read"])
            return client.get(url, headers={"Authorization": f"Bearer {token}"})

        day = start.date().isoformat()
        url = f"/v1/monitoring/anomalies?start_date={day}&end_date={day}&metric={spike['metric']}"
        r = get(url, venue)
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data and {d["venue_id"] for d in data} == {venue}
        assert {"value", "baseline", "scale", "score", "severity", "direction"} <= set(data[0])
        other = "00000000-0000-0000-0000-0000000000aa"
        assert get(url + f"&venue_id={venue}", other).status_code == 403
        assert get(url.replace(spike["metric"], "bogus"), venue).status_code == 422
        assert get(url + "&min_severity=huge", venue).status_code == 422
        high = get(url + "&min_severity=critical", venue).json()["data"]
        assert all(d["severity"] == "critical" for d in high)
    finally:
        reader.close()


def test_new_venue_with_one_hour_of_history_through_the_series(tmp_path):
    """A venue created an hour ago: its series has one hour (no zeros before it), no score, no NaN."""
    last = datetime(2026, 3, 9, 12, tzinfo=UTC)
    venues = pl.DataFrame(
        {"tenant_id": [T, T], "venue_id": [V[0], V[1]], "created_at": [START, last + timedelta(minutes=1)]}
    )
    orders = pl.DataFrame(
        {
            "tenant_id": [T] * 3,
            "venue_id": [V[1]] * 3,
            "recognized_at": [last + timedelta(minutes=m) for m in (1, 2, 3)],
        }
    )
    series = hourly_series({"fct_orders": orders}, venues, START, last, ("hourly_orders",))
    new = series.filter(pl.col("venue_id") == V[1])
    assert new.height == 1 and new["value"][0] == 3.0  # (12:00, 13:00] is hour 12
    scored, baselines = D.detect(series, CFG, last, last)
    row = scored.filter(pl.col("venue_id") == V[1]).row(0, named=True)
    assert row["score"] is None and row["severity"] is None and row["n_weeks"] == 0
    assert baselines.filter(pl.col("venue_id") == V[1])["status"].unique().to_list() == [
        "insufficient_history"
    ]
    assert all(scored[c].is_nan().sum() == 0 for c in ("value", "baseline", "scale", "score"))


def test_velocity_and_fraud_rules_fire_once_when_their_tables_exist(tmp_path):
    from analytics_pipelines.warehouse import open_warehouse

    wh = open_warehouse(f"duckdb:///{tmp_path / 'warehouse'}")
    eng = ops_engine(f"sqlite:///{tmp_path / 'ops.sqlite'}")
    now = datetime(2026, 3, 9, 12, 30, tzinfo=UTC)
    assert AL.velocity_fraud_signals(wh, now).is_empty()  # no tables yet: seeded, nothing to evaluate
    assert not AL.evaluate_velocity_fraud(eng, wh, now, QUIET).triggered
    bucket = datetime(2026, 3, 9, 12, 25, tzinfo=UTC)
    wh.write_partitions(
        "sales_velocity",
        pl.DataFrame(
            {
                "tenant_id": [T, T, T],
                "venue_id": [V[0], V[0], V[1]],
                "event_id": ["e1", "e2", "e3"],
                "bucket_start": [bucket] * 3,
                "day": [bucket.date()] * 3,
                "per_minute_5m": [12.5, 3.0, 1.0],
                "sellout_imminent": [False, True, False],
            }
        ),
        ["day"],
        [(bucket.date().isoformat(),)],
    )
    wh.replace_table(
        "fraud_metrics_hourly",
        pl.DataFrame(
            {
                "tenant_id": [T, T],
                "venue_id": [V[0], V[1]],
                "hour": [datetime(2026, 3, 9, 11, tzinfo=UTC)] * 2,
                "orders": [40, 50],
                "flagged_orders": [3, 1],
                "fraud_pct": [7.5, 2.0],
            }
        ),
    )
    s = AL.evaluate_velocity_fraud(eng, wh, now, QUIET)
    assert sorted(s.triggered) == [
        ("fraud_spike", f"venue:{V[0]}"),
        ("high_velocity", f"venue:{V[0]}"),
        ("sellout_imminent", f"venue:{V[0]}"),
    ]
    again = AL.evaluate_velocity_fraud(eng, wh, now + timedelta(minutes=5), QUIET)
    assert not again.triggered and len(again.still_open) == 3
