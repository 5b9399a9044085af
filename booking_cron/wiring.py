"""Where the bookings database comes from, one rule for every command and the flow, and the line
that names it.

Explicit settings win over saved Prefect blocks: DATABASE_URL, else the `booking-cron-db` block
on the Prefect API (which `deploy` or `blocks register` saved), else the embedded PostgreSQL. Twilio
follows the same rule (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, else the `booking-cron-twilio`
block; see blocks/connections.py). Every command that touches a database or a Prefect API says
which one in its first lines: host, port, database and user, never the password.
"""

from __future__ import annotations

import os

from dataclasses import dataclass

import psycopg

from booking_cron import config, database
from booking_cron.prefect_api import Api


@dataclass(frozen=True)
class Source:
    """A bookings database URL and where it came from."""

    url: str
    origin: str


def describe_database(url: str) -> str:
    """`database NAME on HOST:PORT as USER`: what the first line says (never the password)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return f"database {database.safe_url(url)}"
    host = str(params.get("host") or "localhost")
    if host.startswith("/"):  # a socket directory: the embedded server's is named from the clone it is in
        inside = os.path.relpath(host)
        where = inside if os.getcwd() != "/" and not inside.startswith("..") else host
    else:
        where = f"{host}:{params['port']}" if params.get("port") else host
    user = f" as {params['user']}" if params.get("user") else ""
    return f"database {params.get('dbname') or params.get('user') or '?'} on {where}{user}"


def saved_database_url() -> str | None:
    """The `booking-cron-db` block's URL on the Prefect API this process uses, None without one."""
    from blocks.connections import saved_database_url as saved

    return saved()


def explicit_database() -> bool:
    """Whether the environment names the database itself: DATABASE_URL, or a database on the
    embedded server (BOOKING_CRON_EMBEDDED_DATABASE, as the demo's `results` hint does)."""
    return bool(config.database_url_from_env() or config.embedded_database())


def database_source(api: Api | None) -> Source:
    """The bookings database by the rule: DATABASE_URL (or BOOKING_CRON_EMBEDDED_DATABASE), else the
    saved block on `api`, else the embedded server."""
    if url := config.database_url_from_env():
        return Source(url, "DATABASE_URL")
    if config.embedded_database():
        return Source(database.resolve_url(), f"embedded PostgreSQL in {config.data_dir()}, "
                                              "BOOKING_CRON_EMBEDDED_DATABASE")
    if api is not None and (url := saved_database_url()):
        from blocks import DATABASE_BLOCK

        return Source(url, f"Prefect block {DATABASE_BLOCK}")
    return Source(database.resolve_url(), f"embedded PostgreSQL in {config.data_dir()}")


def first_lines(source: Source | None = None, api: Api | None = None) -> list[str]:
    """What a command prints first: `database NAME on HOST:PORT as USER (origin)`, then
    `Prefect API URL (origin)`; each fits a 100-column terminal for ordinary names."""
    return ([f"{describe_database(source.url)} ({source.origin})"] if source else []) + ([api.describe()] if api else [])
