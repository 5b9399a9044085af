"""Everything booking-cron reads from the environment, with its local default, in one place.

Each setting is a function, read when called (a test or a block load that sets the environment
later is seen). Not here: Prefect's own PREFECT_* settings, which booking_cron/ops/prefect_api.py
resolves as Prefect does (environment, then the active profile) and hands to Prefect and its
server through the environment. The saved blocks still reach these functions through the
environment: blocks/connections.py `load_blocks_into_environment` writes DATABASE_URL and
TWILIO_* where the environment does not set them (as do `booking-cron` commands that take the
database from a block, and the demo).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

DEFAULT_DATA_DIR = Path(".data")
DEFAULT_TWILIO_API_URL = "https://api.twilio.com"


@dataclass(frozen=True)
class TwilioSettings:
    account_sid: str
    auth_token: str
    api_url: str = DEFAULT_TWILIO_API_URL

    def __repr__(self) -> str:  # never print the token
        return f"TwilioSettings(account_sid={self.account_sid!r}, api_url={self.api_url!r})"


def database_url_from_env() -> str | None:
    """The bookings database named by DATABASE_URL; None means the embedded server."""
    return os.environ.get("DATABASE_URL") or None


def embedded_database() -> str | None:
    """The database on the embedded server that commands use when DATABASE_URL is unset
    (BOOKING_CRON_EMBEDDED_DATABASE, e.g. the demo's `booking_cron_demo`); None: the server's default."""
    return (os.environ.get("BOOKING_CRON_EMBEDDED_DATABASE") or "").strip() or None


def data_dir() -> Path:
    return Path(os.environ.get("BOOKING_CRON_DATA_DIR", DEFAULT_DATA_DIR))


def twilio_account_sid() -> str | None:
    return os.environ.get("TWILIO_ACCOUNT_SID") or None


def twilio_auth_token() -> str | None:
    return os.environ.get("TWILIO_AUTH_TOKEN") or None


def twilio_api_url() -> str:
    return os.environ.get("TWILIO_API_URL") or DEFAULT_TWILIO_API_URL


def twilio_settings_from_env() -> TwilioSettings | None:
    sid, token = twilio_account_sid(), twilio_auth_token()
    if not sid or not token:
        return None
    return TwilioSettings(sid, token, twilio_api_url())


def database_block_name() -> str:
    """The Prefect block holding the bookings database (BOOKING_CRON_DATABASE_BLOCK)."""
    return os.environ.get("BOOKING_CRON_DATABASE_BLOCK", "booking-cron-db")


def twilio_block_name() -> str:
    """The Prefect block holding the Twilio credentials (BOOKING_CRON_TWILIO_BLOCK)."""
    return os.environ.get("BOOKING_CRON_TWILIO_BLOCK", "booking-cron-twilio")


ALERT_WEBHOOK_ENV = "BOOKING_CRON_ALERT_WEBHOOK_URL"


def alert_webhook_url() -> str | None:
    """Where `setup` points the alert automations when no --alert-block is named."""
    return os.environ.get(ALERT_WEBHOOK_ENV) or None


def crash_at() -> str | None:
    """The fault suite's crash point (BOOKING_CRON_CRASH_AT=<name>[@N]; booking_cron/faults.py)."""
    return os.environ.get("BOOKING_CRON_CRASH_AT") or None


def count_statements() -> bool:
    """Pools count the statements they run (BOOKING_CRON_COUNT_STATEMENTS=1: the bench)."""
    return os.environ.get("BOOKING_CRON_COUNT_STATEMENTS") == "1"


def batch_size() -> int:
    """Bookings per deduction batch (one Prefect task and one SQL statement per batch)."""
    return int(os.environ.get("BOOKING_CRON_BATCH_SIZE", "5000"))


def retry_delays() -> list[float]:
    """Seconds between a task's retries (three retries); tests shorten them."""
    raw = os.environ.get("BOOKING_CRON_RETRY_DELAYS", "2,5,15")
    delays = [float(x) for x in raw.split(",") if x.strip()]
    return (delays * 3)[:3] if delays else [0.0, 0.0, 0.0]


def db_timeout() -> float:
    """Seconds to wait for a database connection before the attempt fails (and retries)."""
    return float(os.environ.get("BOOKING_CRON_DB_TIMEOUT", "10"))


def sms_rate() -> float:
    """Messages per second the provider accepts from one sender (Twilio's per-number throughput:
    1 for a US long code, 10 international, 100 for a short code), across every worker."""
    return float(os.environ.get("BOOKING_CRON_SMS_RATE", "10"))


def sms_account_rate() -> float:
    """Messages per second the provider accepts from the whole account, across every worker and
    sender (BOOKING_CRON_SMS_ACCOUNT_RATE; 0: no account-wide limit)."""
    return float(os.environ.get("BOOKING_CRON_SMS_ACCOUNT_RATE", "100"))


def sms_concurrency() -> int:
    """Sends in flight at once: enough to reach the rate despite provider latency."""
    return int(os.environ.get("BOOKING_CRON_SMS_CONCURRENCY", "8"))


def sms_timeout() -> float:
    return float(os.environ.get("BOOKING_CRON_SMS_TIMEOUT", "10"))


def sms_backoff() -> float:
    """Base seconds of the exponential backoff between send attempts (with jitter)."""
    return float(os.environ.get("BOOKING_CRON_SMS_BACKOFF", "0.5"))


def sms_reconcile_grace() -> timedelta:
    """How old a send attempt must be before a look-up that does not find it means it never went
    (BOOKING_CRON_SMS_RECONCILE_GRACE, seconds; 3 minutes). It covers the request's own timeout
    (BOOKING_CRON_SMS_TIMEOUT, 10 s), a request the provider was still processing when the
    connection dropped, clock skew with the provider (look-ups start a minute earlier anyway) and the
    lag of the provider's message list behind its accepts (seconds at Twilio): minutes more than all
    of them. Texts wait at most this long more; a resend within it could double a text."""
    default = timedelta(minutes=3)
    value = os.environ.get("BOOKING_CRON_SMS_RECONCILE_GRACE", "").strip()
    try:
        return timedelta(seconds=max(float(value), 0.0)) if value else default
    except ValueError:
        return default


def feedback_link() -> str:
    return os.environ.get("BOOKING_CRON_FEEDBACK_URL", "https://book.example.com/feedback/{booking_id}")


def artifact_rows() -> int:
    """Rows of a tick's per-booking table artifact (the UI is built for modest tables)."""
    return int(os.environ.get("BOOKING_CRON_ARTIFACT_ROWS", "500"))


def public_url() -> str | None:
    """Where Twilio reaches `booking-cron webhooks` (BOOKING_CRON_PUBLIC_URL); None: no callbacks."""
    return (os.environ.get("BOOKING_CRON_PUBLIC_URL") or "").strip().rstrip("/") or None


# The query parameter of a send's StatusCallback that names the text (Twilio signs the whole URL):
# a receipt then settles a text whose send was never answered, which has no MessageSid yet.
TEXT_REFERENCE_PARAM = "text"


def status_callback_url() -> str | None:
    """The StatusCallback every send passes when the webhooks endpoint is public."""
    base = public_url()
    return f"{base}/twilio/status" if base else None
