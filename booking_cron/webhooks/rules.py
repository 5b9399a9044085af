"""Pure decisions for Twilio's callbacks: no I/O, tested in milliseconds."""

from __future__ import annotations

import re
import uuid
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import phonenumbers

# Twilio's default opt-out and opt-in keywords (Advanced Opt-Out), matched on the whole body.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP"})
YES_WORDS = frozenset({"Y", "YES"})

OPT_OUT, OPT_IN, CONFIRM, OTHER = "opt_out", "opt_in", "confirm", "other"

# Twilio's message statuses, as the outbox records them, with how far along each is. A receipt
# is applied only when it moves a text further; terminal fates (delivered, failed) never change.
_OUTBOX_STATUS = {"accepted": "sent", "scheduled": "sent", "queued": "sent", "sending": "sent", "sent": "sent",
                  "delivered": "delivered", "read": "delivered", "undelivered": "failed", "failed": "failed"}
_RANK = {"sent": 1, "delivered": 2, "failed": 2}

MAX_FORM_BYTES = 64 * 1024  # Twilio's callbacks are a few hundred bytes; a 1,600-char reply is ~5 KB encoded
MAX_FIELD_CHARS = 4096


class BadForm(ValueError):
    """A request body that is not a well-formed Twilio form."""


def reply_action(body: str | None) -> str:
    """What a client's reply asks for: the whole body, any case, surrounding spaces ignored."""
    word = (body or "").strip().upper()
    if word in STOP_WORDS:
        return OPT_OUT
    if word in START_WORDS:
        return OPT_IN
    if word in YES_WORDS:
        return CONFIRM
    return OTHER


def status_after(current: str, reported: str) -> str | None:
    """The outbox status a receipt moves a text to, or None when it must change nothing (an
    unknown status, a replay, or a report older than what is recorded)."""
    target = _OUTBOX_STATUS.get((reported or "").strip().lower())
    if target is None or current not in _RANK:
        return None
    return target if _RANK[target] > _RANK[current] else None


def text_reference(value: str | None) -> str | None:
    """The outbox id a receipt's callback URL names (the URL is signed, so it is the one the sender
    gave), or None when there is none or it is not a UUID."""
    try:
        return str(uuid.UUID(value)) if value and len(value) == 36 else None
    except ValueError:
        return None


def parse_form(raw: bytes) -> dict[str, str]:
    """A Twilio form body as a dict; BadForm when it is not UTF-8 form encoding, repeats a field
    or carries an oversized one."""
    try:
        text = raw.decode("utf-8", errors="strict")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text), errors="strict",
                          max_num_fields=200)
    except (UnicodeDecodeError, ValueError) as error:
        raise BadForm(f"not a form body: {type(error).__name__}") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if key in form:
            raise BadForm(f"field {key[:40]!r} repeated")
        if len(value) > MAX_FIELD_CHARS or "\x00" in key + value:
            raise BadForm(f"field {key[:40]!r} too long or with NUL characters")
        form[key] = value
    return form


def missing_fields(form: dict[str, str], required: tuple[str, ...]) -> list[str]:
    return [name for name in required if not form.get(name, "").strip()]


# --- Only Twilio's own fields ---------------------------------------------------------------------
#
# Each endpoint accepts only the parameters Twilio documents for SMS/MMS ("Twilio's request to your
# incoming message Webhook URL"; "Track the Message Status of Outbound Messages"), each in Twilio's
# form; WhatsApp, RCS, location and Marketplace add-on fields are refused (booking-cron texts by
# SMS). Twilio may add a parameter without notice: a request carrying it is refused with its name
# in the log, and it is added here.
#
# Why a captured request cannot be re-split into another one. Twilio signs url + k1 v1 k2 v2 ...
# with the keys sorted, so any form whose sorted concatenation is the same string carries the same
# signature: moving characters between a value and the keys around it ("MessageSid" SM...32 hex
# "NumMedia" "0" re-read as MessageSid = SM...32 hex + "NumMedia0") yields a "new" MessageSid, the
# replay key. Take the first field where such a re-reading differs from the original. Its key is
# the same (the only allowed keys that extend another are a reply's From/To + City, Country, State
# or Zip, and those From/To start with "+" or a digit), so one value is the other plus at least
# the first two characters of the next key: an upper-case letter and a lower-case one (every key
# starts so). No field but two has two valid values that differ so: each has a fixed length or
# shape (sids, media URLs, AccountSid when it must equal ours), or no lower-case letter (cities,
# states, zips, countries, OptOutType), or no upper-case letter (numbers, counts, codes, dates,
# statuses, media types). The two are
#   - a reply's Body (free text), always followed by From: no allowed key sorts between them, From
#     is required and starts with "+", and nothing but Body can hold the text "From", so neither a
#     longer Body (From would have to be read from "FromCity..." or the like) nor a shorter one
#     (From would be read twice) reads validly;
#   - a receipt's From (an alphanumeric sender ID of at most 11 characters), always followed by
#     MessageSid: required, and its value starts with "SM"/"MM", which starts no key.
# So every re-reading of a signed request fails validation (tests/test_webhooks_rules.py tries
# them all on hostile examples) and the MessageSid that is acted upon is the one Twilio sent.

