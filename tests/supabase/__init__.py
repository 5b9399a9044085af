"""A database faithful to the app's on Supabase, for tests that live beside it.

`load(url)` builds it in a fresh database from this folder's SQL (Supabase's roles, auth.uid() and
default grants; the app's tables, policies and functions). `api(conn, role, user)` acts the way
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

import psycopg

SQL_FILES = sorted(Path(__file__).parent.glob("*.sql"))


def load(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for path in SQL_FILES:
            conn.execute(path.read_text())


@contextmanager
def app_database(server_url: str, prefix: str) -> Iterator[str]:
    """A new database built like the app's, dropped afterwards; yields its URL."""
    from booking_cron import database

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    url = database.create_database(server_url, name)
    try:
        load(url)
        yield url
    finally:
        database.drop_database(server_url, name)


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
