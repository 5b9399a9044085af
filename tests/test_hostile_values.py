"""No row stops anyone else (property-based).

A trainer and a client of one org write hostile values through the app's API, one request each
exactly as PostgREST makes it (tests/supabase.rest): times at and beyond PostgreSQL's and Python's
ranges, integer extremes, nulls, huge and control-character strings, unknown time zones, into
every column the tick, the backfill and the sender read. Writes the database refuses (a check
constraint, row-level security, booking-cron's guard) are part of the story. Then a tick and a
backfill run: another org, set up alongside, must be served in full (completed, deducted, texted
once), both runs must finish, and the audit must hold.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import supabase as app
from tests.faultkit import (  # noqa: F401 (fixtures)
    T, count, excess_texts, fault_counts, phone, sandbox, sandbox_server, violations,
)

TIMES = ["infinity", "-infinity", "10000-01-01 00:00:00+00", "294276-12-31 23:59:59+00", "4713-11-24 00:00:00+00 BC",
         "0001-01-01 00:00:00+00", "9999-12-31 23:59:59+00", None]
INTEGERS = [2147483647, -2147483648, 0, -1, 1000000, None]
TEXTS = ["", " ", "\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", "\x1b[2J\x1b]0;owned\x07", "\u202eevil",
         "[link=https://evil.example]x[/link]", "{{ 7 * 7 }}", "{% for i in range(999999999) %}x{% endfor %}",
         "{{ client_name.__class__.__mro__ }}", "A" * 100_000, "+61412345678", "'; drop table bookings; --", None]
ZONES = ["Mars/Olympus", "", "UTC+99", "../../../etc/passwd", "A" * 1000, "Etc/GMT-14", None]

# (who writes, table, column, values): each a column the tick, backfill, sender or audit reads, as
# the app's API lets its writer change it
WRITES = [
    ("trainer", "bookings", "start_time", TIMES), ("trainer", "bookings", "end_time", TIMES),
    ("trainer", "bookings", "confirmation_sent_at", TIMES), ("trainer", "bookings", "cancelled_at", TIMES),
    ("trainer", "bookings", "status", ["cancelled", "completed", "no_show", "pending", "confirmed", "bogus"]),
    ("trainer", "bookings", "location_type", TEXTS),
    ("client", "bookings", "status", ["cancelled", "completed"]),
    ("client", "bookings", "confirmation_sent_at", TIMES), ("client", "bookings", "client_confirmed", [True, None]),
    ("trainer", "client_purchases", "sessions_total", INTEGERS),
    ("trainer", "client_purchases", "sessions_used", INTEGERS),
    ("trainer", "client_purchases", "expires_at", TIMES),
    ("trainer", "client_purchases", "payment_status", ["refunded", "failed", None]),
    ("trainer", "sms_schedules", "mins_offset", INTEGERS), ("trainer", "sms_schedules", "body", TEXTS),
    ("trainer", "sms_settings", "quiet_hours_start", INTEGERS), ("trainer", "sms_settings", "quiet_hours_end", INTEGERS),
    ("trainer", "sms_settings", "max_sms_per_hour", INTEGERS),
    ("trainer", "sms_settings", "max_sms_per_client_per_day", INTEGERS),
    ("trainer", "sms_settings", "twilio_phone_number", TEXTS),
    ("trainer", "booking_settings", "timezone", ZONES),
    ("trainer", "orgs", "name", TEXTS),
    ("trainer", "clients", "full_name", TEXTS), ("client", "clients", "full_name", TEXTS),
    ("client", "clients", "phone", TEXTS), ("client", "clients", "sms_reminder_enabled", [False, None]),
]

hostile_write = st.sampled_from(WRITES).flatmap(
    lambda w: st.tuples(st.just(w[0]), st.just(w[1]), st.just(w[2]), st.sampled_from(w[3])))

DAYS = itertools.count(1)  # each example ticks a day of its own


@pytest.fixture
def served(app_db, sandbox, prefect_api, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", app_db)
    return app_db


class Org:
    """A texting org as sign-up and its settings pages make it: a trainer, a client who signed in to
    the client app, a pack, a session due at `at` (ended an hour before), one starting 40 minutes
    after `at` (its reminder is due) and one ending inside the backfill's range."""

    def __init__(self, conn, name: str, at: datetime):
        self.org = app.org(conn, name, sms=True, phone=phone())
        conn.execute("insert into sms_schedules (org_id, type, label, mins_offset, body) values "
                     "(%s, 'pre_session', '1h', 60, 'See you soon {{client_name}}'), "
                     "(%s, 'post_session', '30m', 30, 'How was it, {{client_name}}?')", (self.org.id, self.org.id))
        self.phone = phone()
        self.client = app.client(conn, self.org, "Ava Nguyen", self.phone)
        self.user = app.client_user(conn, self.client)
        self.pack = app.add_package(conn, self.org, self.client, total=20, used=2)
        self.due = self.booking(conn, at - timedelta(hours=1))
        self.soon = self.booking(conn, at + timedelta(minutes=100))
        self.later = self.booking(conn, at + timedelta(hours=2))

    def booking(self, conn, ends: datetime) -> str:
        return conn.execute(
            "insert into bookings (org_id, client_id, purchase_id, start_time, end_time, status) "
            "values (%s, %s, %s, %s, %s, 'confirmed') returning id::text",
            (self.org.id, self.client, self.pack, ends - timedelta(hours=1), ends)).fetchone()[0]

    def write(self, url: str, who: str, table: str, column: str, value) -> bool:
        """One API request; False when the database refused it."""
        target = {"bookings": "id = any(%(bookings)s)", "client_purchases": "id = %(pack)s",
                  "clients": "id = %(client)s", "orgs": "id = %(org)s"}.get(table, "org_id = %(org)s")
        user = self.org.trainer if who == "trainer" else self.user
        try:
            with app.rest(url, "authenticated", user) as api:
                api.execute(f"update public.{table} set {column} = %(value)s where {target}",
                            {"value": value, "bookings": [self.due, self.soon, self.later], "pack": self.pack,
                             "client": self.client, "org": self.org.id})
            return True
        except psycopg.Error:
            return False


