"""Sales curves and the sell-out ETA model: empirical curve matching (nearest past sell-out curves).

A curve is an event's fraction of capacity sold against minutes since its sales opened (t0 = the earlier of
the ticket types' sale_start and the first sale: clocks out of order cannot give negative times). For every
event that sold out, the library keeps the minutes to reach 1 %, 2 %, ..., 100 % of its capacity, and its
features: early velocity (fraction sold in the first hour), days from the on-sale to the event, category and
venue.

The ETA of an event at fraction f after t minutes: among the library curves (only curves that sold out before
the as-of time), the K nearest by
- shape so far: log((t(f) - t(f - w) + 1) / (t(f - w) - t(f - 2w) + 1)), w = 10 % of capacity (f / 2
  early on): how long the last step of sales took relative to the step before (a fading rush and a
  building one have very different remaining times at the same f),
- early velocity (log), days to the event at the on-sale (log), category and venue (mismatch penalties);
each neighbour says how much longer it took from the same fraction, as a multiple of its recent pace (the
minutes its last step took): r = (T - t(f)) / (t(f) - t(f - w) + 1). ETA = the event's own recent pace x
the neighbours' median r, interval = their 10th..90th percentiles (a long slow pre-sale before a burst does
not inflate the ETA: only the recent pace scales it). The linear rule would be r = (1 - f) / w for every
curve; the neighbours learn how much faster or slower the rest goes. Not a linear extrapolation: at 50 % sold a decelerating rush is predicted to take far longer than
remaining / current velocity.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from analytics_pipelines.monitoring.inputs import TS

GRID = 100  # fractions 1 %..100 %
K = 7
MIN_LIBRARY = 3
MODEL = "curve_knn"
VERSION = "1"
FEATURES = "shape_so_far, early_velocity_1h, days_to_event_at_onsale, category, venue"


def curves(sales: pl.DataFrame, events: pl.DataFrame) -> pl.DataFrame:
    """The library: one row per event that sold out (capacity known, not cancelled before selling out):
    event keys, t0, sellout_at, minutes to sell out, features and `grid` (minutes to reach 1..100 %)."""
    ev = events.filter(pl.col("capacity").is_not_null())
    # only events that sold as many tickets as their capacity are sorted and ranked (a count first)
    full = (
        sales.group_by("event_id")
        .agg(pl.len().alias("n_all"))
        .join(ev.select("event_id", "capacity"), on="event_id")
        .filter(pl.col("n_all") >= pl.col("capacity"))
    )
    ev = ev.join(full.select("event_id"), on="event_id")
    s = (
        sales.filter(pl.col("created_at").is_not_null())
        .join(ev.select("event_id", "capacity", "sale_start", "cancelled_at"), on="event_id")
        .sort("event_id", "created_at")
        .with_columns(pl.int_range(1, pl.len() + 1).over("event_id").alias("rank"))
    )
    sold = s.group_by("event_id").agg(
        pl.len().alias("n"),
        pl.col("created_at").min().alias("first_sale"),
        pl.col("created_at").filter(pl.col("rank") == pl.col("capacity")).first().alias("sellout_at"),
    )
    keys = (
        ev.join(sold, on="event_id")
        .filter(pl.col("n") >= pl.col("capacity"))
        .filter(pl.col("cancelled_at").is_null() | (pl.col("cancelled_at") > pl.col("sellout_at")))
        .with_columns(pl.min_horizontal(pl.coalesce("sale_start", "first_sale"), "first_sale").alias("t0"))
    )
    if keys.is_empty():
        return pl.DataFrame(schema=LIBRARY_SCHEMA)
    need = keys.select(
        "event_id", "t0", pl.lit(list(range(1, GRID + 1)), pl.List(pl.Int64)).alias("q"), "capacity"
    ).explode("q", empty_as_null=True)
    need = need.with_columns(((pl.col("q") * pl.col("capacity") + GRID - 1) // GRID).clip(1).alias("rank"))
    at = need.join(s.select("event_id", "rank", "created_at"), on=["event_id", "rank"], how="left")
    grid = (
        at.with_columns(((pl.col("created_at") - pl.col("t0")).dt.total_seconds() / 60.0).alias("m"))
        .sort("event_id", "q")
        .group_by("event_id", maintain_order=True)
        .agg(pl.col("m").alias("grid"))
    )
    hour = (
        s.join(keys.select("event_id", "t0"), on="event_id")
        .filter(pl.col("created_at") < pl.col("t0") + pl.duration(hours=1))
        .group_by("event_id")
        .agg(pl.len().alias("first_hour"))
    )
    return (
        keys.join(grid, on="event_id")
        .join(hour, on="event_id", how="left")
        .select(
            "tenant_id",
            "venue_id",
            "event_id",
            "category_id",
            "capacity",
            "t0",
            "sellout_at",
            ((pl.col("sellout_at") - pl.col("t0")).dt.total_seconds() / 60.0).alias("sellout_minutes"),
            (pl.col("first_hour").fill_null(0) / pl.col("capacity")).alias("early_velocity"),
            ((pl.col("starts_at") - pl.col("t0")).dt.total_seconds() / 86400.0)
            .fill_null(30.0)
            .alias("days_to_event"),
            "grid",
        )
        .cast(LIBRARY_SCHEMA)
        .sort("sellout_at", "event_id")
    )


LIBRARY_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "event_id": pl.String,
    "category_id": pl.String,
    "capacity": pl.Int64,
    "t0": TS,
    "sellout_at": TS,
    "sellout_minutes": pl.Float64,
    "early_velocity": pl.Float64,
    "days_to_event": pl.Float64,
    "grid": pl.List(pl.Float64),
}


def grid_columns() -> list[str]:
    """The stored library's columns for the grid: m001..m100 (minutes to reach 1..100 % sold)."""
    return [f"m{q:03d}" for q in range(1, GRID + 1)]


