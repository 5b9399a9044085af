"""Twilio's error codes after which a number can never receive a text, with the suppression
reason each gives: whether Twilio refuses the send with it (21xxx) or reports it in a delivery
receipt (30xxx). The sender and the webhooks both read this one table."""

from __future__ import annotations

SUPPRESSING_ERRORS: dict[int, str] = {
    21211: "invalid_number",  # the 'To' number is not a valid phone number
    21610: "opt_out",         # the recipient replied STOP to this sender
    21614: "invalid_number",  # not a mobile number
    30003: "invalid_number",  # unreachable destination handset
    30005: "invalid_number",  # unknown destination handset
    30006: "invalid_number",  # landline or unreachable carrier
}


def suppression_reason(code: int | str | None) -> str | None:
    """The suppression reason for a Twilio error code (an int from the API, a string from a
    receipt), or None when the code does not mean the number can never receive."""
    text = str(code).strip() if code is not None else ""
    return SUPPRESSING_ERRORS.get(int(text)) if text.isdigit() and len(text) <= 6 else None
