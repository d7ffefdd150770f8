"""Reachability of the service's dependencies (`/health/dependencies`), without FastAPI.

Each check is a plain function that opens a connection with its own short timeout, does the smallest
round trip the dependency has (SELECT 1, SMTP NOOP, MongoDB ping, InfluxDB /ping) and closes it. `check_all`
runs them concurrently in threads and gives each `timeout` seconds in all: one that does not answer by then is
reported `down` ("timed out") with the time waited, so one hung dependency never hangs the route (its thread
finishes, or fails, on its own connection timeout). Targets are shown masked: scheme, host, port and
database only -- never a user name, password, token or query string.

Which dependencies: the warehouse (the API's reader), the ops store, SMTP, the Dagster instance storage,
and MongoDB and InfluxDB where configured (TT_MONGO_URL, TT_INFLUX_URL); an unconfigured one is listed as
`not_configured`."""

from __future__ import annotations

import asyncio
import os
import smtplib
import sqlite3
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

#: seconds each check may take (its connection timeout and the route's wait)
DEFAULT_TIMEOUT = 2.0
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="tt-health")


def mask_url(url: str | None) -> str | None:
    """scheme://host:port/path with user, password, query and fragment removed. A file path (SQLite,
    duckdb:///dir) keeps its path: it is no secret."""
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme:
        return "<unparsable>"
    host = parts.hostname or ""
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


@dataclass(frozen=True)
class Dependency:
    name: str
    target: str | None  # masked; None: not configured
    probe: Callable[[float], str | None] | None  # raises when down; may return a detail (version, ...)


def _pg_probe(url: str) -> Callable[[float], str | None]:
    def probe(timeout: float) -> str | None:
        import psycopg

        dsn = url.replace("postgresql+psycopg://", "postgresql://").replace("postgres://", "postgresql://")
        with psycopg.connect(dsn, connect_timeout=max(1, int(timeout + 0.999))) as conn:
            conn.execute("SELECT 1")
        return None

    return probe


def _sqlite_probe(path: Path) -> Callable[[float], str | None]:
    def probe(timeout: float) -> str | None:
        if not path.exists():  # SQLite: created on first use; fine while its directory can hold it
            if path.parent.is_dir() and os.access(path.parent, os.W_OK):
                return "not created yet"
            raise FileNotFoundError("neither the database file nor a writable directory for it")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=timeout)
        try:
            conn.execute("SELECT 1").fetchone()
        finally:
            conn.close()
        return None

    return probe


def _sql_dependency(name: str, url: str) -> Dependency:
    if url.startswith("sqlite"):
        path = Path(url.split(":///", 1)[1]) if ":///" in url else Path(url)
        return Dependency(name, mask_url(url), _sqlite_probe(path))
    return Dependency(name, mask_url(url), _pg_probe(url))


def _smtp_probe(host: str, port: int, use_ssl: bool) -> Callable[[float], str | None]:
    def probe(timeout: float) -> str | None:
        cls = smtplib.SMTP_SSL if use_ssl else smtplib.SMTP
        with cls(host, port, timeout=timeout) as smtp:
            code, _ = smtp.noop()
            if code != 250:
                raise RuntimeError(f"NOOP answered {code}")
        return None

    return probe


def _mongo_probe(url: str) -> Callable[[float], str | None]:
    def probe(timeout: float) -> str | None:
        import pymongo

        ms = int(timeout * 1000)
        client = pymongo.MongoClient(
            url, serverSelectionTimeoutMS=ms, connectTimeoutMS=ms, socketTimeoutMS=ms, appname="tt-health"
        )
        try:
            client.admin.command("ping")
        finally:
            client.close()
        return None

    return probe


def _influx_probe(url: str) -> Callable[[float], str | None]:
    def probe(timeout: float) -> str | None:
        with urllib.request.urlopen(f"{url.rstrip('/')}/ping", timeout=timeout) as r:  # noqa: S310 - configured URL
            return r.headers.get("X-Influxdb-Version")

    return probe