def texts_to(conn, number: str) -> list[tuple[str, str]]:
    return conn.execute("select kind, status from sms_messages where to_phone = %s order by kind, status",
                        (number,)).fetchall()


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(writes=st.lists(hostile_write, min_size=1, max_size=4))
def test_hostile_values_in_one_org_never_stop_the_others(served, sandbox, writes):
    from flows.backfill import backfill
    from flows.tick import tick

    at = T + timedelta(days=next(DAYS))
    with psycopg.connect(served, autocommit=True) as conn:
        hostile, control = Org(conn, "Hostile", at), Org(conn, "Control", at)
        for write in writes:
            hostile.write(served, *write)
        count("bad_data_kinds", len(writes))

    ticked = tick(tick_at=at, return_state=True)
    assert ticked.is_completed(), ticked.message
    replayed = backfill(start=at + timedelta(hours=1), end=at + timedelta(hours=3), every="10m", return_state=True)
    assert replayed.is_completed(), replayed.message

    with psycopg.connect(served, autocommit=True) as conn:
        ours = [control.due, control.soon, control.later]  # the tick completes the first, the backfill the others
        statuses = dict(conn.execute("select id::text, status from bookings where id = any(%s)", (ours,)).fetchall())
        assert statuses == dict.fromkeys(ours, "completed")
        assert conn.execute("select count(*) from session_usage where booking_id = any(%s) and released_at is null",
                            (ours,)).fetchone()[0] == 3
        assert conn.execute("select sessions_used from client_purchases where id = %s",
                            (control.pack,)).fetchone()[0] == 5
        sent = texts_to(conn, control.phone)
        assert ("feedback_request", "sent") in sent and ("session_reminder", "sent") in sent, sent
        assert sum(1 for m in sandbox.messages if m["to"] == control.phone) == len(
            [s for s in sent if s[1] in ("sent", "delivered")])
        assert violations(conn) == []
        assert excess_texts(conn, sandbox) == []  # (one client's three sessions share a feedback text's body)
