"""RFM scores and segments (pure polars/DuckDB; no warehouse, no Dagster).

Scores. Within each scope (one venue, one tenant, or the platform) and as-of date, every customer with a
recognized purchase up to the as-of date gets three scores 1-5 by quintiles:

- recency: days from the last purchase day to the as-of date (fewer is better);
- frequency: recognized orders (more is better);
- monetary: gross revenue of those orders in cents (more is better).

``score = 1 + floor(5 * worse / n)`` where ``n`` is the scope's number of customers and ``worse`` the number
of them with a strictly worse value. Ties therefore share one score (the score of the tie group's lowest
rank, like SQL ``RANK``), so equal customers never get different scores and nothing depends on row order
or customer ids; in return the five scores need not be equally large (60 % one-order customers all get
F = 1, the next value starts at F = 4). The old service used ``NTILE(5)``, which splits ties by whatever
order the database returned.

Segments. Exactly one of the usual 11 per customer, from R and FM = round-half-up((F + M) / 2) by the grid
:data:`SEGMENT_GRID` (rows R = 5..1, columns FM = 1..5), which covers all 125 R/F/M codes without
overlap (the old service's regexes overlapped and had At Risk and Can't Lose identical).
"""

from __future__ import annotations

from datetime import date

import numpy as np
import polars as pl

from analytics_pipelines.customers import keys as K
from analytics_pipelines.marts.sqlrun import run

SEGMENTS = (
    "Champions",
    "Loyal Customers",
    "Potential Loyalists",
    "New Customers",
    "Promising",
    "Need Attention",
    "About to Sleep",
    "At Risk",
    "Can't Lose Them",
    "Hibernating",
    "Lost",
)

#: R score -> the segment for FM = 1, 2, 3, 4, 5
SEGMENT_GRID: dict[int, tuple[str, str, str, str, str]] = {
    5: ("New Customers", "Potential Loyalists", "Potential Loyalists", "Champions", "Champions"),
    4: ("Promising", "Potential Loyalists", "Potential Loyalists", "Loyal Customers", "Champions"),
    3: ("About to Sleep", "About to Sleep", "Need Attention", "Loyal Customers", "Loyal Customers"),
    2: ("Hibernating", "Hibernating", "At Risk", "At Risk", "Can't Lose Them"),
    1: ("Lost", "Lost", "Hibernating", "At Risk", "Can't Lose Them"),
}

SCOPES = ("venue", "tenant", "platform")
SCOPE_KEY = ["scope", "scope_id"]


def fm_score(f: int, m: int) -> int:
    """The combined frequency-monetary score: the mean of F and M rounded half up."""
    return (f + m + 1) // 2


def segment_of(r: int, f: int, m: int) -> str:
    """The one segment of an R/F/M code (each score 1-5)."""
    if not all(isinstance(s, int) and 1 <= s <= 5 for s in (r, f, m)):
        raise ValueError(f"R/F/M scores must be integers 1-5, got {(r, f, m)}")
    return SEGMENT_GRID[r][fm_score(f, m) - 1]


def segment_map() -> pl.DataFrame:
    """All 125 codes: r_score, f_score, m_score, rfm_code ('545'), segment."""
    rows = [
        (r, f, m, f"{r}{f}{m}", segment_of(r, f, m))
        for r in range(1, 6)
        for f in range(1, 6)
        for m in range(1, 6)
    ]
    return pl.DataFrame(
        rows,
        schema={
            "r_score": pl.Int8,
            "f_score": pl.Int8,
            "m_score": pl.Int8,
            "rfm_code": pl.String,
            "segment": pl.String,
        },
        orient="row",
    )


_AGGS = [
    pl.min("recognized_at").alias("first_purchase_at"),
    pl.max("recognized_at").alias("last_purchase_at"),
    pl.max("day").alias("last_day"),
    pl.len().cast(pl.Int64).alias("orders"),
    pl.sum("tickets").cast(pl.Int64).alias("tickets"),
    pl.sum("gross_revenue_cents").cast(pl.Int64).alias("monetary_cents"),
    pl.min("currency").alias("currency"),
    pl.max("currency").alias("max_currency"),
]


