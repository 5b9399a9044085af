"""Where the bench runs: the PostgreSQL server, a fresh database per scenario, one Prefect server.

Every scenario gets its own database (created, migrated, dropped after), so no scenario sees
another's rows; every tick of the whole bench talks to the same temporary Prefect API server.
"""

from __future__ import annotations

import os
import platform
import subprocess
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import psycopg

from booking_cron.storage import database, schema

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
T = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)  # the as-of time of the deduction scenarios
BACKGROUND_AT = T + timedelta(days=30)  # seed() data around here: none of it is due at T


def server_url() -> str:
    """DATABASE_URL (a server to create scenario databases on), else local 5432, else embedded."""
    if url := os.environ.get("BENCH_SERVER_URL") or os.environ.get("DATABASE_URL"):
        return url
    try:
        psycopg.connect(DEFAULT_SERVER, connect_timeout=2).close()
        return DEFAULT_SERVER
    except psycopg.OperationalError:
        return database.embedded_url()


@contextmanager
def scratch_database(server: str, label: str) -> Iterator[str]:
    """A fresh, migrated database for one scenario; dropped afterwards."""
    name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
    url = database.create_database(server, name)
    try:
        schema.upgrade(url)
        yield url
    finally:
        database.close_pools()
        database.drop_database(server, name)


def analyze(url: str) -> None:
    """Fresh planner statistics after a bulk load, as autovacuum would soon give a real database."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")


@contextmanager
def use_database(url: str) -> Iterator[None]:
    """Point the flow (which reads DATABASE_URL) at `url` for the duration."""
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous


@contextmanager
def prefect_server() -> Iterator[str]:
    """One temporary Prefect API server for the whole bench; subprocesses reach it by PREFECT_API_URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    started = time.perf_counter()
    with prefect_test_harness(server_startup_timeout=120):
        api = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = api
        print(f"Prefect test server at {api} (started in {time.perf_counter() - started:.1f} s)", flush=True)
        try:
            yield api
        finally:
            os.environ.pop("PREFECT_API_URL", None)


TABLE_DIGESTS = {
    "bookings.status": "select md5(coalesce(string_agg(id::text || ':' || status, ',' order by id), '')) "
                       "from public.bookings",
    "client_purchases.sessions_used": "select md5(coalesce(string_agg(id::text || ':' || "
                                      "coalesce(sessions_used, 0), ',' order by id), '')) from public.client_purchases",
    "session_usage.count": "select count(*)::text from public.session_usage",
    "session_usage.bookings": "select md5(coalesce(string_agg(booking_id::text || ':' || purchase_id::text, ',' "
                              "order by booking_id), '')) from public.session_usage where booking_id is not null",
}


def one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row of a query that always returns one (an aggregate, or a select without from)."""
    if row is None:
        raise RuntimeError("the query returned no row")
    return row


def digests(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        return {name: one(conn.execute(query).fetchone())[0] for name, query in TABLE_DIGESTS.items()}


def machine(server: str) -> dict[str, str]:
    with psycopg.connect(server) as conn:
        pg = one(conn.execute("show server_version").fetchone())[0]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    return {"nproc": subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip() or str(os.cpu_count()),
            "cpu": cpu, "postgresql": pg, "python": platform.python_version(),
            "prefect": __import__("prefect").__version__,
            "server": "local (same machine)" if "127.0.0.1" in server or "localhost" in server else "remote"}
