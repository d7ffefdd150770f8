"""Churn: a scikit-learn model on a time split, evaluated beside the old service's two rule scores.

Customer = user, platform-wide (a user belongs to one tenant). Label: a customer with a recognized order on
or before the cutoff churns when they have no recognized order in the `horizon` (90) days after it.

Features as of a cutoff (only data up to the end of the cutoff day): recency, frequency (orders),
purchase days, orders in the last 90 and 365 days, monetary and average order value (log), tickets, tenure
(days since the first purchase), account age (days since users.created_at), venues, completed refunds
(count and share of spend), tickets of ended events and the no-show rate, marketplace purchases and sales,
and the favourite category (most tickets; one-hot over the ten most common favourites, else 'other').

Out-of-time split (T = as_of, h = horizon = the label window, 90 days). Training rows: the customers as of
each of TRAIN_SNAPSHOTS cutoffs T - 2h, T - 2h - 30 d, T - 2h - 60 d (stacked; above MAX_TRAIN_ROWS rows a
deterministic sample), each labelled by (cutoff, cutoff + h], so no training label looks past T - h.
Evaluation rows ('out_of_time'): the customers as of T - h, labelled by (T - h, T]: behaviour after every
training label. The decision threshold maximises F1 on the training rows; model_performance holds ROC AUC,
average precision, precision/recall/F1 at that threshold, the Brier score and ten reliability bins for the
training rows ('in_sample') and the out-of-time rows, for the model and the old rules on the same rows. A
history too short for a training snapshot (under 2h before T) falls back to the former in-time design:
the customers as of T - h, a deterministic 25 % (polars hash of user_id) held out ('in_time_holdout').
The old rules: `seed_risk_score` (analytics-service L540-587: customers silent > 90 days get min(100,
days/90 x 50) - 10 if > 5 purchases - 10 if > 10 - 5 if AOV > $100, others 0; high risk > 70) and
`seed_profile_churn` (L5649-5905: 0.8/0.6/0.4/0.2/0.1 by days silent > 180/90/60/30, x 0.5 if > 4
purchases a year, x 0.7 if > 2; flagged > 0.6). Purchases are orders here (the old service counted ticket
rows), and the profile rule's first/last purchase swap is not copied.

The model that scores today's customers is refitted on all labelled rows (training + evaluation rows, every
label observed by T) and applied to the features as of `as_of`.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import joblib
import numpy as np
import polars as pl
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from analytics_pipelines.customers import keys as K
from analytics_pipelines.customers.evaluation import best_f1_threshold as _best_f1_threshold
from analytics_pipelines.customers.evaluation import evaluate, performance_rows

HORIZON_DAYS = 90
HOLDOUT_SHARE = 4  # 1 in 4 customers (the in-time fallback only)
TRAIN_SNAPSHOTS = 3  # training cutoffs as_of - 2 x horizon, 30 and 60 days before it
SNAPSHOT_STEP_DAYS = 30
#: a logistic regression on ~30 features learns nothing more from millions of rows than from 200k: larger
#: training sets are subsampled (deterministically) to bound the fit time; the holdout is always complete
MAX_TRAIN_ROWS = 200_000
TOP_CATEGORIES = 10
MODEL_NAME = "logistic_regression"
NUMERIC = [
    "recency_days",
    "frequency",
    "purchase_days",
    "orders_90d",
    "orders_365d",
    "log_monetary",
    "log_aov",
    "tickets",
    "tenure_days",
    "account_age_days",
    "venues",
    "refunds",
    "refund_share",
    "tickets_ended",
    "no_show_rate",
    "resales_bought",
    "resales_sold",
]


class NotEnoughHistory(ValueError):
    """The history cannot support a churn model (too short, or one class only)."""


@dataclass(frozen=True)
class Inputs:
    """Frames the features come from (all history; features filter by the cutoff themselves).

    orders: fct_orders (user_id, tenant_id, venue_id, category_id, day, tickets, gross_revenue_cents);
    refunds: fct_refunds (user_id, day, refund_cents); resales: fct_resales (buyer_id, seller_id, day);
    attendance: per user and day an event ended (user_id, ended_day, tickets_ended, no_shows);
    users: stg_users (id, created_at)."""

    orders: pl.DataFrame
    refunds: pl.DataFrame
    resales: pl.DataFrame
    attendance: pl.DataFrame
    users: pl.DataFrame


def features(inp: Inputs, cutoff: date) -> pl.DataFrame:
    """One row per customer with an order on or before `cutoff`: the model's features (see module doc)."""
    return features_at(inp, [cutoff])[0]