def customer_base(orders: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """Per scope and customer, from fct_orders rows up to the end of `as_of` (orders without a user left
    out): first/last purchase, recency days, orders, tickets, monetary cents. Three polars group-bys (per
    venue, per tenant, platform-wide): several times faster than DuckDB GROUPING SETS here.

    Raises ValueError when a scope mixes currencies (monetary values could not be compared)."""
    o = orders.filter((pl.col("day") <= as_of) & pl.col("user_id").is_not_null()).select(
        "tenant_id",
        "venue_id",
        "user_id",
        "recognized_at",
        "day",
        "tickets",
        "gross_revenue_cents",
        "currency",
        *[c for c in (K.USER_CODE,) if c in orders.columns],
    )
    fast = _customer_base_sorted(o)
    if fast is not None:
        return fast.with_columns((pl.lit(as_of) - pl.col("last_day")).dt.total_days().alias("recency_days"))
    none = pl.lit(None, pl.String)
    parts = [
        o.group_by("tenant_id", "venue_id", "user_id")
        .agg(_AGGS)
        .with_columns(pl.lit("venue").alias("scope"), pl.col("venue_id").alias("scope_id")),
        o.group_by("tenant_id", "user_id")
        .agg(_AGGS)
        .with_columns(
            pl.lit("tenant").alias("scope"), pl.col("tenant_id").alias("scope_id"), none.alias("venue_id")
        ),
        o.group_by("user_id")
        .agg(_AGGS)
        .with_columns(
            pl.lit("platform").alias("scope"),
            pl.lit("platform").alias("scope_id"),
            none.alias("venue_id"),
            none.alias("tenant_id"),
        ),
    ]
    base = pl.concat(
        [
            p.select(
                "scope",
                "scope_id",
                "tenant_id",
                "venue_id",
                "user_id",
                *[a.meta.output_name() for a in _AGGS],
            )
            for p in parts
        ]
    )
    base = base.with_columns((pl.lit(as_of) - pl.col("last_day")).dt.total_days().alias("recency_days"))
    mixed = base.filter(pl.col("currency") != pl.col("max_currency"))
    if mixed.height == 0:
        per_scope = base.group_by(SCOPE_KEY).agg(pl.col("currency").n_unique().alias("n"))
        mixed = per_scope.filter(pl.col("n") > 1)
    if mixed.height:
        raise ValueError(
            f"customer analytics need one currency per scope; mixed currencies in {mixed.height} "
            f"scope/customer rows, e.g. {mixed.head(3).to_dicts()}"
        )
    return base.drop("max_currency")


def _customer_base_sorted(o: pl.DataFrame) -> pl.DataFrame | None:
    """customer_base's rows (before recency_days) without string group-bys, or None where this path does not
    apply (then the group-bys run): the orders are sorted once by integer (customer, tenant, venue) codes,
    so the customer-venue, customer-tenant and customer rows are runs of rows, reduced with numpy.

    Applies to the warehouse's types without NULLs in the aggregated columns and one currency in all the
    orders (several currencies always mix in the platform scope, which the group-by path reports)."""
    schema = o.schema
    if not (
        schema["day"] == pl.Date
        and schema["tickets"] == pl.Int64
        and schema["gross_revenue_cents"] == pl.Int64
        and isinstance(schema["recognized_at"], pl.Datetime)
        and schema["currency"] == pl.String
    ):
        return None
    checks = o.select(
        pl.sum_horizontal(
            pl.col("recognized_at", "tickets", "gross_revenue_cents", "currency").null_count()
        ).alias("nulls"),
        pl.col("currency").n_unique().alias("n"),
    )
    if checks["nulls"].item() or checks["n"].item() > 1:
        return None
    (u, nu), (t, nt), (v, nv) = (K.user_codes(o), K.dense_codes(o["tenant_id"]), K.dense_codes(o["venue_id"]))
    key = K.combined_key([(u, nu), (t, nt), (v, nv)])
    if key is None:
        return None
    order = K.sort_by_key(key)
    n, key = order.size, key[order]
    at = o["recognized_at"].to_physical().to_numpy()[order]
    day = o["day"].to_physical().to_numpy().astype(np.int64)[order]
    tickets, cents = o["tickets"].to_numpy()[order], o["gross_revenue_cents"].to_numpy()[order]
    currency = o["currency"][0] if n else None
    ids = o.select("tenant_id", "venue_id", "user_id")
    none = pl.lit(None, pl.String)
    parts = []
    # customer-venue rows are runs of the full key, customer-tenant runs of key // venues, customers of key // both
    for scope, divisor, id_columns, scope_id in (
        ("venue", 1, ["tenant_id", "venue_id"], pl.col("venue_id")),
        ("tenant", nv + 1, ["tenant_id"], pl.col("tenant_id")),
        ("platform", (nv + 1) * (nt + 1), [], pl.lit("platform")),
    ):
        starts = K.run_starts(key // np.uint64(divisor))

        def reduce(f, a):
            return f.reduceat(a, starts) if n else a[:0]  # noqa: B023 (called in this iteration only)

        part = ids.select(*id_columns, "user_id")[pl.Series(order[starts])].with_columns(
            pl.Series("first_purchase_at", reduce(np.minimum, at)).cast(schema["recognized_at"]),
            pl.Series("last_purchase_at", reduce(np.maximum, at)).cast(schema["recognized_at"]),
            pl.Series("last_day", reduce(np.maximum, day).astype(np.int32)).cast(pl.Date),
            pl.Series("orders", K.run_lengths(starts, n), dtype=pl.Int64),
            pl.Series("tickets", reduce(np.add, tickets), dtype=pl.Int64),
            pl.Series("monetary_cents", reduce(np.add, cents), dtype=pl.Int64),
            pl.lit(currency, pl.String).alias("currency"),
        )
        parts.append(
            part.with_columns(
                pl.lit(scope).alias("scope"),
                scope_id.alias("scope_id"),
                *[none.alias(k) for k in ("tenant_id", "venue_id") if k not in id_columns],
            )
        )
    return pl.concat(
        [
            p.select(
                "scope",
                "scope_id",
                "tenant_id",
                "venue_id",
                "user_id",
                *[a.meta.output_name() for a in _AGGS[:-1]],
            )
            for p in parts
        ]
    )


def quintile_score(value: str, higher_is_better: bool, group: str = "_scope") -> pl.Expr:
    """1 + floor(5 * (customers of the scope with a strictly worse value) / customers of the scope)."""
    v = pl.col(value) if higher_is_better else -pl.col(value)
    worse = v.rank("min").over(group) - 1
    return (1 + (worse * 5) // pl.len().over(group)).cast(pl.Int8)


def score(base: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """RFM scores, code, total and segment for every row of `customer_base` (one as-of date). Row order is
    not meaningful (sort when comparing)."""
    # one integer per (scope, scope_id): codes of the two columns (a dense rank of a struct of strings sorts them)
    scope = K.combined_key([K.dense_codes(base[c]) for c in SCOPE_KEY])
    fast = _quintiles_numpy(base, scope) if scope is not None else None
    if fast is not None:
        scored = base.with_columns(pl.Series(name, v, dtype=pl.Int8) for name, v in fast.items())
    else:
        scored = base.with_columns(
            pl.Series("_scope", scope)
            if scope is not None
            else pl.struct(SCOPE_KEY).rank("dense").alias("_scope")
        ).with_columns(
            quintile_score("recency_days", higher_is_better=False).alias("r_score"),
            quintile_score("orders", higher_is_better=True).alias("f_score"),
            quintile_score("monetary_cents", higher_is_better=True).alias("m_score"),
        )
    # the code's row of segment_map (r, f, m loop in that order): a lookup, not a join
    codes = segment_map()
    at = (
        (pl.col("r_score").cast(pl.Int32) - 1) * 25
        + (pl.col("f_score").cast(pl.Int32) - 1) * 5
        + pl.col("m_score").cast(pl.Int32)
        - 1
    )
    scored = scored.with_columns(
        codes["rfm_code"].gather(scored.select(at).to_series()).alias("rfm_code"),
        codes["segment"].gather(scored.select(at).to_series()).alias("segment"),
    )
    return scored.select(
        pl.lit(as_of).alias("as_of"),
        "scope",
        "scope_id",
        "tenant_id",
        "venue_id",
        "user_id",
        "first_purchase_at",
        "last_purchase_at",
        "recency_days",
        pl.col("orders").alias("frequency"),
        "monetary_cents",
        "tickets",
        "currency",
        "r_score",
        "f_score",
        "m_score",
        "rfm_code",
        (pl.col("r_score") + pl.col("f_score") + pl.col("m_score")).cast(pl.Int8).alias("rfm_total"),
        "segment",
    )


def _quintiles_numpy(base: pl.DataFrame, scope: np.ndarray) -> dict[str, np.ndarray] | None:
    """quintile_score of recency (lower is better), orders and monetary cents per scope, with numpy: the
    same integers as the polars rank over each scope (1 + 5 x strictly worse rows // rows of the scope).
    None for non-integer columns or NULLs (then the polars expressions run)."""
    columns = {"r_score": "recency_days", "f_score": "orders", "m_score": "monetary_cents"}
    if base.height == 0 or any(
        not base.schema[c].is_integer() or base[c].null_count() for c in columns.values()
    ):
        return None
    s = scope.astype(np.int64)
    n_scopes = int(s.max()) + 1
    size = np.bincount(s, minlength=n_scopes)[s]
    out = {}
    for name, col in columns.items():
        v = base[col].to_numpy().astype(np.int64)
        worse = _worse(s, n_scopes, -v if name == "r_score" else v)
        out[name] = (1 + (worse * 5) // size).astype(np.int8)
    return out


def _worse(s: np.ndarray, n_scopes: int, v: np.ndarray) -> np.ndarray:
    """Per row, the rows of its scope `s` with a strictly smaller `v`: from a histogram of (scope, value)
    when the values span a small range (recency, orders), else from one sort of (scope, value)."""
    lo = int(v.min())
    span = int(v.max()) - lo + 1
    key = s * span + (v - lo) if n_scopes * span < 2**62 else None
    if key is not None and n_scopes * span <= 1 << 24:
        counts = np.bincount(key, minlength=n_scopes * span)
        before = np.cumsum(counts) - counts  # rows with a smaller key
        return before[key] - before[s * span]
    if key is not None:  # rows with a smaller key = the earlier scopes' rows + the scope's smaller values
        earlier = np.cumsum(np.bincount(s, minlength=n_scopes)) - np.bincount(s, minlength=n_scopes)
        return pl.Series(key).rank("min").to_numpy().astype(np.int64) - 1 - earlier[s]
    order = np.lexsort((v, s))
    so, vo = s[order], v[order]
    idx = np.arange(v.size)
    scope_start = np.r_[True, so[1:] != so[:-1]]
    run_start = scope_start | np.r_[True, vo[1:] != vo[:-1]]
    out = np.empty(v.size, dtype=np.int64)
    out[order] = np.maximum.accumulate(np.where(run_start, idx, 0)) - np.maximum.accumulate(
        np.where(scope_start, idx, 0)
    )
    return out


def rfm_scores(orders: pl.DataFrame, as_of: date) -> pl.DataFrame:
    """`customer_rfm_scores` rows as of `as_of` (end of that UTC day) from fct_orders rows."""
    return score(customer_base(orders, as_of), as_of)


def segment_transitions(previous: pl.DataFrame, current: pl.DataFrame) -> pl.DataFrame:
    """Customers moving between segments from one as-of date to the next, per scope.

    A customer absent from `previous` (first purchase in between) comes from the segment '(new)'. Only the
    columns the SQL reads are handed to DuckDB (each frame is copied to Arrow first: ~5 M rows a week)."""
    columns = ["as_of", "scope", "scope_id", "tenant_id", "venue_id", "user_id", "segment", "monetary_cents"]
    return run(
        "customer_segment_transitions", {"prev": previous.select(columns), "cur": current.select(columns)}
    )
