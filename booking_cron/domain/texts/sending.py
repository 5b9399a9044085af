"""Pure decisions at send time: send now, wait (quiet hours, rate limits), or let it go stale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from booking_cron.domain import org_defaults
from booking_cron.domain.texts.quiet_hours import next_allowed_send


@dataclass(frozen=True, slots=True)
class QuietHours:
    """An org's quiet hours, [start, end) in its own time zone."""
    timezone: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # send | defer | expire
    until: datetime | None = None
    reason: str | None = None


def decide_send(expires_at: datetime, quiet: QuietHours, now: datetime) -> Decision:
    """Never after expiry, never in the org's quiet hours: wait for them to end if there is time."""
    if now >= expires_at:
        return Decision("expire", reason="stale")
    try:
        allowed = next_allowed_send(now, quiet.timezone, quiet.start, quiet.end)
    except (ValueError, KeyError):
        return Decision("expire", reason="unknown_timezone")
    if allowed <= now:
        return Decision("send")
    if allowed >= expires_at:
        return Decision("expire", reason="quiet_hours")
    return Decision("defer", until=allowed, reason="quiet_hours")


@dataclass
class SendBudget:
    """Texts an org may still send this hour and a client today (from the outbox's sent counts)."""
    max_per_hour: dict[str, int]
    max_per_client_per_day: dict[str, int]
    sent_last_hour: dict[str, int]
    sent_last_day: dict[str, int]

    def take(self, org_id: str, client_id: str) -> str | None:
        """Reserve one send; returns the limit that stops it instead, if any."""
        if self.sent_last_hour.get(org_id, 0) >= self.max_per_hour.get(org_id, org_defaults.MAX_SMS_PER_HOUR):
            return "max_sms_per_hour"
        if self.sent_last_day.get(client_id, 0) >= self.max_per_client_per_day.get(org_id, org_defaults.MAX_SMS_PER_CLIENT_PER_DAY):
            return "max_sms_per_client_per_day"
        self.sent_last_hour[org_id] = self.sent_last_hour.get(org_id, 0) + 1
        self.sent_last_day[client_id] = self.sent_last_day.get(client_id, 0) + 1
        return None

    def give_back(self, org_id: str, client_id: str) -> None:
        self.sent_last_hour[org_id] -= 1
        self.sent_last_day[client_id] -= 1


def retry_delay(attempt: int, base: float, jitter: float) -> float:
    """Exponential backoff with jitter in [1 - j, 1 + j]; `jitter` is a 0..1 random draw mapped by the caller."""
    return base * (2 ** attempt) * jitter


def limit_wait(limit: str, now: datetime) -> datetime:
    """When a rate-limited text is worth trying again."""
    return now + (timedelta(minutes=10) if limit == "max_sms_per_hour" else timedelta(hours=1))