def features_at(inp: Inputs, dates: list[date]) -> list[pl.DataFrame]:
    """`features(inp, d)` for each of `dates`, in one pass over the inputs: each group-by and join runs once
    for all dates (per customer, the aggregates of the rows up to each date), not once per date.

    The latest date's aggregates are plain ones over the rows up to it; an earlier date's are the same
    aggregates over the rows up to that date (the other rows' values nulled, which sums, minima and maxima
    skip) and a customer is in its frame when they have an order up to it, so the frames equal separate
    computations row for row."""
    last = max(dates)
    o = inp.orders.filter((pl.col("day") <= last) & pl.col("user_id").is_not_null())
    sfx = {d: "" if d == last else f"@{d.isoformat()}" for d in dates}
    earlier = [d for d in dates if d != last]

    def upto(col: str, d: date, day: str = "day") -> pl.Expr:
        return pl.col(col) if d == last else pl.when(pl.col(day) <= d).then(pl.col(col))

    def distinct(col: str, d: date) -> pl.Expr:  # n_unique (NULL counts as a value) of the rows up to d
        return pl.col(col).n_unique() if d == last else pl.col(col).filter(pl.col("day") <= d).n_unique()

    aggs = []
    for d in dates:
        days_before = (pl.lit(d) - pl.col("day")).dt.total_days()
        within = pl.lit(True) if d == last else pl.col("day") <= d
        aggs += [
            (pl.first("tenant_id") if d == last else pl.col("tenant_id").filter(within).first()).alias(
                "tenant_id"
            ),
            upto("day", d).max().alias("last_day"),
            upto("day", d).min().alias("first_day"),
            (pl.len() if d == last else within.sum()).alias("frequency"),
            distinct("day", d).alias("purchase_days"),
            ((days_before < 90) & within).sum().alias("orders_90d"),
            ((days_before < 365) & within).sum().alias("orders_365d"),
            upto("gross_revenue_cents", d).sum().alias("monetary_cents"),
            upto("tickets", d).sum().alias("tickets"),
            distinct("venue_id", d).alias("venues"),
        ]
        aggs[-10:] = [a.name.suffix(sfx[d]) for a in aggs[-10:]]
    per = _per_user_sorted(o, dates, sfx)  # rows in user_id order (None: the group-by, in no order)
    in_order = per is not None
    if per is None:
        per = o.group_by("user_id").agg(aggs)
    extras = [favourite_categories(o, dates, sfx)]
    refunds = (
        inp.refunds.filter(pl.col("day") <= last)
        .group_by("user_id")
        .agg(
            *[
                a
                for d in dates
                for a in (
                    (pl.len() if d == last else (pl.col("day") <= d).sum()).alias("refunds" + sfx[d]),
                    upto("refund_cents", d).sum().alias("refund_cents" + sfx[d]),
                )
            ]
        )
    )
    # a customer without refunds up to an earlier date has NULL refunds there, as if absent from the group-by
    extras.append(
        refunds.with_columns(
            pl.when(pl.col("refunds" + sfx[d]) > 0).then(pl.col(c + sfx[d])).name.keep()
            for d in earlier
            for c in ("refunds", "refund_cents")
        )
    )
    res = inp.resales.filter(pl.col("day") <= last)
    for who, name in (("buyer_id", "resales_bought"), ("seller_id", "resales_sold")):
        extras.append(
            res.group_by(pl.col(who).alias("user_id")).agg(
                (pl.len() if d == last else (pl.col("day") <= d).sum()).alias(name + sfx[d]) for d in dates
            )
        )
    extras.append(
        inp.attendance.filter(pl.col("ended_day") <= last)
        .group_by("user_id")
        .agg(
            upto(c, d, "ended_day").sum().alias(c + sfx[d])
            for d in dates
            for c in ("tickets_ended", "no_shows")
        )
    )
    extras.append(
        inp.users.select(pl.col("id").alias("user_id"), pl.col("created_at").dt.date().alias("signed_up"))
    )
    wide = per
    for extra in extras:
        wide = wide.join(extra, on="user_id", how="left", maintain_order="left" if in_order else None)
    # sorted by user_id: already so on the sorted path (flagged, then the sort is free)
    wide = (wide.with_columns(pl.col("user_id").set_sorted()) if in_order else wide).sort("user_id")
    columns = [c for c in wide.columns if "@" not in c]
    out = []
    for d in dates:
        df = wide if d == last else wide.filter(pl.col("frequency" + sfx[d]) > 0)
        out.append(
            _derived(
                df.select(pl.col(c + sfx[d] if c + sfx[d] in wide.columns else c).alias(c) for c in columns),
                d,
            )
        )
    return out


