"""A database faithful to the app's on Supabase, for tests that live beside it.

`load(server_url, url)` builds it in a fresh database from this folder's SQL: the platform's part
as the cluster superuser (Supabase's roles, auth.uid()), then, as the database owner (not a
superuser, as Supabase's `postgres`), its default grants and the app's tables, policies and functions. `api(conn, role, user)` acts the way
Supabase's API does: SET ROLE to `anon`, `authenticated` or `service_role` with the request's JWT
claims, in a transaction. The helpers below are the app's own writes, as its pages and edge
functions make them.
"""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

HERE = Path(__file__).parent
PLATFORM = HERE / "01_platform.sql"  # run by the superuser
APP = [HERE / "02_app_schema.sql", HERE / "03_app_functions.sql"]  # run by the owner, as the app's migrations

# Supabase keeps uuid-ossp in its `extensions` schema; a server without contrib (the embedded one)
# gets a stand-in with the same name and result type.
UUID_OSSP_STAND_IN = """
create or replace function public.uuid_generate_v4() returns uuid language sql volatile
  as 'select pg_catalog.gen_random_uuid()'
"""


def load(server_url: str, url: str) -> None:
    """Build the app's database in the empty database at `url` (a URL of its owner); `server_url`
    is the cluster superuser's."""
    from tests.hosting import as_superuser

    parts = urlsplit(url)
    with psycopg.connect(as_superuser(server_url, url), autocommit=True) as conn:
        conn.execute(PLATFORM.read_text())
        if conn.execute("select exists (select from pg_available_extensions where name = 'uuid-ossp')").fetchone()[0]:
            conn.execute('create extension if not exists "uuid-ossp" with schema public')
        else:
            conn.execute(UUID_OSSP_STAND_IN)
        # Supabase's `postgres` may switch to the API roles (SET ROLE), as its API's authenticator does
        owner = sql.Identifier(parts.username)
        conn.execute(sql.SQL("grant anon, authenticated, service_role to {}").format(owner))
        conn.execute(sql.SQL("grant usage on schema auth to {0}; grant all on all tables in schema auth to {0}").format(owner))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("alter default privileges in schema public grant all on tables to anon, authenticated, service_role")
        conn.execute("alter default privileges in schema public grant all on sequences to anon, authenticated, service_role")
        conn.execute("alter default privileges in schema public grant all on functions to anon, authenticated, service_role")
        for path in APP:
            conn.execute(path.read_text())


@contextmanager
def app_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database built like the app's by its owner (not a superuser), dropped afterwards;
    yields its URL as that owner."""
    from tests.hosting import owned_database

    with owned_database(server_url, prefix) as url:
        load(server_url, url)
        yield url


@contextmanager
def rest(url: str, role: str, user: str | None = None) -> Iterator[psycopg.Connection]:
    """One request exactly as PostgREST makes it: logged in as `authenticator`, in a transaction,
    `set local role` and the JWT claims, then the request's one statement (run it on what this yields)."""
    from tests.hosting import as_role

    with psycopg.connect(as_role(url, "authenticator"), autocommit=True) as conn:
        with api(conn, role, user):
            yield conn


@contextmanager
def api(conn: psycopg.Connection, role: str, user: str | None = None) -> Iterator[psycopg.Connection]:
    """One API request: its own transaction as `role` (with `user` as auth.uid()), rolled back on error."""
    claims = {"role": role, **({"sub": user} if user else {})}
    with conn.transaction():
        conn.execute(f"set local role {role}")
        conn.execute("select set_config('request.jwt.claims', %s, true)", (json.dumps(claims),))
        yield conn


@dataclass(frozen=True)
class Org:
    id: str
    trainer: str  # auth user id of a member (owner)
    offer: str


def org(conn: psycopg.Connection, name: str, *, sms: bool = False, phone: str = "+61280000001") -> Org:
    """An org as sign-up makes it (owner membership, booking settings, a pack offer)."""
    org_id, trainer = str(uuid.uuid4()), str(uuid.uuid4())
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (trainer, f"{trainer}@example.com"))
    conn.execute("insert into orgs (id, name, slug) values (%s, %s, %s)", (org_id, name, org_id))
    conn.execute("insert into org_members (org_id, user_id, role) values (%s, %s, 'owner')", (org_id, trainer))
    conn.execute("insert into booking_settings (org_id) values (%s)", (org_id,))
    conn.execute("insert into sms_settings (org_id, enabled, twilio_phone_number, quiet_hours_start, quiet_hours_end) "
                 "values (%s, %s, %s, 0, 0)", (org_id, sms, phone))
    offer = conn.execute("insert into offers (org_id, name, offer_type, price_cents, sessions_included) "
                         "values (%s, '10 pack', 'session_pack', 90000, 10) returning id::text", (org_id,)).fetchone()[0]
    return Org(org_id, trainer, offer)


