"""Provider faults: 30% of sends hit 429, 500, 503, a timeout after the provider accepted, a dropped
connection before or after accepting. Ticks run until nothing is left to send; every text ends
sent exactly once (the provider has it once, the outbox says sent with its sid), or failed or
unknown with a reason; nothing reaches the provider twice."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from tests import factories as f
from tests.faultkit import (  # noqa: F401 (fixtures)
    T, count, duplicate_texts, fault_counts, phone, run_tick, sandbox, sandbox_server, texting_org, violations,
)

KINDS = ["429", "500", "503", "timeout_after_accept", "drop", "drop_after_accept"]


def outbox(db) -> list[tuple]:
    return db.execute(
        "select id::text, status, error_code, provider_message_id, to_phone, body from sms_messages").fetchall()


@pytest.mark.parametrize("fault_rate,texts", [(0.3, 60), (0.6, 30)])
def test_every_text_is_sent_once_or_failed_with_a_reason_under_provider_faults(db, sandbox, monkeypatch,
                                                                               fault_rate, texts):
    monkeypatch.setenv("BOOKING_CRON_SMS_TIMEOUT", "0.5")
    monkeypatch.setenv("BOOKING_CRON_SMS_RECONCILE_GRACE", "0")  # the sandbox lists at once: no lag to wait out
    orgs = [texting_org(db, name=f"Org {i}", reminder_offset=240) for i in range(2)]
    for i in range(texts):
        org = orgs[i % 2]
        f.booking(db, org, f.client(db, org, f"Client{i} Lee", phone()), start=T + timedelta(hours=2, minutes=i))
    sandbox.configure(fault_rate=fault_rate, fault_kinds=KINDS, stall_seconds=1)

    ticks = 0
    while ticks < 12:
        run_tick(T + timedelta(minutes=10 * ticks))
        ticks += 1
        if not db.execute("select count(*) from sms_messages where status in ('scheduled', 'sending')").fetchone()[0]:
            break
    count("faults_injected", sandbox.stats()["faults_injected"])

    rows = outbox(db)
    assert len(rows) == texts
    fates = Counter(status for _, status, *_ in rows)
    assert set(fates) <= {"sent", "failed", "unknown"}, fates
    assert [r for r in rows if r[1] != "sent" and not r[2]] == []  # failed/unknown carry a reason
    assert duplicate_texts(sandbox) == []
    at_provider = {m["sid"]: (m["to"], m["body"]) for m in sandbox.messages}
    by_text = {(to, body) for to, body in at_provider.values()}
    for _, status, _, sid, to, body in rows:
        if status == "sent":
            assert at_provider.get(sid) == (to, body)
        elif status == "failed":
            assert (to, body) not in by_text  # failed means the provider does not have it
    assert fates["sent"] == len(at_provider) - sum(  # every accepted text is a sent row, or an unknown one
        1 for _, status, _, _, to, body in rows if status == "unknown" and (to, body) in by_text)
    assert sandbox.stats()["faults_injected"] > 0
    assert fates["sent"] >= texts * 0.8, fates
    assert violations(db, sandbox) == []