def _per_user_sorted(o: pl.DataFrame, dates: list[date], sfx: dict[date, str]) -> pl.DataFrame | None:
    """features_at's per-customer group-by without hashing customer ids, in user_id order: the orders
    sorted by customer code (a dense rank, in user_id order) and day, each customer a run of rows, an
    earlier date's rows a prefix of the run; the distinct
    venues from a group-by of integer (customer, venue) codes. Only a customer's figures at the dates
    where they have an order are the group-by's (the others are dropped by features_at). None where it
    does not apply (other column types, NULL tickets or cents, no rows)."""
    schema = o.schema
    if (
        o.height == 0
        or schema["day"] != pl.Date
        or schema["tickets"] != pl.Int64
        or schema["gross_revenue_cents"] != pl.Int64
        or o.select(pl.sum_horizontal(pl.col("tickets", "gross_revenue_cents").null_count())).item()
    ):
        return None
    user, n_users = K.user_codes(o)
    day_all = o["day"].to_physical().to_numpy().astype(np.int64)
    order = K.sort_by_key(user, day_all)
    if order is None:
        return None
    n = order.size
    u, day = user[order], day_all[order]
    starts = K.run_starts(u)
    runs = K.run_lengths(starts, n)
    run_of_row = np.repeat(np.arange(starts.size), runs)
    tickets, cents = o["tickets"].to_numpy()[order], o["gross_revenue_cents"].to_numpy()[order]
    day_starts = K.run_starts(u, day)  # one per customer and purchase day
    venue, _ = K.dense_codes(o["venue_id"])
    pairs = (
        pl.DataFrame({"u": u, "v": venue[order], "day": day}).group_by("u", "v").agg(pl.min("day")).sort("u")
    )
    pair_user, pair_first = pairs["u"].to_numpy(), pairs["day"].to_numpy()
    pair_run = np.searchsorted(u[starts], pair_user)
    tenant = o["tenant_id"]
    columns: dict[str, pl.Series] = {"user_id": o["user_id"].gather(order[starts])}
    epoch = date(1970, 1, 1)
    for d in dates:
        limit = (d - epoch).days
        upto = day <= limit
        count = np.add.reduceat(upto.astype(np.int64), starts)
        present = count > 0
        # the first order in the frame's order among the rows up to d (polars' first of the group)
        first_row = np.minimum.reduceat(np.where(upto, order, n), starts)
        last_day = np.maximum.reduceat(np.where(upto, day, np.iinfo(np.int64).min), starts)
        before = limit - day

        def total(values: np.ndarray, upto: np.ndarray = upto) -> np.ndarray:
            return np.add.reduceat(np.where(upto, values, 0), starts)

        def as_date(days: np.ndarray, present: np.ndarray = present) -> pl.Series:
            return (
                pl.Series(np.where(present, days, 0).astype(np.int32))
                .cast(pl.Date)
                .set(pl.Series(~present), None)
                if (~present).any()
                else pl.Series(days.astype(np.int32)).cast(pl.Date)
            )

        purchase_days = np.bincount(run_of_row[day_starts], weights=upto[day_starts], minlength=starts.size)
        venues = np.bincount(pair_run, weights=pair_first <= limit, minlength=starts.size)
        values = {
            "tenant_id": tenant.gather(np.minimum(first_row, n - 1)).set(pl.Series(~present), None)
            if (~present).any()
            else tenant.gather(first_row),
            "last_day": as_date(last_day),
            "first_day": as_date(day[starts]),
            "frequency": pl.Series(count, dtype=pl.UInt32),
            "purchase_days": pl.Series(purchase_days, dtype=pl.UInt32),
            "orders_90d": pl.Series(total((before < 90).astype(np.int64)), dtype=pl.UInt32),
            "orders_365d": pl.Series(total((before < 365).astype(np.int64)), dtype=pl.UInt32),
            "monetary_cents": pl.Series(total(cents), dtype=pl.Int64),
            "tickets": pl.Series(total(tickets), dtype=pl.Int64),
            "venues": pl.Series(venues, dtype=pl.UInt32),
        }
        columns |= {name + sfx[d]: v.alias(name + sfx[d]) for name, v in values.items()}
    return pl.DataFrame(list(columns.values()))


