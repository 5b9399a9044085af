"""`booking-cron webhooks` through real HTTP: uvicorn on a port of its own, requests signed by the
twilio SDK's RequestValidator, state read back from PostgreSQL and from the sandbox."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from twilio.request_validator import RequestValidator

from booking_cron.webhooks.app import BackgroundServer
from tests import factories as f
from tests.faultkit import (  # noqa: F401 (fixtures)
    SANDBOX_TOKEN, T, fault_counts, phone, run_tick, sandbox, sandbox_server, texting_org, violations,
)

ORG_NUMBER = "+61280000001"  # the number tests/factories.py gives every texting org
PUBLIC = "https://hooks.example.com/booking"  # what a TLS proxy in front would be called
SOON = T + timedelta(minutes=40)


def free_port(first: int = 4700, last: int = 4799) -> int:
    for port in range(first, last + 1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 4700-4799")


@pytest.fixture(scope="module")
def hooks(database_url):
    with BackgroundServer(SANDBOX_TOKEN, PUBLIC, port=free_port(), database_url=database_url) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client


def signed(path: str, params: dict, token: str = SANDBOX_TOKEN, url: str = PUBLIC) -> dict:
    return {"X-Twilio-Signature": RequestValidator(token).compute_signature(url + path, params),
            "Content-Type": "application/x-www-form-urlencoded"}


def post(client, path: str, params: dict, headers: dict | None = None) -> httpx.Response:
    return client.post(path, content=urlencode(params), headers=signed(path, params) if headers is None else headers)


def receipt(sid: str, status: str, code: str | None = None) -> dict:
    params = {"MessageSid": sid, "SmsSid": sid, "MessageStatus": status, "AccountSid": "AC" + "0" * 32}
    return {**params, "ErrorCode": code} if code else params


def reply(body: str, sender: str, to: str = ORG_NUMBER, sid: str | None = None) -> dict:
    return {"MessageSid": sid or "SM" + uuid.uuid4().hex, "From": sender, "To": to, "Body": body, "NumMedia": "0"}


def sent_text(db, org: str | None = None, to: str | None = None) -> tuple[str, str, str]:
    """An outbox row as the sender leaves it after the provider accepted it: (row id, sid, number)."""
    org = org or texting_org(db)
    to = to or phone()
    client = f.client(db, org, "Ava Nguyen", to)
    booking = f.booking(db, org, client, start=SOON)
    sid = "SM" + uuid.uuid4().hex
    row = db.execute(
        """insert into sms_messages (org_id, client_id, to_phone, body, related_entity_id, idempotency_key, kind,
             status, sent_at, provider_message_id)
           values (%s, %s, %s, 'Hi', %s, %s, 'session_reminder', 'sent', now(), %s) returning id::text""",
        (org, client, to, booking, f"session_reminder:-:{booking}", sid)).fetchone()[0]
    return row, sid, to


def text_state(db, row: str) -> tuple:
    return db.execute("select status, error_code from sms_messages where id = %s", (row,)).fetchone()


def suppressions(db, number: str) -> list[tuple]:
    return db.execute("select org_id::text, reason from sms_suppression where phone = %s order by org_id",
                      (number,)).fetchall()


# --- signatures ---------------------------------------------------------------------------------

def test_unsigned_or_wrongly_signed_requests_get_403_and_change_nothing(db, hooks):
    row, sid, to = sent_text(db)
    body = receipt(sid, "undelivered", "30003")
    attempts = {
        "unsigned": {"Content-Type": "application/x-www-form-urlencoded"},
        "another token": signed("/twilio/status", body, token="not-the-token"),
        "the bind address instead of the public URL": signed("/twilio/status", body, url=str(hooks.base_url)),
        "another path": signed("/twilio/inbound", body),
        "other fields": signed("/twilio/status", {**body, "ErrorCode": "30007"}),
    }
    for why, headers in attempts.items():
        assert post(hooks, "/twilio/status", body, headers).status_code == 403, why
    stop = reply("STOP", to)
    assert post(hooks, "/twilio/inbound", stop, {"Content-Type": "application/x-www-form-urlencoded"}).status_code == 403
    assert text_state(db, row) == ("sent", None)
    assert suppressions(db, to) == []
    assert db.execute("select count(*) from sms_inbound").fetchone()[0] == 0


# --- receipts -----------------------------------------------------------------------------------

def test_delivered_is_recorded_and_nothing_moves_it_back(db, hooks):
    row, sid, _ = sent_text(db)
    assert post(hooks, "/twilio/status", receipt(sid, "sent")).status_code == 204
    assert text_state(db, row) == ("sent", None)
    assert post(hooks, "/twilio/status", receipt(sid, "delivered")).status_code == 204
    assert text_state(db, row) == ("delivered", None)
    for late in ("sent", "queued", "delivered", "undelivered", "failed"):  # late, replayed, contradicting
        assert post(hooks, "/twilio/status", receipt(sid, late, "30003" if late != "sent" else None)).status_code == 204
    assert text_state(db, row) == ("delivered", None)


def test_out_of_order_receipts_end_on_the_furthest_status(db, hooks):
    row, sid, to = sent_text(db)
    assert post(hooks, "/twilio/status", receipt(sid, "undelivered", "30007")).status_code == 204
    assert post(hooks, "/twilio/status", receipt(sid, "sending")).status_code == 204
    assert post(hooks, "/twilio/status", receipt(sid, "sent")).status_code == 204
    assert text_state(db, row) == ("failed", "30007")
    assert suppressions(db, to) == []  # carrier filtering says nothing about the number


@pytest.mark.parametrize("code, reason", [("30003", "invalid_number"), ("30005", "invalid_number"),
                                          ("30006", "invalid_number"), ("21610", "opt_out"),
                                          ("21614", "invalid_number")])
def test_undelivered_for_a_dead_number_fails_the_text_and_suppresses_the_number(db, hooks, code, reason):
    org = texting_org(db)
    row, sid, to = sent_text(db, org)
    for _ in range(2):  # the replay changes nothing
        assert post(hooks, "/twilio/status", receipt(sid, "undelivered", code)).status_code == 204
    assert text_state(db, row) == ("failed", code)
    assert suppressions(db, to) == [(org, reason)]


def test_a_receipt_for_an_unknown_message_is_answered_and_ignored(db, hooks):
    row, _, _ = sent_text(db)
    assert post(hooks, "/twilio/status", receipt("SM" + uuid.uuid4().hex, "delivered")).status_code == 204
    assert text_state(db, row) == ("sent", None)


def test_a_receipt_naming_a_text_settles_it_only_while_its_fate_is_unknown(db, hooks):
    """The sender names the text in the StatusCallback URL (`?text=<id>`, signed by Twilio with the
    rest): a receipt for a MessageSid no text holds settles that text only while it is `unknown`
    and sid-less; a settled text keeps its own sid, and a sid another text holds is never taken."""
    unknown_row, _, _ = sent_text(db)
    db.execute("update sms_messages set status = 'unknown', provider_message_id = null, sent_at = null,"
               " error_code = 'timeout' where id = %s", (unknown_row,))
    settled_row, settled_sid, _ = sent_text(db)
    other_row, other_sid, _ = sent_text(db)

    def post_naming(row: str, params: dict) -> int:
        path = f"/twilio/status?text={row}"
        return hooks.post(path, content=urlencode(params), headers=signed(path, params)).status_code

    new_sid = "SM" + uuid.uuid4().hex
    assert post_naming(settled_row, receipt(new_sid, "delivered")) == 204
    assert db.execute("select status, provider_message_id from sms_messages where id = %s",
                      (settled_row,)).fetchone() == ("sent", settled_sid)
    assert post_naming(unknown_row, receipt(other_sid, "delivered")) == 204  # held by another text
    assert text_state(db, unknown_row) == ("unknown", "timeout")
    assert text_state(db, other_row) == ("delivered", None)  # the receipt is that text's own
    assert post_naming("not-a-uuid", receipt(new_sid, "sent")) == 204
    assert text_state(db, unknown_row) == ("unknown", "timeout")
    assert post_naming(unknown_row, receipt(new_sid, "sent")) == 204
    assert db.execute("select status, provider_message_id, sent_at is not null from sms_messages where id = %s",
                      (unknown_row,)).fetchone() == ("sent", new_sid, True)
    assert post_naming(unknown_row, receipt(new_sid, "delivered")) == 204
    assert text_state(db, unknown_row) == ("delivered", None)


def test_a_receipt_that_overtakes_the_senders_commit_is_applied_once_the_sid_is_recorded(db, hooks, database_url):
    row, sid, _ = sent_text(db)
    # as the sender leaves it mid-send: claimed, the provider's sid not committed yet
    db.execute("update sms_messages set status = 'sending', provider_message_id = null, sent_at = null, "
               "locked_until = now() + interval '1 minute' where id = %s", (row,))

    def sender_commits():
        time.sleep(0.5)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("update sms_messages set status = 'sent', provider_message_id = %s, sent_at = now() "
                         "where id = %s", (sid, row))

    committer = threading.Thread(target=sender_commits)
    committer.start()
    response = post(hooks, "/twilio/status", receipt(sid, "delivered"))
    committer.join()
    assert response.status_code == 204
    assert text_state(db, row) == ("delivered", None)


# --- replies --------------------------------------------------------------------------------------

def test_stop_stops_the_next_send_and_start_lifts_it(db, hooks, sandbox, caplog):
    org, other_org = texting_org(db), texting_org(db, name="Other Number", twilio_phone_number="+61280000999")
    number = phone()
    client = f.client(db, org, "Ava Nguyen", number)
    f.client(db, other_org, "Ava Nguyen", number)
    caplog.set_level("INFO", logger="booking_cron.webhooks")
    response = post(hooks, "/twilio/inbound", reply("  stop ", number))
    assert response.status_code == 200 and "<Message>" not in response.text
    assert suppressions(db, number) == [(org, "opt_out")]  # only the org that texts from that number
    first = f.booking(db, org, client, start=SOON)
    run_tick(T)
    assert db.execute("select status, error_code from sms_messages where related_entity_id = %s",
                      (first,)).fetchall() == [("skipped", "suppressed")]
    assert [m for m in sandbox.messages if m["to"] == number] == []

    assert post(hooks, "/twilio/inbound", reply("Start", number)).status_code == 200
    assert suppressions(db, number) == []
    second = f.booking(db, org, client, start=SOON + timedelta(minutes=5))
    run_tick(T)
    assert db.execute("select status from sms_messages where related_entity_id = %s", (second,)).fetchall() == [("sent",)]
    assert len([m for m in sandbox.messages if m["to"] == number]) == 1
    assert violations(db, sandbox) == []
    logged = caplog.text
    assert number not in logged and SANDBOX_TOKEN not in logged and "+6141*****" in logged


@pytest.mark.parametrize("word", ["STOP", "stopall", "Unsubscribe", "CANCEL", "end", "QUIT", "revoke", " OPTOUT\n"])
def test_every_opt_out_word_suppresses(db, hooks, word):
    org, number = texting_org(db), phone()
    assert post(hooks, "/twilio/inbound", reply(word, number)).status_code == 200
    assert suppressions(db, number) == [(org, "opt_out")]


def test_audit_reports_a_text_sent_after_an_opt_out(db, hooks):
    org = texting_org(db)
    row, sid, number = sent_text(db, org)
    assert post(hooks, "/twilio/inbound", reply("STOP", number)).status_code == 200
    db.execute("update sms_messages set sent_at = now() + interval '1 minute' where id = %s", (row,))
    found = violations(db, count_them=False)
    assert any(v.startswith(f"no_text_after_opt_out: {row}") for v in found), found
    assert post(hooks, "/twilio/inbound", reply("UNSTOP", number)).status_code == 200
    db.execute("update sms_messages set sent_at = now() + interval '2 minutes' where id = %s", (row,))
    assert [v for v in violations(db, count_them=False) if v.startswith("no_text_after_opt_out")] == []


def test_yes_confirms_the_next_upcoming_unconfirmed_booking_once(db, hooks):
    org, number = texting_org(db), phone()
    client = f.client(db, org, "Ava Nguyen", number)
    asked = datetime.now(timezone.utc)
    later = f.booking(db, org, client, start=T + timedelta(days=2), confirmation_sent_at=asked)
    sooner = f.booking(db, org, client, start=T + timedelta(days=1), confirmation_sent_at=asked)
    past = f.booking(db, org, client, start=datetime.now(timezone.utc) - timedelta(days=1), confirmation_sent_at=asked)
    yes = reply(" yes ", number)
    response = post(hooks, "/twilio/inbound", yes)
    assert response.status_code == 200 and "confirmed" in response.text
    confirmed = dict(db.execute("select id::text, client_confirmed from bookings where client_id = %s", (client,)))
    assert confirmed == {sooner: True, later: False, past: False}
    assert post(hooks, "/twilio/inbound", yes).status_code == 200  # Twilio's replay of the same reply
    assert db.execute("select client_confirmed from bookings where id = %s", (later,)).fetchone() == (False,)
    assert post(hooks, "/twilio/inbound", reply("Y", number)).status_code == 200
    assert db.execute("select client_confirmed from bookings where id = %s", (later,)).fetchone() == (True,)


def test_anything_else_is_recorded_and_answered_with_an_empty_reply(db, hooks):
    org, number = texting_org(db), phone()
    message = reply("Running 5 min late, sorry!", number)
    response = post(hooks, "/twilio/inbound", message)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert response.text.endswith("<Response></Response>")
    assert db.execute("select from_phone, body, action, org_ids from sms_inbound where message_sid = %s",
                      (message["MessageSid"],)).fetchall() == [(number, "Running 5 min late, sorry!", "other",
                                                                [uuid.UUID(org)])]
    assert suppressions(db, number) == []


# --- hostile input ------------------------------------------------------------------------------

def test_malformed_junk_and_huge_bodies_get_4xx_and_the_server_keeps_serving(db, hooks):
    row, sid, _ = sent_text(db)
    form = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": "x"}
    cases = {
        "not UTF-8": (b"\xff\xfe\x00junk=\x80", form),
        "not a form": (b"%%%===&&&", form),
        "JSON": (b'{"MessageSid": "x"}', {"Content-Type": "application/json"}),
        "no content type": (b"MessageSid=x", {}),
        "2 MB": (b"Body=" + b"A" * (2 * 1024 * 1024), form),
        "a repeated field": (b"MessageSid=a&MessageSid=b", form),
    }
    for why, (content, headers) in cases.items():
        for path in ("/twilio/status", "/twilio/inbound"):
            answer = hooks.post(path, content=content, headers=headers)
            assert 400 <= answer.status_code < 500, (why, path, answer.status_code)
    missing = {"MessageSid": sid}  # signed, but no MessageStatus
    assert post(hooks, "/twilio/status", missing).status_code == 400
    assert hooks.get("/twilio/status").status_code == 405
    assert hooks.post("/nothing/here", content=b"a=b", headers=form).status_code == 404
    with httpx.Client(base_url=hooks.base_url, timeout=10) as streaming:  # chunked: no Content-Length to trust
        chunks = (b"Body=" + b"B" * 65536 for _ in range(32))
        assert 400 <= streaming.post("/twilio/status", content=chunks, headers=form).status_code < 500
    assert text_state(db, row) == ("sent", None)
    assert post(hooks, "/twilio/status", receipt(sid, "delivered")).status_code == 204  # still serving
    assert text_state(db, row) == ("delivered", None)


# --- end to end -----------------------------------------------------------------------------------

def test_the_sandbox_calls_back_and_the_tick_counts_receipts(db, sandbox, database_url, monkeypatch):
    org = texting_org(db)
    fine, dead = phone(), phone()
    for number in (fine, dead):
        f.booking(db, org, f.client(db, org, "Ava Nguyen", number), start=SOON)
    sandbox.configure(undeliverable={dead: 30003})
    with BackgroundServer(SANDBOX_TOKEN, port=free_port(), database_url=database_url,
                          account_sid=sandbox.account_sid) as server:
        monkeypatch.setenv("BOOKING_CRON_PUBLIC_URL", server.url)
        run_tick(T)
        deadline = time.monotonic() + 10
        while len(sandbox.callbacks) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert sorted((c["status"], c["http"]) for c in sandbox.callbacks) == [
        ("delivered", 204), ("sent", 204), ("sent", 204), ("undelivered", 204)]
    states = dict(db.execute("select to_phone, status || ':' || coalesce(error_code, '') from sms_messages"))
    assert states == {fine: "delivered:", dead: "failed:30003"}
    assert suppressions(db, dead) == [(org, "invalid_number")]
    summary = run_tick(T + timedelta(minutes=10))
    assert summary["receipts"] == {"delivered": 1, "undelivered": 1, "awaiting_receipt": 0}


# --- the upgrade ----------------------------------------------------------------------------------

def test_upgrade_rewrites_stored_suppressions_in_e164(server_url):
    from yoyo import get_backend, read_migrations

    from booking_cron.storage import database, schema
    from tests.hosting import owned_database

    with owned_database(server_url, "booking_cron_e164") as url:
        backend = get_backend(schema._yoyo_url(url))
        before = read_migrations(str(schema.MIGRATIONS_DIR)).filter(lambda m: m.id < "0040")
        with backend.lock():
            backend.apply_migrations(backend.to_apply(before))
        with database.connection(url) as conn:
            org, london = f.org(conn), f.org(conn, tz="Europe/London")
            for org_id, number in ((org, "0412 399 002"), (org, "+61412399003"), (org, "0412-399-003"),
                                   (london, "07911 123456"), (org, "not a number")):
                conn.execute("insert into sms_suppression (org_id, phone, reason) values (%s, %s, 'manual')",
                             (org_id, number))
        schema.upgrade(url)
        with database.connection(url) as conn:
            rows = conn.execute("select org_id::text, phone from sms_suppression order by phone").fetchall()
        assert rows == [(london, "+447911123456"), (org, "+61412399002"), (org, "+61412399003"), (org, "not a number")]
