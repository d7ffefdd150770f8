"""Price elasticity per category and per category at a venue, from the daily panel (pricing/panel.py).

One fit per scope: the shared controls (days-to-event bins, share-of-sales-window bins, weekday) and one
elasticity per group that has enough evidence: at least `min_changes` price changes observed in at least two
events (clusters). Groups with less get a row with status 'insufficient_data', the count and the reason;
their ticket types that did change price are left out of the fit (their price effect would otherwise leak
into the controls), their one-price types still inform the controls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl
from scipy.stats import t as t_dist

from analytics_pipelines.pricing.estimator import apply_factors, by_code, fit_slopes
from analytics_pipelines.pricing.joint import fit_elasticities

MODEL = "loglog_ppml_fe"
VERSION = "1"
FEATURES = (
    "log_price",
    "days_to_event_bin",
    "tier_x_sales_window_share_bin",
    "weekday",
    "ticket_type_fixed_effect",
)
#: the seed's fixed elasticity (analytics-service "Optimal pricing"): the baseline the model must beat
SEED_ELASTICITY = -1.5

SCHEMA = {
    "tenant_id": pl.String,
    "scope": pl.String,
    "category": pl.String,
    "category_name": pl.String,
    "venue_id": pl.String,
    "elasticity": pl.Float64,
    "std_error": pl.Float64,
    "ci_low": pl.Float64,
    "ci_high": pl.Float64,
    "n_price_changes": pl.Int64,
    "n_ticket_types": pl.Int64,
    "n_events": pl.Int64,
    "n_observations": pl.Int64,
    "status": pl.String,
    "reason": pl.String,
    "model_version": pl.String,
    "trained_at": pl.Datetime("us", "UTC"),
}

SCOPES = {"category": ["tenant_id", "category"], "category_venue": ["tenant_id", "category", "venue_id"]}


@dataclass
class FitRows:
    """The rows one scope's fit ran on, as the estimator takes them: its eligible groups (keys and slope
    index g, sorted by the keys) and per row the tickets, log price, control levels, slope index (g, or the
    number of groups for a row without a slope), ticket type (fixed effect) and event (cluster) codes, the
    price-change flag and whether the row's type ever changed price. The cross-fitting folds fit row
    subsets of the category fit's rows (evaluation.fold_fit) instead of re-deriving them from a filtered
    panel: a fold's training panel leads to exactly these rows less the held-out events' and less the
    changed types of groups that are eligible in the whole panel but not in the fold."""

    eligible: pl.DataFrame
    y: np.ndarray
    log_price: np.ndarray
    factors: list[np.ndarray]
    group: np.ndarray
    fe: np.ndarray
    cluster: np.ndarray
    price_change: np.ndarray
    changed: np.ndarray
    event_id: pl.Series


@dataclass
class Estimates:
    table: pl.DataFrame
    #: the controls' level coefficients (control_effect; used to evaluate a holdout)
    deltas: list[np.ndarray]
    #: the rows the fit ran on (None when nothing was fitted)
    rows: FitRows | None = None


#: a group's elasticity is estimated from at least `min_changes` price changes in at least this many events
MIN_EVENTS = 2


def eligible_rule(min_changes: int) -> pl.Expr:
    """Whether a group of prepare's counts is eligible (evaluation.fold_fit applies the same rule to a
    fold's counts in numpy)."""
    return (pl.col("n_price_changes") >= min_changes) & (pl.col("events_with_changes") >= MIN_EVENTS)


def factors(panel: pl.DataFrame) -> list[np.ndarray]:
    """The categorical controls as level codes: days-to-event bin, tier x sales-window-share bin, weekday."""
    return [panel[c].to_numpy().astype(np.int64) for c in ("dte_bin", "curve_bin", "weekday")]


def control_effect(panel: pl.DataFrame, deltas: list[np.ndarray]) -> np.ndarray:
    """The fitted controls' contribution to log demand per panel row (0 before any fit)."""
    return apply_factors(deltas, factors(panel)) if deltas else np.zeros(panel.height)


def model_version(trained_through: str) -> str:
    return f"{MODEL}/{VERSION}@{trained_through}"