def _derived(df: pl.DataFrame, cutoff: date) -> pl.DataFrame:
    tenure = (pl.lit(cutoff) - pl.col("first_day")).dt.total_days()
    return (
        df.with_columns(
            (pl.lit(cutoff) - pl.col("last_day")).dt.total_days().alias("recency_days"),
            tenure.alias("tenure_days"),
            pl.max_horizontal(
                (pl.lit(cutoff) - pl.col("signed_up")).dt.total_days().fill_null(tenure), tenure
            ).alias("account_age_days"),
            pl.col("monetary_cents").log1p().alias("log_monetary"),
            (pl.col("monetary_cents") / pl.col("frequency")).log1p().alias("log_aov"),
            pl.col("refunds").fill_null(0),
            pl.col("resales_bought").fill_null(0),
            pl.col("resales_sold").fill_null(0),
            pl.col("tickets_ended").fill_null(0),
            pl.col("no_shows").fill_null(0),
            (pl.col("refund_cents").fill_null(0) / pl.max_horizontal(pl.col("monetary_cents"), pl.lit(1)))
            .clip(0, 1)
            .alias("refund_share"),
        )
        .with_columns(
            pl.when(pl.col("tickets_ended") > 0)
            .then(pl.col("no_shows") / pl.col("tickets_ended"))
            .otherwise(0.0)
            .alias("no_show_rate")
        )
        .with_columns(pl.col(c).cast(pl.Float64) for c in NUMERIC)
    )


def favourite_category(orders: pl.DataFrame) -> pl.DataFrame:
    """user_id, favourite_category_id: the category of most tickets, then most spend, then the smallest id."""
    fast = _favourites_sorted(orders, [None], ["favourite_category_id"])
    if fast is not None:
        return fast
    return _favourite(
        orders.filter(pl.col("category_id").is_not_null())
        .group_by("user_id", "category_id")
        .agg(pl.sum("tickets").alias("t"), pl.sum("gross_revenue_cents").alias("c")),
        "t",
        "c",
    )


def _favourite(pairs: pl.DataFrame, t: str, c: str, name: str = "favourite_category_id") -> pl.DataFrame:
    """Per user the category_id of the pair row with the most `t`, then `c`, then the smallest id: one sort
    of all pairs and the first row per user (a user's pairs have distinct ids, so the order is total)."""
    return (
        pairs.sort([t, c, "category_id"], descending=[True, True, False])
        .group_by("user_id")
        .agg(pl.first("category_id").alias(name))
    )


