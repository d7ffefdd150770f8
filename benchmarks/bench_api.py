"""Read API latency and throughput on loopback (prints a report; --record writes benchmarks/results/api.md).

The server runs in its own process (`analytics-pipelines api`, one uvicorn worker) over synthetic marts of
`medium` shape (3 tenants x 34 venues x 730 days, 30 events per venue; tests/api_sample.py)
until the real marts are on main. For each endpoint an open-loop generator sends requests at a fixed rate
(default 200/s) for a fixed time; a request's latency is measured from its *scheduled* send time, so a
stalled server cannot hide queueing (no coordinated omission). Then a closed loop with 8 connections
measures the saturation throughput of a mix.

    python benchmarks/bench_api.py [--rate 200] [--seconds 10] [--backend duckdb|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-benchmark-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


class RawPool:
    """Keep-alive HTTP/1.1 connections over asyncio streams: a load generator that costs far less CPU per
    request than an HTTP client library, so that on 2 shared cores the server, not the generator, is
    measured."""

    def __init__(self, host: str, port: int, size: int):
        self.host, self.port, self.size = host, port, size
        self.free: asyncio.Queue = asyncio.Queue()

    async def open(self):
        for _ in range(self.size):
            self.free.put_nowait(await asyncio.open_connection(self.host, self.port))

    async def get(self, path: str, headers: dict) -> int:
        reader, writer = await self.free.get()
        try:
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n{head}\r\n".encode())
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            return int(status_line.split()[1])
        finally:
            self.free.put_nowait((reader, writer))

    async def close(self):
        while not self.free.empty():
            _, w = self.free.get_nowait()
            w.close()


async def fixed_rate(pool: RawPool, url: str, headers: list[dict], rate: float, seconds: float):
    """Request i goes out at start + i/rate with headers[i % len(headers)] (one token per venue or tenant,
    rotated: the server's result cache sees every scope, not one hot key)."""
    n = int(rate * seconds)
    lat: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.05

    async def one(i: int):
        nonlocal errors
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            errors += await pool.get(url, headers[i % len(headers)]) != 200
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors += 1
        lat.append((time.perf_counter() - scheduled) * 1000)

    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - start
    return lat, errors, n / elapsed


async def closed_loop(pool: RawPool, urls, headers, seconds: float, conns: int = 8):
    done = 0
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker(k: int):
        nonlocal done, errors
        i = k
        while time.perf_counter() < stop:
            errors += await pool.get(urls[i % len(urls)], headers[i % len(headers)]) != 200
            done += 1
            i += 1

    t = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(conns)))
    return done / (time.perf_counter() - t), errors


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rate", type=float, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--backend", choices=["duckdb", "postgres"], default="duckdb")
    ap.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/tt_bench_api")
    ap.add_argument("--out", help="also write the report to this file (default: print it only)")
    ap.add_argument("--record", action="store_true", help="write it to benchmarks/results/api.md (tracked)")
    args = ap.parse_args()

    from analytics_pipelines.api.auth import mint_token
    from analytics_pipelines.api.settings import Settings
    from analytics_pipelines.warehouse import open_warehouse

    sys.path.insert(0, str(ROOT / "tests"))  # the synthetic marts live with the API's tests
    from api_sample import build_sample_marts

    tmp = Path(tempfile.mkdtemp(prefix="tt-bench-api-"))
    if args.backend == "duckdb":
        url = f"duckdb:///{tmp / 'warehouse'}"
    else:
        import psycopg

        admin = args.pg_url.rsplit("/", 1)[0] + "/postgres"
        name = args.pg_url.rsplit("/", 1)[1]
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            c.execute(f'CREATE DATABASE "{name}"')
        url = args.pg_url
    t0 = time.perf_counter()
    marts = build_sample_marts(
        open_warehouse(url),
        tenants=3,
        venues=34,
        days=730,
        events_per_venue=30,
        kpi_hours=24 * 14,
        last_day=date(2026, 10, 31),
    )
    build_s = time.perf_counter() - t0
    port = free_port()
    env = {
        **os.environ,
        "TT_WAREHOUSE_URL": url,
        "TT_API_JWT_SECRET": SECRET,
        "TT_API_MODE": "production",
        "TT_OPS_URL": f"sqlite:///{tmp / 'ops.sqlite'}",
        "TT_DATA_DIR": str(tmp),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "analytics_pipelines.cli",
            "api",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    try:
        while True:
            try:
                if httpx.get(base + "/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.perf_counter() - t0 > 120:
                raise SystemExit("server did not start")
            time.sleep(0.2)
        ready_s = time.perf_counter() - t0
        settings = Settings(warehouse_url=url, jwt_secret=SECRET)
        # one token per venue (102) and per tenant's admin (3), used in turn
        venue_h = [
            {"Authorization": "Bearer " + mint_token(settings, tenant_id=t, venue_id=v, expires_in=7200)}
            for t in marts.tenant_ids()
            for v in marts.tenants[t]
        ]
        admin_h = [
            {"Authorization": "Bearer " + mint_token(settings, tenant_id=t, role="admin", expires_in=7200)}
            for t in marts.tenant_ids()
        ]
        cases = [
            (
                "revenue summary, 1 venue, 365 days",
                "/v1/revenue/summary?start_date=2025-11-01&end_date=2026-10-31",
                venue_h,
            ),
            (
                "revenue summary, tenant (34 venues), 365 days",
                "/v1/revenue/summary?start_date=2025-11-01&end_date=2026-10-31",
                admin_h,
            ),
            (
                "revenue by channel, 1 venue, 30 days",
                "/v1/revenue/by-channel?start_date=2026-10-02&end_date=2026-10-31",
                venue_h,
            ),
            (
                "sales metrics, day, 90 days",
                "/v1/sales/metrics?granularity=day&start_date=2026-08-03&end_date=2026-10-31",
                venue_h,
            ),
            (
                "sales trends, 1 venue, 90 days",
                "/v1/sales/trends?start_date=2026-08-03&end_date=2026-10-31",
                venue_h,
            ),
            ("venue daily, 30 rows", "/v1/venues/daily?start_date=2026-10-02&end_date=2026-10-31", venue_h),
            ("events top 10", "/v1/events/top", venue_h),
            ("events performance, page of 100", "/v1/events/performance?limit=100", admin_h),
            ("kpis (latest snapshot)", "/v1/kpis", venue_h),
        ]
        rows = []

        async def run_all():
            client = RawPool("127.0.0.1", port, 32)
            await client.open()
            try:
                for name, path, h in cases:
                    for k in range(20):  # warm up the connections (not the cache: 20 of 102 venues)
                        await client.get(path, h[k % len(h)])
                    lat, errors, achieved = await fixed_rate(client, path, h, args.rate, args.seconds)
                    rows.append(
                        (
                            name,
                            path,
                            statistics.median(lat),
                            pct(lat, 99),
                            max(lat),
                            achieved,
                            errors,
                            len(lat),
                        )
                    )
                    print(
                        f"{name:48s} p50 {rows[-1][2]:6.1f} ms  p99 {rows[-1][3]:6.1f} ms  "
                        f"{achieved:5.0f} req/s  errors {errors}",
                        flush=True,
                    )
                mix = [c[1] for c in cases]
                return await closed_loop(client, mix, venue_h, args.seconds)
            finally:
                await client.close()

        load_before = os.getloadavg()
        thr, thr_err = asyncio.run(run_all())
        load_after = os.getloadavg()
        cache = httpx.get(base + "/health/ready", timeout=5).json().get("warehouse", {}).get("cache")
        print(f"saturation (8 connections, mix): {thr:.0f} req/s, errors {thr_err}")
    finally:
        server.terminate()
        server.wait(timeout=30)

    met = all(r[3] <= 25 for r in rows)
    lines = [
        "# Read API latency (loopback)",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), Python {platform.python_version()}; the load generator "
        "(raw asyncio HTTP/1.1 keep-alive, 32 connections) shares the machine with the server (one uvicorn worker, its own process).",
        "",
        f"Backend: **{args.backend}**. Data: synthetic marts of `medium` shape (3 tenants x 34 venues x 730 days, "
        f"30 events per venue, 14 days of hourly KPIs; `tests/api_sample.py`), built in {build_s:.1f} s; "
        f"server ready (/health/ready 200: snapshot loaded, or RLS set up on PostgreSQL) {ready_s:.1f} s after start.",
        "",
        f"Machine load average (1/5/15 min) before: {' / '.join(f'{x:.1f}' for x in load_before)}, after: "
        f"{' / '.join(f'{x:.1f}' for x in load_after)} (other sessions' work shares these 2 cores).",
        "",
        f"Open loop at a fixed {args.rate:.0f} req/s for {args.seconds:.0f} s per endpoint; latency from the scheduled "
        "send time (queueing included). Each request carries the next of 102 venue tokens (or 3 tenant-admin "
        "tokens for the tenant rows), so every scope's first request misses the server's result cache. "
        f"Result cache at the end: {cache}. Target: p99 <= 25 ms at 200 req/s: "
        f"**{'met' if met else 'NOT met'}** {'on every endpoint' if met else '(see rows above 25 ms)'}.",
        "",
        "| endpoint | p50 ms | p99 ms | max ms | achieved req/s | non-200 | requests |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, path, p50, p99, mx, ach, err, n in rows:
        lines.append(
            f"| {name} (`{path.split('?')[0]}`) | {p50:.1f} | {p99:.1f} | {mx:.1f} | {ach:.0f} | {err} | {n} |"
        )
    lines += [
        "",
        f"Saturation, closed loop with 8 connections over the mix above: **{thr:.0f} req/s** "
        f"({thr_err} non-200).",
        "",
    ]
    print("\n".join(lines))
    out = args.out or (str(ROOT / "benchmarks" / "results" / "api.md") if args.record else None)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("\n".join(lines))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
