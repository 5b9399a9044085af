"""Scenario data: seed() for a realistic background, plus controlled rows the bench counts on.

Deduction scenarios: `seed()` around T + 30 days (orgs, clients, packs, bookings in every
status; none of it due at T), then `n` confirmed bookings that ended between 9 days and 49 hours
before T, ten per pack on fresh paid 10-session packs of the seeded clients. Every one is due at
T and deducts cleanly, so each design does the same writes; they ended more than 48 h before T,
so the texts step finds no feedback request to plan (texts have their own scenario).

Texts scenario: one texting org (Brisbane, quiet 21:00-08:00, caps high), one pre_session
schedule 60 minutes before, and `n` confirmed bookings of `n` clients (distinct phones)
starting at T + 60 min: each reminder is due exactly at T.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

import psycopg

from bench.env import BACKGROUND_AT, T, analyze
from booking_cron.ops.seed import seed

SESSIONS_PER_PACK = 10
ORGS = 40  # enough orgs for four shards to get a share each


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _copy(cur: psycopg.Cursor, target: str, rows: list[tuple]) -> None:
    with cur.copy(f"copy public.{target} from stdin") as copy:
        for row in rows:
            copy.write_row(row)


def load_due(url: str, n: int, *, rng_seed: int = 11) -> dict:
    """Background from seed() plus `n` bookings due at T on healthy packs; deterministic per (n, seed)."""
    rng = random.Random(rng_seed)
    with psycopg.connect(url) as conn:
        counts = seed(conn, orgs=ORGS, clients=max(50, n // SESSIONS_PER_PACK), bookings=max(500, n // 10),
                      seed=7, at=BACKGROUND_AT)
        clients = conn.execute("select id, org_id from public.clients order by id").fetchall()
        packs, bookings = [], []
        for p in range(-(-n // SESSIONS_PER_PACK)):
            client_id, org_id = clients[p % len(clients)]
            pack_id = _uuid(rng)
            packs.append((pack_id, org_id, client_id, SESSIONS_PER_PACK, 0, T - timedelta(days=60), None, "succeeded"))
            for _ in range(min(SESSIONS_PER_PACK, n - p * SESSIONS_PER_PACK)):
                start = T - timedelta(hours=49) - timedelta(minutes=30 * rng.randrange(0, 7 * 48))
                bookings.append((_uuid(rng), org_id, client_id, pack_id, start, start + timedelta(minutes=60),
                                 "confirmed", True, None, "in_person"))
        with conn.transaction(), conn.cursor() as cur:
            _copy(cur, "client_purchases (id, org_id, client_id, sessions_total, sessions_used, purchased_at, "
                       "expires_at, payment_status)", packs)
            _copy(cur, "bookings (id, org_id, client_id, purchase_id, start_time, end_time, status, "
                       "client_confirmed, confirmation_sent_at, location_type)", bookings)
    analyze(url)
    return {"due": len(bookings), "packs": len(packs), "background_bookings": counts.bookings,
            "clients": counts.clients, "orgs": counts.orgs}


def load_background(url: str) -> dict:
    """seed() data only, around T + 30 days: nothing is due at T (the fixed-cost scenario)."""
    with psycopg.connect(url) as conn:
        counts = seed(conn, orgs=3, clients=40, bookings=200, seed=7, at=BACKGROUND_AT)
    analyze(url)
    return {"due": 0, "background_bookings": counts.bookings}


REMINDER = "Hi {{client_name}}, see you at {{session_datetime}} with {{coach_name}} ({{location}})."


def load_texts(url: str, n: int, tick_at: datetime, *, rng_seed: int = 13) -> dict:
    """`n` session reminders due at `tick_at` (11:00 in Brisbane for the bench's texts T)."""
    rng = random.Random(rng_seed)
    org_id = _uuid(rng)
    clients, bookings = [], []
    for i in range(n):
        client_id = _uuid(rng)
        clients.append((client_id, org_id, f"Client{i} Bench", f"+6141{i:07d}", True, True))
        start = tick_at + timedelta(minutes=60)
        bookings.append((_uuid(rng), org_id, client_id, None, start, start + timedelta(minutes=60),
                         "confirmed", True, None, "in_person"))
    with psycopg.connect(url) as conn:
        background = seed(conn, orgs=3, clients=40, bookings=200, seed=7, at=tick_at + timedelta(days=30))
        with conn.transaction(), conn.cursor() as cur:
            _copy(cur, "orgs (id, name)", [(org_id, "Harbour Strength")])
            _copy(cur, "booking_settings (org_id, timezone)", [(org_id, "Australia/Brisbane")])
            _copy(cur, "sms_settings (org_id, enabled, twilio_phone_number, quiet_hours_start, quiet_hours_end, "
                       "max_sms_per_hour, max_sms_per_client_per_day)",
                  [(org_id, True, "+61280000001", 21, 8, 100_000, 5)])
            _copy(cur, "sms_schedules (id, org_id, type, label, mins_offset, body, enabled)",
                  [(_uuid(rng), org_id, "pre_session", "1 hour before", 60, REMINDER, True)])
            _copy(cur, "clients (id, org_id, full_name, phone, sms_reminder_enabled, sms_followup_enabled)", clients)
            _copy(cur, "bookings (id, org_id, client_id, purchase_id, start_time, end_time, status, "
                       "client_confirmed, confirmation_sent_at, location_type)", bookings)
    analyze(url)
    return {"texts_due": n, "background_bookings": background.bookings}