def favourite_categories(orders: pl.DataFrame, dates: list[date], sfx: dict[date, str]) -> pl.DataFrame:
    """favourite_category(orders up to d) for each date (columns favourite_category_id + sfx[d]), from one
    aggregation of the orders up to the latest date; a category counts for an earlier date when the customer
    bought it up to then."""
    last = max(dates)
    ordered = [last, *[d for d in dates if d != last]]
    fast = _favourites_sorted(
        orders,
        [None if d == last else d for d in ordered],
        ["favourite_category_id" + sfx[d] for d in ordered],
    )
    if fast is not None:
        return fast
    pairs = (
        orders.filter(pl.col("category_id").is_not_null())
        .group_by("user_id", "category_id")
        .agg(
            *[
                a
                for d in dates
                for a in (
                    (pl.col("tickets") if d == last else pl.when(pl.col("day") <= d).then(pl.col("tickets")))
                    .sum()
                    .alias("t" + sfx[d]),
                    (
                        pl.col("gross_revenue_cents")
                        if d == last
                        else pl.when(pl.col("day") <= d).then(pl.col("gross_revenue_cents"))
                    )
                    .sum()
                    .alias("c" + sfx[d]),
                )
            ],
            *[(pl.col("day") <= d).sum().alias("n" + sfx[d]) for d in dates if d != last],
        )
    )
    out = _favourite(pairs, "t", "c")
    for d in ordered[1:]:
        fav = _favourite(
            pairs.filter(pl.col("n" + sfx[d]) > 0),
            "t" + sfx[d],
            "c" + sfx[d],
            "favourite_category_id" + sfx[d],
        )
        out = out.join(fav, on="user_id", how="left", nulls_equal=True)
    return out


def _favourites_sorted(
    orders: pl.DataFrame, dates: list[date | None], names: list[str]
) -> pl.DataFrame | None:
    """user_id and per date (None: all rows; the first one must be None) the favourite category over the
    orders up to it, without string group-bys: the orders with a category sorted by integer (user,
    category) codes, the categories coded in their sort order, the tickets and spend per pair summed over
    runs of rows and each user's best pair picked with numpy. The users are those with a category.
    None where it does not apply (other column types, NULL tickets or cents, no rows): then the group-bys
    run."""
    o = orders.filter(pl.col("category_id").is_not_null())
    if (
        o.height == 0
        or o.schema["tickets"] != pl.Int64
        or o.schema["gross_revenue_cents"] != pl.Int64
        or (any(d is not None for d in dates) and o.schema["day"] != pl.Date)
        or o.select(pl.sum_horizontal(pl.col("tickets", "gross_revenue_cents").null_count())).item()
    ):
        return None
    u, nu = K.user_codes(o)
    c, nc, categories = K.ordered_codes(o["category_id"])
    key = K.combined_key([(u, nu), (c, nc)])
    if key is None:
        return None
    order = K.sort_by_key(key)
    key = key[order]
    starts = K.run_starts(key)  # one per (user, category) pair, a user's pairs in category order
    pair_user, pair_category = key[starts] // np.uint64(nc + 1), key[starts] % np.uint64(nc + 1)
    tickets, cents = o["tickets"].to_numpy()[order], o["gross_revenue_cents"].to_numpy()[order]
    first_pair = K.run_starts(pair_user)
    users = pair_user[first_pair]
    out = o.select("user_id")[pl.Series(order[starts[first_pair]])]
    day = o["day"].to_physical().to_numpy()[order] if any(d is not None for d in dates) else None
    for d, name in zip(dates, names, strict=True):
        if d is None:
            present = np.arange(starts.size)
            t, spend = np.add.reduceat(tickets, starts), np.add.reduceat(cents, starts)
        else:
            upto = day <= (d - date(1970, 1, 1)).days
            present = np.flatnonzero(np.add.reduceat(upto.astype(np.int64), starts) > 0)
            t = np.add.reduceat(np.where(upto, tickets, 0), starts)[present]
            spend = np.add.reduceat(np.where(upto, cents, 0), starts)[present]
        best = present[K.first_of_best(pair_user[present], t, spend)]
        fav = np.zeros(users.size, dtype=np.int64)
        fav[np.searchsorted(users, pair_user[best])] = pair_category[best]
        out = out.with_columns(categories.gather(fav).alias(name))
    return out


