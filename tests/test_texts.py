"""Texts end to end: real PostgreSQL, the real twilio SDK, the project's sandbox, real Prefect.

T is a fixed time in the future: the sender's clock runs from T at real speed, so quiet hours
and expiry are the same whenever the suite runs.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from booking_cron.ops.audit import audit
from flows.tick import queue_texts, tick
from tests import factories as f
from tests.faultkit import sandbox, sandbox_server  # noqa: F401 (fixtures)

T = datetime(2030, 3, 12, 1, 0, tzinfo=timezone.utc)  # 11:00 in Brisbane (UTC+10, no DST)
BRISBANE = timedelta(hours=10)
REMINDER = "Hi {{client_name}}, see you at {{session_datetime}} with {{coach_name}} ({{location}})."
FEEDBACK = "Thanks {{client_name}}! {{feedback_link}} {{session_summary}}"


def texting_org(db, quiet=(21, 8), **settings) -> str:
    org_id = f.org(db, name="Harbour Strength", sms=True, quiet_hours_start=quiet[0], quiet_hours_end=quiet[1], **settings)
    db.execute("insert into sms_schedules (org_id, type, mins_offset, body) values (%s, 'pre_session', 60, %s)", (org_id, REMINDER))
    db.execute("insert into sms_schedules (org_id, type, mins_offset, body) values (%s, 'post_session', 90, %s)", (org_id, FEEDBACK))
    return org_id


def outbox(db, booking_id=None):
    return db.execute(
        """select kind, status, error_code, to_phone from sms_messages
           where %(b)s::uuid is null or related_entity_id = %(b)s::uuid order by kind""", {"b": booking_id}).fetchall()


def sent_to(sandbox, phone):
    return [m for m in sandbox.messages if m["to"] == phone]


def test_each_kind_is_sent_once_across_repeated_ticks(db, sandbox):
    org = texting_org(db)
    ava = f.client(db, org, "Ava Nguyen", "+61412345001")
    ben = f.client(db, org, "Ben Smith", "+61412345002")
    cat = f.client(db, org, "Cat Patel", "+61412345003")
    f.booking(db, org, ava, start=T + timedelta(minutes=30))                      # reminder due T-30m
    f.booking(db, org, ben, start=T + timedelta(hours=20), client_confirmed=False,
              confirmation_sent_at=T - timedelta(days=2))                           # nudge due T-4h
    pack = f.pack(db, org, cat, total=10, used=2)
    f.booking(db, org, cat, pack, start=T - timedelta(hours=3))                   # ends T-2h: feedback due T-30m

    for minutes in (0, 10, 20):
        tick(tick_at=T + timedelta(minutes=minutes))

    assert [m["body"] for m in sent_to(sandbox, "+61412345001")] == [
        "Hi Ava, see you at Tue 12 Mar, 11:30am with Harbour Strength (in person)."]
    nudge = sent_to(sandbox, "+61412345002")
    assert len(nudge) == 1 and nudge[0]["body"].startswith("Hi Ben, please confirm your session")
    feedback = sent_to(sandbox, "+61412345003")
    assert len(feedback) == 1 and feedback[0]["body"].endswith(
        "You have used 3 of your 10 sessions, with 0 booked and 7 more to book.")
    assert len(sandbox.messages) == 3
    assert sorted(k for k, s, *_ in outbox(db) if s == "sent") == ["feedback_request", "session_reminder", "unconfirmed_reminder"]
    assert audit(db) == []


def test_overlapping_ticks_send_each_text_once(db, sandbox):
    org = texting_org(db)
    phones = [f"+614123460{i:02d}" for i in range(12)]
    for i, phone in enumerate(phones):
        f.booking(db, org, f.client(db, org, f"Client {i}", phone), start=T + timedelta(minutes=20 + i))
    sandbox.configure(latency=0.05)
    threads = [threading.Thread(target=tick, kwargs={"tick_at": T}) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(m["to"] for m in sandbox.messages) == phones
    assert db.execute("select count(*) from sms_messages where status = 'sent'").fetchone()[0] == 12


def test_a_booking_cancelled_after_queueing_gets_no_text(db, sandbox):
    org = texting_org(db)
    b = f.booking(db, org, f.client(db, org, phone="+61412345010"), start=T + timedelta(minutes=30))
    queue_texts.fn(str(uuid.uuid4()), T, False, True)
    assert [s for _, s, *_ in outbox(db, b)] == ["scheduled"]
    db.execute("update bookings set status = 'cancelled', cancelled_at = %s where id = %s", (T, b))
    tick(tick_at=T)
    assert sandbox.messages == []
    assert outbox(db, b) == [("session_reminder", "cancelled", "booking_cancelled", "+61412345010")]
    assert audit(db) == []


def test_a_rescheduled_booking_gets_one_reminder_for_its_new_time(db, sandbox):
    org = texting_org(db)
    b = f.booking(db, org, f.client(db, org, phone="+61412345011"), start=T + timedelta(minutes=30))
    queue_texts.fn(str(uuid.uuid4()), T, False, True)
    db.execute("update bookings set start_time = start_time + interval '30 minutes', "
               "end_time = end_time + interval '30 minutes' where id = %s", (b,))
    tick(tick_at=T)
    assert sandbox.messages == []
    assert outbox(db, b)[0][1:3] == ("cancelled", "booking_rescheduled")
    tick(tick_at=T + timedelta(minutes=30))
    tick(tick_at=T + timedelta(minutes=40))
    assert [m["body"] for m in sandbox.messages] == ["Hi Ava, see you at Tue 12 Mar, 12:00pm with Harbour Strength (in person)."]


def test_opted_out_and_suppressed_numbers_get_nothing(db, sandbox):
    org = texting_org(db)
    opted = f.client(db, org, phone="+61412345020", sms_reminder_enabled=False)
    suppressed = f.client(db, org, phone="+61412345021")
    db.execute("insert into sms_suppression (org_id, phone, reason) values (%s, '+61412345021', 'opt_out')", (org,))
    no_phone = f.client(db, org, phone=None)
    local = f.client(db, org, phone="0412 345 022")
    for c in (opted, suppressed, no_phone, local):
        f.booking(db, org, c, start=T + timedelta(minutes=30))
    summary = tick(tick_at=T)
    assert sandbox.messages == []
    assert sorted((s, e) for _, s, e, _ in outbox(db)) == [
        ("skipped", "local_format_phone"), ("skipped", "missing_phone"), ("skipped", "opted_out"), ("skipped", "suppressed")]
    assert summary["texts"] == {"skipped": 4}


def test_a_21610_suppresses_the_number(db, sandbox):
    org = texting_org(db)
    client = f.client(db, org, phone="+61412345030")
    first = f.booking(db, org, client, start=T + timedelta(minutes=30))
    sandbox.configure(number_errors={"+61412345030": 21610})
    summary = tick(tick_at=T)
    assert outbox(db, first) == [("session_reminder", "failed", "21610", "+61412345030")]
    assert db.execute("select reason from sms_suppression where phone = '+61412345030'").fetchone() == ("opt_out",)
    assert summary["failed"] == {"session_reminder": 1}
    second = f.booking(db, org, client, start=T + timedelta(minutes=45))
    tick(tick_at=T + timedelta(minutes=10))
    assert outbox(db, second)[0][1:3] == ("skipped", "suppressed")
    assert sandbox.messages == []


def test_a_reminder_due_in_quiet_hours_arrives_before_they_begin(db, sandbox):
    org = texting_org(db)  # quiet 21:00-08:00 Brisbane
    session = datetime(2030, 3, 13, 7, 30) - BRISBANE  # 07:30 local: reminder due 06:30, inside quiet hours
    b = f.booking(db, org, f.client(db, org, phone="+61412345040"), start=session.replace(tzinfo=timezone.utc))
    evening = datetime(2030, 3, 12, 20, 40, tzinfo=timezone.utc) - BRISBANE
    tick(tick_at=evening)
    assert sandbox.messages == []
    tick(tick_at=evening + timedelta(minutes=10))  # 20:50 local, the last tick before quiet hours
    assert len(sandbox.messages) == 1
    sent_at = db.execute("select sent_at from sms_messages where related_entity_id = %s", (b,)).fetchone()[0]
    assert (sent_at + BRISBANE).hour == 20


def test_feedback_due_in_quiet_hours_waits_for_morning(db, sandbox):
    org = texting_org(db)
    ended = datetime(2030, 3, 12, 20, 30, tzinfo=timezone.utc) - BRISBANE  # feedback due 22:00 local
    b = f.booking(db, org, f.client(db, org, phone="+61412345041"), start=ended - timedelta(hours=1))
    tick(tick_at=ended + timedelta(minutes=100))
    assert sandbox.messages == []  # 22:10 local: planned for 08:00, not queued yet
    assert outbox(db, b) == []
    tick(tick_at=ended + timedelta(hours=11, minutes=40))  # 08:10 local
    assert len(sandbox.messages) == 1
    assert audit(db) == []


def test_nothing_is_sent_after_expiry_even_after_a_three_day_outage(db, sandbox, monkeypatch):
    org = texting_org(db)
    outage_start = T - timedelta(days=3)
    phones = []
    for i in range(12):  # sessions every 6 hours across the outage
        phone = f"+614123451{i:02d}"
        phones.append(phone)
        f.booking(db, org, f.client(db, org, phone=phone), start=outage_start + timedelta(hours=6 * i, minutes=30))
    monkeypatch.delenv("TWILIO_ACCOUNT_SID")  # the provider is down: the first tick only queues
    tick(tick_at=outage_start)
    assert db.execute("select count(*) from sms_messages where status = 'scheduled'").fetchone()[0] == 1
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", sandbox.account_sid)
    summary = tick(tick_at=T)  # the first tick after three days
    rows = db.execute("select status, sent_at, expires_at from sms_messages").fetchall()
    assert all(sent_at < expires for status, sent_at, expires in rows if status == "sent")
    assert ("expired",) in [(s,) for s, *_ in rows]
    for m in sandbox.messages:  # only feedback requests still within 48 h of their session
        assert m["body"].startswith("Thanks")
    assert len(sandbox.messages) == 8  # the sessions that ended within the last 48 h: i = 4..11
    assert summary["texts"].get("expired") == 1
    assert audit(db) == []


def test_a_timeout_after_the_sandbox_accepted_sends_no_second_message(db, sandbox, monkeypatch):
    monkeypatch.setenv("BOOKING_CRON_SMS_TIMEOUT", "0.5")
    org = texting_org(db)
    b = f.booking(db, org, f.client(db, org, phone="+61412345050"), start=T + timedelta(minutes=30))
    sandbox.configure(one_shot_faults=["timeout_after_accept"], stall_seconds=2)
    tick(tick_at=T)
    tick(tick_at=T + timedelta(minutes=10))
    assert len(sandbox.messages) == 1
    sid, status = db.execute("select provider_message_id, status from sms_messages where related_entity_id = %s", (b,)).fetchone()
    assert (sid, status) == (sandbox.messages[0]["sid"], "sent")


@pytest.mark.parametrize("faults", [["429", "500", "503"], ["drop"], ["drop_after_accept"]])
def test_transient_provider_errors_are_retried_and_then_succeed(db, sandbox, faults, monkeypatch):
    monkeypatch.setenv("BOOKING_CRON_SMS_RECONCILE_GRACE", "0")  # the sandbox lists at once: no lag to wait out
    org = texting_org(db)
    b = f.booking(db, org, f.client(db, org, phone="+61412345060"), start=T + timedelta(minutes=30))
    sandbox.configure(one_shot_faults=faults)
    tick(tick_at=T)
    assert len(sandbox.messages) == 1
    assert outbox(db, b)[0][1] == "sent"


def test_unknown_outcome_is_never_blindly_resent(db, sandbox, monkeypatch):
    monkeypatch.setenv("BOOKING_CRON_SMS_TIMEOUT", "0.5")
    org = texting_org(db)
    b = f.booking(db, org, f.client(db, org, phone="+61412345061"), start=T + timedelta(minutes=30))
    # the sandbox accepts the send but never answers, and then refuses the look-up
    sandbox.configure(one_shot_faults=["timeout_after_accept"], stall_seconds=1.5)
    original = sandbox.auth_token
    sandbox.on_accept = lambda record: setattr(sandbox, "auth_token", "rotated")
    try:
        summary = tick(tick_at=T)
    finally:
        sandbox.on_accept = None
        sandbox.auth_token = original
    assert outbox(db, b)[0][1:3] == ("unknown", "timeout")
    tick(tick_at=T + timedelta(minutes=10))  # the look-up answers again: reconciled, not resent
    assert outbox(db, b)[0][1] == "sent"
    assert len(sandbox.messages) == 1
    assert summary["failed"] == {"session_reminder": 1}


def test_per_client_daily_and_provider_rate_limits_hold(db, sandbox, monkeypatch):
    org = texting_org(db, max_sms_per_client_per_day=1)
    busy = f.client(db, org, phone="+61412345070")
    f.booking(db, org, busy, start=T + timedelta(minutes=20))
    f.booking(db, org, busy, start=T + timedelta(minutes=40))
    others = [f.client(db, org, phone=f"+614123452{i:02d}") for i in range(30)]
    for c in others:
        f.booking(db, org, c, start=T + timedelta(minutes=30))
    # the sender paces at 8 a second against the provider's 10, the margin an operator leaves:
    # on a loaded machine requests paced 1/8 s apart can reach the provider bunched together
    monkeypatch.setenv("BOOKING_CRON_SMS_RATE", "8")
    sandbox.configure(rate_limit=10, latency=0.05)
    summary = tick(tick_at=T)
    assert len(sent_to(sandbox, "+61412345070")) == 1
    assert len(sandbox.messages) == 31
    assert sandbox.max_in_any_second() <= 10
    assert sandbox.stats()["rate_limited"] == 0
    assert summary["texts"]["deferred"] == 1


def test_bad_templates_fail_their_own_text_and_the_rest_go(db, sandbox):
    org = texting_org(db)
    db.execute("update sms_schedules set body = 'Hi {{client_nickname}}' where type = 'pre_session'")
    f.booking(db, org, f.client(db, org, phone="+61412345080"), start=T + timedelta(minutes=30))
    long_org = texting_org(db)
    db.execute("update sms_schedules set body = %s where org_id = %s and type = 'pre_session'", ("x" * 1601, long_org))
    f.booking(db, long_org, f.client(db, long_org, phone="+61412345081"), start=T + timedelta(minutes=30))
    fine = texting_org(db)
    f.booking(db, fine, f.client(db, fine, phone="+61412345082"), start=T + timedelta(minutes=30))
    summary = tick(tick_at=T)
    assert sorted((s, e) for _, s, e, _ in outbox(db)) == [
        ("failed", "body_too_long"), ("failed", "unknown_placeholder"), ("sent", None)]
    assert [m["to"] for m in sandbox.messages] == ["+61412345082"]
    assert summary["failed"] == {"session_reminder": 2} and summary["sent"] == {"session_reminder": 1}


def test_audit_lists_texts_that_broke_the_rules(db, sandbox):
    org = texting_org(db)
    client = f.client(db, org, phone="+61412345090")
    b = f.booking(db, org, client, start=T + timedelta(minutes=30))
    db.execute("update bookings set status = 'cancelled', cancelled_at = %s where id = %s", (T - timedelta(hours=1), b))
    for n in range(2):  # the same reminder sent twice, late, to a cancelled booking
        db.execute(
            """insert into sms_messages (org_id, client_id, to_phone, body, related_entity_id, idempotency_key, kind,
                                         status, sent_at, expires_at)
               values (%s, %s, '+61412345090', 'hi', %s, %s, 'unconfirmed_reminder', 'sent', %s, %s)""",
            (org, client, b, f"manual-{n}", T + timedelta(hours=1), T + timedelta(minutes=30)))
    found = {v.invariant for v in audit(db)}
    assert found == {"one_text_per_booking_kind_schedule", "no_text_after_expiry", "no_text_for_a_cancelled_booking"}


def test_run_json_counts_texts_by_kind_and_results_hold_every_fate(db, sandbox):
    import json

    from typer.testing import CliRunner

    from booking_cron.ops.cli import app

    org = texting_org(db)
    f.booking(db, org, f.client(db, org, phone="+61412345095"), start=T + timedelta(minutes=30))
    f.booking(db, org, f.client(db, org, phone=None), start=T + timedelta(minutes=30))
    f.booking(db, org, f.client(db, org, phone="+61412345096"), start=T - timedelta(hours=3))
    result = CliRunner().invoke(app, ["run", "--at", T.isoformat(), "--json"], catch_exceptions=False)
    payload = json.loads(result.stdout)
    assert payload["queued"] == {"session_reminder": 1, "feedback_request": 1}
    assert payload["sent"] == {"session_reminder": 1, "feedback_request": 1}
    assert payload["failed"] == {}
    fates = db.execute("""select r.outcome, r.reason, r.detail->>'to' from tick_results r
                          where r.flow_run_id = %s and r.step like 'text:%%'
                          order by r.outcome, r.detail->>'to'""",
                       (payload["flow_run_id"],)).fetchall()
    assert fates == [("sent", None, "+6141*****095"), ("sent", None, "+6141*****096"), ("skipped", "missing_phone", "-")]


def test_an_org_without_settings_gets_the_defaults_everywhere(db, database_url):
    """booking_cron.domain.org_defaults is the one home of an org's defaults: planning's and the
    sender's reads of an org that stored none give them, and so do the columns' own defaults
    (migrations 0001-0002), which a change of a default must migrate too."""
    from booking_cron.domain import org_defaults
    from booking_cron.sms.outbox import Outbox, ClaimedText

    org_id = f.org(db, sms=True, quiet_hours_start=None, quiet_hours_end=None)
    db.execute("update sms_settings set max_sms_per_hour = null, max_sms_per_client_per_day = null where org_id = %s",
               (org_id,))
    db.execute("delete from booking_settings where org_id = %s", (org_id,))
    box = Outbox(database_url)
    orgs, _, _, _ = box.planning_inputs(T)
    assert (orgs[org_id].timezone, orgs[org_id].quiet_start, orgs[org_id].quiet_end) == (
        org_defaults.TIMEZONE, org_defaults.QUIET_HOURS_START, org_defaults.QUIET_HOURS_END)
    text = ClaimedText(str(uuid.uuid4()), "k", "session_reminder", None, str(uuid.uuid4()), org_id, None,
                       "+61412345678", None, None, "hi", T + timedelta(hours=1), 1, False, None)
    quiet, budget = box.sending_context([text], T)
    assert (quiet[org_id].timezone, quiet[org_id].start, quiet[org_id].end) == (
        org_defaults.TIMEZONE, org_defaults.QUIET_HOURS_START, org_defaults.QUIET_HOURS_END)
    assert (budget.max_per_hour[org_id], budget.max_per_client_per_day[org_id]) == (
        org_defaults.MAX_SMS_PER_HOUR, org_defaults.MAX_SMS_PER_CLIENT_PER_DAY)

    columns = dict(db.execute(
        """select table_name || '.' || column_name, column_default from information_schema.columns
           where table_schema = 'public' and (table_name, column_name) in
             (('booking_settings', 'timezone'), ('sms_settings', 'quiet_hours_start'), ('sms_settings', 'quiet_hours_end'),
              ('sms_settings', 'max_sms_per_hour'), ('sms_settings', 'max_sms_per_client_per_day'))""").fetchall())
    assert columns == {
        "booking_settings.timezone": f"'{org_defaults.TIMEZONE}'::text",
        "sms_settings.quiet_hours_start": str(org_defaults.QUIET_HOURS_START),
        "sms_settings.quiet_hours_end": str(org_defaults.QUIET_HOURS_END),
        "sms_settings.max_sms_per_hour": str(org_defaults.MAX_SMS_PER_HOUR),
        "sms_settings.max_sms_per_client_per_day": str(org_defaults.MAX_SMS_PER_CLIENT_PER_DAY),
    }


def test_the_window_of_bookings_that_may_owe_a_text_is_one_rule_in_any_session_time_zone(db, database_url):
    """plan.owing_window is the one rule: the tick's query reads exactly the bookings a backfill's
    per-slot check counts, also when the database session's time zone changes its clocks within the
    look-ahead (PostgreSQL adds an interval's days on that zone's calendar; the window is durations)."""
    from booking_cron.domain.texts.plan import lookahead, owing_window
    from booking_cron.domain.texts.replay import _candidate_at
    from booking_cron.sms.outbox import Outbox

    t = datetime(2030, 4, 6, 1, 0, tzinfo=timezone.utc)  # Sydney's clocks go back on 7 April 2030, 03:00
    org_id = texting_org(db)  # longest offset 90 min (feedback): the window reaches 2 days 90 min past t
    client = f.client(db, org_id)
    box = Outbox(psycopg.conninfo.make_conninfo(database_url, options="-c TimeZone=Australia/Sydney"))
    _, schedules, _, _ = box.planning_inputs(t)
    ahead = lookahead(schedules)
    assert ahead == timedelta(days=2, minutes=90)
    window = owing_window(t, t, ahead)
    edges = {
        "starts at t": f.booking(db, org_id, client, start=t),
        "starts at the window's end": f.booking(db, org_id, client, start=t + ahead),
        "starts 30 min past it": f.booking(db, org_id, client, start=t + ahead + timedelta(minutes=30)),
        "ended 48 h before t": f.booking(db, org_id, client, start=t - timedelta(hours=49), status="completed"),
        "ended 47 h before t": f.booking(db, org_id, client, start=t - timedelta(hours=48), status="completed"),
        "ends at t": f.booking(db, org_id, client, start=t - timedelta(hours=1), status="completed"),
    }
    _, _, bookings, _ = box.planning_inputs(t)
    read = {b.booking_id for b in bookings}
    assert {name for name, b in edges.items() if b in read} == {
        "starts at the window's end", "ended 47 h before t", "ends at t"}
    assert all(window.holds(b) and _candidate_at(b, t, ahead) for b in bookings)
    replay = box.replay_inputs(t, t)
    assert {b.booking_id for b in replay.candidates} == read
