"""Deterministic synthetic TicketToken platform data, fully vectorised with numpy and polars.

`generate_frames(scale, seed, as_of)` yields typed polars frames table by table in `contract.TABLE_ORDER`
(big fact tables in chunks of at most `CHUNK_ROWS` rows), with exactly the contract's columns in contract
order and the platform's own units and vocabularies (see sql/source/ and the schema reference). The same
seed, scale and as_of always give byte-identical frames: every random draw comes from a named numpy stream
derived from the seed, ids are formatted from seeded random 128-bit values (never uuid4()).

How the world is built (the only Python loops run over tenants, at most a handful, and output chunks):
1. Tenants; venues with heavy-tailed (lognormal) capacities, a city and a venue type; events with start dates
   spread from `as_of - history_days` to `as_of + future_days` following weekly and yearly seasonality and a
   growth trend, a category that depends on the venue type, and an event_schedules row each.
2. Ticket types: 2-4 tiers per event (General Admission always; VIP, Early Bird, Reserved Seating, Balcony,
   Student), quantities splitting the event's capacity, prices in cents and a chain of price changes
   (ticket_price_history; increases for high-demand tiers, discounts for slow ones).
3. Demand: for every ticket type a full-window demand in tickets, split into baskets (order items) of 1-6
   tickets, each timed on a sales curve (an early rush when sales open, a steady middle, a last-minute
   spike; weekday and hour-of-day purchase patterns), cut at the type's quantity in time order (a sell-out
   stops sales early) and cut at `now` (a future event has only sold what it sold so far). Venue capacities
   are calibrated so that the sold tickets hit the scale's target.
4. Orders: ~6% extra failed checkouts (CANCELLED/EXPIRED, no tickets), a few PENDING carts in the last
   minutes; some baskets merge with a basket of another tier of the same event into one two-item order.
   Money in integer cents: unit price = the tier's price in effect when the order is confirmed.
5. Users: per tenant, a BG/NBD buy-till-you-die process (gamma-distributed purchase rates, beta-distributed
   dropout after each repeat purchase), calibrated to exactly the tenant's number of orders, then
   rank-matched in time to the orders: each user's purchase count and ordering follow the process.
6. Refunds (~1.8% of paid orders plus every paid order of a cancelled event), tickets (one per unit of a
   paid order's items), check-in scans (per-event no-show rate 4-11%), resale (listings, completed and
   failed marketplace transfers, platform fees).

Conventions downstream code can rely on:
- `now` is midnight UTC at the start of `as_of`: everything that happened is strictly before it (deadlines
  such as orders.expires_at / listings.expires_at and future schedules may lie after it). Timestamps are whole
  seconds. Facts never precede `as_of - history_days` (the platform's launch); dimension rows (categories,
  venues, events, users) may have been created up to 120 days before it.
- Ticket status priority: 'refunded' (order refunded) > 'transferred' (resold; the scan, if any, still sets
  checked_in_at) > 'used' (valid scan) > 'active' (upcoming, no-show, or an invalid/duplicate scan).
  ticket_types.sold_quantity counts active + used + transferred tickets; refunded seats go back to
  available_quantity and are not resold.
- Orders: unit_price_cents = the tier's price at confirmed_at (created_at if never confirmed);
  total = subtotal + platform fee + processing fee + tax - discount. A PARTIAL refund returns the total
  minus the platform and processing fees; a FULL refund the total. tickets.created_at = purchased_at =
  the order's confirmed_at; tickets.price_cents holds cents in a decimal column (the platform's wart).
- Resale: marketplace_transfers.payment_currency is USDC/SOL for crypto, NULL for fiat; platform_fees only for
  completed transfers. A deleted user's email is scrubbed to deleted_<id>@removed.com after 30 days.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pyarrow as pa

from analytics_pipelines.source import contract

DAY = 86_400
HOUR = 3_600
MINUTE = 60
CHUNK_ROWS = 500_000
DEFAULT_AS_OF = date(2026, 11, 1)
DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"


@dataclass(frozen=True)
class Scale:
    """The size of a synthetic platform.

    `tickets` is a target: venue capacities are calibrated to it. Orders follow from it (about 2.5 sold
    tickets per paid order, plus ~6% failed checkouts); `users` is exact.
    """

    venues: int
    events: int
    tickets: int
    users: int
    history_days: int
    tenants: int
    future_days: int = 120


SCALES: dict[str, Scale] = {
    "tiny": Scale(venues=3, events=20, tickets=2_000, users=500, history_days=120, tenants=2),
    "small": Scale(venues=25, events=300, tickets=150_000, users=25_000, history_days=365, tenants=2),
    "medium": Scale(venues=100, events=3_000, tickets=1_500_000, users=150_000, history_days=730, tenants=3),
    "large": Scale(venues=500, events=20_000, tickets=10_000_000, users=1_000_000, history_days=730,
                   tenants=5),
}

# -- reference data -----------------------------------------------------------------------------------------
# city, state/province, country, time zone, UTC offset in hours (standard time), sales tax, weight
_CITIES = (
    ("New York", "NY", "US", "America/New_York", -5, 0.08875, 10),
    ("Los Angeles", "CA", "US", "America/Los_Angeles", -8, 0.095, 9),
    ("Chicago", "IL", "US", "America/Chicago", -6, 0.1025, 7),
    ("Houston", "TX", "US", "America/Chicago", -6, 0.0825, 5),
    ("Austin", "TX", "US", "America/Chicago", -6, 0.0825, 4),
    ("Nashville", "TN", "US", "America/Chicago", -6, 0.0925, 4),
    ("Denver", "CO", "US", "America/Denver", -7, 0.0881, 4),
    ("Phoenix", "AZ", "US", "America/Phoenix", -7, 0.086, 3),
    ("Seattle", "WA", "US", "America/Los_Angeles", -8, 0.1025, 4),
    ("Boston", "MA", "US", "America/New_York", -5, 0.0625, 4),
    ("Atlanta", "GA", "US", "America/New_York", -5, 0.089, 4),
    ("Miami", "FL", "US", "America/New_York", -5, 0.07, 4),
    ("New Orleans", "LA", "US", "America/Chicago", -6, 0.0945, 3),
    ("Las Vegas", "NV", "US", "America/Los_Angeles", -8, 0.08375, 4),
    ("Portland", "OR", "US", "America/Los_Angeles", -8, 0.0, 2),
    ("Minneapolis", "MN", "US", "America/Chicago", -6, 0.08025, 2),
    ("Toronto", "ON", "CA", "America/Toronto", -5, 0.13, 3),
    ("Vancouver", "BC", "CA", "America/Vancouver", -8, 0.12, 2),
    ("London", "ENG", "GB", "Europe/London", 0, 0.0, 4),
    ("Manchester", "ENG", "GB", "Europe/London", 0, 0.0, 2),
)
_CITY_NAME, _CITY_STATE, _CITY_COUNTRY, _CITY_TZ, _CITY_OFFSET, _CITY_TAX, _CITY_WEIGHT = zip(*_CITIES,
                                                                                             strict=True)

# slug, median price $, local start hour (mean, sd), duration h, sales lead days, demand factor
_CATEGORIES = (
    ("music", 55, 20.0, 1.0, 3.0, 60, 1.05),
    ("sports", 65, 19.0, 1.5, 3.0, 45, 1.0),
    ("theater", 70, 19.5, 1.5, 2.5, 50, 0.95),
    ("comedy", 35, 20.5, 1.0, 2.0, 30, 0.9),
    ("arts", 25, 17.0, 2.5, 3.0, 30, 0.75),
    ("conference", 250, 9.0, 0.5, 8.0, 90, 0.8),
    ("workshop", 90, 10.5, 2.0, 3.0, 30, 0.8),
    ("festival", 120, 13.0, 1.5, 10.0, 150, 1.1),
    ("family", 30, 12.5, 2.0, 2.0, 35, 0.9),
    ("nightlife", 25, 22.5, 0.8, 5.0, 14, 0.85),
)
_CAT_SLUG, _CAT_PRICE, _CAT_HOUR, _CAT_HOUR_SD, _CAT_DURATION, _CAT_LEAD, _CAT_DEMAND = (
    np.array(c) for c in zip(*_CATEGORIES, strict=True))
_CAT_SUFFIX = (
    ("Live", "in Concert", "World Tour", "Acoustic Night"),
    ("Championship", "Derby", "Classic", "Showdown"),
    ("The Musical", "Revival", "Premiere", "Matinee"),
    ("Comedy Hour", "Stand-Up Special", "Laugh Night", "Roast"),
    ("Exhibition", "Gallery Night", "Art Walk", "Showcase"),
    ("Summit", "Conference", "Expo", "Forum"),
    ("Workshop", "Masterclass", "Bootcamp", "Lab"),
    ("Festival", "Fest", "Weekender", "Fair"),
    ("Family Day", "Kids Show", "Circus", "Magic Show"),
    ("Club Night", "Dance Party", "After Dark", "DJ Set"),
)
_NAME_ADJ = ("Golden", "Velvet", "Neon", "Midnight", "Electric", "Silver", "Crimson", "Wild", "Northern",
             "Urban", "Blue", "Cosmic", "Hidden", "Bright", "Iron", "Lunar")
_NAME_NOUN = ("Foxes", "Echoes", "Tides", "Lanterns", "Harbor", "Pilots", "Sparrows", "Rivals", "Horizon",
              "Orchard", "Comets", "Voyagers", "Canyon", "Meadow", "Signals", "Anchors")

_VENUE_TYPES = ("stadium", "arena", "amphitheater", "concert_hall", "theater", "convention_center", "club",
                "bar")
_VENUE_WORD = ("Stadium", "Arena", "Amphitheater", "Hall", "Theater", "Convention Center", "Club", "Lounge")
_VENUE_PLACE = ("Riverside", "Harbor", "Grand", "Union", "Lakeside", "Summit", "Crescent", "Liberty", "Oak",
                "Maple", "Pioneer", "Metro", "Royal", "Echo", "Granite", "Sunset")
# event category weights by venue type (rows: _VENUE_TYPES, columns: _CATEGORIES)
_AFFINITY = np.array([
    [4, 8, 0, 0, 0, 0.5, 0, 3, 1, 0],
    [6, 5, 0.5, 2, 0.2, 1, 0, 1, 2, 0.5],
    [8, 0, 1, 1, 1, 0, 0, 4, 1, 0.5],
    [7, 0, 3, 2, 2, 1, 0.5, 0, 1, 0],
    [2, 0, 8, 4, 2, 0.5, 0.5, 0, 2, 0],
    [1, 0.5, 0, 0.5, 3, 8, 6, 1, 2, 0],
    [6, 0, 0, 4, 0.5, 0, 1, 0, 0, 8],
    [4, 0, 0, 3, 1, 0, 2, 0, 0, 6],
])

# ticket tiers: name, category, price multiplier, capacity share, demand multiplier, pick weight
_TIERS = (
    ("General Admission", "general", 1.0, 1.0, 1.0, 0.0),
    ("VIP", "vip", 2.6, 0.12, 1.15, 0.9),
    ("Early Bird", "early_bird", 0.75, 0.2, 1.5, 0.6),
    ("Reserved Seating", "reserved", 1.4, 0.35, 0.9, 0.5),
    ("Balcony", "balcony", 0.8, 0.25, 0.8, 0.3),
    ("Student", "student", 0.6, 0.1, 0.7, 0.3),
)
_TIER_NAME, _TIER_CATEGORY, _TIER_PRICE, _TIER_SHARE, _TIER_DEMAND, _TIER_PICK = zip(*_TIERS, strict=True)
_EARLY_BIRD = 2
_TIER_SECTION = ("GA", "VIP", "GA", None, "BAL", "GA")  # None: a lettered section A-H
_SECTIONS = ("GA", "VIP", "BAL", "A", "B", "C", "D", "E", "F", "G", "H")

# sales curves over a sales window (0 = sales open, 1 = window end): (weight, beta a, beta b) mixtures
_CURVE = ((0.2, 1.0, 8.0), (0.45, 1.6, 1.6), (0.35, 6.0, 1.0))
_EARLY_BIRD_CURVE = ((1.0, 1.0, 2.5),)
_EVENT_DOW = np.array([0.5, 0.6, 0.8, 1.1, 1.7, 1.9, 1.0])  # Monday..Sunday
_PURCHASE_DOW = np.array([1.05, 1.2, 1.15, 1.1, 1.0, 0.8, 0.7])
_PURCHASE_HOUR = np.array([0.3, 0.2, 0.1, 0.1, 0.1, 0.2, 0.4, 0.7, 1.0, 1.3, 1.5, 1.6, 1.8, 1.7, 1.5, 1.4,
                           1.4, 1.6, 1.9, 2.2, 2.3, 2.0, 1.4, 0.8])
_BASKET_SIZES = np.array([1, 2, 3, 4, 5, 6])
_BASKET_P = np.array([0.28, 0.40, 0.10, 0.15, 0.03, 0.04])

_FIRST_NAMES = ("Alex", "Sam", "Jordan", "Taylor", "Casey", "Riley", "Morgan", "Avery", "Quinn", "Jamie",
                "Drew", "Rowan", "Skyler", "Reese", "Parker", "Hayden", "Emerson", "Finley", "Harper",
                "Kendall", "Logan", "Micah", "Noel", "Peyton")
_LAST_NAMES = ("Rivera", "Chen", "Okafor", "Novak", "Silva", "Kowalski", "Haddad", "Lindqvist", "Moreau",
               "Tanaka", "Adeyemi", "Brennan", "Castillo", "Dubois", "Eriksen", "Fischer", "Gallo", "Ivanova",
               "Jensen", "Kaur", "Larsen", "Mendes", "Nakamura", "Petrov")
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.test")

_CHANNEL_P = np.array([0.55, 0.30, 0.10, 0.05])  # contract.ORDER_CHANNELS
_PAYMENT_P = np.array([0.60, 0.18, 0.10, 0.12])  # contract.PAYMENT_METHODS
_REFUND_REASONS = ("Event cancelled", "Customer request", "Unable to attend", "Duplicate purchase",
                   "Payment dispute", "Event rescheduled")
_PRICE_REASONS = ("demand-based increase", "promotional discount", "early bird ended", "price adjustment")
_GATES = ("Main Entrance", "Gate A", "Gate B", "Gate C", "VIP Entrance", "Box Office")
_GATE_SLUG = ("main", "gate-a", "gate-b", "gate-c", "vip", "box-office")
_SCANNERS_PER_GATE = 4

# status codes index the contract vocabularies
_EV = {s: i for i, s in enumerate(contract.EVENT_STATUSES)}
_SCH = {s: i for i, s in enumerate(contract.SCHEDULE_STATUSES)}
_ORD = {s: i for i, s in enumerate(contract.ORDER_STATUSES)}
_TKT = {s: i for i, s in enumerate(contract.TICKET_STATUSES)}
_LST = {s: i for i, s in enumerate(contract.LISTING_STATUSES)}
_TRF = {s: i for i, s in enumerate(contract.TRANSFER_STATUSES)}
_USR = {s: i for i, s in enumerate(contract.USER_STATUSES)}
_PAYMENT_STATUS = {"COMPLETED": "paid", "CONFIRMED": "paid", "REFUNDED": "refunded", "CANCELLED": "cancelled",
                   "EXPIRED": "expired", "PENDING": "pending"}
# basket classes while orders are built
_SOLD, _CANCELLED, _EXPIRED, _PENDING = 0, 1, 2, 3


# -- primitives -----------------------------------------------------------------------------------------------
class _Streams:
    """Independent, named random streams derived from one seed: a component's draws never shift another's."""

    def __init__(self, seed: int) -> None:
        if seed < 0:
            raise ValueError("seed must be a non-negative integer")
        self.seed = seed

    def __call__(self, name: str) -> np.random.Generator:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, zlib.crc32(name.encode())])))


def _new_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random version-4-shaped UUIDs as an (n, 16) uint8 array."""
    raw = rng.integers(0, 2**63, size=(n, 2), dtype=np.uint64, endpoint=True).view(np.uint8).reshape(n, 16)
    raw = raw.copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    return raw


