"""Scales, units, reference vocabularies and status codes of the synthetic platform (see synth)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np

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
    "large": Scale(
        venues=500, events=20_000, tickets=10_000_000, users=1_000_000, history_days=730, tenants=5
    ),
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
_CITY_NAME, _CITY_STATE, _CITY_COUNTRY, _CITY_TZ, _CITY_OFFSET, _CITY_TAX, _CITY_WEIGHT = zip(
    *_CITIES, strict=True
)

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
    np.array(c) for c in zip(*_CATEGORIES, strict=True)
)
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
_NAME_ADJ = (
    "Golden",
    "Velvet",
    "Neon",
    "Midnight",
    "Electric",
    "Silver",
    "Crimson",
    "Wild",
    "Northern",
    "Urban",
    "Blue",
    "Cosmic",
    "Hidden",
    "Bright",
    "Iron",
    "Lunar",
)
_NAME_NOUN = (
    "Foxes",
    "Echoes",
    "Tides",
    "Lanterns",
    "Harbor",
    "Pilots",
    "Sparrows",
    "Rivals",
    "Horizon",
    "Orchard",
    "Comets",
    "Voyagers",
    "Canyon",
    "Meadow",
    "Signals",
    "Anchors",
)

_VENUE_TYPES = (
    "stadium",
    "arena",
    "amphitheater",
    "concert_hall",
    "theater",
    "convention_center",
    "club",
    "bar",
)
_VENUE_WORD = ("Stadium", "Arena", "Amphitheater", "Hall", "Theater", "Convention Center", "Club", "Lounge")
_VENUE_PLACE = (
    "Riverside",
    "Harbor",
    "Grand",
    "Union",
    "Lakeside",
    "Summit",
    "Crescent",
    "Liberty",
    "Oak",
    "Maple",
    "Pioneer",
    "Metro",
    "Royal",
    "Echo",
    "Granite",
    "Sunset",
)
# event category weights by venue type (rows: _VENUE_TYPES, columns: _CATEGORIES)
_AFFINITY = np.array(
    [
        [4, 8, 0, 0, 0, 0.5, 0, 3, 1, 0],
        [6, 5, 0.5, 2, 0.2, 1, 0, 1, 2, 0.5],
        [8, 0, 1, 1, 1, 0, 0, 4, 1, 0.5],
        [7, 0, 3, 2, 2, 1, 0.5, 0, 1, 0],
        [2, 0, 8, 4, 2, 0.5, 0.5, 0, 2, 0],
        [1, 0.5, 0, 0.5, 3, 8, 6, 1, 2, 0],
        [6, 0, 0, 4, 0.5, 0, 1, 0, 0, 8],
        [4, 0, 0, 3, 1, 0, 2, 0, 0, 6],
    ]
)

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
_PURCHASE_HOUR = np.array(
    [
        0.3,
        0.2,
        0.1,
        0.1,
        0.1,
        0.2,
        0.4,
        0.7,
        1.0,
        1.3,
        1.5,
        1.6,
        1.8,
        1.7,
        1.5,
        1.4,
        1.4,
        1.6,
        1.9,
        2.2,
        2.3,
        2.0,
        1.4,
        0.8,
    ]
)
_BASKET_SIZES = np.array([1, 2, 3, 4, 5, 6])
_BASKET_P = np.array([0.28, 0.40, 0.10, 0.15, 0.03, 0.04])

_FIRST_NAMES = (
    "Alex",
    "Sam",
    "Jordan",
    "Taylor",
    "Casey",
    "Riley",
    "Morgan",
    "Avery",
    "Quinn",
    "Jamie",
    "Drew",
    "Rowan",
    "Skyler",
    "Reese",
    "Parker",
    "Hayden",
    "Emerson",
    "Finley",
    "Harper",
    "Kendall",
    "Logan",
    "Micah",
    "Noel",
    "Peyton",
)
_LAST_NAMES = (
    "Rivera",
    "Chen",
    "Okafor",
    "Novak",
    "Silva",
    "Kowalski",
    "Haddad",
    "Lindqvist",
    "Moreau",
    "Tanaka",
    "Adeyemi",
    "Brennan",
    "Castillo",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Gallo",
    "Ivanova",
    "Jensen",
    "Kaur",
    "Larsen",
    "Mendes",
    "Nakamura",
    "Petrov",
)
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.test")

_CHANNEL_P = np.array([0.55, 0.30, 0.10, 0.05])  # contract.ORDER_CHANNELS
_PAYMENT_P = np.array([0.60, 0.18, 0.10, 0.12])  # contract.PAYMENT_METHODS
_REFUND_REASONS = (
    "Event cancelled",
    "Customer request",
    "Unable to attend",
    "Duplicate purchase",
    "Payment dispute",
    "Event rescheduled",
)
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
_PAYMENT_STATUS = {
    "COMPLETED": "paid",
    "CONFIRMED": "paid",
    "REFUNDED": "refunded",
    "CANCELLED": "cancelled",
    "EXPIRED": "expired",
    "PENDING": "pending",
}
# basket classes while orders are built
_SOLD, _CANCELLED, _EXPIRED, _PENDING = 0, 1, 2, 3
