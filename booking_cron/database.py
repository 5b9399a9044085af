"""Connections to the bookings database: DATABASE_URL, or an embedded PostgreSQL under .data/."""

from __future__ import annotations

import os
import threading
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from booking_cron import config

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()
_embedded = {}
_statements = [0]  # statements sent through CountingConnection, process-wide (the bench reads it)
_statements_lock = threading.Lock()


def _count(n: int) -> None:
    with _statements_lock:
        _statements[0] += n


class _CountingCursor(psycopg.Cursor):
    def execute(self, query, params=None, **kwargs):
        _count(1)
        return super().execute(query, params, **kwargs)

    def executemany(self, query, params_seq, **kwargs):
        params_seq = list(params_seq)
        _count(len(params_seq))
        return super().executemany(query, params_seq, **kwargs)

    def copy(self, statement, params=None, **kwargs):
        _count(1)
        return super().copy(statement, params, **kwargs)


class CountingConnection(psycopg.Connection):
    """A connection that counts the statements its cursors send (execute, executemany rows, COPY).

    Opt-in: pools use it only when BOOKING_CRON_COUNT_STATEMENTS=1 is set when they are created.
    BEGIN/COMMIT that psycopg sends for `conn.transaction()` are not counted."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cursor_factory = _CountingCursor


def statements_sent() -> int:
    """Statements sent so far by CountingConnections in this process."""
    return _statements[0]


def embedded_url(data_dir: Path | None = None) -> str:
    """Start (or attach to) the embedded server; pgserver ships the PostgreSQL binaries."""
    with warnings.catch_warnings():
        # pgserver asks platformdirs for a runtime directory at import; without XDG_RUNTIME_DIR
        # (containers, CI) it warns and uses /tmp/runtime-<uid>, which is fine for the server
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
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


@contextmanager
def scratch_prefect_database(server: str) -> Iterator[str]:
    """A new database on `server` for a Prefect API server (SQLAlchemy asyncpg URL), with the
    `pg_trgm` extension Prefect needs; dropped afterwards. Raises if the server lacks pg_trgm."""
    import uuid

    name = f"prefect_scratch_{uuid.uuid4().hex[:10]}"
    url = create_database(server, name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create extension if not exists pg_trgm")
        yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        drop_database(server, name)


def resolve_url(url: str | None = None) -> str:
    return url or config.database_url_from_env() or embedded_url()


def pool(url: str | None = None) -> ConnectionPool:
    """One small pool per database per process: tasks in threads reuse connections."""
    url = resolve_url(url)
    with _lock:
        if url not in _pools:
            _pools[url] = ConnectionPool(
                url, min_size=1, max_size=16, open=True, name="booking-cron", timeout=config.db_timeout(),
                connection_class=CountingConnection if os.environ.get("BOOKING_CRON_COUNT_STATEMENTS") == "1"
                else psycopg.Connection,
                kwargs={"connect_timeout": max(1, int(config.db_timeout()))},
            )
        return _pools[url]


class DatabaseUnavailable(RuntimeError):
    """The bookings database could not be reached (the message names it, without the password)."""


def safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


@contextmanager
def connection(url: str | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection; the transaction commits on success and rolls back on error."""
    url = resolve_url(url)
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(pool(url).connection())
        except PoolTimeout as error:
            raise DatabaseUnavailable(f"cannot reach the bookings database at {safe_url(url)} "
                                      f"within {config.db_timeout():g} s: {error}") from None
        try:
            yield conn
        except psycopg.OperationalError:
            # The server may have restarted: drop every dead idle connection now, so that the
            # task's retry gets a live one instead of the next dead one.
            pool(url).check()
            raise


@contextmanager
def transaction(url: str | None = None, dry_run: bool = False) -> Iterator[psycopg.Cursor]:
    """A cursor in its own transaction; with dry_run the transaction is rolled back at the end."""
    with connection(url) as conn:
        with conn.transaction():
            with conn.cursor() as cur:
                yield cur
                if dry_run:
                    raise psycopg.Rollback()


def close_pools() -> None:
    with _lock:
        for p in _pools.values():
            p.close()
        _pools.clear()
