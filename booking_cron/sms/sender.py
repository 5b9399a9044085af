"""Delivering claimed texts: decide, re-check under the booking's lock, send, settle.

Concurrency covers provider latency; a shared pacer keeps the provider rate; an outcome that
may have reached the provider is looked up before any retry, and marked unknown (never
blindly resent) when the provider cannot say.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from booking_cron.faults import crash_point
from booking_cron.results import StepResult, text_step
from booking_cron.sms.gateway import (
    ACCEPTED, MAYBE_SENT, REJECTED, SUPPRESSING_CODES, LookupFailed, SendResult, SmsGateway,
)
from booking_cron.sms.outbox import CLAIM_LOST, ClaimedText, Outbox
from booking_cron.texts.phones import mask_phone
from booking_cron.texts.sending import Decision, QuietHours, SendBudget, decide_send, limit_wait, retry_delay

MAX_ATTEMPTS_PER_TICK = 4
MAX_CLAIMS = 8  # a text claimed this many times without an outcome fails for good
LEASE = timedelta(minutes=5)  # how long a claim holds a text before another sender may take it


class Pacer:
    """At most `rate` sends a second across threads: each send takes the next free slot.

    Slots are spaced for 95% of the rate: network jitter can bunch two requests together at the
    provider, and a 429 costs a retry, which costs more than the 5%.
    """

    HEADROOM = 0.95

    def __init__(self, rate: float):
        self.interval = 1.0 / (rate * self.HEADROOM) if rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            slot = max(time.monotonic(), self._next)
            self._next = slot + self.interval
        delay = slot - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def send_clock(tick_at: datetime) -> Callable[[], datetime]:
    """The sender's now: real time, or a tick's future T (a simulation) moving at real speed.

    A tick in the past (a backfill) sends by real time, so nothing stale now goes out.
    """
    offset = max(tick_at - utc_now(), timedelta(0))
    return lambda: utc_now() + offset


@dataclass
class Sender:
    outbox: Outbox
    gateway: SmsGateway
    pacer: Pacer
    concurrency: int = 8
    backoff: float = 0.5
    clock: Callable[[], datetime] = utc_now
    rng: random.Random = field(default_factory=random.Random)

    def deliver(self, texts: list[ClaimedText], quiet: dict[str, QuietHours], budget: SendBudget) -> list[StepResult]:
        lock = threading.Lock()

        def one(text: ClaimedText) -> StepResult:
            try:
                outcome, reason = self._deliver_one(text, quiet.get(text.org_id), budget, lock)
            except Exception as error:  # noqa: BLE001 - one text's surprise must not stop the batch
                # the claim stays: when its lease runs out, a sender looks it up before any resend
                outcome, reason = "error", type(error).__name__
            return StepResult(text.booking_id, text_step(text.kind, text.schedule_id), outcome, reason,
                              {"message_id": text.id, "to": mask_phone(text.to_phone)})

        with ThreadPoolExecutor(max_workers=max(1, self.concurrency), thread_name_prefix="sms") as pool:
            return list(pool.map(one, texts))

    def _deliver_one(self, text: ClaimedText, quiet: QuietHours | None, budget: SendBudget,
                     lock: threading.Lock) -> tuple[str, str | None]:
        now = self.clock()
        # A sender died mid-send: the provider may have it. Ask first, whatever happens next,
        # so that neither a deferral nor "expired" hides a text that went out.
        if text.reclaimed:
            try:
                sid = self.gateway.lookup(text.to_phone, text.body, utc_now() - LEASE - timedelta(minutes=5))
            except LookupFailed as error:
                self.outbox.settle(text.id, text.attempts, "unknown", code="lookup_failed", detail=str(error)[:200])
                return "unknown", "lookup_failed"
            if sid:  # it went out while the dead sender held its claim
                self.outbox.settle(text.id, text.attempts, "sent", sid=sid, sent_at=text.previous_claim_at or now)
                return "sent", "found_at_provider"
        if quiet is None:  # the org turned texting off (or lost its settings) after queueing
            self.outbox.settle(text.id, text.attempts, "cancelled", code="sms_disabled")
            return "cancelled", "sms_disabled"
        decision = decide_send(text.expires_at, quiet, now)
        if decision.action != "send":
            return self._not_now(text, decision)
        with lock:
            limit = budget.take(text.org_id, text.client_id or "")
        if limit:
            self.outbox.settle(text.id, text.attempts, "queued", code=limit, until=limit_wait(limit, now))
            return "deferred", limit
        with self.outbox.send_guard(text.id, text.attempts) as (blocker, conn):
            if blocker == CLAIM_LOST:
                outcome = ("claim_lost", None)  # another sender reclaimed it after our lease ran out
            elif blocker:
                status = "skipped" if blocker in ("opted_out", "suppressed") else "cancelled"
                self.outbox.settle(text.id, text.attempts, status, code=blocker, conn=conn)
                outcome = (status, blocker)
            else:
                outcome = self._send(text, conn)
        if outcome[0] != "sent":
            with lock:
                budget.give_back(text.org_id, text.client_id or "")
        return outcome

    def _not_now(self, text: ClaimedText, decision: Decision) -> tuple[str, str | None]:
        if decision.action == "expire":
            self.outbox.settle(text.id, text.attempts, "expired", code=decision.reason)
            return "expired", decision.reason
        self.outbox.settle(text.id, text.attempts, "queued", code=decision.reason, until=decision.until)
        return "deferred", decision.reason

    def _send(self, text: ClaimedText, conn) -> tuple[str, str | None]:
        last: SendResult | None = None
        started = utc_now() - timedelta(minutes=1)  # the provider's clock, for look-ups
        for attempt in range(MAX_ATTEMPTS_PER_TICK):
            if attempt:
                time.sleep(retry_delay(attempt - 1, self.backoff, self.rng.uniform(0.5, 1.5)))
            if self.clock() >= text.expires_at:
                self.outbox.settle(text.id, text.attempts, "expired", code="stale", conn=conn)
                return "expired", "stale"
            self.pacer.wait()
            last = self.gateway.send(text.to_phone, text.body, text.from_phone, text.messaging_service_sid)
            if last.kind == ACCEPTED:
                crash_point("after_provider_accept")
                self.outbox.settle(text.id, text.attempts, "sent", sid=last.sid, sent_at=self.clock(), conn=conn)
                return "sent", None
            if last.kind == REJECTED:
                code = int(last.code) if (last.code or "").isdigit() else None
                if code in SUPPRESSING_CODES:
                    self.outbox.suppress(text.org_id, text.to_phone, SUPPRESSING_CODES[code], conn)
                self.outbox.settle(text.id, text.attempts, "failed", code=last.code, detail=last.detail, conn=conn)
                return "failed", f"provider_{last.code}"
            if last.kind == MAYBE_SENT:
                try:
                    sid = self.gateway.lookup(text.to_phone, text.body, started)
                except LookupFailed as error:
                    self.outbox.settle(text.id, text.attempts, "unknown", code=last.code, detail=str(error)[:200],
                                       conn=conn)
                    return "unknown", f"{last.code}_then_lookup_failed"
                if sid:
                    self.outbox.settle(text.id, text.attempts, "sent", sid=sid, sent_at=self.clock(), conn=conn)
                    return "sent", f"found_after_{last.code}"
        assert last is not None
        if text.attempts >= MAX_CLAIMS:
            self.outbox.settle(text.id, text.attempts, "failed", code="retries_exhausted", detail=last.code, conn=conn)
            return "failed", "retries_exhausted"
        self.outbox.settle(text.id, text.attempts, "queued", code=last.code, until=self.clock() + timedelta(minutes=1),
                           conn=conn)
        return "deferred", f"retrying_{last.code}"