_HEX_PAIRS = np.array([[ord(c) for c in f"{b:02x}"] for b in range(256)], dtype=np.uint8).view(np.uint16).ravel()
_UUID_LAYOUT = ((slice(0, 8), slice(0, 8)), (slice(9, 13), slice(8, 12)), (slice(14, 18), slice(12, 16)),
                (slice(19, 23), slice(16, 20)), (slice(24, 36), slice(20, 32)))


def _uuid_text(raw: np.ndarray) -> pl.Series:
    """(n, 16) uint8 -> canonical lowercase UUID text, built from fixed-width byte buffers (no row loop)."""
    n = raw.shape[0]
    hex32 = _HEX_PAIRS[raw].view(np.uint8).reshape(n, 32)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    for dst, src in _UUID_LAYOUT:
        out[:, dst] = hex32[:, src]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int64)
    arr = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(out.reshape(-1))])
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
    return pl.from_arrow(pa.array(seconds.astype(np.int64) * 1_000_000, mask=seconds < 0,
                                  type=pa.timestamp("us", tz="UTC")))


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


def _curve_draw(rng: np.random.Generator, curve: tuple[tuple[float, float, float], ...], n: int) -> np.ndarray:
    comp = _choice(rng, np.array([c[0] for c in curve]), n)
    a = np.array([c[1] for c in curve])[comp]
    b = np.array([c[2] for c in curve])[comp]
    return rng.beta(a, b)


