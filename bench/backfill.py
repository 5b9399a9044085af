"""Comparison 6: a 30-day backfill at 10-minute slots against one tick at its last slot.

Both are whole `booking-cron` processes over copies of the same data (`create database ...
template ...`), against a real `prefect server start` (SQLite, in a temporary PREFECT_HOME), as an
operator would run them. Then the same backfill on a PostgreSQL-backed Prefect server, for its
per-slot cost. Ports: BENCH_PREFECT_PORT (default 4600) and the next one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import psycopg

from bench.env import analyze, digests, one
from booking_cron.storage import database, schema
from booking_cron.ops.seed import seed

ROOT = Path(__file__).resolve().parent.parent
END = datetime(2026, 10, 1, tzinfo=timezone.utc)  # the range is the 30 days before; every text is stale now
DAYS = 30
TIMEZONES = ("Australia/Brisbane", "Europe/London", "America/New_York")


def load_month(url: str, bookings: int, end: datetime = END) -> dict:
    """seed() around the middle of the range: three orgs in three time zones, packs some expired or
    unpaid, bookings in every status across the 30 days; texts on for the first org only."""
    with psycopg.connect(url, autocommit=True) as conn:
        counts = seed(conn, orgs=3, clients=bookings // 10, bookings=bookings, seed=17, at=end - timedelta(days=15))
        orgs = [o for (o,) in conn.execute("select id from public.orgs order by name")]
        for org, tz in zip(orgs, TIMEZONES):
            conn.execute("update public.booking_settings set timezone = %s where org_id = %s", (tz, org))
            conn.execute("update public.sms_settings set enabled = %s where org_id = %s", (org == orgs[0], org))
        due = one(conn.execute("select count(*) from public.bookings where status = 'confirmed' and end_time < %s",
                               (end,)).fetchone())[0]
    analyze(url)
    return {"bookings": counts.bookings, "clients": counts.clients, "packs": counts.packs, "due_in_range": due}


@contextmanager
def prefect_server(port: int, database_url: str | None = None) -> Iterator[str]:
    """`prefect server start` in a temporary PREFECT_HOME (SQLite), or on PostgreSQL when given."""
    home = tempfile.mkdtemp(prefix="bench-prefect-")
    env = {**os.environ, "PREFECT_HOME": home, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    if database_url:
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
    log = open(Path(home) / "server.log", "w")
    process = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(api + "/health", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prefect server did not start:\n{(Path(home) / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield api
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


def timed_cli(args: list[str], db: str, api: str) -> dict:
    """One whole `booking-cron` process; its wall time and its --json output."""
    env = {k: v for k, v in os.environ.items() if k != "BOOKING_CRON_COUNT_STATEMENTS"}
    env.update(DATABASE_URL=db, PREFECT_API_URL=api, PREFECT_LOGGING_LEVEL="ERROR")
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "booking_cron", *args, "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"booking-cron {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return {"seconds": wall, "output": json.loads(proc.stdout.strip().splitlines()[-1])}


def copies(server: str, source: str, n: int) -> list[str]:
    """`n` copies of the database `source` (template copies: identical rows)."""
    database.close_pools()
    base = source.rsplit("/", 1)[1]
    names = [f"{base}_copy{i}" for i in range(n)]
    with psycopg.connect(server, autocommit=True) as conn:
        for name in names:
            conn.execute(f'create database "{name}" template "{base}"')
    return [database.with_database(server, name) for name in names]


def run(server: str, bookings: int = 9000, port: int | None = None, days: int = DAYS,
        on_postgres: bool = True) -> dict:
    """A backfill of the `days` days before END over the month's data (seed() puts `bookings` in the
    four weeks around END - 15 days, so the days before hold none: a year is the month's work plus
    335 days without any); `on_postgres`: also the backfill on a PostgreSQL-backed Prefect server."""
    port = port or int(os.environ.get("BENCH_PREFECT_PORT", "4600"))
    start, end = END - timedelta(days=days), END
    last_slot = end - timedelta(minutes=10)
    name = f"bench_month_{uuid.uuid4().hex[:8]}"
    source = database.create_database(server, name)
    try:
        schema.upgrade(source)
        data = load_month(source, bookings)
        tick_db, backfill_db, pg_db = copies(server, source, 3)
        backfill_args = ["backfill", "--start", start.isoformat(), "--end", end.isoformat(), "--every", "10m"]
        with prefect_server(port) as api:
            timed_cli(["run", "--at", (start - timedelta(days=1)).isoformat()], source, api)  # warm caches, no work
            tick = timed_cli(["run", "--at", last_slot.isoformat()], tick_db, api)
            backfill = timed_cli(backfill_args, backfill_db, api)
        pg_backfill: dict | None = None
        if on_postgres:
            with database.scratch_prefect_database(server) as prefect_pg, prefect_server(port + 1, prefect_pg) as api:
                pg_backfill = timed_cli(backfill_args, pg_db, api)
        same = digests(tick_db) == digests(backfill_db) == (digests(pg_db) if pg_backfill else digests(tick_db))
        with psycopg.connect(backfill_db) as conn:
            outbox: dict[str, int] = dict(conn.execute("select status, count(*) from public.sms_messages group by 1").fetchall())
        slots = backfill["output"]["slots"]
        return {"data": data, "slots": slots, "tick_seconds": tick["seconds"], "tick": tick["output"],
                "backfill_seconds": backfill["seconds"], "backfill": backfill["output"],
                "postgres_backfill_seconds": pg_backfill["seconds"] if pg_backfill else None,
                "same_end_state": same, "outbox": outbox, "days": days,
                "per_slot_ms": 1000 * backfill["seconds"] / slots,
                "postgres_per_slot_ms": 1000 * pg_backfill["seconds"] / slots if pg_backfill else None}
    finally:
        database.close_pools()
        for db in (name, f"{name}_copy0", f"{name}_copy1", f"{name}_copy2"):
            database.drop_database(server, db)
