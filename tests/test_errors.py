"""When the database refuses: the installed `booking-cron` prints one or two lines on stderr naming
host and database (never the password) and what to do, exits 1 at once (not after the pool's
timeout), and shows a traceback only with --debug or BOOKING_CRON_DEBUG=1.

Each case runs the real command as a subprocess with BOOKING_CRON_DB_TIMEOUT far above the
subprocess timeout: a command that waited for the pool would be killed, not pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from booking_cron.storage import database, schema
from tests.conftest import free_port

DB_TIMEOUT = "60"   # what a command that waited for the pool would wait
DEADLINE = 30       # seconds the command may take: startup and imports, never the pool's timeout
PASSWORD = "s3cret-" + uuid.uuid4().hex[:8]
T = "2026-11-24T09:00:00+00:00"


def booking_cron(*args: str, url: str, **extra: str) -> subprocess.CompletedProcess:
    """The installed console script (the venv's bin/booking-cron) as an operator runs it."""
    script = Path(sys.executable).parent / "booking-cron"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "booking_cron"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOOKING_CRON_", "PYTEST_"))}
    env.update(DATABASE_URL=url, BOOKING_CRON_DB_TIMEOUT=DB_TIMEOUT, COLUMNS="80", **extra)
    return subprocess.run(command + list(args), capture_output=True, text=True, env=env, timeout=DEADLINE)


def assert_refusal(done: subprocess.CompletedProcess, *names: str) -> None:
    """Exit 1, at most two lines on stderr naming each of `names`, no traceback, no password."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, f"exit {done.returncode}:\n{done.stderr[-3000:]}"
    assert 1 <= len(lines) <= 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "╭" not in done.stderr, done.stderr[-3000:]
    assert PASSWORD not in done.stderr + done.stdout
    for name in names:
        assert name in lines[0], (name, done.stderr)


def as_user(url: str, user: str, password: str = PASSWORD) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc.rpartition('@')[2]}"))


def host_of(url: str) -> str:
    """How the message names the server: host:port from the URL, or the socket directory."""
    params = psycopg.conninfo.conninfo_to_dict(url)
    host = params.get("host") or ""
    return f"{host}:{params['port']}" if params.get("port") and not host.startswith("/") else host


@pytest.mark.parametrize("command", [["audit"], ["db", "upgrade"], ["results"], ["run", "--at", T]],
                         ids=["audit", "db-upgrade", "results", "run"])
def test_a_refused_connection_fails_at_once_in_two_lines(command):
    port = free_port()  # bound and released: nothing listens there
    done = booking_cron(*command, url=f"postgresql://booking:{PASSWORD}@127.0.0.1:{port}/bookings_nowhere")
    assert_refusal(done, f"127.0.0.1:{port}", "bookings_nowhere", "connection refused")
    assert "DATABASE_URL" in done.stderr  # what to do


def test_run_json_says_failed_when_the_database_refuses():
    done = booking_cron("run", "--at", T, "--json", url=f"postgresql://booking@127.0.0.1:{free_port()}/nowhere")
    assert_refusal(done, "nowhere")
    payload = json.loads(done.stdout)
    assert payload["state"] == "Failed" and payload["flow_run_id"] is None
    assert "connection refused" in payload["error"]


def test_a_database_that_does_not_exist(server_url):
    name = f"booking_cron_missing_{uuid.uuid4().hex[:8]}"
    done = booking_cron("audit", url=database.with_database(server_url, name))
    assert_refusal(done, f'database "{name}" does not exist', host_of(server_url))


def test_usage_errors_keep_typer_exit_2():
    done = booking_cron("audit", "--no-such-option", url="postgresql://booking@127.0.0.1:1/nowhere")
    assert done.returncode == 2 and "No such option" in done.stderr


@pytest.mark.parametrize("how", ["--debug", "BOOKING_CRON_DEBUG=1"])
def test_debug_shows_the_traceback(how):
    url = f"postgresql://booking:{PASSWORD}@127.0.0.1:{free_port()}/bookings_nowhere"
    done = (booking_cron("--debug", "audit", url=url) if how == "--debug"
            else booking_cron("audit", url=url, BOOKING_CRON_DEBUG="1"))
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "DatabaseUnavailable" in done.stderr, done.stderr[-3000:]
    assert PASSWORD not in done.stderr  # no locals in the traceback


def test_safe_url_hides_the_password_of_a_key_value_string():
    assert database.safe_url(f"host=db port=5432 dbname=app user=u password={PASSWORD}") == \
        "host=db port=5432 dbname=app user=u password=***"
    assert database.safe_url(f"postgresql://u:{PASSWORD}@db:5432/app") == "postgresql://u:***@db:5432/app"


class Stranger:
    """A login role with no privileges, and two databases of the superuser: one empty, one with
    booking-cron installed (URLs as the role; `admin` gives the superuser's URL of a database)."""

    def __init__(self, server_url: str):
        suffix = uuid.uuid4().hex[:8]
        self.server_url, self.role = server_url, f"booking_cron_stranger_{suffix}"
        self.empty_name, self.installed_name = f"booking_cron_empty_{suffix}", f"booking_cron_installed_{suffix}"
        self.empty = as_user(database.with_database(server_url, self.empty_name), self.role)
        self.installed = as_user(database.with_database(server_url, self.installed_name), self.role)

    def admin(self, name: str) -> str:
        return database.with_database(self.server_url, name)


@pytest.fixture(scope="module")
def stranger(server_url):
    s = Stranger(server_url)
    with psycopg.connect(server_url, autocommit=True) as conn:
        if not conn.execute("select rolsuper or rolcreaterole from pg_roles where rolname = current_user").fetchone()[0]:
            pytest.skip("the server URL's role may not create roles")
        conn.execute(sql.SQL("create role {} login password {}").format(sql.Identifier(s.role), sql.Literal(PASSWORD)))
    try:
        for name in (s.empty_name, s.installed_name):
            with psycopg.connect(database.create_database(server_url, name), autocommit=True) as conn:
                conn.execute("revoke create on schema public from public")  # PostgreSQL 15's default, made sure of
        schema.upgrade(s.admin(s.installed_name))
        yield s
    finally:
        database.close_pools()
        for name in (s.empty_name, s.installed_name):
            database.drop_database(server_url, name)
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(s.role)))


