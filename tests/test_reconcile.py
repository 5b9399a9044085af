"""A provider outage loses no text (issue 20): texts of unknown fate are reconciled by later ticks.

The sandbox is killed mid-send (some texts accepted but unanswered, some never reached it) and
restarted with the messages it had accepted, as Twilio would; look-ups fail for a while and then
recover. Ticks then run until nothing is left unresolved: every due text went exactly once (the
provider's messages against the outbox) or expired with a reason, and none stays `unknown`.
The look-up grace is 1.5 s here (BOOKING_CRON_SMS_RECONCILE_GRACE) instead of 3 minutes, so
the proof runs in seconds; the sandbox lists messages 0.5 s late, inside that grace.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from booking_cron.reporting.attention import attention_items, state_message
from booking_cron.config import TwilioSettings
from booking_cron.sms.gateway import TwilioGateway
from booking_cron.webhooks.app import BackgroundServer
from tests import factories as f
from tests.conftest import free_port
from tests.faultkit import (  # noqa: F401 (fixtures)
    T, count, duplicate_texts, fault_counts, phone, run_tick, sandbox, sandbox_server, texting_org, violations,
)

GRACE = 1.5


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setenv("BOOKING_CRON_SMS_TIMEOUT", "1")
    monkeypatch.setenv("BOOKING_CRON_SMS_RECONCILE_GRACE", str(GRACE))


def outbox(db) -> list[tuple]:
    return db.execute("select id::text, status, error_code, provider_message_id, to_phone, body from sms_messages"
                      ).fetchall()


def unresolved(db) -> int:
    return db.execute("select count(*) from sms_messages where status in ('unknown', 'sending', 'scheduled')"
                      ).fetchone()[0]


def texts_due(db, n: int, first_start: timedelta = timedelta(minutes=30)) -> list[str]:
    org = texting_org(db)  # reminders 60 min before the session: due at T, expire when it starts
    return [f.booking(db, org, f.client(db, org, f"Client{i} Lee", phone()), start=T + first_start + timedelta(minutes=i))
            for i in range(n)]


def kill_after_accepts(sandbox, n: int) -> threading.Event:
    """Stop the sandbox (as a kill would: listening socket closed, in-flight requests unanswered)
    right after its n-th accepted message; returns the event set once it is down."""
    down, accepted, lock = threading.Event(), [0], threading.Lock()

    def on_accept(_record: dict) -> None:
        with lock:
            accepted[0] += 1
            if accepted[0] != n:
                return
        sandbox.stop()
        down.set()

    sandbox.on_accept = on_accept
    return down


def reconcile(db, start: datetime, max_ticks: int = 10) -> tuple[int, list[dict]]:
    """Ticks every 10 minutes (and at least the grace apart) until nothing is unresolved."""
    summaries = []
    for n in range(1, max_ticks + 1):
        time.sleep(GRACE)
        summaries.append(run_tick(start + timedelta(minutes=10 * n)))
        if not unresolved(db):
            return n, summaries
    raise AssertionError(f"still unresolved after {max_ticks} ticks: {Counter(r[1] for r in outbox(db))}")


def assert_each_text_once_or_expired(db, sandbox) -> Counter:
    rows = outbox(db)
    fates = Counter(status for _, status, *_ in rows)
    assert set(fates) <= {"sent", "expired"}, fates
    assert [r for r in rows if r[1] == "expired" and not r[2]] == []  # expired with its reason
    assert duplicate_texts(sandbox) == []
    at_provider = {m["sid"]: (m["to"], m["body"]) for m in sandbox.messages}
    sent = {sid: (to, body) for _, status, _, sid, to, body in rows if status == "sent"}
    assert sent == at_provider  # every sent text is the provider's message, and the provider has no other
    expired = {(to, body) for _, status, _, _, to, body in rows if status == "expired"}
    assert not expired & set(at_provider.values())  # an expired text never went
    assert violations(db, sandbox) == []
    return fates


def test_texts_in_flight_when_the_provider_dies_are_each_sent_once_after_it_restarts(db, sandbox, fast, capsys):
    bookings = texts_due(db, 12)
    sandbox.configure(latency=0.3)  # sends in flight when it dies: accepted but unanswered
    down = kill_after_accepts(sandbox, 3)

    first = run_tick(T)
    assert down.wait(5)
    accepted_before = len(sandbox.messages)
    assert accepted_before >= 3  # some went; those still queued in the sender never reached it (usually some)
    assert first["text_reasons"].get("unknown"), first  # the provider could not be asked
    assert "need attention" not in state_message(first)  # fresh unknowns are the ticks' job, not a person's
    assert "of unknown fate being looked up" in state_message(first)
    unknown_after_kill = db.execute("select count(*) from sms_messages where status = 'unknown'").fetchone()[0]
    assert unknown_after_kill >= len(bookings) - 3

    sandbox.on_accept = None
    sandbox.start()  # the same port, the messages it had accepted kept
    sandbox.configure(latency=0.0, list_lag=0.5)
    ticks, summaries = reconcile(db, T)

    fates = assert_each_text_once_or_expired(db, sandbox)
    assert fates == {"sent": len(bookings)}
    assert sum(s["reconciled"] for s in summaries) == unknown_after_kill
    assert len(sandbox.messages) == len(bookings)
    count("reconcile_ticks_after_kill", ticks)
    with capsys.disabled():
        print(f"\nreconciliation after the provider was killed: {unknown_after_kill} unknown texts "
              f"({accepted_before} accepted before it died) settled in {ticks} tick(s)")


def test_texts_stay_unknown_while_look_ups_fail_and_are_settled_once_they_answer(db, sandbox, fast, capsys):
    texts_due(db, 6, first_start=timedelta(minutes=55))  # fresh through the ticks below
    # three sends whose fate is unknown: accepted then dropped, dropped before, a 500 (not accepted)
    sandbox.configure(one_shot_faults=["drop_after_accept", "drop", "500"], list_fault=503)
    run_tick(T)
    assert Counter(r[1] for r in outbox(db)) == {"sent": 3, "unknown": 3}

    failing = 0
    for n in range(1, 3):  # look-ups still fail: nothing is resent, nothing settled
        time.sleep(GRACE)
        summary = run_tick(T + timedelta(minutes=10 * n))
        failing += 1
        assert summary["text_reasons"]["unknown"] == {"lookup_failed": 3}
        assert summary["reconciled"] == 0
        assert attention_items(summary) == []
        assert len(sandbox.messages) == 4
    sandbox.configure(list_fault=None)
    ticks, summaries = reconcile(db, T + timedelta(minutes=20))

    assert_each_text_once_or_expired(db, sandbox)
    assert Counter(r[1] for r in outbox(db)) == {"sent": 6}
    assert summaries[-1]["reconciled"] + sum(s["reconciled"] for s in summaries[:-1]) == 3
    assert "reconciled" in state_message(summaries[0])
    count("reconcile_ticks_after_lookups_recover", ticks)
    with capsys.disabled():
        print(f"\nreconciliation with look-ups failing: {failing} tick(s) failing, then settled in {ticks} tick(s)")


def test_a_receipt_settles_a_text_whose_send_was_never_answered_before_any_later_tick(
        db, sandbox, fast, database_url, monkeypatch):
    """The provider accepted the text but never answered, and look-ups fail: the text is `unknown`
    until the provider's receipt arrives, naming the text in its signed callback URL; the text is
    then sent with that MessageSid (and delivered) without waiting for a tick, and a later tick,
    with look-ups working again, sends nothing more."""
    texts_due(db, 1)
    sandbox.configure(one_shot_faults=["timeout_after_accept"], stall_seconds=3, list_fault=503, callback_delay=2.5)
    with BackgroundServer(sandbox.auth_token, port=free_port(), database_url=database_url,
                          account_sid=sandbox.account_sid) as hooks:
        monkeypatch.setenv("BOOKING_CRON_PUBLIC_URL", hooks.url)
        first = run_tick(T)
        assert [r[1] for r in outbox(db)] == ["unknown"]  # the receipt has not come yet
        assert first["text_reasons"].get("unknown"), first
        deadline = time.monotonic() + 15
        while len(sandbox.callbacks) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
    [message] = sandbox.messages
    assert [(c["status"], c["http"]) for c in sandbox.callbacks] == [("sent", 204), ("delivered", 204)]
    [(_, status, code, sid, _, _)] = outbox(db)
    assert (status, code, sid) == ("delivered", None, message["sid"])
    sandbox.configure(list_fault=None)
    run_tick(T + timedelta(minutes=10))
    assert len(sandbox.messages) == 1 and duplicate_texts(sandbox) == []
    assert violations(db, sandbox) == []


def test_a_text_that_never_went_and_is_now_stale_expires_with_its_reason(db, sandbox, fast):
    [b] = texts_due(db, 1, first_start=timedelta(minutes=15))  # the session starts at T + 15 min
    sandbox.stop()  # the provider is down: the send cannot say, the look-up cannot answer
    try:
        run_tick(T)
    finally:
        sandbox.start()
    assert outbox(db)[0][1] == "unknown"
    time.sleep(GRACE)
    summary = run_tick(T + timedelta(minutes=20))  # after the session started
    status, code = db.execute("select status, error_code from sms_messages where related_entity_id = %s",
                              (b,)).fetchone()
    assert (status, code) == ("expired", "stale") or status == "expired" and code, (status, code)
    assert summary["reconciled"] == 1
    assert sandbox.messages == []


def test_a_look_up_inside_the_grace_does_not_conclude_never_sent(db, sandbox, fast, monkeypatch):
    monkeypatch.setenv("BOOKING_CRON_SMS_RECONCILE_GRACE", "600")
    texts_due(db, 1)
    sandbox.configure(one_shot_faults=["drop_after_accept"], list_lag=30)  # the list lags its accepts
    run_tick(T)
    run_tick(T + timedelta(minutes=10))  # not listed yet, but the attempt is younger than the grace
    assert [r[1:3] for r in outbox(db)] == [("unknown", "not_found_yet")]
    assert len(sandbox.messages) == 1  # never resent
    sandbox.configure(list_lag=0)
    summary = run_tick(T + timedelta(minutes=20))
    assert [r[1] for r in outbox(db)] == ["sent"] and summary["reconciled"] == 1
    assert outbox(db)[0][3] == sandbox.messages[0]["sid"]


def test_an_unknown_text_unresolved_past_an_hour_needs_attention_with_its_age(db, sandbox, fast):
    texts_due(db, 1, first_start=timedelta(minutes=55))
    sandbox.configure(one_shot_faults=["drop"], list_fault=503)
    run_tick(T)
    db.execute("update sms_messages set attempted_at = now() - interval '2 hours 5 minutes'")
    summary = run_tick(T + timedelta(minutes=10))
    items = attention_items(summary)
    assert [(label, n) for label, n, _ in items] == [("text of unknown fate", 1)]
    assert items[0][2] == "1 text of unknown fate (unresolved 2 h+)"  # its age
    assert "1 needs attention: 1 text of unknown fate (unresolved 2 h+)" in state_message(summary)


def test_look_ups_page_through_many_messages_to_one_number_and_match_exactly(sandbox):
    gateway = TwilioGateway(TwilioSettings(sandbox.account_sid, sandbox.auth_token, sandbox.url), timeout=5)
    to, sender = "+61412999000", "+61400000000"
    since = datetime.now(timezone.utc) - timedelta(minutes=1)
    target = gateway.send(to, "Hi Ava, see you Tue 10:00", sender, None).sid
    twin = gateway.send(to, "Hi Ava, see you Tue 10:00", sender, None).sid  # another session, same words
    for i in range(230):  # newer messages to the same number push it past two pages
        gateway.send(to, f"other {i}", sender, None)
    gateway.send("+61412999001", "Hi Ava, see you Tue 10:00", sender, None)  # the same body, another number
    assert gateway.lookup(to, "Hi Ava, see you Tue 10:00", since) == twin  # newest first
    assert gateway.lookup(to, "Hi Ava, see you Tue 10:00", since, taken={twin}) == target
    assert gateway.lookup(to, "Hi Ava, see you Tue 10:00", since, taken={twin, target}) is None
    assert gateway.lookup(to, "Hi Ava, see you Tue 10:0", since) is None  # exact bodies only
    assert gateway.lookup(to, "Hi Ava, see you Tue 10:00", datetime.now(timezone.utc) + timedelta(minutes=5)) is None
    assert sandbox.stats()["list_requests"] >= 3  # it paged
    # the sandbox filters on DateSent like Twilio
    client = gateway.client
    assert len(client.messages.list(to=to, date_sent_after=since, page_size=100)) == 232
    assert client.messages.list(to=to, date_sent_after=datetime.now(timezone.utc) + timedelta(minutes=5)) == []
