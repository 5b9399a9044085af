"""Databases as a hosting provider hands them out: empty, owned by a login role that is not a
superuser (CREATEROLE only, as Supabase's `postgres` or RDS's master user). The cluster superuser
(the tests' server URL) creates the role and the database and does nothing else; booking-cron is
installed and run as the owner.
"""

from __future__ import annotations

import uuid
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from booking_cron.storage import database

OWNER = "booking_cron_test_owner"


def as_role(url: str, role: str) -> str:
    """The same server and database, logged in as `role` (trust authentication, no password)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


def as_superuser(server_url: str, url: str) -> str:
    """The cluster superuser's URL for the database of `url`."""
    return database.with_database(server_url, urlsplit(url).path.lstrip("/"))


def ensure_owner(server_url: str) -> str:
    """The provider's owner role: LOGIN CREATEROLE, never SUPERUSER, BYPASSRLS or CREATEDB."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        try:
            conn.execute(sql.SQL("create role {} login createrole").format(sql.Identifier(OWNER)))
        except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
            pass  # an earlier or concurrent session made it
        # PostgreSQL 16+ lets a CREATEROLE role grant only roles it administers; booking_cron_tick may
        # have been created by another owner of this cluster (on 15, CREATEROLE may grant any role)
        if conn.info.server_version >= 160000 and conn.execute(
                "select 1 from pg_roles where rolname = 'booking_cron_tick'").fetchone():
            conn.execute(sql.SQL("grant booking_cron_tick to {} with admin option").format(sql.Identifier(OWNER)))
    return OWNER


@contextmanager
def owned_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new empty database owned by the provider's owner role; yields its URL as that owner."""
    owner = ensure_owner(server_url)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {} owner {}").format(sql.Identifier(name), sql.Identifier(owner)))
    try:
        yield as_role(database.with_database(server_url, name), owner)
    finally:
        database.close_pools()
        database.drop_database(server_url, name)
