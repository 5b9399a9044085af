"""Connections to the bookings database: DATABASE_URL, or an embedded PostgreSQL under .data/."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool

from booking_cron import config

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()
_embedded = {}


def embedded_url(data_dir: Path | None = None) -> str:
    """Start (or attach to) the embedded server; pgserver ships the PostgreSQL binaries."""
    import pgserver

    path = (data_dir or config.data_dir()) / "pg"
    path.mkdir(parents=True, exist_ok=True)
    key = str(path.resolve())
    if key not in _embedded:
        _embedded[key] = pgserver.get_server(path)
    return _embedded[key].get_uri()


def with_database(url: str, dbname: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def create_database(url: str, dbname: str, *, replace: bool = False) -> str:
    """Create `dbname` on the server of `url` (dropping it first if asked); returns its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        if replace:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
    return with_database(url, dbname)


def drop_database(url: str, dbname: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(dbname)))


def resolve_url(url: str | None = None) -> str:
    return url or config.database_url_from_env() or embedded_url()


def pool(url: str | None = None) -> ConnectionPool:
    """One small pool per database per process: tasks in threads reuse connections."""
    url = resolve_url(url)
    with _lock:
        if url not in _pools:
            _pools[url] = ConnectionPool(
                url, min_size=1, max_size=16, open=True, name="booking-cron", timeout=config.db_timeout(),
                kwargs={"connect_timeout": max(1, int(config.db_timeout()))},
            )
        return _pools[url]


@contextmanager
def connection(url: str | None = None) -> Iterator[psycopg.Connection]:
    with pool(url).connection() as conn:
        yield conn


def close_pools() -> None:
    with _lock:
        for p in _pools.values():
            p.close()
        _pools.clear()
