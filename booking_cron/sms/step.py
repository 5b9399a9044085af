"""The texts step of a tick, wired to the real adapters: queue what is due, send what is claimed."""

from __future__ import annotations

from datetime import datetime

from booking_cron import config
from booking_cron.domain.due import ALL, Shard
from booking_cron.faults import crash_point
from booking_cron.domain.results import StepResult, text_step
from booking_cron.sms.gateway import SmsGateway, TwilioGateway
from booking_cron.sms.outbox import Outbox
from booking_cron.sms.rate import SendRate
from booking_cron.sms.sender import LEASE, Sender, send_clock
from booking_cron.storage.store import RunRecords
from booking_cron.domain.texts.phones import mask_phone
from booking_cron.domain.texts.plan import PlannedText, plan_texts

CLAIM_BATCH = 200


def sms_gateway() -> SmsGateway | None:
    """The provider from the Twilio block or environment; None when no credentials are set."""
    settings = config.twilio_settings_from_env()
    if settings is None:
        return None
    return TwilioGateway(settings, timeout=config.sms_timeout(), status_callback=config.status_callback_url())


def configured_sms_gateway() -> SmsGateway:
    """sms_gateway() where the caller has checked that a provider is configured."""
    gateway = sms_gateway()
    if gateway is None:
        raise RuntimeError("no SMS provider configured (TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN)")
    return gateway


def account_key() -> str:
    """Which provider account the account-wide rate counts against: the Twilio account sid."""
    settings = config.twilio_settings_from_env()
    return settings.account_sid if settings else ""


def queue_due_texts(run_id: str, tick_at: datetime, dry_run: bool, provider_ready: bool,
                    shard: Shard = ALL) -> list[StepResult]:
    outbox = Outbox()
    orgs, schedules, bookings, existing = outbox.planning_inputs(tick_at, shard, dry_run)
    planned = plan_texts(tick_at, bookings, orgs, schedules, existing, config.feedback_link())
    written = outbox.enqueue(run_id, planned, dry_run)
    results = queued_results(planned, written, provider_ready)
    RunRecords().record_results(run_id, results, dry_run)
    crash_point("after_queue")
    return results


def queued_results(planned: list[PlannedText], written: set[str], provider_ready: bool) -> list[StepResult]:
    """One result per text this step wrote to the outbox (queued, or skipped/failed with its reason)."""
    return [
        StepResult(p.booking_id, text_step(p.kind, p.schedule_id), p.status,
                   p.reason or (None if provider_ready or p.status != "queued" else "no_sms_provider"),
                   {"queued": p.status == "queued", "to": mask_phone(p.to_phone)})
        for p in planned if p.key in written
    ]


def send_claimed_texts(run_id: str, tick_at: datetime, gateway: SmsGateway, shard: Shard = ALL) -> list[StepResult]:
    """Claim one batch of texts due now and deliver it; [] when nothing is due."""
    outbox = Outbox()
    clock = send_clock(tick_at)
    now = clock()
    texts = outbox.claim(run_id, now, CLAIM_BATCH, LEASE, shard)
    if not texts:
        return []
    crash_point("after_claim")
    quiet, budget = outbox.sending_context(texts, now)
    sender = Sender(outbox, gateway, SendRate.from_config(account_key()), concurrency=config.sms_concurrency(),
                    backoff=config.sms_backoff(), clock=clock)
    results = sender.deliver(texts, quiet, budget)
    RunRecords().record_results(run_id, results)
    return results
