"""Test session wiring: one real PostgreSQL database and one Prefect test API per session.

DATABASE_URL (a superuser's server URL; CI uses 127.0.0.1:5432) or, when unset, the embedded server.
The session's database is made the way a hosting provider makes one (tests/hosting.py): the
superuser creates an owner role that is not a superuser and an empty database it owns; the tests
install booking-cron (`db upgrade`) and run everything as that owner. The database is dropped at the end.
"""

from __future__ import annotations

import os
import socket
import tempfile
from contextlib import ExitStack, contextmanager
from typing import Iterator

import psycopg
import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
# The flows keep their summaries in Prefect's result storage: a scratch directory, not ~/.prefect.
os.environ.setdefault("PREFECT_LOCAL_STORAGE_PATH", tempfile.mkdtemp(prefix="booking-cron-results-"))

from booking_cron.storage import database
from booking_cron.storage import schema  # noqa: E402
from tests import hosting  # noqa: E402

TABLES = ["tick_results", "tick_runs", "tick_completions", "session_usage", "sms_messages", "sms_suppression",
          "sms_schedules", "sms_settings", "bookings", "client_purchases", "clients", "booking_settings", "orgs"]


@pytest.fixture(scope="session")
def server_url() -> str:
    """The cluster superuser's URL: the hosting provider, who creates roles and databases only."""
    return os.environ.get("DATABASE_URL") or database.embedded_url()


@pytest.fixture(scope="session")
def database_url(server_url):
    """The session's database, installed by its owner (not a superuser); its URL as that owner."""
    with hosting.owned_database(server_url, "booking_cron_test") as url:
        schema.upgrade(url)
        previous = os.environ.get("DATABASE_URL")
        os.environ["DATABASE_URL"] = url  # the flow's tasks find the database the way production does
        yield url
        if previous is None:
            os.environ.pop("DATABASE_URL", None)
        else:
            os.environ["DATABASE_URL"] = previous


@pytest.fixture(scope="session", autouse=True)
def no_local_prefect_left_behind():
    """Tests reach Prefect through `prefect_api` (PREFECT_API_URL); a command run without it starts
    booking-cron's local Prefect server in the data folder. One the session started is stopped at
    its end (tests that start their own in a tmp data folder stop it themselves)."""
    from booking_cron.ops import prefect_api

    before = prefect_api.running()
    yield
    if before is None and prefect_api.running() is not None:
        prefect_api.stop()


@pytest.fixture(scope="module")
def app_db(server_url, request):
    """A database built like the app's on Supabase (tests/supabase), upgraded by its owner (not a
    superuser); one per test module, dropped afterwards. Its URL as that owner."""
    from tests import supabase

    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    with supabase.app_database(server_url, f"booking_cron_{module}"[:40]) as url:
        schema.upgrade(url)
        yield url


@pytest.fixture(scope="session")
def prefect_api(server_url):
    """A real Prefect API for the session's flow runs, without flow-run heartbeats (nothing
    watches for crashed runs here, and each run would pay up to a second at exit: Prefect 3.8
    joins a heartbeat thread that sleeps in 1 s steps).

    On a PostgreSQL server with pg_trgm (CI's) the API keeps its state in a scratch database
    there: Prefect's SQLite backend, under the test harness, locks under load ("database is
    locked") and each flow run costs several times more. Otherwise Prefect's own test harness.
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    with ExitStack() as stack:
        stack.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
        if has_pg_trgm(server_url):  # the embedded server and CI's have it
            yield stack.enter_context(prefect_api_on_postgres(server_url))
        else:
            from prefect.testing.utilities import prefect_test_harness

            from prefect.settings import PREFECT_API_URL

            stack.enter_context(prefect_test_harness(server_startup_timeout=60))
            yield PREFECT_API_URL.value()


def has_pg_trgm(server_url: str) -> bool:
    with psycopg.connect(server_url, autocommit=True) as conn:
        return conn.execute("select exists (select from pg_available_extensions where name = 'pg_trgm')").fetchone()[0]


@contextmanager
def prefect_api_on_postgres(server_url: str) -> Iterator[str]:
    """What `prefect_test_harness` does, with a PostgreSQL database instead of a SQLite file."""
    import prefect.context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL, temporary_settings

    with ExitStack() as stack:
        url = stack.enter_context(database.scratch_prefect_database(server_url))
        stack.enter_context(temporary_settings(updates={PREFECT_SERVER_DATABASE_CONNECTION_URL: url}))
        server = SubprocessASGIServer(port=free_port())
        server.start(timeout=120)
        stack.callback(server.stop)
        stack.enter_context(temporary_settings(updates={PREFECT_API_URL: server.api_url}))
        # threads the tests start (overlap, crash) see these settings too
        stack.enter_context(prefect.context._temporary_global_settings_context(prefect.context.get_settings_context()))
        yield server.api_url
        APILogWorker.drain_all()  # before the server stops: no connection errors at exit
        EventsWorker.drain_all()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def delete_saved_blocks(*names: str) -> None:
    """Delete Prefect blocks saved the way `blocks register` saves them (register_blocks_from_environment)
    from the current Prefect API: those `names`, by default the database's and Twilio's. A test that
    saves them calls this when it ends (in its `finally`, or a fixture's teardown)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect_sqlalchemy import SqlAlchemyConnector

    from blocks import DATABASE_BLOCK, TWILIO_BLOCK, TwilioCredentials

    types = {DATABASE_BLOCK: SqlAlchemyConnector, TWILIO_BLOCK: TwilioCredentials}

    async def delete():
        async with get_client() as client:
            for name in names or types:
                document = await client.read_block_document_by_name(name, types[name].get_block_type_slug())
                await client.delete_block_document(document.id)

    asyncio.run(delete())


@pytest.fixture
def db(database_url):
    """An autocommit connection to a freshly emptied test database."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        existing = [t for (t,) in conn.execute(
            "select tablename from pg_tables where schemaname = 'public' and tablename = any(%s)", (TABLES,))]
        conn.execute("truncate " + ", ".join(f"public.{t}" for t in existing) + " cascade")
        yield conn
