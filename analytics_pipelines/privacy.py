"""Keyed pseudonyms (HMAC-SHA256) for personal data: the one implementation landing and exports share.

A keyed pseudonym is HMAC-SHA256(key, value): stable (the same value always gives the same pseudonym, so
rows still join and a customer can be looked up), but without the key nobody can recompute it. A plain or
salted sha256 is not a pseudonym: anyone holding a list of e-mail addresses hashes the list and reverses it.

Two keys, two variables (both at least MIN_KEY_LENGTH characters, both required unless TT_ENV=development):

- TT_LANDING_PSEUDONYM_KEY keys the personal columns of the source as they land in the raw layer
  (PERSONAL_COLUMNS), and `pseudonym_for_email` (how the API can find a customer by e-mail);
- TT_EXPORT_PSEUDONYM_KEY keys the customer ids of exported files (reports/pseudonyms.py).

Why two and not one: they protect different things with different lifecycles. Export pseudonyms leave the
company in files whose recipients join them across months: rotating that key breaks every recipient's
joins, so it is rotated rarely and on purpose. The landing key never leaves the warehouse and is cheap to
rotate (the users snapshot is re-landed by every run), so it should be rotated whenever it may have leaked
without touching the exports. Separate keys also mean least privilege: the API needs the landing key to
look e-mails up, not the export key; and a leak of one key does not unmask the other data set.

Every row keyed at landing carries the id of the key that made it (KEY_ID_COLUMN, `key_id`: the first 8
hex characters of sha256(key)), so a re-key is visible in the raw tables (docs/privacy.md: the re-key
procedure).

What is personal data in the source contract (sql/source/create_tables.sql) -- keyed at landing:
- users.email, first_name, last_name, phone (e-mails trimmed and lower-cased first, `normalize_email`);
- venues.email: usually a role address (hello@venue...), but for a small venue it is the owner's own
  address, and nothing downstream reads it.
Not personal data, and why (kept as they are):
- ids (user_id, buyer_id, seller_id, original_purchaser_id, changed_by, ...): the platform's random
  surrogate keys; they identify nobody without the platform's users table, whose identifying columns are
  keyed here, and the marts join on them. Exports re-key them with the export key.
- users.city, country_code, timezone, status, marketing_consent, timestamps: coarse attributes (a city,
  not an address) used as reporting dimensions.
- ticket_scans.device_id and location: the venue's door scanner (scanner-gate-a-01) and gate name, venue
  equipment rather than a customer's device; no customer IP address or device id is in the contract.
- orders.metadata: the platform writes the sales channel and payment method category into it (see
  docs/source-contract.md), no card data or address. If it ever carries personal keys, reduce it to an
  allow-list at landing.
- order_refunds.refund_reason, ticket_price_history.reason: reasons picked from the platform's list
  ("Customer request", "early bird ended"), not free text typed by customers.
- ticket_number, order_number, venue and event names: business references.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence

import duckdb
import polars as pl
import pyarrow as pa

log = logging.getLogger(__name__)

LANDING_KEY_ENV = "TT_LANDING_PSEUDONYM_KEY"
EXPORT_KEY_ENV = "TT_EXPORT_PSEUDONYM_KEY"
DEV_LANDING_KEY = b"tickettoken-development-only-landing-pseudonym-key"
DEV_EXPORT_KEY = b"tickettoken-development-only-pseudonym-key"
MIN_KEY_LENGTH = 16
DEVELOPMENT_ENVS = ("development", "dev", "local", "test")
#: the column of a keyed raw table that names the key its pseudonyms were made with
KEY_ID_COLUMN = "pseudonym_key_id"
#: source table -> its personal columns, replaced by keyed pseudonyms on landing (staging drops them)
PERSONAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("email", "first_name", "last_name", "phone"),
    "venues": ("email",),
}
#: the personal columns that are e-mail addresses (normalized before keying)
EMAIL_COLUMNS: dict[str, tuple[str, ...]] = {"users": ("email",), "venues": ("email",)}
_BLOCK = 64  # SHA-256 block size


class PseudonymKeyError(RuntimeError):
    """Personal data cannot be keyed: no (or a too short) pseudonym key is configured."""


def _secrets() -> Mapping[str, str]:
    from analytics_pipelines.settings import Settings

    return Settings.from_env().secrets


def is_development(environ: Mapping[str, str] | None = None) -> bool:
    env = _secrets() if environ is None else environ
    return env.get("TT_ENV", "").lower() in DEVELOPMENT_ENVS


def load_key(
    variable: str, development_key: bytes, needs: str, environ: Mapping[str, str] | None = None
) -> bytes:
    """The secret in `variable`. Unset: the fixed development key when TT_ENV=development (with a warning),
    otherwise PseudonymKeyError naming the variable (`needs` says what for, e.g. "customer exports need")."""
    env = _secrets() if environ is None else environ
    key = env.get(variable, "")
    if key:
        if len(key) < MIN_KEY_LENGTH:
            raise PseudonymKeyError(f"{variable} must be at least {MIN_KEY_LENGTH} characters")
        return key.encode()
    if is_development(env):
        log.warning("%s is not set; using the development key (TT_ENV=%s)", variable, env.get("TT_ENV"))
        return development_key
    raise PseudonymKeyError(
        f"{variable} is not set: {needs} a secret for keyed pseudonyms "
        "(set TT_ENV=development to use a fixed development key locally)"
    )


def landing_key(environ: Mapping[str, str] | None = None) -> bytes:
    """The key of personal data at landing (TT_LANDING_PSEUDONYM_KEY); required outside development."""
    return load_key(LANDING_KEY_ENV, DEV_LANDING_KEY, "landing personal data needs", environ)


def landing_key_for(table: str, environ: Mapping[str, str] | None = None) -> bytes | None:
    """The landing key if `table` has personal columns (so a missing key refuses before any extract)."""
    return landing_key(environ) if PERSONAL_COLUMNS.get(table) else None


def key_id(key: bytes) -> str:
    """A short public name of a key: the first 8 hex characters of sha256(key)."""
    return hashlib.sha256(key).hexdigest()[:8]


def hmac_hex(key: bytes, value: str) -> str:
    """HMAC-SHA256 of the UTF-8 bytes of `value`, lower-case hex (the reference for `hmac_sql`)."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _pads(key: bytes) -> dict[str, bytes]:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_BLOCK, b"\0")
    return {"ipad": bytes(b ^ 0x36 for b in key), "opad": bytes(b ^ 0x5C for b in key)}


