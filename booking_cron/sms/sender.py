"""Delivering claimed texts: decide, re-check under the booking's lock, send, settle.

Concurrency covers provider latency; a send slot from the database (sms/rate.py) keeps the
provider rate across every worker; an outcome that
may have reached the provider is looked up before any retry, and marked unknown (never
blindly resent) when the provider cannot say or does not list it yet.

Reconciliation (issue 20): every later claim looks an `unknown` text up again before any new
send. Found: `sent`, with its sid. Not found: only once its last send attempt is older than the
grace does "not found" mean "never went"; then it is sent if still fresh, else expired.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable

from booking_cron import config
from booking_cron.faults import crash_point
from booking_cron.domain.results import StepResult, text_step
from booking_cron.sms.gateway import (
    ACCEPTED, MAYBE_SENT, REJECTED, LookupFailed, SendResult, SmsGateway,
)
from booking_cron.sms.outbox import CLAIM_LOST, ClaimedText, Outbox
from booking_cron.sms.rate import SendRate
from booking_cron.sms.twilio_codes import suppression_reason
from booking_cron.domain.texts.phones import mask_phone
from booking_cron.domain.texts.plan import SENDER_NOT_ASSIGNED
from booking_cron.domain.texts.sending import Decision, QuietHours, SendBudget, decide_send, limit_wait, retry_delay

MAX_ATTEMPTS_PER_TICK = 4
MAX_CLAIMS = 8  # a text claimed this many times without an outcome fails for good
LEASE = timedelta(minutes=5)  # how long a claim holds a text before another sender may take it
LOOKUP_SKEW = timedelta(minutes=1)
UNRESOLVED_LIMIT = timedelta(hours=1)  # an unknown text older than this needs a person (attention.py)


def unknown_reason(why: str, attempted_at: datetime | None) -> str:
    """A still-unknown text's reason: `why`, or `unresolved_<hours>h_<why>` once older than the limit."""
    age = utc_now() - attempted_at if attempted_at else timedelta(0)
    return f"unresolved_{int(age // timedelta(hours=1))}h_{why}" if age >= UNRESOLVED_LIMIT else why


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
    rate: SendRate
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
        if not text.unknown:
            return self._decide_and_send(text, quiet, budget, lock)
        resolved = self._reconcile(text)
        if resolved:
            return resolved
        # it never went: on as any text (sent if fresh, expired with its reason if not)
        outcome, reason = self._decide_and_send(text, quiet, budget, lock)
        return outcome, f"reconciled_{reason or 'never_sent'}"

    def _reconcile(self, text: ClaimedText) -> tuple[str, str | None] | None:
        """Look an unknown text up: its fate, or None when it certainly never reached the provider."""
        attempted = text.attempted_at or text.created_at or utc_now()
        since = min(text.created_at or attempted, attempted) - LOOKUP_SKEW  # before any send of it
        try:
            sid = self.gateway.lookup(text.to_phone, text.body, since, self.outbox.sids_taken(text))
        except LookupFailed as error:
            self.outbox.settle(text.id, text.attempts, "unknown", code="lookup_failed", detail=str(error)[:200])
            return "unknown", unknown_reason("lookup_failed", attempted)
        if sid:
            went = self.clock() - max(utc_now() - attempted, timedelta(0))  # the attempt, on the sender's clock
            self.outbox.settle(text.id, text.attempts, "sent", sid=sid, sent_at=went)
            return "sent", "reconciled_found_at_provider"
        if utc_now() - attempted < config.sms_reconcile_grace():  # the provider's list may not show it yet
            self.outbox.settle(text.id, text.attempts, "unknown", code="not_found_yet",
                               detail=f"not listed yet; concluded after {config.sms_reconcile_grace()}")
            return "unknown", unknown_reason("not_found_yet", attempted)
        return None

    def _decide_and_send(self, text: ClaimedText, quiet: QuietHours | None, budget: SendBudget,
                         lock: threading.Lock) -> tuple[str, str | None]:
        now = self.clock()
        # A sender died mid-send: the provider may have it. Ask first, whatever happens next,
        # so that neither a deferral nor "expired" hides a text that went out.
        if text.reclaimed:
            try:
                sid = self.gateway.lookup(text.to_phone, text.body, utc_now() - LEASE - timedelta(minutes=5),
                                          self.outbox.sids_taken(text))
            except LookupFailed as error:  # reconciled later; its last attempt was before now at the latest
                self.outbox.settle(text.id, text.attempts, "unknown", code="lookup_failed", detail=str(error)[:200],
                                   attempted_at=utc_now())
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
        outcome: tuple[str, str | None]
        with self.outbox.send_guard(text.id, text.attempts) as (blocker, conn):
            if blocker == CLAIM_LOST:
                outcome = ("claim_lost", None)  # another sender reclaimed it after our lease ran out
            elif blocker == SENDER_NOT_ASSIGNED:  # unassigned since the claim: it waits again, unsent
                self.outbox.settle(text.id, text.attempts, "queued", code=blocker, conn=conn)
                outcome = ("deferred", blocker)
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
        started = utc_now() - LOOKUP_SKEW  # the provider's clock, for look-ups
        taken: frozenset[str] | None = None
        for attempt in range(MAX_ATTEMPTS_PER_TICK):
            if attempt:
                time.sleep(retry_delay(attempt - 1, self.backoff, self.rng.uniform(0.5, 1.5)))
            if self.clock() >= text.expires_at:
                self.outbox.settle(text.id, text.attempts, "expired", code="stale", conn=conn)
                return "expired", "stale"
            self.rate.wait(text.from_phone or text.messaging_service_sid or "")
            attempted_at = utc_now()
            last = self.gateway.send(text.to_phone, text.body, text.from_phone, text.messaging_service_sid,
                                     reference=str(text.id))
            if last.kind == ACCEPTED:
                crash_point("after_provider_accept")
                self.outbox.settle(text.id, text.attempts, "sent", sid=last.sid, sent_at=self.clock(), conn=conn)
                return "sent", None
            if last.kind == REJECTED:
                reason = suppression_reason(last.code)
                if reason:
                    self.outbox.suppress(text.org_id, text.to_phone, reason, conn)
                self.outbox.settle(text.id, text.attempts, "failed", code=last.code, detail=last.detail, conn=conn)
                return "failed", f"provider_{last.code}"
            if last.kind == MAYBE_SENT:
                try:
                    taken = self.outbox.sids_taken(text) if taken is None else taken
                    sid = self.gateway.lookup(text.to_phone, text.body, started, taken)
                except LookupFailed as error:
                    self.outbox.settle(text.id, text.attempts, "unknown", code=last.code, detail=str(error)[:200],
                                       attempted_at=attempted_at, conn=conn)
                    return "unknown", f"{last.code}_then_lookup_failed"
                if sid:
                    self.outbox.settle(text.id, text.attempts, "sent", sid=sid, sent_at=self.clock(), conn=conn)
                    return "sent", f"found_after_{last.code}"
                if utc_now() - attempted_at < config.sms_reconcile_grace():  # not listed yet proves nothing
                    self.outbox.settle(text.id, text.attempts, "unknown", code=last.code,
                                       detail="not listed yet; looked up again on later ticks",
                                       attempted_at=attempted_at, conn=conn)
                    return "unknown", f"{last.code}_not_found_yet"
        assert last is not None
        if text.attempts >= MAX_CLAIMS:
            self.outbox.settle(text.id, text.attempts, "failed", code="retries_exhausted", detail=last.code, conn=conn)
            return "failed", "retries_exhausted"
        self.outbox.settle(text.id, text.attempts, "queued", code=last.code, until=self.clock() + timedelta(minutes=1),
                           conn=conn)
        return "deferred", f"retrying_{last.code}"