def to_table(library: pl.DataFrame, version: str, trained_at) -> pl.DataFrame:
    """The library as a flat table (the grid as GRID columns: both warehouse backends store plain columns)."""
    cols = grid_columns()
    flat = library.with_columns(
        pl.col("grid").list.to_struct(fields=cols, upper_bound=GRID).struct.unnest()
    ).drop("grid")
    if library.is_empty():
        flat = library.drop("grid").with_columns(pl.lit(None, pl.Float64).alias(c) for c in cols)
    return flat.with_columns(
        pl.lit(version).alias("model_version"), pl.lit(trained_at).cast(TS).alias("trained_at")
    )


def from_table(df: pl.DataFrame) -> pl.DataFrame:
    """The stored library (to_table) -> the in-memory one (LIBRARY_SCHEMA, sorted by sell-out time)."""
    if df.is_empty():
        return pl.DataFrame(schema=LIBRARY_SCHEMA)
    return (
        df.with_columns(pl.concat_list(grid_columns()).alias("grid"))
        .select(list(LIBRARY_SCHEMA))
        .cast(LIBRARY_SCHEMA)
        .sort("sellout_at", "event_id")
    )


def step(f: np.ndarray) -> np.ndarray:
    """The fraction of capacity the recent pace is measured over at fraction f: 10 %, less early on."""
    return np.minimum(0.1, np.asarray(f) / 2)


