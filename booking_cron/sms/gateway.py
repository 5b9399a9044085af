"""The SMS gateway adapter: one send, one look-up, and what a failure means for a retry.

`TwilioGateway` uses the official SDK; pointed at TWILIO_API_URL it talks to the project's
sandbox, a proxy, or api.twilio.com. Errors are classified so that the sender never resends a
text the provider may already have without looking it up first.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Collection, Protocol
from urllib.parse import urlencode

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException

from booking_cron.config import TEXT_REFERENCE_PARAM, TwilioSettings
from booking_cron.sms.twilio_client import make_twilio_client

ACCEPTED = "accepted"
REJECTED = "rejected"      # permanent: the provider refused it; do not retry
RETRY = "retry"            # certainly not sent (429, could not connect): safe to retry
MAYBE_SENT = "maybe_sent"  # timeout, dropped connection, 5xx: look it up before any retry
LOOKUP_PAGE_SIZE = 100
LOOKUP_MAX_MESSAGES = 5000  # per look-up; more to one number in the window is not a client's phone
LOOKUP_ORDER_SLACK = timedelta(days=1)  # lists sort by send date; a queued message's may lag its creation


@dataclass(frozen=True, slots=True)
class SendResult:
    kind: str
    sid: str | None = None
    code: str | None = None
    detail: str | None = None


class LookupFailed(Exception):
    """The provider could not tell whether it has the message."""


class SmsGateway(Protocol):
    def send(self, to: str, body: str, from_phone: str | None, messaging_service_sid: str | None,
             reference: str | None = None) -> SendResult: ...

    def lookup(self, to: str, body: str, since: datetime, taken: Collection[str] = ()) -> str | None: ...


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

    def send(self, to: str, body: str, from_phone: str | None, messaging_service_sid: str | None,
             reference: str | None = None) -> SendResult:
        sender = {"messaging_service_sid": messaging_service_sid} if messaging_service_sid else {"from_": from_phone}
        if self.status_callback:
            sender["status_callback"] = self.status_callback + (
                "?" + urlencode({TEXT_REFERENCE_PARAM: reference}) if reference else "")
        try:
            message = self.client.messages.create(to=to, body=body, **sender)
        except (TwilioRestException, requests.exceptions.RequestException) as error:
            return classify_error(error)
        return SendResult(ACCEPTED, sid=message.sid)

    def lookup(self, to: str, body: str, since: datetime, taken: Collection[str] = ()) -> str | None:
        """The sid of a message with exactly this body sent to `to` since `since` (real time), if the
        provider has one that is not `taken` (held by another text); None when it has none.

        Twilio has no client reference on Messages, and a body carries none (clients read it), so a
        text is matched on its number, its exact body and a window that starts before any send of it
        could have. Every page for `To` is read, newest first, down to a day before `since`: no
        `DateSent>` filter, because a message Twilio accepted but still holds in its queue has no
        DateSent yet and would be filtered out: "not found" for a text that is about to go.
        Raises LookupFailed when any page cannot be read or the scan is cut short: a partial list
        proves nothing.
        """
        since = since.astimezone(timezone.utc)
        floor, scanned = since - LOOKUP_ORDER_SLACK, 0
        try:
            for message in self.client.messages.stream(to=to, page_size=LOOKUP_PAGE_SIZE):
                created = message.date_created
                if created is not None and created < floor:
                    return None  # newest first: everything further is older than the window
                if message.body == body and message.sid not in taken and (created is None or created >= since):
                    return message.sid
                scanned += 1
                if scanned >= LOOKUP_MAX_MESSAGES:
                    raise LookupFailed(f"more than {LOOKUP_MAX_MESSAGES} messages to {to[:4]}... in the window")
        except (TwilioException, requests.exceptions.RequestException) as error:
            raise LookupFailed(str(error)[:200]) from error
        return None