def label(inp: Inputs, feats: pl.DataFrame, cutoff: date, horizon: int = HORIZON_DAYS) -> pl.DataFrame:
    """`churned` = no recognized order in (cutoff, cutoff + horizon]."""
    later = inp.orders.filter((pl.col("day") > cutoff) & (pl.col("day") <= cutoff + timedelta(days=horizon)))
    active = later.select("user_id").unique().with_columns(pl.lit(False).alias("churned"))
    return feats.join(active, on="user_id", how="left").with_columns(pl.col("churned").fill_null(True))


def rule_scores_only(inp: Inputs, as_of: date) -> pl.DataFrame:
    """customer_churn_scores when there is no model (NotEnoughHistory): the old rules' scores, NULL
    probabilities."""
    return seed_rules(features(inp, as_of)).select(
        pl.lit(as_of).alias("as_of"),
        "user_id",
        "tenant_id",
        "recency_days",
        "frequency",
        pl.lit(None, pl.Float64).alias("churn_probability"),
        pl.lit(None, pl.Boolean).alias("churn_flag"),
        "seed_risk_score",
        "seed_profile_churn",
        "favourite_category_id",
    )


def seed_rules(feats: pl.DataFrame) -> pl.DataFrame:
    """The old service's two rule scores (module doc) for each feature row."""
    days = pl.col("recency_days")
    aov_dollars = pl.col("monetary_cents") / pl.col("frequency") / 100
    risk = (
        (days / 90 * 50).clip(upper_bound=100)
        - pl.when(pl.col("frequency") > 5).then(10).otherwise(0)
        - pl.when(pl.col("frequency") > 10).then(10).otherwise(0)
        - pl.when(aov_dollars > 100).then(5).otherwise(0)
    ).clip(0, 100)
    span_years = (pl.col("last_day") - pl.col("first_day")).dt.total_days() / 365
    per_year = (
        pl.when((pl.col("frequency") > 1) & (span_years > 0))
        .then(pl.col("frequency") / span_years)
        .otherwise(0.0)
    )
    base = (
        pl.when(days > 180)
        .then(0.8)
        .when(days > 90)
        .then(0.6)
        .when(days > 60)
        .then(0.4)
        .when(days > 30)
        .then(0.2)
        .otherwise(0.1)
    )
    factor = pl.when(per_year > 4).then(0.5).when(per_year > 2).then(0.7).otherwise(1.0)
    return feats.with_columns(
        pl.when(days > 90).then(risk).otherwise(0.0).alias("seed_risk_score"),
        (base * factor).alias("seed_profile_churn"),
    )


def _matrix(feats: pl.DataFrame, categories: list[str]) -> np.ndarray:
    """The numeric features (NULL = 0) and the favourite category one-hot (the ten, then 'other'), written
    column by column into one Fortran-ordered float64 array (the layout the model has always been fitted
    on: the scaler's column sums depend on it)."""
    k = len(NUMERIC)
    out = np.empty((feats.height, k + len(categories) + 1), dtype=np.float64, order="F")
    for j, c in enumerate(NUMERIC):
        out[:, j] = feats[c].fill_null(0.0).to_numpy()
    fav = feats["favourite_category_id"]
    for j, c in enumerate(categories):
        out[:, k + j] = (fav == c).fill_null(False).to_numpy()
    out[:, -1] = (~fav.is_in(categories)).fill_null(True).to_numpy()
    return out


def _fit(x: np.ndarray, y: np.ndarray):
    if len(y) > MAX_TRAIN_ROWS:
        keep = np.random.default_rng(20261101).choice(len(y), MAX_TRAIN_ROWS, replace=False)
        x, y = x[keep], y[keep]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0)).fit(x, y)