_HEX32 = "[0-9a-fA-F]{32}"
_MESSAGE_SID = f"(?:SM|MM){_HEX32}"
_E164 = r"\+[1-9][0-9]{1,14}"
_SHORT_CODE = "[0-9]{3,8}"
_PLACE = r"[A-Z0-9 .,'()/&-]{0,64}"  # Twilio's geographic fields: upper case (NASHUA, FORT MEADE, NH, 03049)
_MEDIA_TYPE = r"[a-z0-9][a-z0-9.+_-]{0,62}/[a-z0-9][a-z0-9.+_-]{0,126}(?:; ?[a-z0-9._-]{1,40}=[a-z0-9._-]{1,40})?"
_MEDIA_URL = (r"https://[a-z0-9.-]{1,64}\.twilio\.com/2010-04-01/Accounts/AC" + _HEX32 + "/Messages/" + _MESSAGE_SID
              + "/Media/ME" + _HEX32)
_STATUS = "[a-z_]{1,24}"
FREE_TEXT = None  # a field whose value is not checked beyond the form parser's limits

_COMMON_FIELDS = {
    "AccountSid": f"AC{_HEX32}",
    "ApiVersion": "[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "MessageSid": _MESSAGE_SID,
    "MessagingServiceSid": f"MG{_HEX32}",
    "SmsSid": _MESSAGE_SID,
    "SmsStatus": _STATUS,
}
INBOUND_FIELDS: dict[str, str | None] = {
    **_COMMON_FIELDS,
    "Body": FREE_TEXT,
    "From": _E164,
    "FromCity": _PLACE, "FromState": _PLACE, "FromZip": _PLACE, "FromCountry": "(?:[A-Z]{2})?",
    "MessageType": _STATUS,
    "NumMedia": "[0-9]{1,2}",
    "NumSegments": "[0-9]{1,3}",
    "OptOutType": "STOP|START|HELP",  # Advanced Opt-Out
    "ReferralNumMedia": "[0-9]{1,2}",
    "SmsMessageSid": _MESSAGE_SID,
    "To": f"{_E164}|{_SHORT_CODE}",
    "ToCity": _PLACE, "ToState": _PLACE, "ToZip": _PLACE, "ToCountry": "(?:[A-Z]{2})?",
    **{f"MediaContentType{n}": _MEDIA_TYPE for n in range(10)},  # Twilio attaches at most 10
    **{f"MediaUrl{n}": _MEDIA_URL for n in range(10)},
}
STATUS_FIELDS: dict[str, str | None] = {
    **_COMMON_FIELDS,
    "ErrorCode": "[0-9]{0,6}",
    # the sender: a number, a short code, an alphanumeric sender ID, or (a messaging service not
    # yet assigned one) nothing
    "From": f"{_E164}|{_SHORT_CODE}|[A-Za-z0-9 +&_-]{{1,11}}|",
    "MessageStatus": _STATUS,
    "RawDlrDoneDate": "[0-9]{10,12}",
    "To": f"{_E164}|{_SHORT_CODE}|",
}
INBOUND_REQUIRED = ("MessageSid", "From", "To")
STATUS_REQUIRED = ("MessageSid", "MessageStatus")
_SAME_AS_MESSAGE_SID = ("SmsSid", "SmsMessageSid")  # "Same value as MessageSid"

_COMPILED: dict[str, re.Pattern] = {}


def valid_value(fields: dict[str, str | None], key: str, value: str) -> bool:
    """Whether `value` has the form Twilio gives field `key` (unknown keys are not valid)."""
    if key not in fields:
        return False
    pattern = fields[key]
    if pattern is FREE_TEXT:
        return True
    compiled = _COMPILED.get(pattern) or _COMPILED.setdefault(pattern, re.compile(pattern))
    return compiled.fullmatch(value) is not None


def check_form(form: dict[str, str], fields: dict[str, str | None], required: tuple[str, ...],
               account_sid: str | None = None) -> None:
    """BadForm unless `form` holds only Twilio's fields for this endpoint, each in Twilio's form, the
    required ones present, SmsSid and SmsMessageSid equal to MessageSid, and AccountSid our
    account's (when it is known: then it is required; otherwise only its form is checked)."""
    if unknown := sorted(key for key in form if key not in fields):
        raise BadForm(f"not a Twilio field: {', '.join(repr(key[:40]) for key in unknown[:3])}")
    if missing := missing_fields(form, required + (("AccountSid",) if account_sid else ())):
        raise BadForm(f"missing {', '.join(missing)}")
    for key, value in form.items():
        if key == "AccountSid" and account_sid:
            if value != account_sid:
                raise BadForm("AccountSid is not this account's")
        elif not valid_value(fields, key, value):
            raise BadForm(f"{key} is not in Twilio's form")
    if any(key in form and form[key] != form.get("MessageSid") for key in _SAME_AS_MESSAGE_SID):
        raise BadForm("SmsSid or SmsMessageSid differs from MessageSid")


def twiml(message: str | None = None) -> str:
    """A TwiML reply: empty (nothing is sent back) or one message."""
    if not message:
        return '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{escape(message)}</Message></Response>'


def national_digits(e164: str) -> str:
    """`+61412399002` -> `0412399002`: how a client's number may be stored by hand in its country."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return "".join(ch for ch in phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
                   if ch.isdigit())
