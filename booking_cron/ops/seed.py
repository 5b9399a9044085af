"""`seed`: realistic synthetic data around a time T, loaded with COPY.

Several orgs in different time zones, clients with and without phones, packs of 5 to 20
sessions (some nearly exhausted, expired or unpaid), bookings across past and future in
every status. Past completed bookings are booking-cron's history: deducted through use_sessions,
as a tick deducts, and recorded as a tick's completions with that outcome (under SEED_RUN, a run id
no flow run has), so the audit holds from the start and `doctor` does not take them for the app's
auto-complete.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Sequence
from zoneinfo import ZoneInfo

import psycopg

from booking_cron.domain import org_defaults

# every seeded org's quiet hours, local: the defaults (no texts from 21:00 to 08:00)
QUIET_HOURS = (org_defaults.QUIET_HOURS_START, org_defaults.QUIET_HOURS_END)
TIMEZONES = ["Australia/Brisbane", "Australia/Sydney", "Australia/Perth", "Pacific/Auckland",
             "Europe/London", "America/New_York"]
BUSINESSES = ["Peak Form PT", "Harbour Strength", "Iron & Oak Coaching", "Coastal Pilates",
              "Northside Boxing", "Summit Run Club", "Core Studio", "Lift Lab"]
FIRST = ["Ava", "Liam", "Mia", "Noah", "Zoe", "Jack", "Isla", "Leo", "Ruby", "Eli", "Chloe", "Max",
         "Grace", "Finn", "Ivy", "Oscar", "Lucy", "Harry", "Ella", "Sam"]
LAST = ["Nguyen", "Smith", "Patel", "Brown", "Wilson", "Taylor", "Kelly", "Murphy", "Chen", "Singh"]
# Coach-written templates, as a coach would word them. {{session_summary}} is a whole sentence,
# empty for a client without a pack, so it ends the message.
PRE_SESSION = ("Hi {{client_name}}, a reminder that your session with {{coach_name}} is on "
               "{{session_datetime}} ({{location}}). See you then!")
DAY_BEFORE = ("Hi {{client_name}}, looking forward to your session on {{session_datetime}}. "
              "Need to change it? Just reply. {{coach_name}}")
POST_SESSION = ("Thanks for training with {{coach_name}} today, {{client_name}}! How did it go? "
                "{{feedback_link}} {{session_summary}}")
# The run id the seed's completions are recorded under (no flow run has it).
SEED_RUN = uuid.UUID("5eed0000-0000-4000-8000-000000000000")
# Sessions start on the quarter hour between these hours, org-local.
FIRST_HOUR, LAST_HOUR = 6, 19


@dataclass(frozen=True)
class SeedCounts:
    orgs: int
    clients: int
    packs: int
    bookings: int


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _phone(rng: random.Random) -> str:
    return "+614" + "".join(str(rng.randrange(10)) for _ in range(8))


def _session_start(rng: random.Random, at: datetime, zone: ZoneInfo) -> datetime:
    """A day within two weeks of `at`, in coaching hours of the org's zone, on the quarter hour."""
    day = (at.astimezone(zone) + timedelta(days=rng.randrange(-14, 14))).date()
    local = time(rng.randrange(FIRST_HOUR, LAST_HOUR + 1), 15 * rng.randrange(4))
    return datetime.combine(day, local, zone).astimezone(timezone.utc)


def _booking_status(rng: random.Random, in_past: bool) -> str:
    if in_past:
        return rng.choices(["confirmed", "completed", "cancelled", "no_show", "pending"], [55, 25, 10, 5, 5])[0]
    return rng.choices(["confirmed", "pending", "cancelled"], [80, 10, 10])[0]