def prepare(
    panel: pl.DataFrame, scope: str, min_changes: int, groups: pl.DataFrame | None = None
) -> tuple[pl.DataFrame, int, FitRows | None]:
    """(per group of the scope: its counts, sorted by the keys; how many groups are eligible; the rows to
    fit in ticket-type order, None when no group is eligible or no row is left). A group is eligible with
    at least `min_changes` price changes in at least two events; a changed type of an ineligible group is
    left out, one-price types inform the controls. The group keys are grouped and joined as categoricals
    (half the time of the strings' at 1.7M rows) and returned as strings."""
    keys = SCOPES[scope]
    p = panel.select(
        *[pl.col(k).cast(pl.Categorical) for k in keys if k != "category"],
        pl.col("category_id").fill_null("(none)").cast(pl.Categorical).alias("category"),
        "ticket_type_id",
        "event_id",
        "tickets",
        "price_cents",
        "price_change",
        "dte_bin",
        "curve_bin",
        "weekday",
    )
    ev_changes = (
        p.filter(pl.col("price_change") == 1)
        .group_by(keys)
        .agg(pl.col("event_id").n_unique().alias("events_with_changes"))
    )
    stats = (
        p.group_by(keys)
        .agg(
            pl.col("price_change").sum().cast(pl.Int64).alias("n_price_changes"),
            pl.col("ticket_type_id").n_unique().cast(pl.Int64).alias("n_ticket_types"),
            pl.col("event_id").n_unique().cast(pl.Int64).alias("n_events"),
            pl.len().cast(pl.Int64).alias("n_observations"),
        )
        .join(ev_changes, on=keys, how="left")
        .with_columns(pl.col(keys).cast(pl.String), pl.col("events_with_changes").fill_null(0))
    )
    if groups is not None:
        stats = groups.select(keys).unique().join(stats, on=keys, how="full", coalesce=True)
    stats = stats.with_columns(
        pl.col(
            "n_price_changes", "n_ticket_types", "n_events", "n_observations", "events_with_changes"
        ).fill_null(0)
    ).sort(keys, nulls_last=True)
    ok = eligible_rule(min_changes)
    eligible = stats.filter(ok).with_row_index("g").select(*keys, "g")
    n_groups = eligible.height
    p = p.filter(pl.col("ticket_type_id").is_not_null()).with_columns(
        (pl.col("price_change").sum().over("ticket_type_id") > 0).alias("changed")
    )
    p = p.join(
        eligible.with_columns(pl.col(keys).cast(pl.Categorical)), on=keys, how="left", maintain_order="left"
    )
    # a changed type of an ineligible group is left out; one-price types inform the controls
    p = p.filter(pl.col("g").is_not_null() | ~pl.col("changed"))
    if not (p.height and n_groups):
        return stats, n_groups, None
    fe = p["ticket_type_id"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    order = by_code(fe)
    if order is not None:  # the estimator sums per ticket type over contiguous runs
        p, fe = p[order], fe[order]
    rows = FitRows(
        eligible=eligible,
        y=p["tickets"].to_numpy().astype(float),
        log_price=np.log(p["price_cents"].to_numpy().astype(float)),
        factors=factors(p),
        group=p["g"].fill_null(n_groups).to_numpy().astype(np.int64),
        fe=fe,
        cluster=p["event_id"].cast(pl.Categorical).to_physical().to_numpy().astype(np.int64),
        price_change=p["price_change"].to_numpy().astype(np.int64),
        changed=p["changed"].to_numpy().astype(bool),
        event_id=p["event_id"],
    )
    return stats, n_groups, rows


def warm_slopes(eligible: pl.DataFrame, warm: Estimates, scope: str) -> np.ndarray:
    """Per eligible group (in g order): the warm fit's elasticity of its group, 0 where it has none. The
    warm fit's scope may be coarser (category -> category at a venue): joined on its keys."""
    keys = SCOPES[scope]
    warm_scope = warm.table["scope"][0] if warm.table.height else scope
    wkeys = [k for k in keys if k in SCOPES[warm_scope]]
    return (
        eligible.join(warm.table.select(*wkeys, "elasticity"), on=wkeys, how="left", nulls_equal=True)
        .sort("g")["elasticity"]
        .fill_null(0.0)
        .to_numpy()
    )


def estimate(
    panel: pl.DataFrame,
    scope: str,
    min_changes: int,
    version: str,
    trained_at: datetime,
    names: pl.DataFrame | None = None,
    groups: pl.DataFrame | None = None,
    warm: Estimates | None = None,
    controls: Estimates | None = None,
) -> Estimates:
    """The price_elasticity rows of one scope. `groups`: every group to report (with its key columns), also
    those absent from the panel (they get 'insufficient_data' with 0 changes); `names`: category, name;
    `warm`: a fit to start from, of the same or a coarser scope (a cross-fitting fold starts from the full
    sample's, the category-at-venue fit from the category fit). `controls`: a fit of a coarser scope on the
    same panel whose control coefficients (days to event, tier x sales-window share, weekday) are taken as
    they are: only this scope's slopes are fitted (fit_slopes: one-parameter problems, vectorized), not the
    joint model again. The category-at-venue fit does so (the controls are shared by every group and
    estimated from the whole panel either way; at `large` the joint refit with ~10x the slopes took 24 of
    the asset's 69 CPU seconds)."""
    stats, n_groups, rows = prepare(panel, scope, min_changes, groups)
    deltas: list[np.ndarray] = []
    beta = np.full(n_groups, np.nan)
    se = np.full(n_groups, np.nan)
    n_clusters = np.zeros(n_groups, np.int64)
    if rows is not None:
        init_beta = warm_slopes(rows.eligible, warm, scope) if warm is not None else None
        if controls is not None and controls.deltas:
            deltas = controls.deltas
            has = rows.group < n_groups
            slopes = fit_slopes(
                rows.y[has],
                rows.log_price[has],
                rows.group[has],
                n_groups,
                rows.fe[has],
                rows.cluster[has],
                apply_factors(deltas, rows.factors)[has],
                init=init_beta,
            )
        else:
            slopes, deltas = fit_elasticities(
                rows.y,
                rows.log_price,
                rows.factors,
                rows.group,
                n_groups,
                rows.fe,
                rows.cluster,
                init_beta=init_beta,
                init_deltas=(warm.deltas or None) if warm is not None else None,
            )
        beta, se, n_clusters = slopes.beta, slopes.se, slopes.n_clusters
    table = elasticity_table(stats, scope, min_changes, beta, se, n_clusters, version, trained_at, names)
    return Estimates(table, deltas, rows)


def elasticity_table(
    stats: pl.DataFrame,
    scope: str,
    min_changes: int,
    beta: np.ndarray,
    se: np.ndarray,
    n_clusters: np.ndarray,
    version: str,
    trained_at: datetime,
    names: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """The price_elasticity rows of one scope from its groups' counts (prepare) and the eligible groups'
    slopes, standard errors and clusters with price variation (in g order)."""
    keys = SCOPES[scope]
    ok = eligible_rule(min_changes)
    # small-cluster inference: t with G-1 degrees of freedom (G = events with price changes)
    crit = np.where(n_clusters >= 2, t_dist.ppf(0.975, np.maximum(n_clusters - 1, 1)), np.nan)
    fitted = (
        stats.filter(ok)
        .select(keys)
        .with_columns(
            pl.Series("elasticity", beta, dtype=pl.Float64),
            pl.Series("std_error", se, dtype=pl.Float64),
            pl.Series("crit", crit, dtype=pl.Float64),
        )
    )
    out = stats.join(fitted, on=keys, how="left")
    finite = pl.col("elasticity").is_finite() & pl.col("std_error").is_finite() & (pl.col("std_error") > 0)
    reason = (
        pl.when(pl.col("n_price_changes") < min_changes)
        .then(
            pl.format(
                "insufficient data: {} price changes observed, at least {} needed",
                "n_price_changes",
                pl.lit(min_changes),
            )
        )
        .when(pl.col("events_with_changes") < MIN_EVENTS)
        .then(pl.format("insufficient data: {} price changes, all in one event", "n_price_changes"))
        .when(~finite.fill_null(False))
        .then(pl.lit("insufficient data: the price evidence rests on one event (not identified)"))
    )
    out = out.with_columns(reason.alias("reason"))
    est = pl.col("reason").is_null()
    out = out.with_columns(
        pl.when(est).then(pl.col("elasticity")).alias("elasticity"),
        pl.when(est).then(pl.col("std_error")).alias("std_error"),
        pl.when(est).then(pl.col("elasticity") - pl.col("crit") * pl.col("std_error")).alias("ci_low"),
        pl.when(est).then(pl.col("elasticity") + pl.col("crit") * pl.col("std_error")).alias("ci_high"),
        pl.when(est).then(pl.lit("estimated")).otherwise(pl.lit("insufficient_data")).alias("status"),
        pl.lit(scope).alias("scope"),
        pl.lit(version).alias("model_version"),
        pl.lit(trained_at).cast(pl.Datetime("us", "UTC")).alias("trained_at"),
    )
    if "venue_id" not in keys:
        out = out.with_columns(pl.lit(None, pl.String).alias("venue_id"))
    if names is not None:
        out = out.join(names, on="category", how="left")
    else:
        out = out.with_columns(pl.lit(None, pl.String).alias("category_name"))
    return out.select(list(SCHEMA)).cast(SCHEMA)
