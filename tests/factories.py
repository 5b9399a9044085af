"""Small builders for test rows: each inserts one row with sensible defaults and returns its id."""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime, timedelta, timezone

import psycopg

from booking_cron.storage.shard_sql import org_shard_sql

T = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)


def org(conn: psycopg.Connection, name: str = "Peak Form PT", tz: str = "Australia/Brisbane",
        sms: bool | None = None, **sms_settings) -> str:
    org_id = str(uuid.uuid4())
    conn.execute("insert into orgs (id, name) values (%s, %s)", (org_id, name))
    conn.execute("insert into booking_settings (org_id, timezone) values (%s, %s)", (org_id, tz))
    if sms is not None:
        cols = {"enabled": sms, "twilio_phone_number": free_number(conn), "quiet_hours_start": 21,
                "quiet_hours_end": 8, **sms_settings}
        conn.execute(
            f"insert into sms_settings (org_id, {', '.join(cols)}) values (%s, {', '.join(['%s'] * len(cols))})",
            (org_id, *cols.values()))
    return org_id


def free_number(conn: psycopg.Connection) -> str:
    """+61280000001, or the next number no org's sms_settings name: each org texts from its own, as the
    platform gives them (booking_cron.senders, migration 0049), and the first org has that one."""
    taken = {n for (n,) in conn.execute(
        "select twilio_phone_number from sms_settings where twilio_phone_number like '+6128%'")}
    return next(number for i in itertools.count(1) if (number := f"+6128{i:07d}") not in taken)


def org_in_shard(conn: psycopg.Connection, shard: int, shards: int) -> str:
    """A new org whose id hashes to `shard` (0-based) of `shards`, as the tick's SQL hashes it."""
    while True:
        org_id = org(conn)
        if conn.execute(f"select {org_shard_sql('%s', '%s')}", (org_id, shards)).fetchone()[0] == shard:
            return org_id

def client(conn: psycopg.Connection, org_id: str, name: str = "Ava Nguyen", phone: str | None = "+61412345678",
           **cols) -> str:
    client_id = str(uuid.uuid4())
    values = {"id": client_id, "org_id": org_id, "full_name": name, "phone": phone, **cols}
    conn.execute(f"insert into clients ({', '.join(values)}) values ({', '.join(['%s'] * len(values))})",
                 tuple(values.values()))
    return client_id


def pack(conn: psycopg.Connection, org_id: str, client_id: str, total: int | None = 10, used: int = 0,
         expires_at: datetime | None = None, payment_status: str = "succeeded") -> str:
    """A pack with prior usage; the ledger's trigger records that usage ('opening')."""
    pack_id = str(uuid.uuid4())
    conn.execute(
        """insert into client_purchases (id, org_id, client_id, sessions_total, sessions_used, expires_at, payment_status)
           values (%s, %s, %s, %s, %s, %s, %s)""",
        (pack_id, org_id, client_id, total, used, expires_at, payment_status))
    return pack_id


def booking(conn: psycopg.Connection, org_id: str, client_id: str, purchase_id: str | None = None,
            start: datetime | None = None, minutes: int = 60, status: str = "confirmed", **cols) -> str:
    booking_id = str(uuid.uuid4())
    start = start or T - timedelta(hours=2)
    values = {"id": booking_id, "org_id": org_id, "client_id": client_id, "purchase_id": purchase_id,
              "start_time": start, "end_time": start + timedelta(minutes=minutes), "status": status, **cols}
    conn.execute(f"insert into bookings ({', '.join(values)}) values ({', '.join(['%s'] * len(values))})",
                 tuple(values.values()))
    return booking_id


def sessions_used(conn: psycopg.Connection, pack_id: str) -> int:
    return conn.execute("select sessions_used from client_purchases where id = %s", (pack_id,)).fetchone()[0]


def ledger_rows(conn: psycopg.Connection, booking_id: str) -> int:
    return conn.execute("select count(*) from session_usage where booking_id = %s", (booking_id,)).fetchone()[0]


def status(conn: psycopg.Connection, booking_id: str) -> str:
    return conn.execute("select status from bookings where id = %s", (booking_id,)).fetchone()[0]


def results(conn: psycopg.Connection, booking_id: str) -> list[tuple]:
    return conn.execute(
        "select step, outcome, reason from tick_results where booking_id = %s order by recorded_at, step",
        (booking_id,)).fetchall()