def _slug(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_lowercase().str.replace_all(r"[^a-z0-9]+", "-").str.strip_chars("-")


def _chunks(n: int, size: int = CHUNK_ROWS) -> Iterator[slice]:
    for start in range(0, max(n, 1), size):
        yield slice(start, min(start + size, n))


# -- the world ---------------------------------------------------------------------------------------------
@dataclass
class _Clock:
    now: int
    launch: int  # the platform's first day of history: nothing is sold before it
    horizon: int  # last possible event start


@dataclass
class _Venues:
    ids: _Ids
    tenant: np.ndarray
    city: np.ndarray
    vtype: np.ndarray
    place: np.ndarray
    capacity_raw: np.ndarray
    capacity: np.ndarray
    status: np.ndarray
    created: np.ndarray
    updated: np.ndarray
    service_fee: np.ndarray  # primary orders: platform fee as a fraction of the subtotal
    resale_fee: np.ndarray  # resale: venue fee as a fraction of the sale price


@dataclass
class _Events:
    ids: _Ids
    schedule_ids: _Ids
    venue: np.ndarray
    tenant: np.ndarray
    category: np.ndarray
    name: np.ndarray  # (n, 3): adjective, noun, suffix codes
    starts: np.ndarray
    ends: np.ndarray
    doors: np.ndarray
    sale_start: np.ndarray
    sale_open: np.ndarray  # when sales would have opened had the platform existed (before launch: clipped)
    created: np.ndarray
    capacity_frac: np.ndarray
    capacity: np.ndarray
    fill: np.ndarray
    price: np.ndarray  # base price in cents
    event_type: np.ndarray
    visibility: np.ndarray
    override: np.ndarray  # capacity_override set?
    cancelled: np.ndarray
    cancel_time: np.ndarray
    postponed: np.ndarray
    noshow: np.ndarray
    status: np.ndarray
    schedule_status: np.ndarray
    status_changed: np.ndarray


@dataclass
class _Types:
    ids: _Ids
    event: np.ndarray
    tier: np.ndarray
    share: np.ndarray
    demand: np.ndarray  # full-window demand as a multiple of quantity
    quantity: np.ndarray
    sale_start: np.ndarray
    sale_end: np.ndarray
    chain: np.ndarray  # prices in cents: each type's initial price then one per change
    chain_start: np.ndarray
    n_changes: np.ndarray
    change_time: np.ndarray  # sorted by (type, time)
    change_type: np.ndarray
    change_ids: _Ids
    change_reason: np.ndarray
    change_by: np.ndarray
    sold: np.ndarray  # non-refunded tickets

    @property
    def price(self) -> np.ndarray:
        return self.chain[self.chain_start + self.n_changes]

    def price_at(self, tier_type: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Price in cents of ticket type `tier_type` in effect at time t (price history applies)."""
        keys = self.change_type.astype(np.int64) * 2**32 + self.change_time
        first_change = _group_starts(self.n_changes)
        count = np.searchsorted(keys, tier_type.astype(np.int64) * 2**32 + t, side="right") - first_change[tier_type]
        return self.chain[self.chain_start[tier_type] + count]


@dataclass
class _Orders:
    ids: _Ids
    event: np.ndarray
    tenant: np.ndarray
    cls: np.ndarray
    created: np.ndarray
    confirmed: np.ndarray
    cancelled_at: np.ndarray
    refunded_at: np.ndarray
    created_null: np.ndarray
    status: np.ndarray
    quantity: np.ndarray
    subtotal: np.ndarray
    platform_fee: np.ndarray
    processing_fee: np.ndarray
    tax: np.ndarray
    discount: np.ndarray
    total: np.ndarray
    user: np.ndarray
    channel: np.ndarray
    payment: np.ndarray


@dataclass
class _Items:
    ids: _Ids
    order: np.ndarray
    type: np.ndarray
    quantity: np.ndarray
    unit: np.ndarray
    created: np.ndarray


@dataclass
class _Refunds:
    ids: _Ids
    order: np.ndarray
    amount: np.ndarray
    reason: np.ndarray
    status: np.ndarray
    refund_type: np.ndarray
    created: np.ndarray
    updated: np.ndarray


@dataclass
class _Users:
    ids: _Ids
    tenant: np.ndarray
    first: np.ndarray
    last: np.ndarray
    domain: np.ndarray
    phone: np.ndarray
    city: np.ndarray
    status: np.ndarray
    consent: np.ndarray
    created: np.ndarray
    updated: np.ndarray
    deleted: np.ndarray
    tenant_offset: np.ndarray  # users are stored tenant by tenant: [offset, offset + count)
    tenant_count: np.ndarray


@dataclass
class _Tickets:
    ids: _Ids
    order: np.ndarray
    type: np.ndarray
    event: np.ndarray
    purchased: np.ndarray
    holder: np.ndarray
    price: np.ndarray
    section: np.ndarray
    status: np.ndarray
    checked_in: np.ndarray
    status_changed: np.ndarray
    # scans, in scan-time order: the ticket row scanned, when, the result code and the scanner
    scan_ids: _Ids
    scan_ticket: np.ndarray
    scan_time: np.ndarray
    scan_result: np.ndarray
    scan_device: np.ndarray


@dataclass
class _Resale:
    listing_ids: _Ids
    ticket: np.ndarray
    price: np.ndarray
    face: np.ndarray
    status: np.ndarray
    listed: np.ndarray
    sold: np.ndarray
    expires: np.ndarray
    cancelled: np.ndarray
    transfer_ids: _Ids
    transfer_listing: np.ndarray
    buyer: np.ndarray
    transfer_status: np.ndarray
    crypto: np.ndarray
    currency: np.ndarray
    initiated: np.ndarray
    completed: np.ndarray
    failed: np.ndarray
    fee_ids: _Ids
    fee_transfer: np.ndarray
    platform_fee: np.ndarray
    venue_fee: np.ndarray


@dataclass
class _World:
    clock: _Clock
    tenant_ids: _Ids
    category_ids: _Ids
    operator_ids: _Ids  # staff who change prices: 8 per tenant
    venues: _Venues
    events: _Events
    types: _Types
    users: _Users
    orders: _Orders
    items: _Items
    refunds: _Refunds
    tickets: _Tickets
    resale: _Resale


# -- building -----------------------------------------------------------------------------------------------
def _make_venues(rs: _Streams, scale: Scale, clock: _Clock) -> _Venues:
    rng = rs("venues")
    n = scale.venues
    tenant_w = 1.0 / np.arange(1, scale.tenants + 1) ** 0.8
    tenant = np.concatenate([np.arange(min(n, scale.tenants)),
                             _choice(rng, tenant_w, max(n - scale.tenants, 0))])
    z = rng.standard_normal(n)
    # venue type follows size: stadiums and arenas on the heavy tail, clubs and bars at the small end
    band = np.digitize(z, [-1.0, -0.3, 0.5, 1.0, 1.6])
    pairs = np.array([[6, 7], [4, 6], [4, 5], [2, 3], [1, 2], [0, 1]])
    vtype = pairs[band, (rng.random(n) < 0.5).astype(int)]
    status = _choice(rng, np.array([0.9, 0.04, 0.03, 0.03]), n)
    return _Venues(
        ids=_Ids(_new_ids(rng, n)), tenant=tenant, city=_choice(rng, np.array(_CITY_WEIGHT, float), n), vtype=vtype,
        place=rng.integers(0, len(_VENUE_PLACE), n), capacity_raw=np.exp(1.1 * z), capacity=np.zeros(n, np.int64),
        status=status, created=np.zeros(n, np.int64), updated=np.zeros(n, np.int64),
        service_fee=rng.choice([0.06, 0.08, 0.10, 0.12], n), resale_fee=rng.uniform(0.02, 0.05, n))


def _make_events(rs: _Streams, scale: Scale, clock: _Clock, venues: _Venues) -> _Events:
    rng = rs("events")
    n = scale.events
    venue_w = rng.gamma(2.0, 1.0, len(venues.ids))
    venue = np.concatenate([np.arange(min(n, venue_w.size)), _choice(rng, venue_w, max(n - venue_w.size, 0))])
    category = _row_choice(rng, _AFFINITY[venues.vtype[venue]])
    # start dates: weekday pattern, a summer peak and a December bump, a growing platform
    first_day, last_day = clock.launch // DAY, clock.horizon // DAY
    days = np.arange(first_day, last_day)
    doy = _day_of_year(days)
    weight = (_EVENT_DOW[_dow(days * DAY)] * (1 + 0.3 * np.cos(2 * np.pi * (doy - 196) / 365.25))
              * (1 + 0.25 * np.exp(-(((doy - 350) / 12.0) ** 2))) * (1 + 0.6 * (days - first_day) / days.size))
    day = days[_choice(rng, weight, n)]
    local_hour = np.clip(np.round(rng.normal(_CAT_HOUR[category], _CAT_HOUR_SD[category]) * 2) / 2, 8, 23)
    offset = np.array(_CITY_OFFSET)[venues.city[venue]] * HOUR
    starts = day * DAY + (local_hour * HOUR).astype(np.int64) - offset
    duration = (_CAT_DURATION[category] * rng.uniform(0.8, 1.3, n) * HOUR).astype(np.int64)
    multi_day = np.isin(category, [5, 7]) & (rng.random(n) < 0.3)  # conferences and festivals
    duration = np.where(multi_day, duration + rng.integers(1, 3, n) * DAY, duration)
    lead = (_CAT_LEAD[category] * rng.lognormal(0, 0.4, n) * DAY).astype(np.int64)
    sale_start = np.maximum(starts - lead, clock.launch)  # nothing was sold before the platform launched
    created = np.minimum(sale_start - rng.integers(1, 21, n) * DAY, clock.now - rng.integers(1, 49, n) * HOUR)
    created = np.maximum(created, clock.launch - 60 * DAY)
    price = np.maximum(np.round(_CAT_PRICE[category] * rng.lognormal(0, 0.35, n) * 2) / 2, 5) * 100
    return _Events(
        ids=_Ids(_new_ids(rng, n)), schedule_ids=_Ids(_new_ids(rng, n)), venue=venue, tenant=venues.tenant[venue],
        category=category,
        name=np.stack([rng.integers(0, len(_NAME_ADJ), n), rng.integers(0, len(_NAME_NOUN), n),
                       rng.integers(0, 4, n)], axis=1),
        starts=starts, ends=starts + duration, doors=starts - rng.choice([30, 60, 90], n) * MINUTE,
        sale_start=sale_start, sale_open=starts - lead, created=created, capacity_frac=rng.uniform(0.45, 1.0, n),
        capacity=np.zeros(n, np.int64),
        fill=rng.lognormal(np.log(0.72), 0.45, n) * _CAT_DEMAND[category], price=price.astype(np.int64),
        event_type=_choice(rng, np.array([0.85, 0.10, 0.05]), n),
        visibility=_choice(rng, np.array([0.9, 0.03, 0.07]), n), override=rng.random(n) < 0.1,
        cancelled=np.zeros(n, bool), cancel_time=np.full(n, -1, np.int64), postponed=np.zeros(n, bool),
        noshow=rng.uniform(0.04, 0.11, n), status=np.zeros(n, np.int64), schedule_status=np.zeros(n, np.int64),
        status_changed=np.zeros(n, np.int64))


def _make_types(rs: _Streams, clock: _Clock, events: _Events) -> _Types:
    rng = rs("ticket_types")
    n_ev = len(events.ids)
    n_types = 2 + _choice(rng, np.array([0.4, 0.4, 0.2]), n_ev)
    # weighted sampling without replacement of the extra tiers (Efraimidis-Spirakis keys)
    pick = np.array(_TIER_PICK[1:])
    keys = rng.random((n_ev, pick.size)) ** (1.0 / pick)
    extra = np.argsort(-keys, axis=1) + 1
    take = np.arange(pick.size)[None, :] < (n_types - 1)[:, None]
    tier_matrix = np.concatenate([np.zeros((n_ev, 1), np.int64), np.where(take, extra, -1)], axis=1)
    tier_matrix.sort(axis=1)  # GA first, then tiers in a stable order
    event = np.repeat(np.arange(n_ev), tier_matrix.shape[1])
    tier = tier_matrix.reshape(-1)
    event, tier = event[tier >= 0], tier[tier >= 0]
    n = tier.size
    share = np.array(_TIER_SHARE)[tier]
    share = share / np.bincount(event, weights=share, minlength=n_ev)[event]
    demand = np.minimum(events.fill[event] * np.array(_TIER_DEMAND)[tier] * rng.lognormal(0, 0.15, n), 1.8)
    sale_start = events.sale_start[event]
    sale_end = np.where(tier == _EARLY_BIRD, sale_start + (events.starts[event] - sale_start) * 3 // 10,
                        events.starts[event])
    # events whose sales opened before launch lose the demand of the curve's pre-launch part (no launch spike)
    raw_start = events.sale_open[event]
    raw_end = np.where(tier == _EARLY_BIRD, raw_start + (events.starts[event] - raw_start) * 3 // 10, sale_end)
    before_launch = np.clip((clock.launch - raw_start) / np.maximum(raw_end - raw_start, 1), 0, 1)
    demand *= 1 - np.where(tier == _EARLY_BIRD, _curve_cdf(_EARLY_BIRD_CURVE, before_launch),
                           _curve_cdf(_CURVE, before_launch))
    # price chains: a few changes inside the sales window so far; high demand goes up, slow tiers get discounts
    n_changes = _choice(rng, np.array([0.65, 0.2, 0.1, 0.05]), n)
    window_end = np.minimum(sale_end, clock.now - HOUR)
    n_changes[window_end - sale_start < 2 * DAY] = 0
    change_type = np.repeat(np.arange(n), n_changes)
    lo, hi = sale_start[change_type] + HOUR, window_end[change_type]
    change_time = lo + (rng.random(change_type.size) * (hi - lo)).astype(np.int64)
    order = np.lexsort((change_time, change_type))
    change_type, change_time = change_type[order], change_time[order]
    up = demand[change_type] > 0.95
    factor = np.where(up, rng.choice([1.1, 1.15, 1.2, 1.25], change_type.size),
                      rng.choice([0.85, 0.9, 1.1], change_type.size))
    p0 = np.maximum(np.round(events.price[event] * np.array(_TIER_PRICE)[tier] / 50) * 50, 500).astype(np.int64)
    chain_start = _group_starts(n_changes + 1)
    chain = np.zeros(n + change_type.size, np.int64)
    chain[chain_start] = p0
    # within a type, p_k = round50(p_{k-1} * f_k): a cumulative product of factors, then rounding per step
    position = np.arange(change_type.size) - _group_starts(n_changes)[change_type] + 1
    log_cum = _within_group_cumsum(np.log(factor), change_type, n)
    raw = p0[change_type] * np.exp(log_cum)
    stepped = np.maximum(np.round(raw / 50) * 50, 500).astype(np.int64)
    chain[chain_start[change_type] + position] = stepped
    # a change must change the price: nudge a step equal to its predecessor by 50 cents
    same = chain[chain_start[change_type] + position] == chain[chain_start[change_type] + position - 1]
    chain[(chain_start[change_type] + position)[same]] += 50
    return _Types(
        ids=_Ids(_new_ids(rng, n)), event=event, tier=tier, share=share, demand=demand, quantity=np.zeros(n, np.int64),
        sale_start=sale_start, sale_end=sale_end, chain=chain, chain_start=chain_start, n_changes=n_changes,
        change_time=change_time, change_type=change_type, change_ids=_Ids(_new_ids(rng, change_type.size)),
        change_reason=np.where(up, 0, rng.choice([1, 2, 3], change_type.size)),
        change_by=rng.integers(0, 8, change_type.size), sold=np.zeros(n, np.int64))


def _calibrate_capacity(scale: Scale, clock: _Clock, venues: _Venues, events: _Events, types: _Types) -> None:
    """Scale venue capacities so that the tickets sold by `now` hit the scale's target."""
    window = np.maximum(types.sale_end - types.sale_start, 1)
    elapsed = np.clip((clock.now - types.sale_start) / window, 0, 1)
    sold_fraction = np.where(types.tier == _EARLY_BIRD, _curve_cdf(_EARLY_BIRD_CURVE, elapsed),
                             _curve_cdf(_CURVE, elapsed))
    per_unit = types.share * np.minimum(1.0, types.demand * sold_fraction)
    unit_event = np.bincount(types.event, weights=per_unit, minlength=len(events.ids))
    expected = (venues.capacity_raw[events.venue] * events.capacity_frac * unit_event).sum()
    factor = scale.tickets / max(expected, 1e-9)
    venues.capacity = np.maximum(np.round(venues.capacity_raw * factor), 20).astype(np.int64)
    n_types = np.bincount(types.event, minlength=len(events.ids))
    events.capacity = np.maximum((venues.capacity[events.venue] * events.capacity_frac).astype(np.int64),
                                 2 * n_types)
    quantity = np.maximum(np.floor(types.share * events.capacity[types.event]), 1).astype(np.int64)
    ga = types.tier == 0  # General Admission takes the remainder: tiers add up to the event's capacity
    rest = events.capacity - np.bincount(types.event, weights=np.where(ga, 0, quantity),
                                         minlength=len(events.ids)).astype(np.int64)
    quantity[ga] = rest[types.event[ga]]
    types.quantity = quantity


def _cancel_and_postpone(rs: _Streams, clock: _Clock, events: _Events) -> None:
    """~2% of events are cancelled (after some sales), ~1% of future events postponed."""
    rng = rs("cancellations")
    n = len(events.ids)
    last_sale = np.minimum(events.starts, clock.now - 3 * DAY)
    eligible = np.flatnonzero(events.sale_start < last_sale - DAY)
    k = min(max(1, round(0.02 * n)), eligible.size)
    chosen = rng.permutation(eligible)[:k]
    events.cancelled[chosen] = True
    span = last_sale[chosen] - events.sale_start[chosen]
    events.cancel_time[chosen] = events.sale_start[chosen] + (rng.uniform(0.3, 0.9, k) * span).astype(np.int64)
    future = np.flatnonzero((events.starts > clock.now + 7 * DAY) & ~events.cancelled)
    events.postponed[rng.permutation(future)[:round(0.01 * n)]] = True


def _purchase_times(rng: np.random.Generator, types: _Types, type_offset: np.ndarray,
                    tier_type: np.ndarray) -> np.ndarray:
    """Purchase times on the type's sales curve, with weekday and local hour-of-day purchase patterns."""
    n = tier_type.size
    lo, hi = types.sale_start[tier_type], types.sale_end[tier_type] - MINUTE
    offset = type_offset[tier_type]
    early = types.tier[tier_type] == _EARLY_BIRD
    t = np.zeros(n, np.int64)
    pending = np.ones(n, bool)
    for _ in range(3):  # weekday pattern by rejection: three rounds, then keep the last draw
        idx = np.flatnonzero(pending)
        u = np.where(early[idx], _curve_draw(rng, _EARLY_BIRD_CURVE, idx.size), _curve_draw(rng, _CURVE, idx.size))
        raw = lo[idx] + (u * (hi[idx] - lo[idx])).astype(np.int64)
        local = raw + offset[idx]
        tod = _choice(rng, _PURCHASE_HOUR, idx.size) * HOUR + rng.integers(0, HOUR, idx.size)
        cand = np.clip(local // DAY * DAY + tod - offset[idx], lo[idx], hi[idx])
        t[idx] = cand
        accept = rng.random(idx.size) < _PURCHASE_DOW[_dow(cand + offset[idx])] / _PURCHASE_DOW.max()
        pending[idx[accept]] = False
    return t


def _make_baskets(rs: _Streams, clock: _Clock, venues: _Venues, events: _Events,
                  types: _Types) -> tuple[np.ndarray, ...]:
    """Baskets (future order items) of every class: (type, quantity, time, class)."""
    rng = rs("demand")
    demand_tickets = np.round(types.quantity * types.demand).astype(np.int64)
    btype, bqty = _split_baskets(rng, demand_tickets)
    type_offset = np.array(_CITY_OFFSET)[venues.city[events.venue[types.event]]] * HOUR
    bt = _purchase_times(rng, types, type_offset, btype)
    ev = types.event[btype]
    alive = ~(events.cancelled[ev] & (bt >= events.cancel_time[ev]))
    btype, bqty, bt = btype[alive], bqty[alive], bt[alive]
    # capacity cut in time order: a sell-out stops sales; then only what was sold before now
    order = np.lexsort((bt, btype))
    btype, bqty, bt = btype[order], bqty[order], bt[order]
    prev = _within_group_cumsum(bqty, btype, len(types.ids)) - bqty
    keep = prev < types.quantity[btype]
    bqty = np.minimum(bqty, types.quantity[btype] - prev)
    keep &= bt <= clock.now - 15 * MINUTE
    btype, bqty, bt = btype[keep], bqty[keep], bt[keep]
    # failed checkouts: retries of real baskets a little earlier, which never became tickets
    rng = rs("failed_checkouts")
    n_failed = round(0.06 * btype.size)
    src = rng.choice(btype.size, n_failed, replace=False) if btype.size else np.zeros(0, np.int64)
    ftype = btype[src]
    ft = np.maximum(bt[src] - rng.exponential(1.5 * DAY, n_failed).astype(np.int64), types.sale_start[ftype])
    fcls = np.where(rng.random(n_failed) < 0.55, _CANCELLED, _EXPIRED)
    # pending carts: open checkouts in the last minutes before now, on types still on sale
    sold_per_type = np.bincount(btype, weights=bqty, minlength=len(types.ids))
    on_sale = np.flatnonzero((types.sale_start <= clock.now - HOUR) & (types.sale_end > clock.now)
                             & ~events.cancelled[types.event] & (sold_per_type < types.quantity))
    n_pending = min(on_sale.size, max(1, round(0.002 * btype.size))) if on_sale.size else 0
    ptype = rng.choice(on_sale, n_pending) if n_pending else np.zeros(0, np.int64)
    pqty = _BASKET_SIZES[_choice(rng, _BASKET_P, n_pending)]
    pt = clock.now - rng.integers(MINUTE, 14 * MINUTE, n_pending)
    return (np.concatenate([btype, ftype, ptype]), np.concatenate([bqty, bqty[src], pqty]),
            np.concatenate([bt, ft, pt]),
            np.concatenate([np.full(btype.size, _SOLD), fcls, np.full(n_pending, _PENDING)]))


def _make_orders(rs: _Streams, clock: _Clock, venues: _Venues, events: _Events, types: _Types,
                 baskets: tuple[np.ndarray, ...]) -> tuple[_Orders, _Items]:
    """Group baskets into orders (some two-tier orders), time-sort them, and price them in cents."""
    rng = rs("orders")
    btype, bqty, bt, bcls = baskets
    ev = types.event[btype]
    order = np.lexsort((bt, ev))
    btype, bqty, bt, bcls, ev = btype[order], bqty[order], bt[order], bcls[order], ev[order]
    n = btype.size
    pos = np.arange(n)
    run_start = np.maximum.accumulate(np.where(np.r_[True, ev[1:] != ev[:-1]], pos, 0))
    rank = pos - run_start
    prev = np.maximum(pos - 1, 0)
    merge = ((rank % 2 == 1) & (bcls == bcls[prev]) & (btype != btype[prev]) & (rng.random(n) < 0.35)
             & (bt[prev] >= types.sale_start[btype]) & (bt[prev] <= types.sale_end[btype] - MINUTE))
    order_of = np.cumsum(~merge) - 1
    heads = np.flatnonzero(~merge)
    o_time = bt[heads]
    rank_of = np.empty(heads.size, np.int64)
    rank_of[np.lexsort((heads, o_time))] = np.arange(heads.size)
    item_order = rank_of[order_of]
    isort = np.lexsort((pos, item_order))
    item_order, btype, bqty = item_order[isort], btype[isort], bqty[isort]
    n_orders = heads.size
    o_sorted = np.empty(n_orders, np.int64)
    o_sorted[rank_of] = np.arange(n_orders)
    head_of = heads[o_sorted]
    created = bt[head_of]
    cls = bcls[head_of]
    event = ev[head_of]
    sold = cls == _SOLD
    confirmed = np.where(sold, created + rng.integers(20, 600, n_orders), -1)
    cancelled_at = np.where(cls == _CANCELLED, created + rng.integers(MINUTE, 14 * MINUTE, n_orders), -1)
    # unit price: the tier's price in effect when the order was confirmed (or created, if it never was)
    price_time = np.where(sold, confirmed, created)[item_order]
    unit = types.price_at(btype, price_time)
    subtotal = np.bincount(item_order, weights=unit * bqty, minlength=n_orders).astype(np.int64)
    quantity = np.bincount(item_order, weights=bqty, minlength=n_orders).astype(np.int64)
    venue = events.venue[event]
    platform_fee = np.round(subtotal * venues.service_fee[venue]).astype(np.int64)
    tax = np.round(subtotal * np.array(_CITY_TAX)[venues.city[venue]]).astype(np.int64)
    discount = np.where(rng.random(n_orders) < 0.07,
                        np.round(subtotal * rng.choice([0.1, 0.15, 0.2], n_orders)), 0).astype(np.int64)
    processing_fee = (np.round(0.029 * (subtotal + platform_fee + tax - discount)) + 30).astype(np.int64)
    total = subtotal + platform_fee + processing_fee + tax - discount
    orders = _Orders(
        ids=_Ids(_new_ids(rng, n_orders)), event=event, tenant=events.tenant[event], cls=cls, created=created,
        confirmed=confirmed, cancelled_at=cancelled_at, refunded_at=np.full(n_orders, -1, np.int64),
        created_null=sold & (rng.random(n_orders) < 0.01), status=np.zeros(n_orders, np.int64),
        quantity=quantity, subtotal=subtotal, platform_fee=platform_fee, processing_fee=processing_fee, tax=tax,
        discount=discount, total=total, user=np.zeros(n_orders, np.int64), channel=np.zeros(n_orders, np.int64),
        payment=np.zeros(n_orders, np.int64))
    items = _Items(ids=_Ids(_new_ids(rng, item_order.size)), order=item_order, type=btype, quantity=bqty, unit=unit,
                   created=created[item_order])
    return orders, items


def _refund(rs: _Streams, clock: _Clock, events: _Events, orders: _Orders) -> _Refunds:
    """Refund every paid order of a cancelled event and ~1.8% of the others; set order statuses."""
    rng = rs("refunds")
    n = len(orders.ids)
    sold = orders.cls == _SOLD
    ev_cancelled = events.cancelled[orders.event] & sold
    lo = orders.confirmed + HOUR
    hi = np.minimum(events.starts[orders.event], clock.now) - MINUTE
    random_refund = sold & ~ev_cancelled & (hi - lo > 2 * HOUR) & (rng.random(n) < 0.018)
    refunded_at = np.where(random_refund, lo + (rng.random(n) * (hi - lo)).astype(np.int64), -1)
    after_cancel = events.cancel_time[orders.event] + rng.integers(HOUR, 48 * HOUR, n)
    refunded_at = np.where(ev_cancelled, np.minimum(after_cancel, clock.now - MINUTE), refunded_at)
    orders.refunded_at = refunded_at
    refunded = refunded_at >= 0
    recent = orders.confirmed > clock.now - 2 * DAY
    status = np.full(n, _ORD["COMPLETED"])
    status[sold & (recent | (rng.random(n) < 0.08))] = _ORD["CONFIRMED"]
    status[refunded] = _ORD["REFUNDED"]
    status[orders.cls == _CANCELLED] = _ORD["CANCELLED"]
    status[orders.cls == _EXPIRED] = _ORD["EXPIRED"]
    status[orders.cls == _PENDING] = _ORD["PENDING"]
    orders.status = status
    idx = np.flatnonzero(refunded)
    k = idx.size
    partial = ~ev_cancelled[idx] & (rng.random(k) < 0.3)  # partial: the platform keeps its fees
    kept_fees = orders.platform_fee[idx] + orders.processing_fee[idx]
    created = refunded_at[idx]
    pending = created > clock.now - 3 * DAY
    reason = np.where(ev_cancelled[idx], 0, rng.integers(1, len(_REFUND_REASONS), k))
    return _Refunds(
        ids=_Ids(_new_ids(rng, k)), order=idx, amount=orders.total[idx] - np.where(partial, kept_fees, 0),
        reason=reason, status=np.where(pending, 0, 1), refund_type=np.where(partial, 1, 0), created=created,
        updated=np.where(pending, created, np.minimum(created + rng.integers(MINUTE, 2 * DAY, k),
                                                      clock.now - 1)))


def _bgnbd_owners(rng: np.random.Generator, n_users: int, order_times: np.ndarray, now: int) -> np.ndarray:
    """Which of n_users placed each of the (time-sorted) orders, under a BG/NBD buy-till-you-die process.

    Buyers (85% of users, at most one per order) make a first purchase, then repeat purchases at a
    Poisson rate lambda ~ Gamma(0.75) and drop out after each repeat with probability p ~ Beta(0.8, 2.6).
    The common rate scale is chosen so that the repeats before `now` are exactly the orders left over;
    purchase times are then rank-matched to the order times, so counts and order are the process's own.
    """
    n_orders = order_times.size
    if n_orders == 0:
        return np.zeros(0, np.int64)
    n_buyers = max(1, min(round(0.85 * n_users), n_orders))
    buyers = rng.permutation(n_users)[:n_buyers]
    lam = rng.gamma(0.75, 1.0, n_buyers) + 1e-6
    p = rng.beta(0.8, 2.6, n_buyers)
    max_repeats = np.minimum(rng.geometric(p), 200)
    t0 = order_times[rng.integers(0, n_orders, n_buyers)].astype(np.float64)
    exposure = np.maximum(now - t0, 1.0)
    owner = np.repeat(np.arange(n_buyers), max_repeats)
    gaps = _within_group_cumsum(rng.exponential(1.0, owner.size), owner, n_buyers)
    ratio = gaps / (lam[owner] * exposure[owner])
    needed = n_orders - n_buyers
    if needed > ratio.size:
        raise RuntimeError("BG/NBD calibration: not enough potential repeat purchases for the orders")
    chosen = np.argpartition(ratio, needed - 1)[:needed] if needed else np.zeros(0, np.int64)
    scale = ratio[chosen].max() if needed else 1.0
    times = np.concatenate([t0, t0[owner[chosen]] + gaps[chosen] / (lam[owner[chosen]] * scale)])
    who = np.concatenate([np.arange(n_buyers), owner[chosen]])
    return buyers[who[np.lexsort((who, times))]]


def _make_users(rs: _Streams, scale: Scale, clock: _Clock, venues: _Venues, orders: _Orders) -> _Users:
    rng = rs("users")
    n_tenants = scale.tenants
    per_tenant = np.bincount(orders.tenant, minlength=n_tenants).astype(float)
    weight = per_tenant + per_tenant.sum() * 0.01 + 1
    quota = weight / weight.sum() * scale.users
    counts = np.floor(quota).astype(np.int64)
    counts[np.argsort(-(quota - counts), kind="stable")[: scale.users - counts.sum()]] += 1
    offsets = _group_starts(counts)
    tenant = np.repeat(np.arange(n_tenants), counts)
    n = scale.users
    for t in range(n_tenants):  # a handful of tenants; the body is vectorised
        idx = np.flatnonzero(orders.tenant == t)  # orders are time-sorted
        owner = offsets[t] + _bgnbd_owners(rs(f"bgnbd.{t}"), int(counts[t]), orders.created[idx], clock.now)
        orders.user[idx] = owner
    # orders are time-sorted: a user's first order is their first row, the last their last row
    first_order = np.full(n, -1, np.int64)
    last_order = np.full(n, -1, np.int64)
    buyer, first_row = np.unique(orders.user, return_index=True)
    first_order[buyer] = orders.created[first_row]
    buyer, last_row = np.unique(orders.user[::-1], return_index=True)
    last_order[buyer] = orders.created[::-1][last_row]
    has = first_order >= 0
    # channel and payment-method habits: each user has a preferred channel used for ~80% of orders
    pref_channel = _choice(rng, _CHANNEL_P, n)
    pref_payment = _choice(rng, _PAYMENT_P, n)
    k = len(orders.ids)
    orders.channel = np.where(rng.random(k) < 0.8, pref_channel[orders.user], _choice(rng, _CHANNEL_P, k))
    orders.payment = np.where(rng.random(k) < 0.8, pref_payment[orders.user], _choice(rng, _PAYMENT_P, k))
    signup = np.where(has, first_order - rng.exponential(7 * DAY, n).astype(np.int64),
                      clock.launch + (rng.random(n) * (clock.now - HOUR - clock.launch)).astype(np.int64))
    created = np.clip(signup, clock.launch - 30 * DAY, np.where(has, first_order, clock.now - HOUR))
    # contract.USER_STATUSES: PENDING, ACTIVE, SUSPENDED, DELETED; only users who never bought are PENDING
    status = np.where(has, _choice(rng, np.array([0.0, 0.975, 0.02, 0.005]), n),
                      _choice(rng, np.array([0.12, 0.80, 0.03, 0.05]), n))
    deleted = status == _USR["DELETED"]
    start = np.maximum(created, last_order) + DAY
    deleted_at = np.where(deleted & (start < clock.now),
                          start + (rng.random(n) * (clock.now - start)).astype(np.int64), -1)
    status[deleted & (deleted_at < 0)] = _USR["ACTIVE"]
    updated = np.maximum(created + (rng.random(n) * (clock.now - created)).astype(np.int64), deleted_at)
    venue_city = venues.city[rng.integers(0, len(venues.ids), n)]
    city = np.where(rng.random(n) < 0.7, venue_city, _choice(rng, np.array(_CITY_WEIGHT, float), n))
    phone = np.where(rng.random(n) < 0.7, rng.integers(0, 10_000_000, n), -1)
    return _Users(
        ids=_Ids(_new_ids(rng, n)), tenant=tenant, first=rng.integers(0, len(_FIRST_NAMES), n),
        last=rng.integers(0, len(_LAST_NAMES), n), domain=rng.integers(0, len(_EMAIL_DOMAINS), n), phone=phone,
        city=city, status=status, consent=rng.random(n) < 0.45, created=created, updated=updated,
        deleted=deleted_at, tenant_offset=offsets, tenant_count=counts)


def _make_tickets(rs: _Streams, clock: _Clock, events: _Events, types: _Types, orders: _Orders,
                  items: _Items) -> _Tickets:
    """One ticket per unit of a paid order's items, and its check-in scan (if the holder showed up)."""
    rng = rs("tickets")
    paid = np.flatnonzero(orders.cls[items.order] == _SOLD)
    item = np.repeat(paid, items.quantity[paid])
    n = item.size
    order, ttype = items.order[item], items.type[item].astype(np.int32)
    event = types.event[ttype].astype(np.int32)
    purchased = orders.confirmed[order]
    refunded = orders.refunded_at[order] >= 0
    section = np.array([_SECTIONS.index(s) if s else -1 for s in _TIER_SECTION])[types.tier[ttype]]
    lettered = section < 0
    section[lettered] = rng.integers(3, len(_SECTIONS), int(lettered.sum()))
    doors, starts = events.doors[event], events.starts[event]
    scan_time = doors + (rng.beta(2.0, 3.0, n) * (starts + 45 * MINUTE - doors)).astype(np.int64)
    scanned = (~events.cancelled[event] & ~refunded & (rng.random(n) >= events.noshow[event])
               & (scan_time < clock.now))
    result = np.where(scanned, _choice(rng, np.array([0.975, 0.015, 0.01]), n), -1)  # valid, invalid, duplicate
    valid = result == 0
    status = np.where(refunded, _TKT["refunded"], np.where(valid, _TKT["used"], _TKT["active"]))
    status_changed = np.where(refunded, orders.refunded_at[order], np.where(valid, scan_time, purchased))
    gate = np.where(types.tier[ttype] == 1, 4, np.array([0, 1, 2, 3, 5])[_choice(rng, np.array([4, 2, 2, 1, 1.]), n)])
    device = gate * _SCANNERS_PER_GATE + rng.integers(0, _SCANNERS_PER_GATE, n)
    scan_rows = np.flatnonzero(scanned)
    scan_rows = scan_rows[np.argsort(scan_time[scan_rows], kind="stable")]
    return _Tickets(
        ids=_Ids(_new_ids(rng, n)), order=order, type=ttype, event=event, purchased=purchased,
        holder=orders.user[order].astype(np.int32), price=items.unit[item], section=section.astype(np.int8),
        status=status.astype(np.int8), checked_in=np.where(valid, scan_time, -1), status_changed=status_changed,
        scan_ids=_Ids(_new_ids(rng, scan_rows.size)), scan_ticket=scan_rows, scan_time=scan_time[scan_rows],
        scan_result=result[scan_rows].astype(np.int8), scan_device=device[scan_rows].astype(np.int8))


def _pick_buyer(rng: np.random.Generator, users: _Users, tenant: np.ndarray, seller: np.ndarray,
                when: np.ndarray) -> np.ndarray:
    """A random other user of the same tenant, signed up and not deleted at `when` (-1 if three draws fail)."""
    count, offset = users.tenant_count[tenant], users.tenant_offset[tenant]
    buyer = np.full(tenant.size, -1, np.int64)
    for _ in range(3):
        todo = np.flatnonzero((buyer < 0) & (count > 1))
        local = seller[todo] - offset[todo]
        cand = offset[todo] + (local + 1 + rng.integers(0, np.maximum(count[todo] - 1, 1))) % count[todo]
        deleted = users.deleted[cand]
        ok = (users.created[cand] < when[todo] - HOUR) & ((deleted < 0) | (deleted > when[todo]))
        buyer[todo[ok]] = cand[ok]
    return buyer


def _make_resale(rs: _Streams, clock: _Clock, venues: _Venues, events: _Events, types: _Types, users: _Users,
                 orders: _Orders, tickets: _Tickets, tenant_fee: np.ndarray) -> _Resale:
    """~4.5% of resellable tickets listed (more for sold-out tiers), ~70% of listings sold, some failed tries."""
    rng = rs("resale")
    n = len(tickets.ids)
    ev = tickets.event
    window_end = np.minimum(events.starts[ev] - 3 * HOUR, clock.now - MINUTE)
    sold_out = np.bincount(tickets.type, minlength=len(types.ids)) >= types.quantity
    listed = ((tickets.status != _TKT["refunded"]) & ~events.cancelled[ev]
              & (window_end - tickets.purchased > 2 * HOUR)
              & (rng.random(n) < 0.03 + 0.05 * sold_out[tickets.type]))
    lt = np.flatnonzero(listed)
    k = lt.size
    start, end = tickets.purchased[lt], window_end[lt]
    listed_at = start + (rng.uniform(0.05, 0.9, k) * (end - start)).astype(np.int64)
    order = np.argsort(listed_at, kind="stable")
    lt, start, end, listed_at = lt[order], start[order], end[order], listed_at[order]
    face = tickets.price[lt]
    price = np.round(face * np.clip(rng.lognormal(0.25, 0.25, k), 0.9, 4.0)).astype(np.int64)
    seller = orders.user[tickets.order[lt]]
    tenant = events.tenant[ev[lt]]
    sold_at = listed_at + (rng.uniform(0.02, 1.0, k) * (end - listed_at)).astype(np.int64)
    buyer = _pick_buyer(rng, users, tenant, seller, sold_at)
    sells = (rng.random(k) < 0.7) & (buyer >= 0)
    cancel = ~sells & (rng.random(k) < 0.25)
    expired = ~sells & ~cancel & (events.starts[ev[lt]] <= clock.now)
    status = np.full(k, _LST["active"])
    status[~sells & ~cancel & ~expired & (rng.random(k) < 0.05)] = _LST["pending_approval"]
    status[sells], status[cancel], status[expired] = _LST["sold"], _LST["cancelled"], _LST["expired"]
    cancelled_at = np.where(cancel, listed_at + (rng.random(k) * (end - listed_at)).astype(np.int64), -1)
    sold_at = np.where(sells, sold_at, -1)
    # transfers: one completed per sold listing, plus failed attempts on ~6% of listings
    done = np.flatnonzero(sells)
    att = np.flatnonzero(rng.random(k) < 0.06)
    att_end = np.where(sells[att], sold_at[att] - 15 * MINUTE, end[att])  # a failed try precedes a sale
    room = att_end > listed_at[att] + MINUTE
    att, att_end = att[room], att_end[room]
    att_init = listed_at[att] + (rng.random(att.size) * (att_end - listed_at[att])).astype(np.int64)
    att_buyer = _pick_buyer(rng, users, tenant[att], seller[att], att_init)
    ok = att_buyer >= 0
    att, att_init, att_buyer = att[ok], att_init[ok], att_buyer[ok]
    done_init = np.maximum(sold_at[done] - rng.integers(MINUTE, 10 * MINUTE, done.size), listed_at[done])
    t_listing = np.concatenate([done, att])
    t_init = np.concatenate([done_init, att_init])
    t_order = np.argsort(t_init, kind="stable")
    t_listing, t_init = t_listing[t_order], t_init[t_order]
    completed = np.concatenate([np.ones(done.size, bool), np.zeros(att.size, bool)])[t_order]
    t_buyer = np.concatenate([buyer[done], att_buyer])[t_order]
    m = t_listing.size
    crypto = rng.random(m) < 0.3
    fail_time = np.minimum(t_init + rng.integers(MINUTE, 10 * MINUTE, m), clock.now - 1)
    # the resale buyer holds the ticket now
    resold = lt[done]
    tickets.holder[resold] = buyer[done]
    tickets.status[resold] = _TKT["transferred"]
    tickets.status_changed[resold] = sold_at[done]
    fee_transfer = np.flatnonzero(completed)
    fee_order = np.argsort(sold_at[t_listing[fee_transfer]], kind="stable")
    fee_transfer = fee_transfer[fee_order]
    sale = price[t_listing[fee_transfer]]
    venue = events.venue[ev[lt[t_listing[fee_transfer]]]]
    return _Resale(
        listing_ids=_Ids(_new_ids(rng, k)), ticket=lt, price=price, face=face, status=status, listed=listed_at,
        sold=sold_at, expires=events.starts[ev[lt]], cancelled=cancelled_at, transfer_ids=_Ids(_new_ids(rng, m)),
        transfer_listing=t_listing, buyer=t_buyer,
        transfer_status=np.where(completed, _TRF["completed"], _TRF["failed"]), crypto=crypto,
        currency=np.where(crypto, (rng.random(m) < 0.3).astype(np.int64), -1), initiated=t_init,
        completed=np.where(completed, sold_at[t_listing], -1), failed=np.where(completed, -1, fail_time),
        fee_ids=_Ids(_new_ids(rng, fee_transfer.size)), fee_transfer=fee_transfer,
        platform_fee=np.round(sale * tenant_fee[tenant[t_listing[fee_transfer]]]).astype(np.int64),
        venue_fee=np.round(sale * venues.resale_fee[venue]).astype(np.int64))


def _finish(rs: _Streams, clock: _Clock, venues: _Venues, events: _Events, types: _Types,
            tickets: _Tickets) -> None:
    """Denormalised counters and life-cycle statuses that depend on what was sold."""
    rng = rs("finish")
    n_ev = len(events.ids)
    live = np.isin(tickets.status, [_TKT["active"], _TKT["used"], _TKT["transferred"]])
    types.sold = np.bincount(tickets.type, weights=live, minlength=len(types.ids)).astype(np.int64)
    sold_out = (np.bincount(tickets.event, minlength=n_ev)  # every seat was issued at some point
                >= np.bincount(types.event, weights=types.quantity, minlength=n_ev))
    last_sale = np.full(n_ev, -1, np.int64)
    ev_rev, row_rev = np.unique(tickets.event[::-1], return_index=True)  # tickets are in purchase order
    last_sale[ev_rev] = tickets.purchased[::-1][row_rev]
    since = np.minimum(np.maximum(events.sale_start, events.created), clock.now - HOUR)
    postponed_at = since + (rng.random(n_ev) * (clock.now - since)).astype(np.int64)
    rules = [  # first matching rule wins: (condition, event status, schedule status, status changed at)
        (events.cancelled, "CANCELLED", "CANCELLED", events.cancel_time),
        (events.ends < clock.now, "COMPLETED", "COMPLETED", events.ends),
        (events.starts < clock.now, "IN_PROGRESS", "IN_PROGRESS", events.starts),
        (events.postponed, "POSTPONED", "POSTPONED", postponed_at),
        (events.sale_start > clock.now, "PUBLISHED", "SCHEDULED", events.created),
        (sold_out & (last_sale >= 0), "SOLD_OUT", "CONFIRMED", last_sale),
        (np.ones(n_ev, bool), "ON_SALE", "CONFIRMED", events.sale_start),
    ]
    events.status = np.select([r[0] for r in rules], [_EV[r[1]] for r in rules])
    events.schedule_status = np.select([r[0] for r in rules], [_SCH[r[2]] for r in rules])
    events.status_changed = np.select([r[0] for r in rules], [r[3] for r in rules])
    n_v = len(venues.ids)
    first_event = np.full(n_v, np.iinfo(np.int64).max)
    order = np.lexsort((events.created, events.venue))
    v_first, row = np.unique(events.venue[order], return_index=True)
    first_event[v_first] = events.created[order][row]
    venues.created = np.where(first_event < np.iinfo(np.int64).max, first_event - rng.integers(1, 31, n_v) * DAY,
                              clock.launch - rng.integers(1, 91, n_v) * DAY)
    venues.updated = venues.created + (rng.random(n_v) * (clock.now - venues.created)).astype(np.int64)


def _build(scale: Scale, seed: int, as_of: date) -> _World:
    rs = _Streams(seed)
    now = int(datetime(as_of.year, as_of.month, as_of.day, tzinfo=UTC).timestamp())
    clock = _Clock(now=now, launch=now - scale.history_days * DAY, horizon=now + scale.future_days * DAY)
    rng = rs("tenants")
    tenant_raw = _new_ids(rng, scale.tenants)
    tenant_raw[0] = np.frombuffer(bytes.fromhex(DEFAULT_TENANT.replace("-", "")), np.uint8)
    tenant_fee = rng.uniform(0.05, 0.10, scale.tenants)
    venues = _make_venues(rs, scale, clock)
    events = _make_events(rs, scale, clock, venues)
    types = _make_types(rs, clock, events)
    _calibrate_capacity(scale, clock, venues, events, types)
    _cancel_and_postpone(rs, clock, events)
    orders, items = _make_orders(rs, clock, venues, events, types, _make_baskets(rs, clock, venues, events, types))
    refunds = _refund(rs, clock, events, orders)
    users = _make_users(rs, scale, clock, venues, orders)
    tickets = _make_tickets(rs, clock, events, types, orders, items)
    resale = _make_resale(rs, clock, venues, events, types, users, orders, tickets, tenant_fee)
    _finish(rs, clock, venues, events, types, tickets)
    return _World(clock=clock, tenant_ids=_Ids(tenant_raw), category_ids=_Ids(_new_ids(rs("categories"), len(_CATEGORIES))),
                  operator_ids=_Ids(_new_ids(rs("operators"), 8 * scale.tenants)), venues=venues, events=events,
                  types=types, users=users, orders=orders, items=items, refunds=refunds, tickets=tickets,
                  resale=resale)


# -- frames ----------------------------------------------------------------------------------------------------
_POLARS_TYPES: dict[str, pl.DataType] = {
    "uuid": pl.String(), "varchar": pl.String(), "text": pl.String(), "jsonb": pl.String(),
    "timestamptz": pl.Datetime("us", "UTC"), "numeric": pl.Float64(), "integer": pl.Int32(), "bigint": pl.Int64(),
    "boolean": pl.Boolean(),
}


def _typed(table: str, columns: dict[str, pl.Series]) -> pl.DataFrame:
    """Exactly the contract's columns, in contract order, with the contract's polars types."""
    spec = contract.table(table)
    if list(columns) != spec.column_names:
        raise AssertionError(f"{table}: columns {list(columns)} differ from the contract {spec.column_names}")
    return pl.DataFrame([columns[c.name].alias(c.name).cast(_POLARS_TYPES[c.base_type]) for c in spec.columns])


def _const(value: str, n: int) -> pl.Series:
    return pl.repeat(value, n, dtype=pl.String, eager=True)


def _concat(*parts: pl.Series | str, separator: str = "") -> pl.Series:
    return pl.select(pl.concat_str([pl.lit(p) for p in parts], separator=separator)).to_series()


def _numbered(prefix: str, start: int, n: int, width: int) -> pl.Series:
    """prefix + zero-padded 1-based sequence numbers (order and ticket numbers)."""
    return _concat(prefix, pl.Series(np.arange(start + 1, start + n + 1)).cast(pl.String).str.zfill(width))


def _latest(*times: np.ndarray) -> np.ndarray:
    return np.maximum.reduce(times)


_SUFFIXES = tuple(s for row in _CAT_SUFFIX for s in row)
_DEVICES = tuple(f"scanner-{g}-{k + 1:02d}" for g in _GATE_SLUG for k in range(_SCANNERS_PER_GATE))
_ORDER_PAYMENT_STATUS = tuple(_PAYMENT_STATUS.get(s, "pending") for s in contract.ORDER_STATUSES)


def _venue_frames(w: _World) -> Iterator[pl.DataFrame]:
    v = w.venues
    n = len(v.ids)
    name = _concat(_pick(_VENUE_PLACE, v.place), _pick(_VENUE_WORD, v.vtype), separator=" ")
    city = _pick(_CITY_NAME, v.city)
    slug = pl.select(pl.concat_str([_slug(pl.lit(name)), _slug(pl.lit(city)),
                                    pl.lit(pl.Series(np.arange(1, n + 1))).cast(pl.String)],
                                   separator="-")).to_series()
    yield _typed("venues", {
        "id": v.ids.slice(), "tenant_id": w.tenant_ids.take(v.tenant), "name": name, "slug": slug,
        "email": _concat("hello@", slug, ".example.com"), "city": city,
        "state_province": _pick(_CITY_STATE, v.city), "country_code": _pick(_CITY_COUNTRY, v.city),
        "timezone": _pick(_CITY_TZ, v.city), "venue_type": _pick(_VENUE_TYPES, v.vtype),
        "max_capacity": pl.Series(v.capacity), "status": _pick(contract.VENUE_STATUSES, v.status),
        "created_at": _ts(v.created), "updated_at": _ts(v.updated), "deleted_at": _ts(np.full(n, -1))})


def _category_frames(w: _World) -> Iterator[pl.DataFrame]:
    n = len(_CATEGORIES)
    yield _typed("event_categories", {
        "id": w.category_ids.slice(), "name": pl.Series([s.title() for s in _CAT_SLUG.tolist()]),
        "slug": pl.Series(_CAT_SLUG.tolist()), "created_at": _ts(np.full(n, w.clock.launch - 120 * DAY))})


def _user_frames(w: _World) -> Iterator[pl.DataFrame]:
    u = w.users
    for sl in _chunks(len(u.ids)):
        ids = u.ids.slice(sl)
        first, last = _pick(_FIRST_NAMES, u.first[sl]), _pick(_LAST_NAMES, u.last[sl])
        number = pl.Series(np.arange(sl.start + 1, sl.stop + 1)).cast(pl.String)
        email = _concat(first, ".", last, ".", number, "@", _pick(_EMAIL_DOMAINS, u.domain[sl])).str.to_lowercase()
        # the platform scrubs a deleted user's email 30 days after deletion
        scrubbed = pl.Series((u.deleted[sl] >= 0) & (u.deleted[sl] < w.clock.now - 30 * DAY))
        email = pl.select(pl.when(pl.lit(scrubbed)).then(pl.concat_str([pl.lit("deleted_"), pl.lit(ids),
                                                                         pl.lit("@removed.com")]))
                          .otherwise(pl.lit(email))).to_series()
        phone = pl.Series(u.phone[sl]).cast(pl.String).str.zfill(7)
        phone = pl.select(pl.when(pl.lit(pl.Series(u.phone[sl] >= 0))).then(pl.concat_str([pl.lit("+1555"),
                                                                                          pl.lit(phone)]))).to_series()
        yield _typed("users", {
            "id": ids, "tenant_id": w.tenant_ids.take(u.tenant[sl]), "email": email, "first_name": first,
            "last_name": last, "phone": phone, "country_code": _pick(_CITY_COUNTRY, u.city[sl]),
            "city": _pick(_CITY_NAME, u.city[sl]), "timezone": _pick(_CITY_TZ, u.city[sl]),
            "status": _pick(contract.USER_STATUSES, u.status[sl]), "marketing_consent": pl.Series(u.consent[sl]),
            "created_at": _ts(u.created[sl]), "updated_at": _ts(u.updated[sl]), "deleted_at": _ts(u.deleted[sl])})



def _event_frames(w: _World) -> Iterator[pl.DataFrame]:
    e = w.events
    n = len(e.ids)
    name = _concat(_pick(_NAME_ADJ, e.name[:, 0]), _pick(_NAME_NOUN, e.name[:, 1]),
                   _pick(_SUFFIXES, e.category * 4 + e.name[:, 2]), separator=" ")
    slug = pl.select(pl.concat_str([_slug(pl.lit(name)), pl.lit(pl.Series(np.arange(1, n + 1))).cast(pl.String)],
                                   separator="-")).to_series()
    yield _typed("events", {
        "id": e.ids.slice(), "tenant_id": w.tenant_ids.take(e.tenant),
        "venue_id": w.venues.ids.take(e.venue), "primary_category_id": w.category_ids.take(e.category),
        "name": name, "slug": slug, "event_type": _pick(("single", "recurring", "series"), e.event_type),
        "status": _pick(contract.EVENT_STATUSES, e.status),
        "visibility": _pick(("PUBLIC", "PRIVATE", "UNLISTED"), e.visibility), "start_date": _ts(e.starts),
        "status_changed_at": _ts(e.status_changed), "created_at": _ts(e.created),
        "updated_at": _ts(e.status_changed), "deleted_at": _ts(np.full(n, -1))})


def _schedule_frames(w: _World) -> Iterator[pl.DataFrame]:
    e = w.events
    n = len(e.ids)
    yield _typed("event_schedules", {
        "id": e.schedule_ids.slice(), "tenant_id": w.tenant_ids.take(e.tenant),
        "event_id": e.ids.slice(), "starts_at": _ts(e.starts), "ends_at": _ts(e.ends),
        "doors_open_at": _ts(e.doors), "timezone": _pick(_CITY_TZ, w.venues.city[e.venue]),
        "status": _pick(contract.SCHEDULE_STATUSES, e.schedule_status),
        "capacity_override": _int(e.capacity, pa.int32(), null=~e.override), "created_at": _ts(e.created),
        "updated_at": _ts(e.status_changed), "deleted_at": _ts(np.full(n, -1))})


def _type_frames(w: _World) -> Iterator[pl.DataFrame]:
    t, e = w.types, w.events
    created = e.created[t.event]
    last_change = np.full(len(t.ids), -1, np.int64)
    has = t.n_changes > 0
    last_change[has] = t.change_time[(_group_starts(t.n_changes) + t.n_changes - 1)[has]]
    yield _typed("ticket_types", {
        "id": t.ids.slice(), "tenant_id": w.tenant_ids.take(e.tenant[t.event]),
        "event_id": e.ids.take(t.event), "name": _pick(_TIER_NAME, t.tier),
        "category": _pick(_TIER_CATEGORY, t.tier), "price": _dollars(t.price), "quantity": pl.Series(t.quantity),
        "available_quantity": pl.Series(t.quantity - t.sold), "sold_quantity": pl.Series(t.sold),
        "sale_start": _ts(t.sale_start), "sale_end": _ts(t.sale_end),
        "is_active": pl.Series(~e.cancelled[t.event] & (t.sale_end > w.clock.now)), "created_at": _ts(created),
        "updated_at": _ts(np.maximum(created, last_change))})


def _ticket_frames(w: _World) -> Iterator[pl.DataFrame]:
    t = w.tickets
    for sl in _chunks(len(t.ids)):
        n = sl.stop - sl.start
        ev, price, status = t.event[sl], t.price[sl], t.status[sl]
        purchased, checked_in = t.purchased[sl], t.checked_in[sl]
        yield _typed("tickets", {
            "id": t.ids.slice(sl), "tenant_id": w.tenant_ids.take(w.events.tenant[ev]),
            "event_id": w.events.ids.take(ev), "ticket_type_id": w.types.ids.take(t.type[sl]),
            "user_id": w.users.ids.take(t.holder[sl]),
            "original_purchaser_id": w.users.ids.take(w.orders.user[t.order[sl]]),
            "ticket_number": _numbered("TKT-", sl.start, n, 10), "price_cents": pl.Series(price.astype(np.float64)),
            "price": _dollars(price), "face_value": _dollars(price), "section": _pick(_SECTIONS, t.section[sl]),
            "status": _pick(contract.TICKET_STATUSES, status), "is_validated": pl.Series(checked_in >= 0),
            "transfer_count": pl.Series((status == _TKT["transferred"]).astype(np.int32)),
            "purchased_at": _ts(purchased), "validated_at": _ts(checked_in), "checked_in_at": _ts(checked_in),
            "status_changed_at": _ts(t.status_changed[sl]), "created_at": _ts(purchased),
            "updated_at": _ts(_latest(purchased, checked_in, t.status_changed[sl])), "deleted_at": _ts(np.full(n, -1))})


def _scan_frames(w: _World) -> Iterator[pl.DataFrame]:
    t = w.tickets
    for sl in _chunks(t.scan_ticket.size):
        rows = t.scan_ticket[sl]
        yield _typed("ticket_scans", {
            "id": t.scan_ids.slice(sl), "ticket_id": t.ids.take(rows),
            "event_id": w.events.ids.take(t.event[rows]), "scanned_at": _ts(t.scan_time[sl]),
            "device_id": _pick(_DEVICES, t.scan_device[sl]),
            "location": _pick(_GATES, t.scan_device[sl] // _SCANNERS_PER_GATE),
            "result": _pick(contract.SCAN_RESULTS, t.scan_result[sl]), "created_at": _ts(t.scan_time[sl])})


def _price_history_frames(w: _World) -> Iterator[pl.DataFrame]:
    t = w.types
    ty = t.change_type
    current = t.chain_start[ty] + np.arange(ty.size) - _group_starts(t.n_changes)[ty] + 1
    o = np.argsort(t.change_time, kind="stable")
    tenant = w.events.tenant[t.event[ty[o]]]
    yield _typed("ticket_price_history", {
        "id": t.change_ids.take(o), "ticket_type_id": t.ids.take(ty[o]),
        "old_price": _dollars(t.chain[current - 1][o]), "new_price": _dollars(t.chain[current][o]),
        "changed_by": w.operator_ids.take(tenant * 8 + t.change_by[o]),
        "reason": _pick(_PRICE_REASONS, t.change_reason[o]), "changed_at": _ts(t.change_time[o])})


def _order_frames(w: _World) -> Iterator[pl.DataFrame]:
    o = w.orders
    for sl in _chunks(len(o.ids)):
        n = sl.stop - sl.start
        created = o.created[sl]
        metadata = _concat('{"channel": "', _pick(contract.ORDER_CHANNELS, o.channel[sl]), '", "payment_method": "',
                           _pick(contract.PAYMENT_METHODS, o.payment[sl]), '"}')
        yield _typed("orders", {
            "id": o.ids.slice(sl), "tenant_id": w.tenant_ids.take(o.tenant[sl]),
            "user_id": w.users.ids.take(o.user[sl]), "event_id": w.events.ids.take(o.event[sl]),
            "order_number": _numbered("ORD-", sl.start, n, 9), "status": _pick(contract.ORDER_STATUSES, o.status[sl]),
            "subtotal_cents": pl.Series(o.subtotal[sl]), "platform_fee_cents": pl.Series(o.platform_fee[sl]),
            "processing_fee_cents": pl.Series(o.processing_fee[sl]), "tax_cents": pl.Series(o.tax[sl]),
            "discount_cents": pl.Series(o.discount[sl]), "total_cents": pl.Series(o.total[sl]),
            "currency": _const("USD", n), "payment_status": _pick(_ORDER_PAYMENT_STATUS, o.status[sl]),
            "ticket_quantity": pl.Series(o.quantity[sl]), "metadata": metadata,
            "created_at": _ts(np.where(o.created_null[sl], -1, created)),
            "updated_at": _ts(_latest(created, o.confirmed[sl], o.cancelled_at[sl], o.refunded_at[sl])),
            "expires_at": _ts(created + 15 * MINUTE), "confirmed_at": _ts(o.confirmed[sl]),
            "cancelled_at": _ts(o.cancelled_at[sl]), "refunded_at": _ts(o.refunded_at[sl])})


def _item_frames(w: _World) -> Iterator[pl.DataFrame]:
    it = w.items
    for sl in _chunks(len(it.ids)):
        order = it.order[sl]
        yield _typed("order_items", {
            "id": it.ids.slice(sl), "tenant_id": w.tenant_ids.take(w.orders.tenant[order]),
            "order_id": w.orders.ids.take(order), "ticket_type_id": w.types.ids.take(it.type[sl]),
            "quantity": pl.Series(it.quantity[sl]), "unit_price_cents": pl.Series(it.unit[sl]),
            "total_price_cents": pl.Series(it.unit[sl] * it.quantity[sl]), "created_at": _ts(it.created[sl])})


def _refund_frames(w: _World) -> Iterator[pl.DataFrame]:
    r = w.refunds
    o = np.argsort(r.created, kind="stable")
    order = r.order[o]
    yield _typed("order_refunds", {
        "id": r.ids.take(o), "tenant_id": w.tenant_ids.take(w.orders.tenant[order]),
        "order_id": w.orders.ids.take(order), "refund_amount_cents": pl.Series(r.amount[o]),
        "refund_reason": _pick(_REFUND_REASONS, r.reason[o]),
        "refund_status": _pick(contract.REFUND_STATUSES, r.status[o]),
        "refund_type": _pick(contract.REFUND_TYPES, r.refund_type[o]), "created_at": _ts(r.created[o]),
        "updated_at": _ts(r.updated[o])})


def _listing_frames(w: _World) -> Iterator[pl.DataFrame]:
    r, t = w.resale, w.tickets
    for sl in _chunks(r.ticket.size):
        ticket = r.ticket[sl]
        ev = t.event[ticket]
        yield _typed("marketplace_listings", {
            "id": r.listing_ids.slice(sl), "tenant_id": w.tenant_ids.take(w.events.tenant[ev]),
            "ticket_id": t.ids.take(ticket), "seller_id": w.users.ids.take(w.orders.user[t.order[ticket]]),
            "event_id": w.events.ids.take(ev), "venue_id": w.venues.ids.take(w.events.venue[ev]),
            "price": pl.Series(r.price[sl]), "original_face_value": pl.Series(r.face[sl]),
            "status": _pick(contract.LISTING_STATUSES, r.status[sl]), "listed_at": _ts(r.listed[sl]),
            "sold_at": _ts(r.sold[sl]), "expires_at": _ts(r.expires[sl]), "cancelled_at": _ts(r.cancelled[sl]),
            "created_at": _ts(r.listed[sl])})


def _transfer_frames(w: _World) -> Iterator[pl.DataFrame]:
    r, t = w.resale, w.tickets
    for sl in _chunks(r.transfer_listing.size):
        listing = r.transfer_listing[sl]
        ticket = r.ticket[listing]
        ev = t.event[ticket]
        yield _typed("marketplace_transfers", {
            "id": r.transfer_ids.slice(sl), "tenant_id": w.tenant_ids.take(w.events.tenant[ev]),
            "listing_id": r.listing_ids.take(listing), "buyer_id": w.users.ids.take(r.buyer[sl]),
            "seller_id": w.users.ids.take(w.orders.user[t.order[ticket]]),
            "event_id": w.events.ids.take(ev), "venue_id": w.venues.ids.take(w.events.venue[ev]),
            "usd_value": pl.Series(r.price[listing]), "status": _pick(contract.TRANSFER_STATUSES, r.transfer_status[sl]),
            "payment_method": _pick(("fiat", "crypto"), r.crypto[sl].astype(np.int64)),
            "payment_currency": _pick(("USDC", "SOL"), r.currency[sl]), "initiated_at": _ts(r.initiated[sl]),
            "completed_at": _ts(r.completed[sl]), "failed_at": _ts(r.failed[sl]), "created_at": _ts(r.initiated[sl])})


def _fee_frames(w: _World) -> Iterator[pl.DataFrame]:
    r = w.resale
    for sl in _chunks(r.fee_transfer.size):
        transfer = r.fee_transfer[sl]
        listing = r.transfer_listing[transfer]
        sale = r.price[listing]
        ev = w.tickets.event[r.ticket[listing]]
        yield _typed("platform_fees", {
            "id": r.fee_ids.slice(sl), "tenant_id": w.tenant_ids.take(w.events.tenant[ev]),
            "transfer_id": r.transfer_ids.take(transfer), "sale_price": pl.Series(sale),
            "platform_fee_amount": pl.Series(r.platform_fee[sl]), "venue_fee_amount": pl.Series(r.venue_fee[sl]),
            "seller_payout": pl.Series(sale - r.platform_fee[sl] - r.venue_fee[sl]),
            "created_at": _ts(r.completed[transfer])})


_BUILDERS = {
    "venues": _venue_frames, "event_categories": _category_frames, "users": _user_frames, "events": _event_frames,
    "event_schedules": _schedule_frames, "ticket_types": _type_frames, "tickets": _ticket_frames,
    "ticket_scans": _scan_frames, "ticket_price_history": _price_history_frames, "orders": _order_frames,
    "order_items": _item_frames, "order_refunds": _refund_frames, "marketplace_listings": _listing_frames,
    "marketplace_transfers": _transfer_frames, "platform_fees": _fee_frames,
}


# -- public API -------------------------------------------------------------------------------------------------
def generate_frames(scale: str = "small", seed: int = 42,
                    as_of: date = DEFAULT_AS_OF) -> Iterator[tuple[str, pl.DataFrame]]:
    """Yield (table, typed frame) chunks in contract.TABLE_ORDER; big fact tables come in several chunks.

    Deterministic: the same scale, seed and as_of give byte-identical frames.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)}")
    world = _build(SCALES[scale], seed, as_of)
    for table in contract.TABLE_ORDER:
        for frame in _BUILDERS[table](world):
            yield table, frame


def random_uuids(rng: np.random.Generator, n: int) -> pl.Series:
    """n random UUIDs as canonical text, drawn from `rng` (deterministic, unlike uuid4())."""
    return _uuid_text(_new_ids(rng, n))


def generate_tables(scale: str = "tiny", seed: int = 42, as_of: date = DEFAULT_AS_OF) -> dict[str, pl.DataFrame]:
    """Every table as one frame (chunks concatenated): for tests and small scales."""
    parts: dict[str, list[pl.DataFrame]] = {t: [] for t in contract.TABLE_ORDER}
    for table, frame in generate_frames(scale, seed, as_of):
        parts[table].append(frame)
    return {t: pl.concat(frames) for t, frames in parts.items()}
