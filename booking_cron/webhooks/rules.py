"""Pure decisions for Twilio's callbacks: no I/O, tested in milliseconds."""

from __future__ import annotations

from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import phonenumbers

# Twilio's default opt-out and opt-in keywords (Advanced Opt-Out), matched on the whole body.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP"})
YES_WORDS = frozenset({"Y", "YES"})

OPT_OUT, OPT_IN, CONFIRM, OTHER = "opt_out", "opt_in", "confirm", "other"

# Delivery errors after which the number can never receive (suppression reason per code).
SUPPRESSING_ERRORS = {
    "30003": "invalid_number",      # unreachable destination handset
    "30005": "invalid_number",      # unknown destination handset
    "30006": "invalid_number",      # landline or unreachable carrier
    "21610": "opt_out",             # the recipient replied STOP to this sender
    "21614": "invalid_number",      # not a mobile number
}

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


def suppression_reason(error_code: str | None) -> str | None:
    return SUPPRESSING_ERRORS.get((error_code or "").strip())


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
