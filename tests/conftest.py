"""Test session wiring: one real PostgreSQL database and one Prefect test API per session.

DATABASE_URL (a server URL; CI uses 127.0.0.1:5432) or, when unset, the embedded server.
The session creates its own database, migrates it, and drops it at the end.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")

from booking_cron import database, schema  # noqa: E402

TABLES = ["tick_results", "tick_runs", "tick_completions", "session_usage", "sms_messages", "sms_suppression",
          "sms_schedules", "sms_settings", "bookings", "client_purchases", "clients", "booking_settings", "orgs"]


@pytest.fixture(scope="session")
def server_url() -> str:
    return os.environ.get("DATABASE_URL") or database.embedded_url()


@pytest.fixture(scope="session")
def database_url(server_url):
    name = f"booking_cron_test_{uuid.uuid4().hex[:10]}"
    url = database.create_database(server_url, name)
    schema.upgrade(url)
    previous = os.environ.get("DATABASE_URL")
    os.environ["DATABASE_URL"] = url  # the flow's tasks find the database the way production does
    yield url
    database.close_pools()
    if previous is None:
        os.environ.pop("DATABASE_URL", None)
    else:
        os.environ["DATABASE_URL"] = previous
    database.drop_database(server_url, name)


@pytest.fixture(scope="session")
def prefect_api():
    from prefect.testing.utilities import prefect_test_harness

    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # No flow-run heartbeats in tests: nothing watches for crashed runs here, and each run would
    # pay up to a second at exit (Prefect 3.8 joins a heartbeat thread that sleeps in 1 s steps).
    with prefect_test_harness(server_startup_timeout=60), \
            temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield PREFECT_API_URL.value()


@pytest.fixture
def db(database_url):
    """An autocommit connection to a freshly emptied test database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        existing = [t for (t,) in conn.execute(
            "select tablename from pg_tables where schemaname = 'public' and tablename = any(%s)", (TABLES,))]
        conn.execute("truncate " + ", ".join(f"public.{t}" for t in existing) + " cascade")
        yield conn
