"""The KPI anomaly detector, pure numpy/polars (no Dagster, no database).

For every series (tenant, venue, metric) and window w of trailing hours (1 h and 24 h: a 1-hour spike and a
day-long drop or level shift), the value of hour h is compared with the same weekday-and-hour of the
`baseline_weeks` weeks before h's week:

    baseline = median of those values,  MAD = median |value - baseline|,
    scale = max(1.4826 * MAD, sqrt(baseline), 1)   (the Poisson floor: the series are counts),
    score = (value - baseline) / scale

The hour's score is the window with the largest |score|; severity from |score| and the thresholds
(Settings.anomaly.thresholds: low, medium, high, critical, all reachable: a spike of n orders over a
zero baseline scores n). Fewer than `min_weeks` weeks of history: no score (no NaN, no anomaly).

The seed's rule (monitoring-service L2136-2442) for comparison: z = |x - mean| / std (population) over the
trailing history of the same hourly series, anomaly when z > 3, severity critical when z > 5.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta

import numpy as np
import polars as pl

from analytics_pipelines.settings import AnomalySettings

DETECTOR_VERSION = "robust-wxh-1"
SEVERITIES = ("low", "medium", "high", "critical")
MAD_TO_SD = 1.4826
WEEK = 168
#: windows of at least this many hours count only while the shorter gate window agrees (see detect)
GATE_FROM = 24
EPOCH_MONDAY = datetime(1970, 1, 5)  # a Monday: week slots start on Monday 00:00 UTC
BASELINE_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "window_hours": pl.Int32,
    "weekday": pl.Int8,  # 1 = Monday .. 7 = Sunday (ISO)
    "hour_of_day": pl.Int8,
    "baseline": pl.Float64,
    "mad": pl.Float64,
    "scale": pl.Float64,
    "n_weeks": pl.Int32,
    "status": pl.String,  # fitted | insufficient_history
    "valid_from": pl.Datetime("us", "UTC"),  # the Monday of the week this baseline scores
}


#: detect's scored rows
SCORED_SCHEMA = {
    "tenant_id": pl.String,
    "venue_id": pl.String,
    "metric": pl.String,
    "hour": pl.Datetime("us", "UTC"),
    "value": pl.Float64,
    "window_hours": pl.Int32,
    "window_value": pl.Float64,
    "baseline": pl.Float64,
    "mad": pl.Float64,
    "scale": pl.Float64,
    "score": pl.Float64,
    "n_weeks": pl.Int32,
    "severity": pl.String,
}


def severity_of(abs_score: pl.Expr, thresholds: tuple[float, ...]) -> pl.Expr:
    out = pl.lit(None, pl.String)
    for name, t in zip(SEVERITIES, thresholds, strict=True):
        out = pl.when(abs_score >= t).then(pl.lit(name)).otherwise(out)
    return out


def _dense(series: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray, datetime]:
    """(keys of the series, values [series, weeks * 168] with NaN where absent, the first slot's time)."""
    s = series.with_columns(pl.col("hour").cast(pl.Datetime("us", "UTC")))
    keys = s.select("tenant_id", "venue_id", "metric").unique(maintain_order=True)
    keys = keys.sort("tenant_id", "venue_id", "metric").with_row_index("sid")
    start = s["hour"].min().replace(tzinfo=None)
    origin = EPOCH_MONDAY + timedelta(hours=((start - EPOCH_MONDAY) // timedelta(hours=1)) // WEEK * WEEK)
    origin_utc = origin.replace(tzinfo=s["hour"].min().tzinfo)
    idx = s.join(keys, on=["tenant_id", "venue_id", "metric"]).select(
        "sid", ((pl.col("hour") - pl.lit(origin_utc)).dt.total_hours()).alias("t"), "value"
    )
    n_slots = (int(idx["t"].max()) // WEEK + 1) * WEEK
    arr = np.full((keys.height, n_slots), np.nan)
    arr[idx["sid"].to_numpy(), idx["t"].to_numpy()] = idx["value"].fill_null(np.nan).to_numpy()
    return keys, arr, origin_utc


def _trailing(arr: np.ndarray, w: int) -> np.ndarray:
    """Sum of the last w hours (NaN when any of them is absent)."""
    if w == 1:
        return arr
    filled = np.nan_to_num(arr)
    c = np.concatenate([np.zeros((arr.shape[0], 1)), np.cumsum(filled, axis=1)], axis=1)
    nn = np.concatenate([np.zeros((arr.shape[0], 1)), np.cumsum(np.isnan(arr), axis=1)], axis=1)
    out = np.full(arr.shape, np.nan)
    out[:, w - 1 :] = c[:, w:] - c[:, :-w]
    gaps = np.zeros(arr.shape, bool)
    gaps[:, w - 1 :] = (nn[:, w:] - nn[:, :-w]) > 0
    gaps[:, : w - 1] = True
    out[gaps] = np.nan
    return out


def _baseline(x: np.ndarray, weeks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per slot of every week: median, MAD and count of the same slot in the `weeks` weeks before.
    x: [series, n_weeks, 168] -> three [series, n_weeks, 168] arrays."""
    s, n_weeks, _ = x.shape
    pad = np.concatenate([np.full((s, weeks, WEEK), np.nan), x], axis=1)
    med = np.empty_like(x)
    mad = np.empty_like(x)
    cnt = np.empty(x.shape, np.int32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows: no history yet
        for block in range(0, s, 32):
            view = np.lib.stride_tricks.sliding_window_view(pad[block : block + 32], weeks, axis=1)
            view = view[:, :n_weeks]  # week k: weeks k - weeks .. k - 1
            m = np.nanmedian(view, axis=-1)
            med[block : block + 32] = m
            mad[block : block + 32] = np.nanmedian(np.abs(view - m[..., None]), axis=-1)
            cnt[block : block + 32] = np.sum(~np.isnan(view), axis=-1)
    return med, mad, cnt


def detect(
    series: pl.DataFrame, cfg: AnomalySettings, score_from: datetime, score_to: datetime
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Score the hours [score_from, score_to] of `series` (tenant_id, venue_id, metric, hour, value; the
    history before score_from is the baselines' input). Returns (scores: one row per series and scored
    hour with value, baseline, mad, scale, score, window_hours, severity -- NULL when not anomalous or not
    scorable; baselines: the baselines of score_to's week, one row per series, window and weekday x hour)."""
    scored_schema = SCORED_SCHEMA
    series = series.filter(pl.col("value").is_not_null() & pl.col("value").is_finite())
    if series.is_empty():
        return pl.DataFrame(schema=scored_schema), pl.DataFrame(schema=BASELINE_SCHEMA)
    keys, arr, origin = _dense(series)
    n_weeks = arr.shape[1] // WEEK
    best = None
    baselines = []
    to_slot = int((score_to - origin) // timedelta(hours=1))
    to_week = min(max(to_slot // WEEK, 0), n_weeks - 1)
    per_window = {}
    clean = arr
    for w in sorted(cfg.windows):
        # longer windows sum the series with the hours the 1-hour window already flagged replaced by their
        # baseline: they look for sustained shifts, and a reported spike does not linger in a 72-hour sum
        xw = _trailing(arr if w == 1 else clean, w)
        x = xw.reshape(arr.shape[0], n_weeks, WEEK)
        med, mad, cnt = _baseline(x, cfg.baseline_weeks)
        scale = np.maximum(
            np.maximum(MAD_TO_SD * np.nan_to_num(mad), np.sqrt(np.maximum(np.nan_to_num(med), 0))), 1.0
        )
        ok = (cnt >= cfg.min_weeks) & ~np.isnan(x)
        score = np.where(ok, (x - np.nan_to_num(med)) / scale, np.nan)
        per_window[w] = dict(
            window_hours=np.full(arr.shape, w, np.int32),
            window_value=xw,
            baseline=np.where(ok, med, np.nan).reshape(arr.shape),
            mad=np.where(ok, mad, np.nan).reshape(arr.shape),
            scale=np.where(ok, scale, np.nan).reshape(arr.shape),
            score=score.reshape(arr.shape),
            n_weeks=cnt.reshape(arr.shape),
        )
        if w == 1:
            s1, m1 = per_window[1]["score"], per_window[1]["baseline"]
            clean = np.where(np.abs(np.nan_to_num(s1)) >= cfg.thresholds[0], np.nan_to_num(m1), arr)
        baselines.append(
            _baseline_rows(
                keys, w, med[:, to_week], mad[:, to_week], scale[:, to_week], cnt[:, to_week], cfg
            ).with_columns(pl.lit(origin + timedelta(hours=to_week * WEEK)).alias("valid_from"))
        )
    # a long window (>= GATE_FROM hours) counts only while the recent hours (the gate window) are off in
    # the same direction: once the series is back to normal, a spike still inside a 72-hour sum does not
    # keep the alert open for three days
    gate = max((w for w in cfg.windows if w < GATE_FROM), default=None)
    for w, cur in per_window.items():
        if gate is not None and w >= GATE_FROM:
            g = per_window[gate]["score"]
            agree = (np.sign(np.nan_to_num(g)) == np.sign(np.nan_to_num(cur["score"]))) & (
                np.abs(np.nan_to_num(g)) >= 1
            )
            cur["score"] = np.where(agree, cur["score"], np.where(np.isnan(cur["score"]), np.nan, 0.0))
        if best is None:
            best = cur
        else:
            better = np.nan_to_num(np.abs(cur["score"]), nan=-1) > np.nan_to_num(
                np.abs(best["score"]), nan=-1
            )
            best = {k: np.where(better, cur[k], best[k]) for k in best}
    lo = max(int((score_from - origin) // timedelta(hours=1)), 0)
    hi = min(to_slot, arr.shape[1] - 1)
    if hi < lo:
        return pl.DataFrame(schema=scored_schema), pl.concat(baselines).select(list(BASELINE_SCHEMA))
    sl = slice(lo, hi + 1)
    n = hi - lo + 1
    cols = {
        "sid": np.repeat(np.arange(arr.shape[0], dtype=np.uint32), n),
        "hour": np.tile(np.arange(lo, hi + 1), arr.shape[0]),
        "value": arr[:, sl].ravel(),
        **{k: v[:, sl].ravel() for k, v in best.items()},
    }
    frame = pl.DataFrame(cols, nan_to_null=True).filter(pl.col("value").is_not_null())
    frame = frame.join(keys, on="sid").with_columns(
        (pl.lit(origin) + pl.duration(hours=pl.col("hour"))).alias("hour"),
        pl.col("window_hours").cast(pl.Int32),
        pl.col("n_weeks").cast(pl.Int32),
    )
    frame = frame.with_columns(severity_of(pl.col("score").abs(), cfg.thresholds).alias("severity"))
    return frame.select(list(scored_schema)).cast(scored_schema), pl.concat(baselines).select(
        list(BASELINE_SCHEMA)
    )


def _baseline_rows(keys, w, med, mad, scale, cnt, cfg) -> pl.DataFrame:
    s = keys.height
    slot = np.tile(np.arange(WEEK), s)
    fitted = cnt.ravel() >= cfg.min_weeks
    return pl.DataFrame(
        {
            "sid": np.repeat(np.arange(s, dtype=np.uint32), WEEK),
            "window_hours": np.full(s * WEEK, w, np.int32),
            "weekday": (slot // 24 + 1).astype(np.int8),
            "hour_of_day": (slot % 24).astype(np.int8),
            "baseline": np.where(fitted, med.ravel(), np.nan),
            "mad": np.where(fitted, mad.ravel(), np.nan),
            "scale": np.where(fitted, scale.ravel(), np.nan),
            "n_weeks": cnt.ravel().astype(np.int32),
            "status": np.where(fitted, "fitted", "insufficient_history"),
        },
        nan_to_null=True,
    ).join(keys, on="sid")


def episodes(scored: pl.DataFrame, cfg: AnomalySettings) -> pl.DataFrame:
    """Alert episodes: per series, an episode opens at an hour of at least `alert_severity` and stays open
    while such an hour occurred in the last `resolve_hours` hours; it resolves at the first hour after
    that (the series back to normal). One row per episode: tenant_id, venue_id, metric, opened, resolved
    (NULL: still open at the last scored hour), peak_severity, peak_score."""
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    need = rank[cfg.alert_severity]
    k = cfg.resolve_hours
    s = scored.sort("tenant_id", "venue_id", "metric", "hour").with_columns(
        pl.col("severity").replace_strict(rank, default=-1, return_dtype=pl.Int8).alias("_rank")
    )
    s = s.with_columns((pl.col("_rank") >= need).alias("_alert"))
    grp = ["tenant_id", "venue_id", "metric"]
    # open at h when an alertable hour lies in (h - k, h] (hours are contiguous per series)
    s = s.with_columns(
        pl.col("_alert").cast(pl.Int8).rolling_max(window_size=k, min_samples=1).over(grp).alias("_open")
    )
    s = s.with_columns(
        ((pl.col("_open") == 1) & (pl.col("_open").shift(1).over(grp).fill_null(0) == 0))
        .cum_sum()
        .over(grp)
        .alias("_ep")
    )
    last = s.group_by(grp).agg(pl.col("hour").max().alias("_last"))
    eps = (
        s.filter(pl.col("_open") == 1)
        .group_by([*grp, "_ep"])
        .agg(
            pl.col("hour").min().alias("opened"),
            (pl.col("hour").max() + pl.duration(hours=1)).alias("resolved"),
            pl.col("score").abs().max().alias("peak_score"),
            pl.col("_rank").max().alias("_peak"),
        )
        .join(last, on=grp)
    )
    return eps.select(
        *grp,
        "opened",
        pl.when(pl.col("resolved") > pl.col("_last"))
        .then(None)
        .otherwise(pl.col("resolved"))
        .alias("resolved"),
        pl.col("_peak")
        .replace_strict(dict(enumerate(SEVERITIES)), return_dtype=pl.String)
        .alias("peak_severity"),
        "peak_score",
    ).sort(*grp, "opened")


def seed_zscore(series: pl.DataFrame, score_from: datetime, history_hours: int = 8 * WEEK) -> pl.DataFrame:
    """The seed's rule on the same series: z = |x - mean| / std (population std) over the trailing
    `history_hours` hours before h; flagged when z > 3 (std 0: not scorable, as the seed divided by zero).
    One row per series and hour >= score_from: tenant_id, venue_id, metric, hour, value, z, flagged."""
    s = series.sort("tenant_id", "venue_id", "metric", "hour")
    grp = ["tenant_id", "venue_id", "metric"]
    prev = pl.col("value").shift(1)
    s = s.with_columns(
        prev.rolling_mean(history_hours, min_samples=10).over(grp).alias("_mean"),
        prev.rolling_std(history_hours, min_samples=10, ddof=0).over(grp).alias("_std"),
    )
    z = pl.when(pl.col("_std") > 0).then((pl.col("value") - pl.col("_mean")).abs() / pl.col("_std"))
    return (
        s.filter(pl.col("hour") >= score_from)
        .with_columns(z.alias("z"))
        .with_columns((pl.col("z") > 3).fill_null(False).alias("flagged"))
        .select(*grp, "hour", "value", "z", "flagged")
    )
