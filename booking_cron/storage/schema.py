"""`db upgrade`: applies the SQL migrations in booking_cron/migrations with yoyo-migrations, as the
database owner, who need not be a superuser (hosted PostgreSQL never gives one)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from yoyo import get_backend, read_migrations

from booking_cron.storage.database import DatabaseRefused, connect, require_create, safe_url

MIGRATIONS_DIR = Path(__file__).parent.parent / "migrations"

# What booking-cron creates in `public`: the app's tables where they are missing (0001), its own
# tables, the migration tool's, and its functions (the app's callable ones and its helpers); and
# everything in its own schema `booking_cron`.
CREATED_TABLES = ("orgs", "booking_settings", "clients", "client_purchases", "bookings", "session_usage",
                  "sms_settings", "sms_schedules", "sms_messages", "sms_suppression",
                  "tick_runs", "tick_results", "tick_completions", "sms_inbound",
                  "_yoyo_migration", "_yoyo_log", "_yoyo_version", "yoyo_lock")
# booking-cron's functions in `public` besides its booking_cron_* helpers (doctor checks who may run them)
FUNCTIONS = ("use_sessions", "release_sessions", "use_session", "release_session", "complete_booking")

# booking-cron's objects that a superuser owns: from an upgrade that a superuser ran. A database
# owner who is not one cannot change them (`must be owner of ...`), and a superuser's security
# definer functions run with every privilege there is.
SUPERUSER_OWNED = r"""
select 'schema' as kind, quote_ident(n.nspname) as name, o.rolname as owner
from pg_catalog.pg_namespace n
join pg_catalog.pg_roles o on o.oid = n.nspowner
where n.nspname = 'booking_cron' and o.rolsuper
union all
select 'table', c.oid::regclass::text, o.rolname
from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
join pg_catalog.pg_roles o on o.oid = c.relowner
where c.relkind in ('r', 'p') and o.rolsuper
  and ((n.nspname = 'public' and c.relname = any(%(tables)s)) or n.nspname = 'booking_cron')
union all
select 'function', p.oid::regprocedure::text, o.rolname
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
join pg_catalog.pg_roles o on o.oid = p.proowner
where o.rolsuper
  and ((n.nspname = 'public' and (p.proname = any(%(functions)s) or p.proname like 'booking\_cron\_%%'))
       or n.nspname = 'booking_cron')
  and not exists (select 1 from pg_catalog.pg_depend d
                  where d.classid = 'pg_catalog.pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
order by 1 desc, 2
"""


@dataclass(frozen=True)
class Ownership:
    """Who owns the database, who is connected, and which of booking-cron's objects a superuser owns
    while the database owner is not one (an earlier upgrade run as a superuser)."""

    database_owner: str
    owner_is_superuser: bool
    user: str
    user_is_superuser: bool
    superuser_owned: list[tuple[str, str, str]]  # (kind, name, owner)

    @property
    def misowned(self) -> list[tuple[str, str, str]]:
        return [] if self.owner_is_superuser else self.superuser_owned


class OwnedBySuperuser(DatabaseRefused):
    """booking-cron's objects belong to a superuser; only a superuser can give them to the owner."""


def ownership(conn: psycopg.Connection) -> Ownership:
    row = conn.execute(
        """select o.rolname, o.rolsuper, u.rolname, u.rolsuper
           from pg_catalog.pg_database d
           join pg_catalog.pg_roles o on o.oid = d.datdba
           join pg_catalog.pg_roles u on u.rolname = current_user
           where d.datname = current_database()""").fetchone()
    assert row is not None  # the current database's row
    owner, owner_super, user, user_super = row
    found = conn.execute(SUPERUSER_OWNED, {"tables": list(CREATED_TABLES), "functions": list(FUNCTIONS)}).fetchall()
    return Ownership(owner, owner_super, user, user_super, [tuple(row) for row in found])


def hand_to_owner(conn: psycopg.Connection, own: Ownership) -> None:
    """Give the database owner what a superuser's upgrade left owned by the superuser."""
    for kind, name, _ in own.misowned:
        conn.execute(sql.SQL("alter {} {} owner to {}").format(
            sql.SQL(kind), sql.SQL(name), sql.Identifier(own.database_owner)))


def misowned_fix(own: Ownership) -> str:
    return (f"run `booking-cron db upgrade` once with DATABASE_URL naming a superuser (it gives them to "
            f"{own.database_owner}), then as {own.database_owner} as usual")


def misowned_message(own: Ownership, shown: int = 4) -> str:
    names = ", ".join(f"{kind} {name}" for kind, name, _ in own.misowned[:shown])
    more = f" and {len(own.misowned) - shown} more" if len(own.misowned) > shown else ""
    owners = ", ".join(sorted({owner for _, _, owner in own.misowned}))
    verb = "belongs" if len(own.misowned) == 1 else "belong"
    return f"{names}{more} of booking-cron {verb} to superuser {owners}, not to the database owner {own.database_owner}"


def _yoyo_url(url: str) -> str:
    # yoyo picks its driver from the scheme: postgresql+psycopg is psycopg 3.
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    raise ValueError("DATABASE_URL must be a postgresql:// URL")


def _yoyo_url_as(url: str, role: str | None) -> str:
    """yoyo's URL; with `role`, every connection it opens (it opens one per migration) acts as that role."""
    yoyo_url = _yoyo_url(url)
    if role is None:
        return yoyo_url
    parts = urlsplit(yoyo_url)
    options = "-c role=" + role.replace("\\", "\\\\").replace(" ", "\\ ")
    query = urlencode([*parse_qsl(parts.query), ("options", options)])
    return urlunsplit(parts._replace(query=query))


def upgrade(url: str, what: str = "db upgrade") -> list[str]:
    """Apply every migration not applied yet; returns their ids. Safe to repeat. `what` names the
    command in the one-line errors (DatabaseRefused) raised when the role may not upgrade.

    Everything is created by the database owner: run by a superuser, the upgrade acts as the owner
    (every connection sets `role`) and first gives the owner what an earlier superuser's upgrade left to the superuser;
    run by the owner, it stops with the one command that fixes such objects.
    The post-apply hooks (the API lockdown) run every time, even with nothing pending: an upgrade
    also takes back what default privileges or a hand-made grant opened since the last one."""
    with connect(url, autocommit=True) as conn:
        own = ownership(conn)
        if own.misowned:
            if not own.user_is_superuser:
                raise OwnedBySuperuser(f"{what} on {safe_url(url)}: {misowned_message(own)}", misowned_fix(own))
            hand_to_owner(conn, own)
        require_create(conn, url, what)
    acting_as = own.database_owner if own.user_is_superuser and not own.owner_is_superuser else None
    backend = get_backend(_yoyo_url_as(url, acting_as))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations_only(pending)
            backend.run_post_apply(migrations)
    finally:
        backend.connection.close()
    return [m.id for m in pending]
