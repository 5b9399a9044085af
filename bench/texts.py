"""Comparison 4: 2,000 due session reminders through the Twilio sandbox at 50 messages/s.

The sandbox (latency 0.1 s, rate limit 50/s) runs in the bench process, as the provider would
run elsewhere; the tick runs in a subprocess (bench.worker) with TWILIO_* pointing at it, so
the sender and the sandbox do not share an interpreter. The ideal is n / rate seconds.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import psycopg

from bench.data import load_texts
from bench.env import one, scratch_database
from bench.runner import tick_in_subprocess
from booking_cron.sandbox import TwilioSandbox

TEXTS_T = datetime(2030, 3, 12, 1, 0, tzinfo=timezone.utc)  # 11:00 in Brisbane: outside quiet hours
RATE = 50
LATENCY = 0.1


def run(server: str, n: int = 2000, concurrency: int = 16) -> dict:
    with scratch_database(server, "texts") as url, TwilioSandbox(latency=LATENCY, rate_limit=RATE) as sandbox:
        load_texts(url, n, TEXTS_T)
        env = {"TWILIO_ACCOUNT_SID": sandbox.account_sid, "TWILIO_AUTH_TOKEN": sandbox.auth_token,
               "TWILIO_API_URL": sandbox.url, "BOOKING_CRON_SMS_RATE": str(RATE),
               "BOOKING_CRON_SMS_CONCURRENCY": str(concurrency)}
        tick = tick_in_subprocess(url, TEXTS_T, env=env)
        messages, stats = sandbox.messages, sandbox.stats()
        with psycopg.connect(url) as conn:
            outbox: dict[str, int] = dict(conn.execute("select status, count(*) from public.sms_messages group by status").fetchall())
            keys = one(conn.execute("select count(*), count(distinct idempotency_key) from public.sms_messages").fetchone())
    per_number = Counter(m["to"] for m in messages)
    accepted = sorted(m["accepted_at"] for m in messages) or [tick["started_at"]]
    send = tick["steps"].get("send_texts", 0.0)
    return {
        "n": n, "ideal": n / RATE, "tick_seconds": tick["seconds"], "send_seconds": send,
        "queue_seconds": tick["steps"].get("queue_texts", 0.0),
        "accepted": len(messages), "distinct_numbers": len(per_number),
        "duplicates": sum(c - 1 for c in per_number.values() if c > 1),
        "max_in_any_second": stats["max_in_any_second"], "rate_limited": stats["rate_limited"],
        "requests": stats["requests"], "outbox": outbox, "outbox_rows": keys[0], "outbox_keys": keys[1],
        "sent": tick["summary"].get("sent"), "statements": tick["statements"],
        # from the start of the tick to the first and to the last message the sandbox accepted
        "first_accept": accepted[0] - tick["started_at"], "last_accept": accepted[-1] - tick["started_at"],
    }