def seed(conn: psycopg.Connection, *, orgs: int = 3, clients: int = 40, bookings: int = 200,
         seed: int = 7, at: datetime, timezones: Sequence[str] = TIMEZONES) -> SeedCounts:
    """Orgs take `timezones` in turn."""
    rng = random.Random(seed)
    org_rows, settings, sms_settings, schedules = [], [], [], []
    for n in range(orgs):
        org_id = _uuid(rng)
        org_rows.append((org_id, f"{BUSINESSES[n % len(BUSINESSES)]}" + (f" {n // len(BUSINESSES) + 1}" if n >= len(BUSINESSES) else "")))
        settings.append((org_id, timezones[n % len(timezones)]))
        sms_settings.append((org_id, n % 5 != 4, f"+6128{n:07d}"[:12], *QUIET_HOURS))
        schedules.append((_uuid(rng), org_id, "pre_session", "1 hour before", 60, PRE_SESSION, True))
        schedules.append((_uuid(rng), org_id, "post_session", "90 min after", 90, POST_SESSION, True))
        if n % 2 == 0:
            schedules.append((_uuid(rng), org_id, "pre_session", "day before", 1440, DAY_BEFORE, True))

    client_rows, packs = [], []
    packs_by_client: dict[uuid.UUID, list[uuid.UUID]] = {}
    for _ in range(clients):
        org_id = rng.choice(org_rows)[0]
        client_id = _uuid(rng)
        phone = _phone(rng) if rng.random() < 0.85 else None
        client_rows.append((client_id, org_id, f"{rng.choice(FIRST)} {rng.choice(LAST)}", phone,
                            rng.random() > 0.1, rng.random() > 0.1))
        for _ in range(rng.choices([0, 1, 2], [20, 60, 20])[0]):
            pack_id = _uuid(rng)
            total = rng.choice([5, 8, 10, 12, 20])
            prior = rng.choice([0, 0, 1, 2, total - 2, total - 1]) if total > 2 else 0
            purchased = at - timedelta(days=rng.randrange(10, 200))
            expires = None if rng.random() < 0.4 else purchased + timedelta(days=rng.choice([30, 90, 180]))
            status = rng.choices(["succeeded", "pending", "failed", "refunded"], [85, 7, 4, 4])[0]
            packs.append((pack_id, org_id, client_id, total, prior, purchased, expires, status))
            packs_by_client.setdefault(client_id, []).append(pack_id)

    zones = {org_id: ZoneInfo(tz) for org_id, tz in settings}
    booking_rows = []
    for _ in range(bookings):
        client_id, org_id = rng.choice(client_rows)[:2]
        start = _session_start(rng, at, zones[org_id])
        end = start + timedelta(minutes=rng.choice([45, 60]))
        status = _booking_status(rng, end <= at)
        on_pack = packs_by_client.get(client_id) if rng.random() < 0.75 else None
        confirmation_sent = start - timedelta(hours=rng.choice([36, 48, 72])) if rng.random() < 0.5 else None
        booking_rows.append((_uuid(rng), org_id, client_id, rng.choice(on_pack) if on_pack else None, start, end,
                             status, rng.random() < 0.6, confirmation_sent,
                             rng.choice(["in_person", "in_person", "online", "outdoor"])))

    with conn.transaction(), conn.cursor() as cur:
        _copy(cur, "orgs (id, name)", org_rows)
        _copy(cur, "booking_settings (org_id, timezone)", settings)
        _copy(cur, "sms_settings (org_id, enabled, twilio_phone_number, quiet_hours_start, quiet_hours_end)", sms_settings)
        _copy(cur, "sms_schedules (id, org_id, type, label, mins_offset, body, enabled)", schedules)
        _copy(cur, "clients (id, org_id, full_name, phone, sms_reminder_enabled, sms_followup_enabled)", client_rows)
        _copy(cur, "client_purchases (id, org_id, client_id, sessions_total, sessions_used, purchased_at, expires_at, "
                   "payment_status)", packs)
        # packs' prior usage lands in the ledger through its trigger ('opening' rows)
        _copy(cur, "bookings (id, org_id, client_id, purchase_id, start_time, end_time, status, client_confirmed, "
                   "confirmation_sent_at, location_type)", booking_rows)
        done = [(b[3], b[0]) for b in booking_rows if b[6] == "completed" and b[3] is not None]
        if done:
            cur.execute("""insert into public.tick_completions (booking_id, purchase_id, flow_run_id, deduction)
                           select u.booking_id, b.purchase_id, %s, u.outcome
                           from public.use_sessions(%s::uuid[], %s::uuid[]) u
                           join public.bookings b on b.id = u.booking_id""",
                        (SEED_RUN, [p for p, _ in done], [b for _, b in done]))
    return SeedCounts(len(org_rows), len(client_rows), len(packs), len(booking_rows))


def _copy(cur: psycopg.Cursor, target: str, rows: list[tuple]) -> None:
    with cur.copy(f"copy public.{target} from stdin") as copy:
        for row in rows:
            copy.write_row(row)