def shape(t_b: np.ndarray, t_a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """log of (minutes the last step of sales took) / (minutes the step before took): > 0 when sales slow
    down (a front-loaded rush fading), < 0 when they speed up."""
    return np.log(pace(t_a, t) / pace(t_b, t_a))


def pace(t_a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Minutes the last step of sales took (+1): the time scale remaining times are expressed in."""
    return np.maximum(t - t_a, 0) + 1.0


def predict(library: pl.DataFrame, queries: pl.DataFrame, exclude_self: bool = True) -> pl.DataFrame:
    """ETA minutes (p10, p50, p90) per query row.

    queries: event_id, category_id, venue_id, as_of (TS), fraction (0..1), elapsed (minutes since t0),
    elapsed_a / elapsed_b (minutes to reach fraction - w / fraction - 2w, w = step(fraction); 0 below 0),
    early_velocity, days_to_event. Only library
    curves that sold out before the query's as_of are used (and never the query's own event). A query with
    fewer than MIN_LIBRARY usable curves gets no ETA and a reason."""
    n = queries.height
    out = {
        "eta_p10": np.full(n, np.nan),
        "eta_p50": np.full(n, np.nan),
        "eta_p90": np.full(n, np.nan),
        "neighbours": np.zeros(n, np.int64),
    }
    if n and library.height:
        grid = np.array(library["grid"].to_list(), dtype=float)  # (L, GRID)
        total = library["sellout_minutes"].to_numpy()
        f = np.clip(queries["fraction"].to_numpy(), 0.0, 1.0)
        at = lambda x: grid[:, np.clip(np.ceil(x * GRID).astype(int), 1, GRID) - 1]  # noqa: E731
        w = step(f)
        before = lambda x: np.where(x > 0, at(x), 0.0)  # noqa: E731  (fraction 0: the on-sale, t = 0)
        t_c, ta_c, tb_c = at(f), before(f - w), before(f - 2 * w)  # (L, Q): minutes to reach f, f-w, f-2w
        s_c = shape(tb_c, ta_c, t_c)
        e, ea, eb = (queries[c].to_numpy() for c in ("elapsed", "elapsed_a", "elapsed_b"))
        s_q = shape(eb, ea, e)[None, :]
        ev_c = np.log(library["early_velocity"].to_numpy() + 1e-3)[:, None]
        ev_q = np.log(queries["early_velocity"].to_numpy() + 1e-3)[None, :]
        dte_c = np.log(np.maximum(library["days_to_event"].to_numpy(), 0.01))[:, None]
        dte_q = np.log(np.maximum(queries["days_to_event"].to_numpy(), 0.01))[None, :]
        cat = library["category_id"].to_numpy()[:, None] != queries["category_id"].to_numpy()[None, :]
        ven = library["venue_id"].to_numpy()[:, None] != queries["venue_id"].to_numpy()[None, :]
        dist = (
            np.abs(s_c - s_q) / 0.25
            + np.abs(ev_c - ev_q) / 2.0
            + np.abs(dte_c - dte_q) / 3.0
            + 0.3 * cat
            + 0.2 * ven
        )
        lib_at = library["sellout_at"].cast(pl.Int64).to_numpy()[:, None]
        q_at = queries["as_of"].cast(TS).cast(pl.Int64).to_numpy()[None, :]
        usable = lib_at < q_at
        if exclude_self:
            usable &= library["event_id"].to_numpy()[:, None] != queries["event_id"].to_numpy()[None, :]
        dist = np.where(usable & np.isfinite(dist), dist, np.inf)
        ratio = (total[:, None] - t_c) / pace(ta_c, t_c)
        ratio = np.where(np.isfinite(ratio), np.maximum(ratio, 0.0), np.inf)
        k = min(K, library.height)
        nearest = np.argsort(dist, axis=0, kind="stable")[:k]  # (k, Q)
        d_k = np.take_along_axis(dist, nearest, axis=0)
        r_k = np.take_along_axis(ratio, nearest, axis=0)
        r_k = np.where(np.isfinite(d_k), r_k, np.nan)
        count = np.isfinite(d_k).sum(axis=0)
        ok = count >= min(MIN_LIBRARY, k) if library.height >= MIN_LIBRARY else np.zeros(n, bool)
        ok &= count > 0
        with np.errstate(all="ignore"):
            q10, q50, q90 = np.nanpercentile(np.where(ok[None, :], r_k, 0.0), [10, 50, 90], axis=0)
        scale = pace(ea, e)
        out["eta_p10"] = np.where(ok, q10 * scale, np.nan)
        out["eta_p50"] = np.where(ok, q50 * scale, np.nan)
        out["eta_p90"] = np.where(ok, q90 * scale, np.nan)
        out["neighbours"] = np.where(ok, count, 0)
    return queries.select("event_id").with_columns(
        pl.Series("eta_p10", out["eta_p10"]).fill_nan(None),
        pl.Series("eta_p50", out["eta_p50"]).fill_nan(None),
        pl.Series("eta_p90", out["eta_p90"]).fill_nan(None),
        pl.Series("neighbours", out["neighbours"], pl.Int64),
    )
