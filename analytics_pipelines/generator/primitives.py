"""Seeded random streams, UUID formatting and vectorised numpy/polars helpers of the generator."""

from __future__ import annotations

import zlib
from collections.abc import Iterator

import numpy as np
import polars as pl
import pyarrow as pa

from analytics_pipelines.generator.reference import _BASKET_P, _BASKET_SIZES, CHUNK_ROWS, DAY


# -- primitives -----------------------------------------------------------------------------------------------
class _Streams:
    """Independent, named random streams derived from one seed: a component's draws never shift another's."""

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError("seed must be a non-negative integer")
        self.seed = seed

    def __call__(self, name: str) -> np.random.Generator:
        return np.random.Generator(
            np.random.PCG64(np.random.SeedSequence([self.seed, zlib.crc32(name.encode())]))
        )


def _new_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random version-4-shaped UUIDs as an (n, 16) uint8 array."""
    raw = rng.integers(0, 2**63, size=(n, 2), dtype=np.uint64, endpoint=True).view(np.uint8).reshape(n, 16)
    raw = raw.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


_HEX_PAIRS = (
    np.array([[ord(c) for c in f"{b:02x}"] for b in range(256)], dtype=np.uint8).view(np.uint16).ravel()
)
_UUID_LAYOUT = (
    (slice(0, 8), slice(0, 8)),
    (slice(9, 13), slice(8, 12)),
    (slice(14, 18), slice(12, 16)),
    (slice(19, 23), slice(16, 20)),
    (slice(24, 36), slice(20, 32)),
)


def _uuid_text(raw: np.ndarray) -> pl.Series:
    """(n, 16) uint8 -> canonical lowercase UUID text, built from fixed-width byte buffers (no row loop)."""
    n = raw.shape[0]
    hex32 = _HEX_PAIRS[raw].view(np.uint8).reshape(n, 32)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src in _UUID_LAYOUT:
        out[:, dst] = hex32[:, src]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int64)
    arr = pa.Array.from_buffers(
        pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out.reshape(-1))]
    )
    return pl.from_arrow(arr).cast(pl.String)


class _Ids:
    """One entity's random 128-bit ids: formatted as UUID text on demand, cached once a gather needs them."""

    def __init__(self, raw: np.ndarray) -> None:
        self.raw = raw
        self._text: pl.Series | None = None

    def __len__(self) -> int:
        return self.raw.shape[0]

    def slice(self, sl: slice = slice(None)) -> pl.Series:
        """The ids of rows sl, in row order (formatted without caching)."""
        return self._text[sl] if self._text is not None else _uuid_text(self.raw[sl])

    def take(self, idx: np.ndarray) -> pl.Series:
        """The ids of rows idx (a foreign-key column); idx < 0 gives NULL."""
        if self._text is None:
            self._text = _uuid_text(self.raw)
        missing = idx < 0
        text = self._text.gather(np.where(missing, 0, idx))
        if missing.any():
            text = pl.select(pl.when(pl.lit(pl.Series(~missing))).then(pl.lit(text))).to_series()
        return text


def _ts(seconds: np.ndarray) -> pl.Series:
    """Epoch seconds -> Datetime(us, UTC); negative values are NULL."""
    return pl.from_arrow(
        pa.array(seconds.astype(np.int64) * 1_000_000, mask=seconds < 0, type=pa.timestamp("us", tz="UTC"))
    )


def _pick(labels: tuple[str | None, ...], codes: np.ndarray) -> pl.Series:
    """Label lookup by code (a vectorised gather); code < 0 gives NULL."""
    idx = pl.Series(codes.astype(np.int64))
    if (codes < 0).any():
        idx = pl.select(pl.when(idx >= 0).then(idx)).to_series()
    return pl.Series(list(labels), dtype=pl.String).gather(idx)


def _int(values: np.ndarray, dtype: pa.DataType, null: np.ndarray | None = None) -> pl.Series:
    return pl.from_arrow(pa.array(values, mask=null, type=dtype))


def _dollars(cents: np.ndarray) -> pl.Series:
    return pl.Series(np.round(cents / 100.0, 2), dtype=pl.Float64)


def _choice(rng: np.random.Generator, p: np.ndarray, n: int) -> np.ndarray:
    """n draws of category codes with probabilities p (inverse CDF, int64)."""
    cdf = np.cumsum(p / p.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(p) - 1).astype(np.int64)


def _row_choice(rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """One category per row of a (n, k) weight matrix."""
    cdf = np.cumsum(weights, axis=1)
    cdf /= cdf[:, -1:]
    return np.minimum((rng.random(weights.shape[0])[:, None] > cdf).sum(axis=1), weights.shape[1] - 1)


def _group_starts(sizes: np.ndarray) -> np.ndarray:
    return np.cumsum(sizes) - sizes


def _within_group_cumsum(values: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Cumulative sum restarting at every group (rows sorted by group)."""
    cs = np.cumsum(values)
    sizes = np.bincount(group, minlength=n_groups)
    starts = _group_starts(sizes)
    base = np.zeros(n_groups, dtype=cs.dtype)
    has = sizes > 0
    base[has] = cs[starts[has]] - values[starts[has]]
    return cs - base[group]


def _split_baskets(rng: np.random.Generator, totals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split each group's ticket total into baskets of 1-6 tickets: (group, quantity) per basket."""
    group = np.repeat(np.arange(totals.size), totals)
    q = _BASKET_SIZES[_choice(rng, _BASKET_P, group.size)]
    within = _within_group_cumsum(q, group, totals.size)
    prev = within - q
    keep = prev < totals[group]
    return group[keep], np.minimum(q, totals[group] - prev)[keep]


def _dow(seconds: np.ndarray) -> np.ndarray:
    """Day of week (Monday = 0) of epoch seconds (1970-01-01 was a Thursday)."""
    return (seconds // DAY + 3) % 7


def _day_of_year(days: np.ndarray) -> np.ndarray:
    d = days.astype("datetime64[D]")
    return (d - d.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64)


def _curve_cdf(curve: tuple[tuple[float, float, float], ...], u: np.ndarray) -> np.ndarray:
    """CDF of a beta mixture at u, by numerical integration on a fine grid (a, b >= 1)."""
    grid = np.linspace(0.0, 1.0, 2001)
    mid = (grid[1:] + grid[:-1]) / 2
    density = np.zeros(mid.size)
    for w, a, b in curve:
        component = mid ** (a - 1) * (1 - mid) ** (b - 1)
        density += w * component / component.sum()
    return np.interp(u, grid, np.r_[0.0, np.cumsum(density)])


def _curve_draw(
    rng: np.random.Generator, curve: tuple[tuple[float, float, float], ...], n: int
) -> np.ndarray:
    comp = _choice(rng, np.array([c[0] for c in curve]), n)
    a = np.array([c[1] for c in curve])[comp]
    b = np.array([c[2] for c in curve])[comp]
    return rng.beta(a, b)


def _slug(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "-").str.strip_chars("-")


def _chunks(n: int, size: int = CHUNK_ROWS) -> Iterator[slice]:
    for start in range(0, max(n, 1), size):
        yield slice(start, min(start + size, n))


def random_uuids(rng: np.random.Generator, n: int) -> pl.Series:
    """n random UUIDs as canonical text, drawn from `rng` (deterministic, unlike uuid4())."""
    return _uuid_text(_new_ids(rng, n))
