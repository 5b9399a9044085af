"""One rule for where the database comes from, the same for every command and the flow: DATABASE_URL
wins over the saved `booking-cron-db` block, and every command's first line names the database it
acts on (host, port, database; never the password). Real `booking-cron` processes, a real Prefect API
holding a real block, two real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict
import pytest

from booking_cron.storage import schema
from tests import hosting
from tests.conftest import delete_saved_blocks
from tests.factories import T

SCRIPT = Path(sys.executable).parent / "booking-cron"


def booking_cron(*args: str, **env: str) -> subprocess.CompletedProcess:
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "booking_cron"]
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "PREFECT_API_URL")}
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=240,
                          env={**base, "COLUMNS": "200", **env})


def tick_runs(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(*) from public.tick_runs").fetchone()[0]


def dbname(url: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(url)["dbname"]


@pytest.fixture
def two_databases(server_url):
    with ExitStack() as stack:
        a = stack.enter_context(hosting.owned_database(server_url, "booking_cron_block_a"))
        b = stack.enter_context(hosting.owned_database(server_url, "booking_cron_explicit_b"))
        schema.upgrade(a)
        schema.upgrade(b)
        yield a, b


@pytest.fixture
def saved_block(prefect_api, two_databases):
    """The `booking-cron-db` block saved, the way `deploy` saves it, pointing at database A."""
    from blocks import DATABASE_BLOCK

    a, _ = two_databases
    done = booking_cron("blocks", "register", DATABASE_URL=a, PREFECT_API_URL=prefect_api)
    assert done.returncode == 0 and DATABASE_BLOCK in done.stdout, done.stdout + done.stderr
    yield a
    delete_saved_blocks(DATABASE_BLOCK)


def test_database_url_wins_over_the_saved_block_for_run_audit_and_results(saved_block, two_databases, prefect_api):
    a, b = two_databases
    shell = dict(DATABASE_URL=b, PREFECT_API_URL=prefect_api)
    run = booking_cron("run", "--at", T.isoformat(), **shell)
    assert run.returncode == 0, run.stdout + run.stderr
    assert tick_runs(b) == 1 and tick_runs(a) == 0  # the tick acted on B, the shell's database
    first, second = run.stdout.splitlines()[:2]
    assert first.startswith(f"database {dbname(b)} on ") and first.endswith("(DATABASE_URL)"), first
    assert second == f"Prefect API {prefect_api} (PREFECT_API_URL)"
    assert dbname(a) not in run.stdout + run.stderr

    as_json = booking_cron("run", "--at", T.isoformat(), "--json", **shell)
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["flow_run_id"]  # stdout stays one JSON object
    assert f"database {dbname(b)} on " in as_json.stderr.splitlines()[0]
    assert tick_runs(b) == 2 and tick_runs(a) == 0

    audit = booking_cron("audit", **shell)
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert f"database {dbname(b)} on " in audit.stdout.splitlines()[0]
    results = booking_cron("results", "--json", **shell)
    assert results.returncode == 0 and json.loads(results.stdout) == []  # nothing was due at T in B
    assert f"database {dbname(b)} on " in results.stderr.splitlines()[0]


def test_without_database_url_every_command_uses_the_saved_block(saved_block, two_databases, prefect_api):
    """The other half of the rule: no explicit setting, so the block; the tick and the audit agree."""
    a, b = two_databases
    run = booking_cron("run", "--at", T.isoformat(), PREFECT_API_URL=prefect_api)
    assert run.returncode == 0, run.stdout + run.stderr
    assert tick_runs(a) == 1 and tick_runs(b) == 0
    assert f"database {dbname(a)} on " in run.stdout.splitlines()[0] and "block booking-cron-db" in run.stdout
    audit = booking_cron("audit", PREFECT_API_URL=prefect_api)
    assert audit.returncode == 0 and f"database {dbname(a)} on " in audit.stdout.splitlines()[0], audit.stdout


def test_the_first_line_never_shows_the_password():
    from booking_cron.ops.wiring import Source, first_lines
    from booking_cron.storage.database import describe_database

    url = "postgresql://booking:s3cret-pw@db.example.com:6543/bookings?sslmode=require"
    assert describe_database(url) == "database bookings on db.example.com:6543 as booking"
    assert first_lines(Source(url, "DATABASE_URL")) == ["database bookings on db.example.com:6543 as booking (DATABASE_URL)"]


def test_a_socket_directory_is_named_as_short_as_it_can_be(tmp_path, monkeypatch):
    """The embedded server's socket directory, relative to where the command runs when it is inside it,
    so the first line fits 100 columns however deep the clone is."""
    from booking_cron.storage.database import describe_database

    sockets = tmp_path / "a-rather-long-folder-name-for-a-clone" / "booking-cron" / ".data" / "pg18"
    sockets.mkdir(parents=True)
    monkeypatch.chdir(sockets.parent.parent)
    assert describe_database(f"postgresql://owner@/bookings?host={sockets}") == "database bookings on .data/pg18 as owner"
    monkeypatch.chdir("/")
    assert describe_database("postgresql://owner@/bookings?host=/run/pg") == "database bookings on /run/pg as owner"


def test_the_flow_takes_from_blocks_only_what_its_environment_does_not_set(prefect_api, two_databases, monkeypatch):
    """The flow's side of the rule (load_blocks_into_environment), for the database and Twilio alike."""
    from blocks import DATABASE_BLOCK, TWILIO_BLOCK, load_blocks_into_environment
    from blocks.connections import register_blocks_from_environment

    a, b = two_databases
    monkeypatch.setenv("DATABASE_URL", a)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "ACsaved")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "saved-token")
    monkeypatch.setenv("TWILIO_API_URL", "http://127.0.0.1:9")
    try:
        assert register_blocks_from_environment() == [DATABASE_BLOCK, TWILIO_BLOCK]
        monkeypatch.setenv("DATABASE_URL", b)
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", "ACexplicit")
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", "explicit-token")
        monkeypatch.delenv("TWILIO_API_URL")
        assert load_blocks_into_environment(refresh=True) == []  # explicit settings win
        assert (os.environ["DATABASE_URL"], os.environ["TWILIO_AUTH_TOKEN"]) == (b, "explicit-token")
        assert "TWILIO_API_URL" not in os.environ  # nothing mixed in from the block

        monkeypatch.delenv("TWILIO_AUTH_TOKEN")  # half a Twilio setting is not an explicit one
        assert load_blocks_into_environment(refresh=True) == [TWILIO_BLOCK]
        assert (os.environ["TWILIO_ACCOUNT_SID"], os.environ["TWILIO_AUTH_TOKEN"]) == ("ACsaved", "saved-token")
        assert os.environ["DATABASE_URL"] == b

        # a blank BOOKING_CRON_EMBEDDED_DATABASE names no database, for the flow as for every command
        # (config.embedded_database; the flow's own copy of that read took it as explicit)
        monkeypatch.delenv("DATABASE_URL")
        monkeypatch.setenv("BOOKING_CRON_EMBEDDED_DATABASE", "  ")
        assert load_blocks_into_environment(refresh=True) == [DATABASE_BLOCK, TWILIO_BLOCK]
        # the block keeps the URL as SQLAlchemy spells it (a socket directory percent-encoded): the same database
        assert conninfo_to_dict(os.environ["DATABASE_URL"]) == conninfo_to_dict(a)
    finally:
        delete_saved_blocks()
