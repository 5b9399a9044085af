"""booking_cron/schema.sql is the schema `db upgrade` makes: regenerated from a fresh upgrade of an
empty database, it must read the same, on the machine's PostgreSQL and on the embedded one alike.

`make schema` regenerates it (`python -m tests.test_schema_file`, on DATABASE_URL's server or the
embedded one).
"""

from __future__ import annotations

import os
import sys

import psycopg
from psycopg import sql

from booking_cron.storage import database, schema
from booking_cron.storage.schema_text import schema_text
from tests import hosting

SCHEMA_FILE = schema.MIGRATIONS_DIR.parent / "schema.sql"  # booking_cron/schema.sql
REGENERATE = "make schema"


# Supabase's API roles: cluster-wide, so whether they exist depends on what ran on the server before
# (tests/supabase creates them). `db upgrade` grants and denies them what they may do when they exist;
# the file is made with them, as on Supabase.
API_ROLES = ("anon", "authenticated", "service_role")


def ensure_api_roles(server_url: str) -> None:
    """Create the API roles where missing, as tests/supabase/01_platform.sql does (the superuser)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        for role in API_ROLES:
            try:
                conn.execute(sql.SQL("create role {} nologin noinherit").format(sql.Identifier(role)))
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                pass  # made earlier, or by a concurrent session


def fresh_schema(server_url: str) -> str:
    """The schema text of a new empty database, owned as a hosting provider hands one out and
    upgraded by its owner (tests/hosting.py), on a server with Supabase's API roles."""
    ensure_api_roles(server_url)
    with hosting.owned_database(server_url, "booking_cron_schema_file") as url:
        schema.upgrade(url)
        with psycopg.connect(url) as conn:
            return schema_text(conn)


def test_schema_file_is_what_upgrade_makes(server_url):
    checked_in = SCHEMA_FILE.read_text() if SCHEMA_FILE.exists() else ""
    made = fresh_schema(server_url)
    assert made == checked_in, (
        f"booking_cron/{SCHEMA_FILE.name} is not the schema a fresh `db upgrade` makes (a migration changed it): "
        f"regenerate it with `{REGENERATE}` and commit it with the migration")


if __name__ == "__main__":  # `make schema`
    SCHEMA_FILE.write_text(fresh_schema(os.environ.get("DATABASE_URL") or database.embedded_url()))
    print(f"wrote {SCHEMA_FILE}", file=sys.stderr)