def client(conn: psycopg.Connection, org: Org, name: str = "Mia Chen", phone: str = "+61412345678") -> str:
    return conn.execute("insert into clients (org_id, full_name, phone) values (%s, %s, %s) returning id::text",
                        (org.id, name, phone)).fetchone()[0]


def add_package(conn: psycopg.Connection, org: Org, client_id: str, total: int = 10, used: int = 0,
                as_role: str = "authenticated") -> str:
    """The client page's "Add package" (a trainer) or the Stripe webhook (service_role): a direct insert."""
    with api(conn, as_role, org.trainer if as_role == "authenticated" else None):
        return conn.execute(
            """insert into client_purchases (org_id, client_id, offer_id, amount_paid_cents, sessions_total,
                                              sessions_used, payment_status, payment_method)
               values (%s, %s, %s, 90000, %s, %s, 'succeeded', 'card') returning id::text""",
            (org.id, client_id, org.offer, total, used)).fetchone()[0]


def edit_package(conn: psycopg.Connection, org: Org, pack: str, used: int, total: int = 10) -> None:
    """The client page's "Edit package" form: writes sessions_used as typed."""
    with api(conn, "authenticated", org.trainer):
        conn.execute("update client_purchases set sessions_total = %s, sessions_used = %s, payment_status = 'succeeded' "
                     "where id = %s", (total, used, pack))


def use_one(conn: psycopg.Connection, org: Org, pack: str) -> bool:
    """ "Use 1 Session" (and the calendar's auto-complete after marking a booking completed)."""
    with api(conn, "authenticated", org.trainer):
        return conn.execute("select use_session(%s::uuid)", (pack,)).fetchone()[0]


def reinstate(conn: psycopg.Connection, org: Org, pack: str) -> int:
    """ "Reinstate": give one session back to the pack; -1 when there was none to give back."""
    with api(conn, "authenticated", org.trainer):
        return conn.execute("select release_session(%s::uuid)", (pack,)).fetchone()[0]


def cancel(conn: psycopg.Connection, org: Org, booking: str) -> None:
    """The calendar's cancel (the app writes the status; cancelled_at is stamped for it)."""
    with api(conn, "authenticated", org.trainer):
        conn.execute("update bookings set status = 'cancelled' where id = %s", (booking,))


def client_user(conn: psycopg.Connection, client_id: str) -> str:
    """The client's own login (the client app signs them in): their auth user id."""
    user = str(uuid.uuid4())
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user, f"{user}@example.com"))
    conn.execute("update clients set auth_user_id = %s where id = %s", (user, client_id))
    return user


def client_sets_status(conn: psycopg.Connection, user: str, booking: str, status: str = "cancelled") -> int:
    """The client app's "Cancel Booking" (status 'cancelled'), or any status a client could write
    through the API with the same policy; the number of rows it changed."""
    with api(conn, "authenticated", user):
        return conn.execute("update bookings set status = %s, cancelled_at = now() where id = %s",
                            (status, booking)).rowcount


def queue_app_text(conn: psycopg.Connection, org: Org, client_id: str, booking: str, key: str,
                   sent: bool = False) -> None:
    """cron-sms-reminders (service_role): insert_sms_direct with the app's key; `sent` as its worker leaves it."""
    with api(conn, "service_role"):
        conn.execute("select insert_sms_direct(%s, %s, 'See you soon', now(), 'booking', %s, %s)",
                     (org.id, client_id, booking, key))
        if sent:
            conn.execute("update sms_messages set status = 'sent', sent_at = now() where idempotency_key = %s", (key,))


def sms_worker_takes(conn: psycopg.Connection) -> list[str]:
    """The rows the app's sms-worker would send now: queue_pending_sms(), then due 'queued' unlocked rows."""
    with api(conn, "service_role"):
        conn.execute("select queue_pending_sms()")
        return [k for (k,) in conn.execute(
            """select idempotency_key from sms_messages where status = 'queued' and scheduled_for <= now()
               and (locked_until is null or locked_until < now())""")]
