"""`booking-cron webhooks` against clients that are not Twilio (issue 16, item 4), through real
sockets: uvicorn on a port of its own, requests signed by the twilio SDK's RequestValidator.

- a request without X-Twilio-Signature is refused before its body is read;
- a slow request head or body is cut off within seconds, and slow or silent connections, however
  many, cannot make a correctly signed STOP or receipt wait or fail;
- only Twilio's fields, in Twilio's form and for our account, are accepted, so a captured request
  cannot be re-split into a "new" one (an old START lifting a newer STOP).
"""

from __future__ import annotations

import select
import socket
import time
import uuid
from urllib.parse import urlencode

import httpx
import pytest
from twilio.request_validator import RequestValidator

from booking_cron.webhooks import app as webhooks
from booking_cron.webhooks.app import BackgroundServer
from tests.faultkit import SANDBOX_TOKEN, fault_counts, phone, texting_org  # noqa: F401 (fixtures)
from tests.test_webhooks import ORG_NUMBER, PUBLIC, free_port, sent_text, suppressions, text_state

ACCOUNT = "AC" + "5e" * 16
FORM = "application/x-www-form-urlencoded"
SHORT = 1.5  # the deadlines of the `fast` server: the mechanism of the defaults, in less time


@pytest.fixture(scope="module")
def fast(database_url):
    with BackgroundServer(SANDBOX_TOKEN, PUBLIC, port=free_port(), database_url=database_url, account_sid=ACCOUNT,
                          head_seconds=SHORT, body_seconds=SHORT) as server:
        yield server


@pytest.fixture(scope="module")
def patient(database_url):
    """Deadlines far beyond the test: whatever gets through does so while the slow clients hang on."""
    with BackgroundServer(SANDBOX_TOKEN, PUBLIC, port=free_port(), database_url=database_url, account_sid=ACCOUNT,
                          head_seconds=60, body_seconds=60) as server:
        yield server


def signature(path: str, params: dict) -> str:
    return RequestValidator(SANDBOX_TOKEN).compute_signature(PUBLIC + path, params)


def post(server, path: str, params: dict, sig: str | None = None) -> httpx.Response:
    headers = {"X-Twilio-Signature": sig or signature(path, params), "Content-Type": FORM}
    with httpx.Client(base_url=server.url, timeout=20) as client:
        return client.post(path, content=urlencode(params), headers=headers)


def reply(body: str, sender: str, sid: str | None = None, **more) -> dict:
    sid = sid or "SM" + uuid.uuid4().hex
    return {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "Body": body, "From": sender, "FromCountry": "AU",
            "MessageSid": sid, "NumMedia": "0", "NumSegments": "1", "SmsMessageSid": sid, "SmsSid": sid,
            "SmsStatus": "received", "To": ORG_NUMBER, "ToCountry": "AU", **more}


def receipt(sid: str, status: str, code: str | None = None) -> dict:
    form = {"AccountSid": ACCOUNT, "ApiVersion": "2010-04-01", "From": ORG_NUMBER, "MessageSid": sid,
            "MessageStatus": status, "SmsSid": sid, "SmsStatus": status}
    return {**form, "ErrorCode": code} if code else form


