"""The local Twilio sandbox, driven through the real twilio SDK via make_twilio_client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from booking_cron.sandbox import TwilioSandbox
from booking_cron.sandbox.server import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from booking_cron.config import DEFAULT_TWILIO_API_URL
from booking_cron.sms.twilio_client import make_twilio_client

TO = "+61400000678"
FROM = "+61400999000"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox():
    with TwilioSandbox(seed=7) as sb:
        yield sb


@pytest.fixture
def client(sandbox):
    return make_twilio_client(sandbox.account_sid, sandbox.auth_token, api_url=sandbox.url, timeout=2.0)


def send(client, to=TO, body="Your session is tomorrow at 9:00", **kwargs):
    kwargs.setdefault("from_", FROM)
    return client.messages.create(to=to, body=body, **kwargs)


def admin(sandbox, path, payload=None):
    data = None if payload is None else json.dumps(payload).encode()
    with urllib.request.urlopen(urllib.request.Request(sandbox.url + path, data=data), timeout=5) as resp:
        return json.loads(resp.read())


def test_create_is_recorded_listed_and_fetchable(sandbox, client):
    message = send(client)

    assert message.sid.startswith("SM") and len(message.sid) == 34
    assert message.status == "queued"
    assert (message.to, message.from_, message.num_segments) == (TO, FROM, "1")
    assert message.date_created is not None and message.price is None
    [record] = sandbox.messages
    assert record["sid"] == message.sid and record["to"] == TO and record["body"] == message.body
    assert [m.sid for m in client.messages.list(to=TO)] == [message.sid]
    assert client.messages.list(to="+61400000111") == []
    assert client.messages(message.sid).fetch().body == message.body


def test_messaging_service_and_paging_newest_first(sandbox, client):
    sids = [client.messages.create(to=TO, messaging_service_sid="MG" + "1" * 32, body=f"m{i}").sid
            for i in range(5)]

    listed = client.messages.list(to=TO, page_size=2)  # the SDK follows next_page_uri across 3 pages

    assert [m.sid for m in listed] == sids[::-1]
    assert listed[0].messaging_service_sid == "MG" + "1" * 32 and listed[0].from_ is None
    assert sum(r["outcome"] == "accepted" for r in sandbox.requests) == 5


def test_unknown_message_sid_is_404(client):
    with pytest.raises(TwilioRestException) as err:
        client.messages("SM" + "0" * 32).fetch()
    assert (err.value.status, err.value.code) == (404, 20404)


def test_wrong_token_is_401_20003(sandbox):
    bad = make_twilio_client(sandbox.account_sid, "wrong-token", api_url=sandbox.url, timeout=2.0)
    with pytest.raises(TwilioRestException) as err:
        send(bad)
    assert (err.value.status, err.value.code) == (401, 20003)
    assert sandbox.messages == []
    assert [r["outcome"] for r in sandbox.requests] == ["unauthorized"]


def test_account_sid_in_path_must_match(sandbox):
    other = make_twilio_client("AC" + "f" * 32, sandbox.auth_token, api_url=sandbox.url, timeout=2.0)
    with pytest.raises(TwilioRestException) as err:
        send(other)
    assert (err.value.status, err.value.code) == (401, 20003)
    assert sandbox.messages == []


@pytest.mark.parametrize("kwargs, code", [
    ({"to": "0400000678"}, 21211),
    ({"to": "+6140"}, 21211),
    ({"from_": None}, 21603),
    ({"body": ""}, 21602),
    ({"body": "x" * 1601}, 21617),
])
def test_validation_errors(sandbox, client, kwargs, code):
    with pytest.raises(TwilioRestException) as err:
        send(client, **kwargs)
    assert (err.value.status, err.value.code) == (400, code)
    assert sandbox.messages == []
    assert sandbox.requests[-1]["outcome"] == f"error:{code}"


def test_number_errors_reject_specific_recipients(sandbox, client):
    sandbox.configure(number_errors={"+61400000001": 21610})

    with pytest.raises(TwilioRestException) as err:
        send(client, to="+61400000001")
    ok = send(client)

    assert (err.value.status, err.value.code) == (400, 21610)
    assert [m["sid"] for m in sandbox.messages] == [ok.sid]


def test_one_shot_500_then_success(sandbox, client):
    sandbox.configure(one_shot_faults=["500"])

    with pytest.raises(TwilioRestException) as err:
        send(client)
    retried = send(client)

    assert (err.value.status, err.value.code) == (500, 20500)
    assert [m["sid"] for m in sandbox.messages] == [retried.sid]
    assert [r["outcome"] for r in sandbox.requests] == ["fault:500", "accepted"]
    assert sandbox.stats()["faults_injected"] == 1


@pytest.mark.parametrize("kind", ["429", "503"])
def test_status_faults_are_not_recorded(sandbox, client, kind):
    sandbox.configure(one_shot_faults=[kind])
    with pytest.raises(TwilioRestException) as err:
        send(client)
    assert err.value.status == int(kind) and err.value.code == 20000 + int(kind)
    assert sandbox.messages == []


def test_timeout_after_accept_records_but_client_times_out(sandbox):
    client = make_twilio_client(sandbox.account_sid, sandbox.auth_token, api_url=sandbox.url, timeout=0.5)
    sandbox.configure(one_shot_faults=["timeout_after_accept"], stall_seconds=2)

    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        send(client, body="stalled")
    elapsed = time.monotonic() - started

    assert 0.4 < elapsed < 1.5  # the client's timeout fired, not the 2 s stall, and no retry followed
    [record] = sandbox.messages
    assert record["body"] == "stalled"
    assert [m.sid for m in client.messages.list(to=TO)] == [record["sid"]]
    assert len(sandbox.requests) == 1


def test_drop_is_a_connection_error_and_not_recorded(sandbox, client):
    sandbox.configure(one_shot_faults=["drop"])
    with pytest.raises(requests.exceptions.ConnectionError):
        send(client)
    assert sandbox.messages == []
    assert [r["outcome"] for r in sandbox.requests] == ["fault:drop"]  # exactly one attempt: no SDK retry


def test_drop_after_accept_is_a_connection_error_but_recorded(sandbox, client):
    sandbox.configure(one_shot_faults=["drop_after_accept"])
    with pytest.raises(requests.exceptions.ConnectionError):
        send(client, body="sent anyway")
    assert [m["body"] for m in sandbox.messages] == ["sent anyway"]
    assert len(sandbox.requests) == 1


def test_rate_limit_rejects_over_limit_and_caps_any_second(sandbox, client):
    sandbox.configure(rate_limit=5)
    outcomes = []
    for i in range(20):
        try:
            send(client, body=f"burst {i}")
            outcomes.append(201)
        except TwilioRestException as exc:
            assert exc.code == 20429
            outcomes.append(exc.status)

    assert outcomes.count(429) >= 1 and outcomes.count(201) >= 1
    assert outcomes.count(201) == len(sandbox.messages) == sandbox.stats()["accepted"]
    assert sandbox.stats()["rate_limited"] == outcomes.count(429)
    assert 1 <= sandbox.max_in_any_second() <= 5


def test_max_in_any_second_counts_the_peak_window(sandbox, client):
    for _ in range(3):
        send(client)
    assert sandbox.max_in_any_second() == 3
    sandbox.reset()
    assert sandbox.max_in_any_second() == 0 and sandbox.messages == [] and sandbox.requests == []


def test_latency_delays_every_api_request(sandbox, client):
    sandbox.configure(latency=0.2)
    started = time.monotonic()
    send(client)
    assert time.monotonic() - started >= 0.2
    assert len(sandbox.messages) == 1


def test_random_faults_are_reproducible_with_a_seed():
    def outcomes(seed):
        with TwilioSandbox(seed=seed) as sb:
            sb.configure(fault_rate=0.5, fault_kinds=["500", "503"])
            client = make_twilio_client(sb.account_sid, sb.auth_token, api_url=sb.url, timeout=2.0)
            for _ in range(12):
                try:
                    send(client)
                except TwilioRestException:
                    pass
            return [r["outcome"] for r in sb.requests]

    first = outcomes(3)
    assert first == outcomes(3)
    assert {"accepted"} < set(first)  # both successes and faults happened


def test_configure_rejects_unknown_settings(sandbox):
    with pytest.raises(ValueError):
        sandbox.configure(fault_kinds=["explode"])
    with pytest.raises(ValueError):
        sandbox.configure(colour="blue")
    assert sandbox.config()["fault_kinds"] != ["explode"]


def test_admin_endpoints(sandbox, client):
    config = admin(sandbox, "/_sandbox/config", {"one_shot_faults": ["503"], "number_errors": {"+61400000002": 21614}})
    assert config["one_shot_faults"] == ["503"]
    with pytest.raises(TwilioRestException):
        send(client)
    ok = send(client)

    assert [m["sid"] for m in admin(sandbox, "/_sandbox/messages")] == [ok.sid]
    stats = admin(sandbox, "/_sandbox/stats")
    assert stats["accepted"] == 1 and stats["requests"] == 2
    assert stats["faults_injected"] == 1 and stats["max_in_any_second"] == 1

    admin(sandbox, "/_sandbox/reset", {})
    assert admin(sandbox, "/_sandbox/messages") == [] and sandbox.config()["number_errors"] == {}
    with pytest.raises(urllib.error.HTTPError) as err:
        admin(sandbox, "/_sandbox/config", {"nope": 1})
    assert err.value.code == 400


def test_factory_defaults_to_real_twilio_without_api_url():
    client = make_twilio_client("AC" + "0" * 32, "token")
    assert client.api.base_url == DEFAULT_TWILIO_API_URL
    assert client.http_client.timeout == 10.0


def test_cli_prints_masked_accepted_messages_and_stops_on_sigterm():
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "booking_cron.sandbox", "--port", "0"],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT)
    try:
        banner = proc.stdout.readline()
        url = banner.split("listening on ")[1].split()[0]
        send(make_twilio_client(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, api_url=url, timeout=2.0), body="hello")
        line = proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        proc.kill()
    assert "+6140*****678: hello" in line and TO not in line