@dataclass
class ChurnResult:
    scores: pl.DataFrame  # per customer as of as_of
    performance: pl.DataFrame  # model_performance rows (model_family 'churn')
    model: object
    categories: list[str]
    threshold: float
    cutoff: date
    holdout: dict[
        str, float
    ]  # headline figures: 'model:metric' of the evaluation, ':in_sample' the fitted rows'
    evaluation: str = "out_of_time"  # or 'in_time_holdout' (history too short for an out-of-time split)
    training_rows: pl.DataFrame | None = None  # user_id, cutoff, churned: the evaluated model's fitted rows
    train_cutoffs: list[date] | None = None  # the training snapshots' cutoffs (none in the in-time fallback)


def train(inp: Inputs, as_of: date, horizon: int = HORIZON_DAYS) -> ChurnResult:
    """Train on snapshots whose labels end by as_of - horizon, evaluate out of time on the customers as of
    as_of - horizon labelled by (as_of - horizon, as_of] (beside the rules), refit on all those labelled
    rows, score as of `as_of` (module doc).

    BLAS is held to one thread: L-BFGS on ~30 coefficients is many tiny BLAS calls, which a multi-threaded
    OpenBLAS made several times slower on the shared 2-core machine (measured)."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _train(inp, as_of, horizon)


def training_cutoffs(
    as_of: date,
    horizon: int = HORIZON_DAYS,
    snapshots: int = TRAIN_SNAPSHOTS,
    step_days: int = SNAPSHOT_STEP_DAYS,
) -> list[date]:
    """The out-of-time design's training cutoffs, latest first: the latest is as_of - 2 x horizon, so every
    training label window (cutoff, cutoff + horizon] ends on or before the split as_of - horizon."""
    last = as_of - timedelta(days=2 * horizon)
    return [last - timedelta(days=step_days * k) for k in range(snapshots)]


def _viable(y: np.ndarray, rows: int = 20, per_class: int = 5) -> bool:
    return len(y) >= rows and min(int(y.sum()), len(y) - int(y.sum())) >= per_class


def _train(inp: Inputs, as_of: date, horizon: int) -> ChurnResult:
    split = as_of - timedelta(days=horizon)
    first = inp.orders["day"].min()
    cutoffs = [c for c in training_cutoffs(as_of, horizon) if first is not None and c >= first]
    frames = features_at(inp, [*cutoffs, split, as_of])  # one pass for every snapshot and today's rows
    at_split, at_as_of = frames[-2], frames[-1]
    evaluated = seed_rules(label(inp, at_split, split, horizon)).with_columns(pl.lit(split).alias("cutoff"))
    y_ev = evaluated["churned"].to_numpy().astype(int)
    parts = [
        seed_rules(label(inp, f, c, horizon)).with_columns(pl.lit(c).alias("cutoff"))
        for c, f in zip(cutoffs, frames, strict=False)
    ]
    trained = pl.concat(parts, how="vertical_relaxed") if parts else evaluated.clear()
    if (
        trained.height > MAX_TRAIN_ROWS
    ):  # subsampled before the matrix: the fitted rows are the in-sample rows
        keep = np.sort(np.random.default_rng(20261101).choice(trained.height, MAX_TRAIN_ROWS, replace=False))
        trained = trained[pl.Series(keep)]
    evaluation = "out_of_time"
    if not (_viable(trained["churned"].to_numpy().astype(int)) and _viable(y_ev)):
        # too short a history for snapshots whose labels end by the split: the old in-time customer holdout
        if not _viable(y_ev):
            raise NotEnoughHistory(
                f"churn needs labelled customers of both classes as of {split} (horizon "
                f"{horizon} days before {as_of}); got {len(y_ev)} customers, "
                f"{int(y_ev.sum())} churned"
            )
        holdout = evaluated["user_id"].hash(seed=20261101) % HOLDOUT_SHARE == 0
        trained, evaluated, evaluation = (
            evaluated.filter(~holdout),
            evaluated.filter(holdout),
            "in_time_holdout",
        )
        y_ev = evaluated["churned"].to_numpy().astype(int)
        y_tr = trained["churned"].to_numpy().astype(int)
        if min(y_ev.sum(), len(y_ev) - y_ev.sum()) == 0 or not _viable(y_tr, 5, 1):
            raise NotEnoughHistory(f"churn holdout or training rows as of {split} hold one class only")
    y_tr = trained["churned"].to_numpy().astype(int)
    categories = (
        trained["favourite_category_id"]
        .drop_nulls()
        .value_counts(sort=True)
        .head(TOP_CATEGORIES)["favourite_category_id"]
        .sort()
        .to_list()
    )
    x_tr, x_ev = _matrix(trained, categories), _matrix(evaluated, categories)
    model = _fit(x_tr, y_tr)
    p_tr = model.predict_proba(x_tr)[:, 1]
    threshold = _best_f1_threshold(y_tr, p_tr)
    p_ev = model.predict_proba(x_ev)[:, 1]
    perf = []
    for name, rows, y, p in (("in_sample", trained, y_tr, p_tr), (evaluation, evaluated, y_ev, p_ev)):
        perf += [
            performance_rows("churn", MODEL_NAME, as_of, split, horizon, evaluate(y, p, threshold), name),
            performance_rows(
                "churn",
                "seed_risk_score",
                as_of,
                split,
                horizon,
                evaluate(y, rows["seed_risk_score"].to_numpy() / 100, 0.70 + 1e-9),
                name,
            ),
            performance_rows(
                "churn",
                "seed_profile_churn",
                as_of,
                split,
                horizon,
                evaluate(y, rows["seed_profile_churn"].to_numpy(), 0.60 + 1e-9),
                name,
            ),
        ]
    performance = pl.concat(perf)
    head = performance.filter(pl.col("metric").is_in(["roc_auc", "precision", "recall", "brier"]))
    headline = {
        r["model"] + ":" + r["metric"] + ("" if r["evaluation"] == evaluation else ":" + r["evaluation"]): r[
            "value"
        ]
        for r in head.iter_rows(named=True)
    }
    final = _fit(np.vstack([x_tr, x_ev]), np.concatenate([y_tr, y_ev]))  # every label observed by as_of
    now = seed_rules(at_as_of)
    p_now = final.predict_proba(_matrix(now, categories))[:, 1] if now.height else np.zeros(0)
    scores = now.select(
        pl.lit(as_of).alias("as_of"),
        "user_id",
        "tenant_id",
        "recency_days",
        "frequency",
        pl.Series("churn_probability", p_now, dtype=pl.Float64),
        pl.Series("churn_flag", p_now >= threshold, dtype=pl.Boolean),
        "seed_risk_score",
        "seed_profile_churn",
        "favourite_category_id",
    )
    return ChurnResult(
        scores,
        performance,
        final,
        categories,
        threshold,
        split,
        headline,
        evaluation,
        trained.select("user_id", "cutoff", "churned"),
        sorted(cutoffs),
    )


def save_model(result: ChurnResult, directory: Path, as_of: date) -> tuple[Path, str]:
    """Write the fitted model (joblib) as `churn-<as_of>-<sha256[:12]>.joblib` in `directory` (temp file +
    rename); returns (path, full sha256 of the file). Same model bytes -> same name."""
    payload = {
        "model": result.model,
        "numeric_features": NUMERIC,
        "categories": result.categories,
        "threshold": result.threshold,
        "cutoff": result.cutoff.isoformat(),
        "as_of": as_of.isoformat(),
        "horizon_days": HORIZON_DAYS,
        "holdout": result.holdout,
        "evaluation": result.evaluation,
        "train_cutoffs": [c.isoformat() for c in result.train_cutoffs or []],
        "sklearn_version": sklearn.__version__,
    }
    buf = io.BytesIO()
    joblib.dump(payload, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"churn-{as_of.isoformat()}-{digest[:12]}.joblib"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path, digest


def load_model(path: Path) -> dict:
    """The payload written by :func:`save_model` (model, feature names, categories, threshold, ...)."""
    return joblib.load(path)