def request_head(path: str, length: int, sig: str | None = "bogus+signature=") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: hooks.example.com", f"Content-Type: {FORM}", f"Content-Length: {length}"]
    if sig is not None:
        lines.append(f"X-Twilio-Signature: {sig}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def connect(server, data: bytes = b"", timeout: float = 20) -> socket.socket:
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    if data:
        sock.sendall(data)
    return sock


def status_of(sock: socket.socket) -> int:
    """The status code of the answer on `sock` (socket.timeout if none comes)."""
    seen = b""
    while b"\r\n" not in seen:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed without an answer after {seen!r}")
        seen += chunk
    return int(seen.split(b" ", 2)[1])


def closed_by_server(sock: socket.socket, wait: float) -> bool:
    """Whether the server closes `sock` within `wait` seconds (any answer before that is skipped)."""
    sock.settimeout(wait)
    try:
        while sock.recv(4096):
            pass
        return True
    except ConnectionResetError:
        return True
    except (socket.timeout, TimeoutError):
        return False


def still_open(sock: socket.socket) -> bool:
    """Open and unanswered: nothing to read yet (an answer or the server's close would be)."""
    sock.setblocking(False)
    try:
        sock.recv(1)
        return False
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def watch(socks: dict[str, socket.socket], trickle: dict[str, bytes], seconds: float) -> dict[str, tuple]:
    """Send each socket in `trickle` its bytes every 0.2 s while it is open and unanswered; return,
    for each socket, what the server sent and how long after the start it closed the connection."""
    started, seen, closed = time.monotonic(), {name: b"" for name in socks}, {}
    while len(closed) < len(socks) and time.monotonic() - started < seconds:
        readable, _, _ = select.select([s for n, s in socks.items() if n not in closed], [], [], 0.2)
        for name, sock in socks.items():
            if sock in readable:
                try:
                    data = sock.recv(4096)
                except ConnectionResetError:
                    data = b""
                seen[name] += data
                if not data:
                    closed[name] = time.monotonic() - started
        for name, data in trickle.items():
            if name not in closed and not seen[name]:
                try:
                    socks[name].sendall(data)
                except OSError:
                    pass
    return {name: (seen[name], closed.get(name)) for name in socks}


# --- refused before the body ----------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/twilio/inbound", "/twilio/status"])
def test_a_request_without_a_signature_is_refused_before_its_body_is_read(fast, path):
    """Headers announce 1,000 bytes that never come: the answer is 403 at once, not the 408 that
    reading the body first would end in."""
    for sig in (None, "", "A" * 200):
        with connect(fast, request_head(path, 1000, sig), timeout=10 * SHORT) as sock:
            assert status_of(sock) == 403, sig


# --- deadlines ----------------------------------------------------------------------------------

def test_slow_heads_and_bodies_are_cut_off_within_seconds(fast):
    """Each way of holding a connection open is cut off within the deadlines (SHORT each here):
    a trickle resets no clock."""
    socks = {
        "silent": connect(fast),
        "slow head": connect(fast, b"POST /twilio/inbound HTTP/1.1\r\nHost: hooks.example.com\r\n"),
        "stalled body": connect(fast, request_head("/twilio/inbound", 300) + b"Body=ST"),
        "trickled body": connect(fast, request_head("/twilio/status", 300)),
        "refused, then trickling": connect(fast, request_head("/twilio/inbound", 300, sig=None)),
    }
    trickle = {"slow head": b"X-A: b\r\n", "trickled body": b"a"}
    try:
        assert status_of(socks["refused, then trickling"]) == 403
        trickle["refused, then trickling"] = b"a"
        outcome = watch(socks, trickle, 10 * SHORT)
    finally:
        for sock in socks.values():
            sock.close()
    for name, (answer, closed_after) in outcome.items():
        assert closed_after is not None and closed_after < 4 * SHORT, (name, closed_after)
    assert outcome["stalled body"][0].startswith(b"HTTP/1.1 408")
    assert outcome["trickled body"][0].startswith(b"HTTP/1.1 408")
    assert outcome["silent"][0] == outcome["slow head"][0] == b""


def test_the_deadlines_are_seconds():
    assert webhooks.HEAD_SECONDS <= 10 and webhooks.BODY_SECONDS <= 10  # Twilio's own timeout is 15 s
    assert webhooks.WebhookSettings("https://x", "t").body_seconds == webhooks.BODY_SECONDS
    config = webhooks._config(webhooks.WebhookSettings("https://x", "t"), "127.0.0.1", 0)
    assert config.limit_concurrency is None
    assert config.http.head_seconds == webhooks.HEAD_SECONDS
    assert config.http.max_connections == webhooks.MAX_CONNECTIONS


# --- capacity -------------------------------------------------------------------------------------

def test_slow_clients_cannot_starve_a_signed_stop_or_receipt(db, patient):
    """120 connections stalled mid-body (bogus signatures) and 60 silent ones, well past uvicorn's
    old limit of 100: a signed STOP and a signed receipt are answered while they all hang on."""
    org = texting_org(db)
    row, sid, _ = sent_text(db, org)
    number = phone()
    slow = [connect(patient, request_head("/twilio/inbound" if i % 2 else "/twilio/status", 500) + b"Body=")
            for i in range(120)]
    slow += [connect(patient) for _ in range(60)]
    try:
        time.sleep(0.3)  # every one of them reaches the server first
        stop = post(patient, "/twilio/inbound", reply("STOP", number))
        assert stop.status_code == 200
        assert suppressions(db, number) == [(org, "opt_out")]
        assert post(patient, "/twilio/status", receipt(sid, "delivered")).status_code == 204
        assert text_state(db, row) == ("delivered", None)
        assert sum(still_open(sock) for sock in slow) == len(slow)  # answered alongside them, not after
    finally:
        for sock in slow:
            sock.close()


def test_beyond_max_connections_the_longest_waiting_make_room(db, database_url):
    with BackgroundServer(SANDBOX_TOKEN, PUBLIC, port=free_port(), database_url=database_url, account_sid=ACCOUNT,
                          head_seconds=60, body_seconds=60, max_connections=40) as server:
        org, number = texting_org(db), phone()
        slow = []
        try:
            for i in range(100):
                slow.append(connect(server, request_head("/twilio/inbound", 500) if i % 2 else b""))
                time.sleep(0.002)  # in a known order
            time.sleep(0.3)
            assert post(server, "/twilio/inbound", reply("STOP", number)).status_code == 200
            assert suppressions(db, number) == [(org, "opt_out")]
            open_now = [still_open(sock) for sock in slow]
            assert sum(open_now) <= 40
            assert not any(open_now[:50]) and all(open_now[-30:])  # the oldest made room, the newest wait on
        finally:
            for sock in slow:
                sock.close()


# --- only Twilio's fields, for our account ----------------------------------------------------------

def test_only_twilios_fields_in_twilios_form_for_our_account_are_accepted(db, fast):
    org = texting_org(db)
    row, sid, to = sent_text(db, org)
    good = receipt(sid, "undelivered", "30003")
    refused = {
        "an unknown field": {**good, "Hello": "x"},
        "a reply's field": {**good, "Body": "STOP"},
        "another account": {**good, "AccountSid": "AC" + "77" * 16},
        "no account": {k: v for k, v in good.items() if k != "AccountSid"},
        "a MessageSid not in Twilio's form": {**good, "MessageSid": sid + "0", "SmsSid": sid + "0"},
        "SmsSid not the MessageSid": {**good, "SmsSid": "SM" + uuid.uuid4().hex},
        "an ErrorCode not in Twilio's form": {**good, "ErrorCode": "30003x"},
    }
    for why, form in refused.items():
        answer = post(fast, "/twilio/status", form)
        assert answer.status_code == 400, (why, answer.status_code, answer.text)
    number = phone()
    for form in (reply("STOP", number, NumMedia="01x"), reply("STOP", number, From=number[1:]),
                 reply("STOP", number, ProfileName="Ava"), reply("STOP", number, ToCity="Sydney")):
        assert post(fast, "/twilio/inbound", form).status_code == 400
    assert text_state(db, row) == ("sent", None) and suppressions(db, to) == [] and suppressions(db, number) == []
    assert db.execute("select count(*) from sms_inbound where from_phone = %s", (number,)).fetchone()[0] == 0
    assert post(fast, "/twilio/status", good).status_code == 204  # still serving
    assert text_state(db, row) == ("failed", "30003")


def test_odd_headers_get_4xx_never_5xx(fast):
    cases = {
        "a 20 KB header, and no body": request_head("/twilio/status", 10)[:-2] + b"X-Big: " + b"a" * 20000 + b"\r\n\r\n",
        "a Content-Length that is no number": request_head("/twilio/status", 10).replace(b"Length: 10", b"Length: x"),
        "a huge Content-Length": request_head("/twilio/inbound", 10 ** 12),
        "not HTTP": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n",
    }
    for why, data in cases.items():
        with connect(fast, data, timeout=10 * SHORT) as sock:
            assert 400 <= status_of(sock) < 500, why


# --- no re-split replay -------------------------------------------------------------------------

def test_a_replayed_start_re_split_into_a_new_message_cannot_lift_a_newer_stop(db, fast):
    org, number = texting_org(db), phone()
    old_sid = "SM" + uuid.uuid4().hex
    start = {"MessageSid": old_sid, "From": number, "To": ORG_NUMBER, "Body": "START", "NumMedia": "0",
             "AccountSid": ACCOUNT}
    captured = signature("/twilio/inbound", start)
    assert post(fast, "/twilio/inbound", start, captured).status_code == 200  # the client's START, long ago
    assert post(fast, "/twilio/inbound", reply("STOP", number)).status_code == 200  # their STOP, since
    assert suppressions(db, number) == [(org, "opt_out")]
    assert post(fast, "/twilio/inbound", start, captured).status_code == 200  # a plain replay: Twilio's sid, seen
    assert suppressions(db, number) == [(org, "opt_out")]

    # The same signature over other splits of the same string ("MessageSid" SM.. "NumMedia" "0" ...):
    without = {k: v for k, v in start.items() if k != "NumMedia"}
    twilio_form = reply("START", number, sid=old_sid, MessagingServiceSid="MG" + "1a" * 16)
    full_signature = signature("/twilio/inbound", twilio_form)
    variants = [
        ({**without, "MessageSid": old_sid + "NumMedia0"}, captured),                         # the issue's
        ({**start, "NumMedia": "0To" + ORG_NUMBER, "To": ""}, captured),                    # To into NumMedia
        ({**{k: v for k, v in start.items() if k != "From"}, "Body": "STARTFrom" + number}, captured),  # From into Body
        ({**{k: v for k, v in twilio_form.items() if k != "MessagingServiceSid"},
          "MessageSid": old_sid + "MessagingServiceSid" + twilio_form["MessagingServiceSid"]}, full_signature),
    ]
    for form, sig in variants:
        form = {k: v for k, v in form.items() if v != "" or k == "Body"}
        assert RequestValidator(SANDBOX_TOKEN).validate(PUBLIC + "/twilio/inbound", form, sig), form
        answer = post(fast, "/twilio/inbound", form, sig)
        assert 400 <= answer.status_code < 500, (form, answer.status_code)
    assert suppressions(db, number) == [(org, "opt_out")]
    assert db.execute("select message_sid from sms_inbound where message_sid not like 'SM%%' or "
                      "length(message_sid) <> 34").fetchall() == []
