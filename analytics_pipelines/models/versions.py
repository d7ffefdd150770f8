"""Model version history: one row per fitted model version of a family (`<family>_model_versions`), kept
across runs, saying which version is in use.

`model_performance` holds the latest run's evaluation; this table keeps every version ever fitted: version,
trained_at, as_of, training window, features, the headline metrics (JSON: the model's and its baselines'),
whether it passed its gate and its status:

- `serving`: the version whose predictions are published (at most one per family);
- `retired`: served before, replaced by a later accepted version;
- `refused`: failed its gate, never served (the previous `serving` version stays in use).

Re-fitting the same version (same data, same model: the version is a hash of the artifact) replaces its
row instead of adding one. Pure polars: the builders pass the previous table and the new version."""

from __future__ import annotations

import json
import math
from datetime import date, datetime

import polars as pl

SERVING, RETIRED, REFUSED = "serving", "retired", "refused"
STATUSES = (SERVING, RETIRED, REFUSED)

SCHEMA = {
    "model_family": pl.String,
    "model": pl.String,
    "model_version": pl.String,
    "trained_at": pl.Datetime("us", "UTC"),
    "as_of": pl.Date,
    "window_start": pl.Date,
    "window_end": pl.Date,
    "features": pl.String,
    "metrics": pl.String,
    "gate_metric": pl.String,
    "gate_value": pl.Float64,
    "passed_gate": pl.Boolean,
    "status": pl.String,
    "in_use": pl.Boolean,
}


def empty() -> pl.DataFrame:
    return pl.DataFrame(schema=SCHEMA)


def _clean(value):
    """JSON-safe metrics: NaN/inf as null, numpy scalars as floats, nested dicts kept."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in sorted(value.items())}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if value is None or isinstance(value, str):
        return value
    try:
        f = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f if math.isfinite(f) else None


def record(
    previous: pl.DataFrame | None,
    *,
    family: str,
    model: str,
    version: str,
    trained_at: datetime,
    as_of: date,
    window: tuple[date | datetime | None, date | datetime | None],
    features: list[str] | str,
    metrics: dict,
    gate_metric: str,
    gate_value: float | None,
    passed_gate: bool | None,
    accepted: bool,
) -> pl.DataFrame:
    """The version history after fitting `version`: its row added (or replaced, when the same version was
    fitted before) with status `serving` when `accepted` (the previous serving version becomes `retired`),
    else `refused` (the serving version stays). `passed_gate` None: the gate could not judge (the model is
    used, e.g. too small a holdout)."""
    prev = empty() if previous is None or previous.height == 0 else _conform(previous)
    prev = prev.filter(pl.col("model_version") != version)
    lo, hi = window
    row = pl.DataFrame(
        [
            {
                "model_family": family,
                "model": model,
                "model_version": version,
                "trained_at": trained_at,
                "as_of": as_of,
                "window_start": lo.date() if isinstance(lo, datetime) else lo,
                "window_end": hi.date() if isinstance(hi, datetime) else hi,
                "features": features if isinstance(features, str) else ",".join(features),
                "metrics": json.dumps(_clean(metrics), sort_keys=True),
                "gate_metric": gate_metric,
                "gate_value": None if gate_value is None or not math.isfinite(gate_value) else gate_value,
                "passed_gate": passed_gate,
                "status": SERVING if accepted else REFUSED,
                "in_use": accepted,
            }
        ],
        schema=SCHEMA,
    )
    if accepted:
        prev = prev.with_columns(
            pl.when(pl.col("status") == SERVING)
            .then(pl.lit(RETIRED))
            .otherwise(pl.col("status"))
            .alias("status"),
            pl.lit(False).alias("in_use"),
        )
    return pl.concat([prev, row]).sort("trained_at", "model_version")


def published(
    family: str, model: str, version: str, trained_at: datetime, as_of: date, features, gate_metric: str
):
    """The history of a family whose predictions were published before the history existed: their version
    as the serving one (metrics and window unknown), so that a refusal keeps pointing at what is published."""
    return record(
        None,
        family=family,
        model=model,
        version=version,
        trained_at=trained_at,
        as_of=as_of,
        window=(None, None),
        features=features,
        metrics={},
        gate_metric=gate_metric,
        gate_value=None,
        passed_gate=None,
        accepted=True,
    )


def _conform(df: pl.DataFrame) -> pl.DataFrame:
    """A stored table in this module's schema (timestamps back to UTC microseconds, missing columns NULL)."""
    cols = []
    for name, dtype in SCHEMA.items():
        if name not in df.columns:
            cols.append(pl.lit(None, dtype).alias(name))
        elif isinstance(dtype, pl.Datetime):
            c = pl.col(name).cast(pl.Datetime("us", df.schema[name].time_zone))
            tz = df.schema[name].time_zone
            cols.append(
                (c.dt.replace_time_zone("UTC") if tz is None else c.dt.convert_time_zone("UTC")).alias(name)
            )
        else:
            cols.append(pl.col(name).cast(dtype))
    return df.select(cols)


def serving(df: pl.DataFrame | None) -> str | None:
    """The version in use, if any."""
    if df is None or df.height == 0:
        return None
    s = df.filter(pl.col("status") == SERVING)["model_version"]
    return s[0] if s.len() else None


def problems(df: pl.DataFrame, published_versions: list[str] | None = None) -> dict[str, int]:
    """Invariants of a version table: one row per version, at most one serving, status known, in_use exactly
    when serving, a refused version never passed its gate; and (when given) the published predictions carry
    the serving version only."""
    serving_v = serving(df)
    out = {
        "duplicate_versions": int(df["model_version"].is_duplicated().sum()),
        "more_than_one_serving": max(0, df.filter(pl.col("status") == SERVING).height - 1),
        "status_unknown": df.filter(~pl.col("status").is_in(STATUSES) | pl.col("status").is_null()).height,
        "in_use_not_serving": df.filter(pl.col("in_use") != (pl.col("status") == SERVING)).height,
        "refused_but_passed": df.filter(
            (pl.col("status") == REFUSED) & pl.col("passed_gate").fill_null(False)
        ).height,
    }
    if published_versions is not None:
        out["published_not_serving"] = sum(1 for v in set(published_versions) if v != serving_v)
    return out