def dagster_dependency(environ=os.environ) -> Dependency:
    """The Dagster instance storage of $DAGSTER_HOME/dagster.yaml: PostgreSQL (`storage: postgres:` with
    postgres_url or postgres_db from TT_DAGSTER_PG_* / literal values) or the local SQLite run storage."""
    home = environ.get("DAGSTER_HOME")
    if not home:
        return Dependency("dagster_storage", None, None)
    cfg_path = Path(home) / "dagster.yaml"
    try:
        import yaml

        cfg = yaml.safe_load(cfg_path.read_text()) or {}
    except (OSError, ValueError) as exc:
        return Dependency(
            "dagster_storage", mask_url(f"file://{cfg_path}"), _failing(f"{type(exc).__name__}")
        )

    def val(v, default=""):
        if isinstance(v, dict) and "env" in v:
            return environ.get(v["env"], default)
        return default if v is None else str(v)

    pg = (cfg.get("storage") or {}).get("postgres")
    if pg:
        if pg.get("postgres_url"):
            url = val(pg["postgres_url"])
        else:
            db = pg.get("postgres_db") or {}
            user, password = val(db.get("username"), "postgres"), val(db.get("password"))
            host, port = val(db.get("hostname"), "localhost"), val(db.get("port"), "5432")
            name = val(db.get("db_name"), "postgres")
            url = f"postgresql://{user}{':' + password if password else ''}@{host}:{port}/{name}"
        return _sql_dependency("dagster_storage", url)
    runs = (cfg.get("run_storage") or {}).get("config", {}).get("base_dir")
    base = val(runs) if runs else str(Path(home) / "history")
    return _sql_dependency("dagster_storage", f"sqlite:///{Path(base) / 'runs.db'}")


def _failing(reason: str) -> Callable[[float], str | None]:
    def probe(timeout: float) -> str | None:
        raise RuntimeError(reason)

    return probe


def dependencies(project, ops_url: str | None, environ=os.environ) -> list[Dependency]:
    """The dependencies other than the warehouse (the route probes that through its own reader): from the
    project settings (analytics_pipelines.settings.Settings) and the API's ops URL."""
    from analytics_pipelines.ops.db import default_ops_url

    smtp = project.smtp
    deps = [
        _sql_dependency("ops_store", ops_url or default_ops_url()),
        Dependency(
            "smtp",
            f"{'smtps' if smtp.use_ssl else 'smtp'}://{smtp.host}:{smtp.port}",
            _smtp_probe(smtp.host, smtp.port, smtp.use_ssl),
        ),
        dagster_dependency(environ),
    ]
    mongo = project.mongo_url
    deps.append(Dependency("mongodb", mask_url(mongo), _mongo_probe(mongo) if mongo else None))
    influx = project.influx.url
    deps.append(Dependency("influxdb", mask_url(influx), _influx_probe(influx) if influx else None))
    return deps


def _error(exc: BaseException) -> str:
    """The exception's type and first line, with anything URL-like masked (drivers echo their DSN)."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    words = [mask_url(w) if "://" in w else w for w in text.split()]
    return f"{type(exc).__name__}: {' '.join(words)}".rstrip(": ")


def _timed(probe: Callable[[float], str | None], timeout: float) -> dict:
    start = time.perf_counter()
    try:
        detail = probe(timeout)
        out = {"status": "up"}
        if detail:
            out["detail"] = detail
    except Exception as exc:  # noqa: BLE001 - a down dependency is reported, never raised
        out = {"status": "down", "error": _error(exc)}
    out["latency_ms"] = round((time.perf_counter() - start) * 1000, 1)
    return out


async def check_all(deps: list[Dependency], timeout: float = DEFAULT_TIMEOUT) -> dict[str, dict]:
    """name -> {status up|down|not_configured, latency_ms, target (masked), error}; concurrently, each
    bounded by `timeout` seconds."""
    loop = asyncio.get_running_loop()

    async def one(d: Dependency) -> dict:
        if d.probe is None:
            return {"status": "not_configured", "latency_ms": None, "target": None}
        start = time.perf_counter()
        try:
            out = await asyncio.wait_for(
                loop.run_in_executor(_pool, _timed, d.probe, timeout), timeout + 0.25
            )
        except TimeoutError:
            out = {
                "status": "down",
                "error": f"timed out after {timeout:g} s",
                "latency_ms": round((time.perf_counter() - start) * 1000, 1),
            }
        return {**out, "target": d.target}

    results = await asyncio.gather(*(one(d) for d in deps))
    return {d.name: r for d, r in zip(deps, results, strict=True)}


def overall(checks: dict[str, dict]) -> str:
    """ok (every configured dependency up), degraded (some down), down (the warehouse down)."""
    if checks.get("warehouse", {}).get("status") == "down":
        return "down"
    return "degraded" if any(c["status"] == "down" for c in checks.values()) else "ok"