def test_db_upgrade_without_create_on_the_schema_names_privilege_and_object(stranger):
    done = booking_cron("db", "upgrade", url=stranger.empty)
    assert_refusal(done, "permission denied for schema public", stranger.role, stranger.empty_name,
                   host_of(stranger.server_url))
    assert f"grant create on schema public to {stranger.role}" in done.stderr


def test_a_command_without_privileges_on_the_tables_names_the_object(stranger):
    """PostgreSQL's own message, whichever table the command reads first."""
    done = booking_cron("audit", url=stranger.installed)
    assert_refusal(done, "permission denied for table", stranger.installed_name, host_of(stranger.server_url))


def test_db_upgrade_by_a_role_that_did_not_install_it(stranger):
    """CREATE on the schema, but the migration lock is the installer's: yoyo-migrations would retry
    for 10 s and then report the lock table missing or "Database locked"."""
    with psycopg.connect(stranger.admin(stranger.installed_name), autocommit=True) as conn:
        conn.execute(sql.SQL("grant create on schema public to {}").format(sql.Identifier(stranger.role)))
    try:
        done = booking_cron("db", "upgrade", url=stranger.installed)
    finally:
        with psycopg.connect(stranger.admin(stranger.installed_name), autocommit=True) as conn:
            conn.execute(sql.SQL("revoke create on schema public from {}").format(sql.Identifier(stranger.role)))
    assert_refusal(done, "permission denied for table", "yoyo_lock", stranger.role, stranger.installed_name)


PREFECT_COMMANDS = {
    "run": ["run", "--at", T],
    "backfill": ["backfill", "--start", T, "--end", "2026-11-24T10:00:00+00:00"],
    "deploy": ["deploy"],
    "serve": ["serve"],
}


@pytest.mark.parametrize("command", list(PREFECT_COMMANDS.values()), ids=list(PREFECT_COMMANDS))
def test_an_unreachable_prefect_api_is_two_lines_naming_the_url(command, database_url):
    """A stopped Prefect server (PREFECT_API_URL at a closed port): two lines, the URL in the first."""
    api = f"http://127.0.0.1:{free_port()}/api"
    done = booking_cron(*command, url=database_url, PREFECT_API_URL=api)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, f"exit {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    assert len(lines) == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "╭" not in done.stderr, done.stderr[-3000:]
    assert api in lines[0] and "cannot reach the Prefect API" in lines[0] and "refused" in lines[0].lower()
    assert "PREFECT_API_URL" in lines[1]  # what to do


@pytest.mark.parametrize("command", [["doctor"], ["seed"], ["backfill", "--start", T, "--end", "2026-11-24T10:00:00+00:00"]],
                         ids=["doctor", "seed", "backfill"])
def test_every_database_command_fails_at_once_on_a_refused_connection(command):
    port = free_port()
    done = booking_cron(*command, url=f"postgresql://booking:{PASSWORD}@127.0.0.1:{port}/bookings_nowhere")
    assert_refusal(done, f"127.0.0.1:{port}", "bookings_nowhere", "connection refused")


def test_every_zero_says_it_must_be_longer_than_zero():
    done = booking_cron("backfill", "--start", T, "--end", "2026-11-24T10:00:00+00:00", "--every", "0m",
                        url="postgresql://booking@127.0.0.1:1/nowhere")
    said = " ".join(done.stderr.replace("│", " ").split())  # typer's usage panel wraps at 80 columns
    assert done.returncode == 2 and "--every must be longer than zero" in said and "look like" not in said, said
