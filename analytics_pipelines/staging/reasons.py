"""Quarantine reason codes. Every raw row ends in staging or in quarantine with exactly one rejection reason;
repairs (the row is kept, a value was fixed) are recorded too, with disposition 'repaired'."""

# rejections, in the order they are tested (a row gets the first that applies)
NULL_KEY = "null_key"
MALFORMED_VALUE = "malformed_value"
TIMESTAMP_WITHOUT_TIMEZONE = "timestamp_without_timezone"
NAN_MONEY = "nan_money"
NEGATIVE_MONEY = "negative_money"
ABSURD_MAGNITUDE = "absurd_magnitude"
UNKNOWN_STATUS = "unknown_status"
FUTURE_TIMESTAMP = "future_timestamp"
MONEY_IN_DOLLARS = "money_in_dollars"
ORPHAN_REFERENCE = "orphan_reference"
DUPLICATE_KEY_IDENTICAL = "duplicate_key_identical"
DUPLICATE_KEY_CONFLICT = "duplicate_key_conflict"
# rows no daily partition can hold (found by the raw_unplaceable_rows asset)
MISSING_PARTITION_TIMESTAMP = "missing_partition_timestamp"

# repairs
CONTROL_CHARACTERS = "control_characters"
MIXED_CASE_STATUS = "mixed_case_status"

REJECTIONS = (
    NULL_KEY,
    MALFORMED_VALUE,
    TIMESTAMP_WITHOUT_TIMEZONE,
    NAN_MONEY,
    NEGATIVE_MONEY,
    ABSURD_MAGNITUDE,
    UNKNOWN_STATUS,
    FUTURE_TIMESTAMP,
    MONEY_IN_DOLLARS,
    ORPHAN_REFERENCE,
    DUPLICATE_KEY_IDENTICAL,
    DUPLICATE_KEY_CONFLICT,
    MISSING_PARTITION_TIMESTAMP,
)
REPAIRS = (CONTROL_CHARACTERS, MIXED_CASE_STATUS)

# thresholds
MAX_QUANTITY = 100_000  # no order line, ticket tier or venue holds more
MAX_MONEY_CENTS = 10_000_000_000  # $100M on one row is not a ticket sale
FUTURE_TOLERANCE_DAYS = 1  # clock skew allowed past "now"
DOLLARS_RATIO = 0.05  # unit price < 5 % of the tier price: the amount was written in dollars
