"""Bad data: one broken row (or setting) per case, beside a healthy control org.

Each case: the tick finishes and does every other booking's work (the control's booking is
completed and deducted once, its texts sent once); the bad row gets a per-booking result or an
outbox row with a clear reason (or, where the schema makes the row impossible, the constraint
that prevents it is shown); nothing is lost or corrupted (the audit is clean, or reports exactly
the corruption the case planted).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable

import psycopg
import pytest

from booking_cron.ops.audit import notices
from booking_cron.domain.texts.render import clean_text
from tests import factories as f
from tests.faultkit import (  # noqa: F401 (fixtures)
    T, count, fast_retries, fault_counts, phone, run_tick, sandbox, sandbox_server, texting_org, violations,
)

SOON = T + timedelta(minutes=40)  # a session whose reminder (60 min before) is due at T
ENDED = T - timedelta(hours=2)    # a session that ended an hour before T: due for completion


@dataclass
class Case:
    db: psycopg.Connection
    org: str                       # a healthy texting org the case may break
    sandbox: object
    checks: list[Callable[[], None]] = field(default_factory=list)
    planted: set[str] = field(default_factory=set)  # audit violations the case put there on purpose

    def member(self, org: str | None = None, name: str = "Ava Nguyen", tel: str | None = "new", **cols):
        org = org or self.org
        return org, f.client(self.db, org, name, phone() if tel == "new" else tel, **cols)

    def then(self, check: Callable[[], None]) -> None:
        self.checks.append(check)

    # what the tick recorded
    def outbox(self, booking: str) -> list[tuple]:
        return self.db.execute("select kind, status, error_code from sms_messages where related_entity_id = %s "
                               "order by kind", (booking,)).fetchall()

    def results(self, booking: str) -> list[tuple]:
        return [r for r in f.results(self.db, booking) if not r[0].startswith("text:")]

    def deducted(self, booking: str) -> None:
        self.then(lambda: (f.status(self.db, booking), self.results(booking), f.ledger_rows(self.db, booking))
                  == ("completed", [("complete", "completed", None), ("deduct", "deducted", None)], 1) or _fail(
                      f"{booking}: {f.status(self.db, booking)} {self.results(booking)}"))

    def not_deducted(self, booking: str, reason: str) -> None:
        def check():
            assert f.status(self.db, booking) == "completed"
            assert self.results(booking) == [("complete", "completed", None), ("deduct", "not_deducted", reason)]
            assert f.ledger_rows(self.db, booking) == 0
        self.then(check)

    def text(self, booking: str, status: str, reason: str | None, kind: str = "session_reminder") -> None:
        def check():
            assert (kind, status, reason) in self.outbox(booking), self.outbox(booking)
        self.then(check)

    def no_text(self, booking: str) -> None:
        self.then(lambda: self.outbox(booking) == [] or _fail(self.outbox(booking)))


def _fail(detail) -> None:
    raise AssertionError(detail)


CASES: dict[str, Callable[[Case], None]] = {}


def case(name: str):
    def register(fn):
        CASES[name] = fn
        return fn
    return register


# --- phones -----------------------------------------------------------------------------------

@case("null phone")
def _(c: Case):
    b = f.booking(c.db, *c.member(tel=None), start=SOON)
    c.text(b, "skipped", "missing_phone")


@case("malformed phone")
def _(c: Case):
    b = f.booking(c.db, *c.member(tel="call me maybe"), start=SOON)
    c.text(b, "skipped", "malformed_phone")


@case("local-format phone")
def _(c: Case):
    b = f.booking(c.db, *c.member(tel="0412 345 678"), start=SOON)
    c.text(b, "skipped", "local_format_phone")


@case("impossible phone")
def _(c: Case):
    b = f.booking(c.db, *c.member(tel="+6112"), start=SOON)
    c.text(b, "skipped", "invalid_phone")


@case("number the provider rejects (21211)")
def _(c: Case):
    tel = phone()
    c.sandbox.configure(number_errors={tel: 21211})
    b = f.booking(c.db, *c.member(tel=tel), start=SOON)
    c.text(b, "failed", "21211")
    c.then(lambda: c.db.execute("select reason from sms_suppression where phone = %s", (tel,)).fetchone()
           == ("invalid_number",) or _fail("not suppressed"))


# --- org settings ----------------------------------------------------------------------------

@case("unknown time zone")
def _(c: Case):
    c.db.execute("update booking_settings set timezone = 'Mars/Olympus' where org_id = %s", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    due = f.booking(c.db, *(m := c.member()), f.pack(c.db, *m), start=ENDED)
    c.text(b, "failed", "unknown_timezone")
    c.deducted(due)


@case("empty time zone")
def _(c: Case):
    c.db.execute("update booking_settings set timezone = '' where org_id = %s", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    c.text(b, "failed", "unknown_timezone")


@case("org without booking_settings")
def _(c: Case):
    c.db.execute("delete from booking_settings where org_id = %s", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    c.text(b, "sent", None)  # the contract's default zone, Australia/Brisbane


@case("org without sms_settings")
def _(c: Case):
    c.db.execute("delete from sms_settings where org_id = %s", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    due = f.booking(c.db, *(m := c.member()), f.pack(c.db, *m), start=ENDED)
    c.no_text(b)  # texting not set up: no text is owed
    c.deducted(due)


@case("org with sms disabled")
def _(c: Case):
    c.db.execute("update sms_settings set enabled = false where org_id = %s", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    due = f.booking(c.db, *(m := c.member()), f.pack(c.db, *m), start=ENDED)
    c.no_text(b)
    c.deducted(due)


@case("org without a sender number or messaging service")
def _(c: Case):
    c.db.execute("update sms_settings set twilio_phone_number = null, twilio_messaging_service_sid = null "
                 "where org_id = %s", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    c.text(b, "failed", "no_sender")


@case("quiet hours start == end")
def _(c: Case):
    c.db.execute("update sms_settings set quiet_hours_start = 11, quiet_hours_end = 11 where org_id = %s", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)  # 11:40 local: start == end means no quiet hours
    c.text(b, "sent", None)


# --- schedules and templates -------------------------------------------------------------------

@case("template with unknown placeholder")
def _(c: Case):
    c.db.execute("update sms_schedules set body = 'Hi {{client_nickname}}' where org_id = %s and type = 'pre_session'",
                 (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    c.text(b, "failed", "unknown_placeholder")


@case("body over 1,600 characters")
def _(c: Case):
    c.db.execute("update sms_schedules set body = %s where org_id = %s and type = 'pre_session'",
                 ("{{client_name}} " + "x" * 1600, c.org))
    b = f.booking(c.db, *c.member(), start=SOON)
    c.text(b, "failed", "body_too_long")


@case("template with code in it")
def _(c: Case):
    c.db.execute("update sms_schedules set body = %s where org_id = %s and type = 'pre_session'",
                 ("{{ 9**9**9 }} {% for x in y %}{% endfor %}", c.org))
    b = f.booking(c.db, *c.member(), start=SOON)
    c.text(b, "failed", "template_unsafe")


@case("blank template")
def _(c: Case):
    c.db.execute("update sms_schedules set body = '   ' where org_id = %s and type = 'pre_session'", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    c.text(b, "failed", "empty_body")


@case("schedule with negative offset")
def _(c: Case):
    c.db.execute("update sms_schedules set mins_offset = -30 where org_id = %s and type = 'pre_session'", (c.org,))
    b = f.booking(c.db, *c.member(), start=T - timedelta(minutes=20))  # "reminder" due 10 min after the start
    later = f.booking(c.db, *c.member(), start=T + timedelta(minutes=5))
    c.then(lambda: [r for r in c.outbox(b) + c.outbox(later) if r[1] == "sent"] == [] or _fail("sent after start"))
    c.text(later, "skipped", "negative_offset")  # it can never go: recorded once, with the reason


@case("quiet hours all day")
def _(c: Case):
    c.db.execute("update sms_settings set quiet_hours_start = 0, quiet_hours_end = 23 where org_id = %s", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)  # 11:40 local, inside quiet hours, as all the time before it
    c.text(b, "skipped", "quiet_hours")


@case("huge schedule offset")
def _(c: Case):
    c.db.execute("update sms_schedules set mins_offset = 1000000 where org_id = %s and type = 'pre_session'", (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)  # two years before: past the 30-day limit, recorded once
    c.text(b, "skipped", "offset_out_of_range")


# --- clients ---------------------------------------------------------------------------------

@case("control characters in client name")
def _(c: Case):
    org, client = c.member(name="\x1b[2J\x07Ava\u202e\x08 Nguyen")
    tel = c.db.execute("select phone from clients where id = %s", (client,)).fetchone()[0]
    b = f.booking(c.db, org, client, start=SOON)
    c.text(b, "sent", None)

    def clean():
        [body] = [m["body"] for m in c.sandbox.messages if m["to"] == tel]
        assert body == clean_text(body) and body.startswith("Hi [2JAva,"), body
    c.then(clean)


@case("emoji and non-Latin name")
def _(c: Case):
    b = f.booking(c.db, *c.member(name="Zoë🏋️‍♀️ Łukaszewicz-李"), start=SOON)
    c.text(b, "sent", None)
    c.then(lambda: any(m["body"].startswith("Hi Zoë🏋️‍♀️,") for m in c.sandbox.messages) or _fail(c.sandbox.messages))


@case("5,000-character client name")
def _(c: Case):
    b = f.booking(c.db, *c.member(name="A" * 5000), start=SOON)
    c.text(b, "failed", "body_too_long")


@case("client deleted (FKs cascade)")
def _(c: Case):
    from flows.tick import queue_texts

    org, client = c.member()
    pack = f.pack(c.db, org, client, used=1)
    done = f.booking(c.db, org, client, pack, start=T - timedelta(days=2), status="completed")
    c.db.execute("select use_session(%s, %s)", (pack, done))
    soon = f.booking(c.db, org, client, start=SOON)
    due = f.booking(c.db, org, client, pack, start=ENDED)
    queue_texts.fn(str(uuid.uuid4()), T, False, True)  # the reminder is in the outbox
    c.db.execute("delete from clients where id = %s", (client,))
    gone = c.db.execute(
        """select (select count(*) from bookings where id = any(%(b)s)),
                  (select count(*) from client_purchases where id = %(p)s),
                  (select count(*) from session_usage where purchase_id = %(p)s),
                  (select count(*) from sms_messages where related_entity_id = any(%(b)s))""",
        {"b": [done, soon, due], "p": pack}).fetchone()
    assert gone == (0, 0, 0, 0)  # bookings, packs, ledger and outbox rows go with the client


@case("suppression rows for one number in two formats")
def _(c: Case):
    org, client = c.member(tel="+61412399001")
    for tel in ("+61412399001", "0412 399 001"):
        c.db.execute("insert into sms_suppression (org_id, phone, reason) values (%s, %s, 'opt_out')", (org, tel))
    with pytest.raises(psycopg.errors.UniqueViolation):  # the exact same row twice is impossible
        with c.db.transaction():
            c.db.execute("insert into sms_suppression (org_id, phone, reason) values (%s, '+61412399001', 'manual')",
                         (org,))
    b = f.booking(c.db, org, client, start=SOON)
    c.text(b, "skipped", "suppressed")


@case("suppression row in local format only")
def _(c: Case):
    org, client = c.member(tel="+61412399002")
    c.db.execute("insert into sms_suppression (org_id, phone, reason) values (%s, '0412 399 002', 'opt_out')", (org,))
    b = f.booking(c.db, org, client, start=SOON)
    c.text(b, "skipped", "suppressed")


# --- packs -----------------------------------------------------------------------------------

@case("end before start")
def _(c: Case):
    org, client = c.member()
    b = f.booking(c.db, org, client, f.pack(c.db, org, client), start=ENDED, minutes=-30)
    c.then(lambda: (f.status(c.db, b), c.results(b), f.ledger_rows(c.db, b))
           == ("confirmed", [("complete", "rejected", "end_before_start")], 0) or _fail(c.results(b)))


@case("pack of another client")
def _(c: Case):
    org, client = c.member()
    other = c.member(name="Ben Other")[1]
    c.not_deducted(f.booking(c.db, org, client, f.pack(c.db, org, other), start=ENDED), "purchase_mismatch")


@case("pack of another org")
def _(c: Case):
    org, client = c.member()
    elsewhere = f.org(c.db, name="Elsewhere")
    c.not_deducted(f.booking(c.db, org, client, f.pack(c.db, elsewhere, client), start=ENDED), "purchase_mismatch")


@case("sessions_total null")
def _(c: Case):
    org, client = c.member()
    c.not_deducted(f.booking(c.db, org, client, f.pack(c.db, org, client, total=None), start=ENDED), "not_a_pack")


@case("sessions_total 0")
def _(c: Case):
    org, client = c.member()
    c.not_deducted(f.booking(c.db, org, client, f.pack(c.db, org, client, total=0), start=ENDED), "not_a_pack")


@case("sessions_used null")
def _(c: Case):
    org, client = c.member()
    pack = f.pack(c.db, org, client)
    c.db.execute("update client_purchases set sessions_used = null where id = %s", (pack,))
    c.deducted(f.booking(c.db, org, client, pack, start=ENDED))
    c.then(lambda: f.sessions_used(c.db, pack) == 1 or _fail(f.sessions_used(c.db, pack)))


@case("sessions_used already over total")
def _(c: Case):
    org, client = c.member()
    pack = f.pack(c.db, org, client, total=3, used=5)  # with its 5 ledger rows: invariant 1 holds
    # written outside booking-cron, so the audit holds and says so in a notice (invariant 2 is about
    # what booking-cron's own deductions took)
    c.then(lambda: ("pack_past_sessions_total", pack) in {(n.invariant, n.subject) for n in notices(c.db)}
           or _fail("no notice"))
    c.not_deducted(f.booking(c.db, org, client, pack, start=ENDED), "exhausted")
    c.then(lambda: f.sessions_used(c.db, pack) == 5 or _fail(f.sessions_used(c.db, pack)))


@case("pack expired before the session")
def _(c: Case):
    org, client = c.member()
    pack = f.pack(c.db, org, client, expires_at=ENDED - timedelta(days=1))
    c.not_deducted(f.booking(c.db, org, client, pack, start=ENDED), "expired")


def _unpaid(payment):  # registered below, one case per status
    def build(c: Case):
        org, client = c.member()
        pack = f.pack(c.db, org, client, payment_status=payment)
        c.not_deducted(f.booking(c.db, org, client, pack, start=ENDED), "unpaid")
    return build


for _status in ("pending", "refunded", "failed", None):
    CASES[f"pack payment_status {_status}"] = _unpaid(_status)


@case("purchase_id of a missing pack (FK)")
def _(c: Case):
    org, client = c.member()
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        with c.db.transaction():
            f.booking(c.db, org, client, str(uuid.uuid4()), start=ENDED)
    pack = f.pack(c.db, org, client)
    b = f.booking(c.db, org, client, pack, start=ENDED)
    with pytest.raises(psycopg.errors.ForeignKeyViolation):  # nor can the pack go from under the booking
        with c.db.transaction():
            c.db.execute("delete from client_purchases where id = %s", (pack,))
    c.deducted(b)


# --- time ------------------------------------------------------------------------------------

@case("start_time -infinity")
def _(c: Case):
    org, client = c.member()
    b = f.booking(c.db, org, client, f.pack(c.db, org, client), start=ENDED)
    c.db.execute("update bookings set start_time = '-infinity' where id = %s", (b,))
    c.then(lambda: c.results(b) == [("complete", "rejected", "invalid_time")] or _fail(f"results {c.results(b)}"))


@case("start_time before year 1")
def _(c: Case):
    org, client = c.member()
    b = f.booking(c.db, org, client, f.pack(c.db, org, client), start=ENDED)
    c.db.execute("update bookings set start_time = '0044-03-15 12:00:00+00 BC' where id = %s", (b,))
    c.then(lambda: c.results(b) == [("complete", "rejected", "invalid_time")] or _fail(f"results {c.results(b)}"))


@case("unknown location type")
def _(c: Case):
    b = f.booking(c.db, *c.member(), start=SOON, location_type="on the moon")
    c.text(b, "sent", None)


# --- values at and beyond PostgreSQL's and Python's ranges (a client or trainer can write them) -----

@case("start_time in the year 10000")
def _(c: Case):
    org, client = c.member()
    b = f.booking(c.db, org, client, f.pack(c.db, org, client), start=SOON)
    c.db.execute("update bookings set start_time = '10000-01-01 00:00+00', end_time = '10000-01-01 01:00+00' "
                 "where id = %s", (b,))
    c.no_text(b)


@case("end_time infinity on an upcoming session")
def _(c: Case):
    org, client = c.member()
    b = f.booking(c.db, org, client, f.pack(c.db, org, client), start=SOON)
    c.db.execute("update bookings set end_time = 'infinity' where id = %s", (b,))
    c.no_text(b)  # a session that never ends is not texted (nor completed)


@case("end_time in the year 10000 on a due-looking session")
def _(c: Case):
    org, client = c.member()
    b = f.booking(c.db, org, client, f.pack(c.db, org, client), start=ENDED)
    c.db.execute("update bookings set end_time = '10000-01-01 00:00+00' where id = %s", (b,))
    c.then(lambda: f.status(c.db, b) == "confirmed" or _fail(f.status(c.db, b)))


@case("confirmation_sent_at infinity")
def _(c: Case):
    b = f.booking(c.db, *c.member(), start=SOON)
    c.db.execute("update bookings set confirmation_sent_at = 'infinity' where id = %s", (b,))
    c.text(b, "sent", None)


@case("schedule offset of 2147483647 minutes")
def _(c: Case):
    c.db.execute("insert into sms_schedules (org_id, type, mins_offset, body) values (%s, 'pre_session', 2147483647, 'x')",
                 (c.org,))
    b = f.booking(c.db, *c.member(), start=SOON)
    c.text(b, "sent", None)  # the org's other schedule still sends
    c.text(b, "skipped", "offset_out_of_range")


@case("schedule offset of -2147483648 minutes")
def _(c: Case):
    c.db.execute("insert into sms_schedules (org_id, type, mins_offset, body) values (%s, 'post_session', -2147483648, 'x')",
                 (c.org,))
    org, client = c.member()
    b = f.booking(c.db, org, client, f.pack(c.db, org, client), start=ENDED)
    c.deducted(b)
    c.text(b, "skipped", "offset_out_of_range", kind="feedback_request")


@case("two packs of 2147483647 sessions")
def _(c: Case):
    org, client = c.member()
    for _ in range(2):
        f.pack(c.db, org, client, total=2147483647, used=0)
    b = f.booking(c.db, org, client, start=SOON)
    c.text(b, "sent", None)


@case("a pack used 2147483647 times")
def _(c: Case):
    org, client = c.member()
    pack = f.pack(c.db, org, client, total=2147483647, used=2147483647)
    b = f.booking(c.db, org, client, pack, start=ENDED)
    c.not_deducted(b, "exhausted")


@case("a pack expiring at infinity")
def _(c: Case):
    org, client = c.member()
    pack = f.pack(c.db, org, client, expires_at="infinity")
    b = f.booking(c.db, org, client, pack, start=ENDED)
    c.deducted(b)
    c.text(f.booking(c.db, org, client, pack, start=SOON), "sent", None)


@case("a pack expiring in the year 10000")
def _(c: Case):
    org, client = c.member()
    pack = f.pack(c.db, org, client, expires_at="10000-01-01 00:00+00")
    c.deducted(f.booking(c.db, org, client, pack, start=ENDED))


@case("a pack that expired at -infinity")
def _(c: Case):
    org, client = c.member()
    pack = f.pack(c.db, org, client, expires_at="-infinity")
    c.not_deducted(f.booking(c.db, org, client, pack, start=ENDED), "expired")


@case("rate limits of 2147483647 and -1")
def _(c: Case):
    c.db.execute("update sms_settings set max_sms_per_hour = 2147483647, max_sms_per_client_per_day = -1 "
                 "where org_id = %s", (c.org,))
    f.booking(c.db, *c.member(), start=SOON)


@case("a client name of 100,000 characters with control characters")
def _(c: Case):
    b = f.booking(c.db, *c.member(name="\x1b]0;owned\x07\u202e" + "A" * 100_000), start=SOON)
    c.text(b, "failed", "body_too_long")


KNOWN_DEFECTS: dict[str, str] = {}  # case name -> why it fails today (run as a strict xfail)


def params():
    for name in CASES:
        marks = [pytest.mark.xfail(strict=True, reason=KNOWN_DEFECTS[name])] if name in KNOWN_DEFECTS else []
        yield pytest.param(name, id=name.replace(" ", "-"), marks=marks)


@pytest.mark.parametrize("name", list(params()))
def test_a_bad_row_gets_a_reason_and_every_other_booking_its_work(db, sandbox, monkeypatch, name):
    fast_retries(monkeypatch)
    control_org = texting_org(db, name="Control")
    control_client = f.client(db, control_org, "Cleo Control", phone())
    control_pack = f.pack(db, control_org, control_client, used=1)
    control_due = f.booking(db, control_org, control_client, control_pack, start=ENDED)
    control_soon = f.booking(db, control_org, f.client(db, control_org, "Carl Control", phone()), start=SOON)

    c = Case(db, texting_org(db, name="Case Org"), sandbox)
    CASES[name](c)
    count("bad_data_kinds")

    summary = run_tick(T)

    assert summary["completed"] >= 1
    assert f.status(db, control_due) == "completed" and f.ledger_rows(db, control_due) == 1
    assert f.sessions_used(db, control_pack) == 2
    assert c.outbox(control_soon) == [("session_reminder", "sent", None)]
    assert ("feedback_request", "sent", None) in c.outbox(control_due)
    for check in c.checks:
        check()
    found = violations(db, sandbox, count_them=False)
    unexpected = sorted(v for v in found if v not in c.planted)
    count("violations", len(unexpected))
    assert unexpected == []
    assert sorted(c.planted) == sorted(v for v in found if v in c.planted)  # what was planted is still reported