def hmac_sql(expr: str) -> str:
    """DuckDB SQL of HMAC-SHA256 over the VARCHAR `expr` (NULL stays NULL), with the key pads bound as the
    BLOB parameters $ipad and $opad (`_pads`): sha256(opad || sha256(ipad || utf8(value))), lower-case hex.
    The key never appears in the SQL text."""
    return f"sha256($opad::BLOB || unhex(sha256($ipad::BLOB || encode({expr}))))"


def normalize_email(expr: pl.Expr) -> pl.Expr:
    """E-mails are keyed trimmed and lower-cased, so that `pseudonym_for_email` finds what landing wrote."""
    return expr.str.strip_chars().str.to_lowercase()


#: Arrow batch size of the values keyed row by row: DuckDB scans batches in parallel (one batch is one core)
DIRECT_BATCH_ROWS = 1 << 16


def keyed(df: pl.DataFrame, key: bytes, columns: Sequence[str], emails: Sequence[str] = ()) -> pl.DataFrame:
    """`df` with each of `columns` (those present) replaced by its keyed pseudonym (64 hex; NULL stays NULL),
    the `emails` among them normalized first, plus KEY_ID_COLUMN. Vectorized, in DuckDB over Arrow, no
    per-row Python. A column whose values repeat (1 M users have a few dozen distinct first names) is keyed
    once per distinct value, then mapped back; a column of mostly distinct values (e-mails, phones) is keyed
    row by row in one parallel query, which costs less than mapping a million values back (the 1 M users of
    `large`, paired runs: 10.3 -> 6.1 s, peak 1.63 -> 0.82 GB)."""
    cols = [c for c in columns if c in df.columns]
    if not cols:
        return df
    text = df.select(
        [
            normalize_email(pl.col(c).cast(pl.String)) if c in emails else pl.col(c).cast(pl.String)
            for c in cols
        ]
    )
    # an estimate is enough to choose: both ways give the same pseudonyms
    repeated = [c for c in cols if text[c].approx_n_unique() * 2 <= text.height]
    direct = [c for c in cols if c not in repeated]
    out: dict[str, pl.Series] = {}
    conn = duckdb.connect()
    try:
        conn.execute("SET enable_progress_bar = false")
        if repeated:
            distinct = pl.concat([text[c].drop_nulls().alias("v") for c in repeated]).unique().to_frame()
            conn.register("_personal", distinct.to_arrow())
            pairs = conn.execute(f"SELECT v, {hmac_sql('v')} AS h FROM _personal", _pads(key)).pl()
            for c in repeated:
                out[c] = text[c].replace_strict(pairs["v"], pairs["h"], default=None, return_dtype=pl.String)
        if direct:
            names = [f"c{i}" for i in range(len(direct))]  # plain SQL names, whatever the columns are called
            arrow = text.select(pl.col(c).alias(n) for c, n in zip(direct, names, strict=True)).to_arrow()
            conn.register("_rows", pa.Table.from_batches(arrow.to_batches(DIRECT_BATCH_ROWS), arrow.schema))
            # a projection over a scan: DuckDB keeps the rows in order (preserve_insertion_order). Into a
            # table first: fetching the query's result straight into Arrow hashes on one thread, filling a
            # table uses every core (1.7M values, 2 cores: 1.65 -> 0.9 s, then 0.1 s to read it back)
            sql = ", ".join(f"{hmac_sql(n)} AS {n}" for n in names)
            conn.execute(f"CREATE TEMP TABLE _keyed AS SELECT {sql} FROM _rows", _pads(key))
            got = conn.execute("SELECT * FROM _keyed").pl()
            out.update({c: got[n] for c, n in zip(direct, names, strict=True)})
    finally:
        conn.close()
    keyed_columns = [out[c].alias(c) for c in cols]
    return df.with_columns([*keyed_columns, pl.lit(key_id(key), pl.String).alias(KEY_ID_COLUMN)])


def pseudonymize_landing(df: pl.DataFrame, table: str, key: bytes | None) -> pl.DataFrame:
    """The personal columns of a landing frame of `table` keyed (PERSONAL_COLUMNS); others unchanged."""
    columns = PERSONAL_COLUMNS.get(table, ())
    if not columns:
        return df
    if key is None:
        raise PseudonymKeyError(f"{table} has personal columns {list(columns)}: landing it needs a key")
    return keyed(df, key, columns, EMAIL_COLUMNS.get(table, ()))


def pseudonym_for_email(key: bytes, email: str | None) -> str | None:
    """The pseudonym landing stores for this e-mail address (the same normalization, the same HMAC): how the
    API finds a customer by e-mail without the warehouse ever holding the address."""
    if email is None:
        return None
    return hmac_hex(key, pl.select(normalize_email(pl.lit(email, pl.String))).item())
