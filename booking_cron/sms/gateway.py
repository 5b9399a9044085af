"""The SMS gateway adapter: one send, one look-up, and what a failure means for a retry.

`TwilioGateway` uses the official SDK; pointed at TWILIO_API_URL it talks to the project's
sandbox, a proxy, or api.twilio.com. Errors are classified so that the sender never resends a
text the provider may already have without looking it up first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from booking_cron.config import TwilioSettings
from booking_cron.sms.twilio_client import make_twilio_client

# Twilio errors that mean this number must not be texted again (suppression reason).
SUPPRESSING_CODES = {21211: "invalid_number", 21610: "opt_out", 21614: "invalid_number"}

ACCEPTED = "accepted"
REJECTED = "rejected"      # permanent: the provider refused it; do not retry
RETRY = "retry"            # certainly not sent (429, could not connect): safe to retry
MAYBE_SENT = "maybe_sent"  # timeout, dropped connection, 5xx: look it up before any retry


@dataclass(frozen=True, slots=True)
class SendResult:
    kind: str
    sid: str | None = None
    code: str | None = None
    detail: str | None = None


class LookupFailed(Exception):
    """The provider could not tell whether it has the message."""


class SmsGateway(Protocol):
    def send(self, to: str, body: str, from_phone: str | None, messaging_service_sid: str | None) -> SendResult: ...

    def lookup(self, to: str, body: str, since: datetime) -> str | None: ...


def classify_error(error: Exception) -> SendResult:
    """What a failed send means for retrying it."""
    if isinstance(error, TwilioRestException):
        code = str(error.code or error.status)
        if error.status == 429:
            return SendResult(RETRY, code=code, detail="rate limited")
        if error.status >= 500:
            return SendResult(MAYBE_SENT, code=code, detail=f"HTTP {error.status}")
        return SendResult(REJECTED, code=code, detail=(error.msg or "")[:200])
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return SendResult(RETRY, code="connect_timeout")
    if isinstance(error, requests.exceptions.Timeout):
        return SendResult(MAYBE_SENT, code="timeout")
    if isinstance(error, requests.exceptions.ConnectionError):
        # refused before sending, or dropped after: only the provider can tell
        return SendResult(MAYBE_SENT, code="connection_error")
    raise error


class TwilioGateway:
    def __init__(self, settings: TwilioSettings, timeout: float = 10.0, status_callback: str | None = None):
        self.client = make_twilio_client(settings.account_sid, settings.auth_token, settings.api_url, timeout)
        self.status_callback = status_callback  # where Twilio posts delivery receipts, when public

    def send(self, to: str, body: str, from_phone: str | None, messaging_service_sid: str | None) -> SendResult:
        sender = {"messaging_service_sid": messaging_service_sid} if messaging_service_sid else {"from_": from_phone}
        if self.status_callback:
            sender["status_callback"] = self.status_callback
        try:
            message = self.client.messages.create(to=to, body=body, **sender)
        except (TwilioRestException, requests.exceptions.RequestException) as error:
            return classify_error(error)
        return SendResult(ACCEPTED, sid=message.sid)

    def lookup(self, to: str, body: str, since: datetime) -> str | None:
        """The sid of a message with this body sent to `to` since `since`, if the provider has one."""
        try:
            messages = self.client.messages.list(to=to, date_sent_after=since - timedelta(minutes=5), limit=200)
        except (TwilioException, requests.exceptions.RequestException) as error:
            raise LookupFailed(str(error)[:200]) from error
        for message in messages:
            created = message.date_created
            if message.body == body and (created is None or created >= since):
                return message.sid
        return None
