"""Fraud risk: the seed's rules as explicit rules, an IsolationForest over the features, a 0-100 score with
reasons, and the deduplicated events (docs/fraud.md). Pure functions over polars frames."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import polars as pl

from analytics_pipelines.fraud.features import FEATURES, PER_ORDER_MAX

MODEL_VERSION = "fraud-rules1-iforest1"
PATTERNS = ("bot_burst", "scalper", "refund_abuse", "card_testing", "anomaly", "none")
RULE_PATTERNS = PATTERNS[:4]
#: the IsolationForest adds at most this many points (anomaly in [0, 1], from the score's percentile)
ANOMALY_POINTS = 25
#: percentile of the IsolationForest score from which the anomaly starts counting
ANOMALY_FROM = 0.95
MIN_FIT_ROWS = 20
#: at most this many user-days (a seeded sample) fit the forest and give the reference score distribution
FIT_SAMPLE = 20_000


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: str
    points: int
    description: str
    #: polars condition over the user-day features
    when: pl.Expr


def rules() -> tuple[Rule, ...]:
    """The seed's rule detector (monitoring-service L2457-2581 and the advanced detector L1276-1490) mapped
    onto what the platform records. Signals the platform does not store (user agent, IP/geo, mouse and key
    timing, session length) have no rule; their points are not redistributed."""
    c = pl.col
    return (
        Rule(
            "order_velocity",
            "bot_burst",
            35,
            "5+ orders within 10 minutes by one account (seed: > 60 requests/min = 30 points, > 30 = high velocity)",
            c("max_orders_10m") >= 5,
        ),
        Rule(
            "automated_timing",
            "bot_burst",
            30,
            "3+ orders within 60 s, or a burst whose gaps vary by less than 10 s (seed: variance of the "
            "inter-request gaps < 100 = 40 points)",
            (c("max_orders_60s") >= 3)
            | ((c("max_orders_10m") >= 5) & (c("burst_gap_std_s").fill_null(1e9) < 10)),
        ),
        Rule(
            "per_order_maximum",
            "scalper",
            30,
            f"a paid order of {PER_ORDER_MAX} tickets of one type (the per-order maximum) in 30 days (seed: > 10 "
            "tickets = 35)",
            c("bulk_orders_30d") >= 1,
        ),
        Rule(
            "new_account_bulk",
            "scalper",
            20,
            "the first such order placed by an account less than 48 hours old (seed feature account_age_days)",
            (c("bulk_orders_30d") >= 1) & (c("bulk_account_age_h").fill_null(1e9) < 48),
        ),
        Rule(
            "quick_resale_markup",
            "scalper",
            30,
            "5+ tickets listed within 30 days, at a mean markup of 30 % or more, the first within 3 days of purchase",
            (c("listings_30d") >= 5)
            & (c("resale_markup_30d") >= 0.3)
            & (c("min_hours_to_resale_30d").fill_null(1e9) < 72),
        ),
        Rule(
            "failed_checkouts",
            "card_testing",
            50,
            "5+ failed (cancelled/expired) checkouts in a day, 80 %+ of the day's orders (seed: failed_attempts)",
            (c("failed_orders") >= 5) & (c("failed_ratio") >= 0.8),
        ),
        Rule(
            "payment_methods",
            "card_testing",
            25,
            "more than 3 payment methods in a day (seed: > 3 payment methods = 25 points)",
            c("payment_methods") > 3,
        ),
        Rule(
            "refund_ratio",
            "refund_abuse",
            40,
            "3+ refunds in 90 days and at least half of the paid orders refunded (seed: high_refund_rate > 0.1)",
            (c("refunds_90d") >= 3) & (c("refund_ratio_90d") >= 0.5),
        ),
        Rule("repeat_refunds", "refund_abuse", 20, "4+ refunds in 90 days", c("refunds_90d") >= 4),
    )


def level(score: pl.Expr, flag: int) -> pl.Expr:
    """low < 30 <= medium < flag <= high < 80 <= critical (the seed: > 0.7 event, > 0.9 critical)."""
    return (
        pl.when(score >= max(80, flag))
        .then(pl.lit("critical"))
        .when(score >= flag)
        .then(pl.lit("high"))
        .when(score >= 30)
        .then(pl.lit("medium"))
        .otherwise(pl.lit("low"))
    )


def _matrix(df: pl.DataFrame) -> np.ndarray:
    x = df.select(
        [pl.col(f).cast(pl.Float64).fill_null(0.0) for f in FEATURES if f != "min_account_age_h"]
        + [(1.0 / (1.0 + pl.col("min_account_age_h").fill_null(1e6).clip(0, None) / 24)).alias("newness")]
    )
    return np.log1p(np.clip(x.to_numpy(), 0, None))


def anomaly(fit: pl.DataFrame, score: pl.DataFrame, seed: int = 0) -> tuple[np.ndarray, str]:
    """IsolationForest fitted on `fit` (the trailing population), applied to `score`: an anomaly in [0, 1]
    (0 below the ANOMALY_FROM percentile of the fitted scores, 1 at the most anomalous)."""
    if fit.height < MIN_FIT_ROWS or score.height == 0:
        return np.zeros(
            score.height
        ), f"isolation forest skipped: {fit.height} rows to fit (< {MIN_FIT_ROWS})"
    from sklearn.ensemble import IsolationForest

    x_fit = _matrix(fit)
    if x_fit.shape[0] > FIT_SAMPLE:
        x_fit = x_fit[np.random.default_rng(seed).choice(x_fit.shape[0], FIT_SAMPLE, replace=False)]
    model = IsolationForest(n_estimators=100, max_samples=min(256, x_fit.shape[0]), random_state=seed)
    model.fit(x_fit)
    ref = np.sort(-model.score_samples(x_fit))
    s = -model.score_samples(_matrix(score))
    pct = np.searchsorted(ref, s, side="right") / ref.size
    return np.clip(
        (pct - ANOMALY_FROM) / (1 - ANOMALY_FROM), 0.0, 1.0
    ), f"isolation forest on {x_fit.shape[0]} rows"


def score(days: pl.DataFrame, fit: pl.DataFrame, flag: int, scored_at) -> tuple[pl.DataFrame, str]:
    """Risk per user-day: rule points + ANOMALY_POINTS x anomaly, capped at 100, with reasons and the pattern."""
    rs = rules()
    df = days.with_columns([r.when.fill_null(False).alias(f"rule_{r.name}") for r in rs])
    an, note = anomaly(fit, df)
    df = df.with_columns(pl.Series("anomaly", an))
    pts = {
        p: pl.sum_horizontal(
            [pl.when(pl.col(f"rule_{r.name}")).then(r.points).otherwise(0) for r in rs if r.pattern == p]
            or [pl.lit(0)]
        )
        for p in PATTERNS[:-1]
    }
    df = df.with_columns([e.alias(f"points_{p}") for p, e in pts.items()])
    rule_total = pl.sum_horizontal([pl.col(f"points_{p}") for p in pts])
    best = pl.concat_list([pl.col(f"points_{p}") for p in pts]).list.arg_max()
    df = df.with_columns(
        rule_total.alias("rule_points"),
        pl.min_horizontal(pl.lit(100.0), rule_total + ANOMALY_POINTS * pl.col("anomaly"))
        .round(0)
        .cast(pl.Int64)
        .alias("risk_score"),
        pl.when(rule_total > 0)
        .then(best.replace_strict(list(range(len(pts))), list(pts), return_dtype=pl.String))
        .otherwise(pl.lit("anomaly"))
        .alias("pattern"),
        pl.concat_list(
            [pl.when(pl.col(f"rule_{r.name}")).then(pl.lit(f"{r.name} (+{r.points})")) for r in rs]
            + [
                pl.when(pl.col("anomaly") > 0).then(
                    pl.format("isolation_forest (+{})", (pl.col("anomaly") * ANOMALY_POINTS).round(1))
                )
            ]
        )
        .list.drop_nulls()
        .list.join("; ")
        .alias("reasons"),
    )
    t = pl.col
    start = (
        pl.when(t("pattern") == "scalper")
        .then(pl.coalesce("first_bulk_30d", "first_activity_at"))
        .when(t("pattern") == "refund_abuse")
        .then(pl.coalesce("first_refund_90d", "first_activity_at"))
        .otherwise(pl.coalesce("first_order_at", "first_activity_at"))
    )
    df = df.with_columns(
        level(t("risk_score"), flag).alias("risk_level"),
        pl.min_horizontal(start, t("last_activity_at")).alias("behaviour_start"),
        t("last_activity_at").alias("behaviour_end"),
        pl.lit(scored_at).cast(pl.Datetime("us", "UTC")).alias("scored_at"),
        pl.lit(MODEL_VERSION).alias("model_version"),
        pl.struct([*FEATURES, "bulk_account_age_h", "anomaly"]).struct.json_encode().alias("evidence"),
    )
    return df.drop([c for c in df.columns if c.startswith("rule_")]), note


EVENT_COLUMNS = (
    "event_id",
    "tenant_id",
    "venue_id",
    "user_id",
    "pattern",
    "risk_score",
    "risk_level",
    "reasons",
    "behaviour_start",
    "behaviour_end",
    "first_flagged_day",
    "last_flagged_day",
    "flagged_days",
    "scored_at",
    "evidence",
    "model_version",
)


def events(flagged: pl.DataFrame, previous: pl.DataFrame | None, now) -> pl.DataFrame:
    """One event per behaviour: a user's flagged days of one pattern whose behaviour windows overlap are the
    same behaviour (a rolling window sees it again every day); a later, disjoint window is new behaviour.
    `scored_at` is when the behaviour was first flagged (kept from `previous`), so re-runs flag nothing anew."""
    if flagged.is_empty():
        return pl.DataFrame(schema={c: flagged.schema.get(c, pl.String) for c in EVENT_COLUMNS}).with_columns(
            pl.col("scored_at").cast(pl.Datetime("us", "UTC")), pl.col("flagged_days").cast(pl.Int64)
        )
    g = ["tenant_id", "user_id", "pattern"]
    f = flagged.sort([*g, "behaviour_start", "day"]).with_columns(
        pl.col("behaviour_end").cum_max().shift(1).over(g).alias("_prev_end")
    )
    f = f.with_columns(
        (pl.col("_prev_end").is_null() | (pl.col("behaviour_start") > pl.col("_prev_end")))
        .cum_sum()
        .over(g)
        .alias("_grp")
    )
    ev = (
        f.sort([*g, "_grp", "risk_score", "day"], descending=[False, False, False, False, True, False])
        .group_by([*g, "_grp"], maintain_order=True)
        .agg(
            pl.first("venue_id"),
            pl.first("risk_score"),
            pl.first("risk_level"),
            pl.first("reasons"),
            pl.first("evidence"),
            pl.first("model_version"),
            pl.min("behaviour_start"),
            pl.max("behaviour_end"),
            pl.min("day").alias("first_flagged_day"),
            pl.max("day").alias("last_flagged_day"),
            pl.len().alias("flagged_days"),
        )
    )
    ev = ev.with_columns(
        pl.concat_str(
            ["tenant_id", "user_id", "pattern", pl.col("first_flagged_day").cast(pl.String)], separator="|"
        )
        .map_elements(lambda s: hashlib.sha256(s.encode()).hexdigest()[:32], return_dtype=pl.String)
        .alias("event_id")
    )
    first_seen = pl.lit(now).cast(pl.Datetime("us", "UTC"))
    if previous is not None and previous.height and "event_id" in previous.columns:
        ev = ev.join(
            previous.select("event_id", pl.col("scored_at").alias("_was")), on="event_id", how="left"
        )
        ev = ev.with_columns(pl.coalesce("_was", first_seen).alias("scored_at"))
    else:
        ev = ev.with_columns(first_seen.alias("scored_at"))
    return ev.select(EVENT_COLUMNS).sort("scored_at", "tenant_id", "user_id", "pattern", "behaviour_start")


def hourly(orders: pl.DataFrame, ev: pl.DataFrame) -> pl.DataFrame:
    """Orders per venue and hour, and those placed by a flagged user inside the flagged behaviour window."""
    o = orders.filter(pl.col("t").is_not_null()).with_columns(pl.col("t").dt.truncate("1h").alias("hour"))
    hits = (
        o.select("id", "tenant_id", "user_id", "t")
        .join(
            ev.select("tenant_id", "user_id", "behaviour_start", "behaviour_end"), on=["tenant_id", "user_id"]
        )
        .filter(pl.col("t").is_between(pl.col("behaviour_start"), pl.col("behaviour_end")))
        .select("id")
        .unique()
        .with_columns(pl.lit(True).alias("flagged"))
    )
    out = (
        o.join(hits, on="id", how="left")
        .group_by("tenant_id", "venue_id", "hour")
        .agg(
            pl.len().alias("orders"),
            pl.col("flagged").fill_null(False).sum().cast(pl.Int64).alias("flagged_orders"),
        )
        .with_columns(
            (100.0 * pl.col("flagged_orders") / pl.col("orders")).round(2).alias("fraud_pct"),
            pl.col("hour").dt.date().alias("day"),
        )
    )
    return out.sort("day", "tenant_id", "venue_id", "hour")
