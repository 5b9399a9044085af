"""Phone numbers: normalise to E.164 for the SMS provider, mask them for logs.

Failures carry a short ``reason`` so a bad number can be reported per client
instead of failing the run. Pure: no I/O.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from pathlib import Path

import phonenumbers
from phonenumbers import NumberParseException

_E164_IN_TEXT = re.compile(r"\+\d{8,15}(?!\d)")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_MASK = "*****"  # fixed width, so a masked number doesn't reveal its length
_TOO_SHORT_OR_LONG = {
    NumberParseException.TOO_SHORT_NSN,
    NumberParseException.TOO_SHORT_AFTER_IDD,
    NumberParseException.TOO_LONG,
}


class PhoneError(ValueError):
    """A number we can't text. ``reason`` is one of missing_phone,
    malformed_phone, local_format_phone, invalid_phone."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _looks_like_digits(text: str) -> bool:
    bare = _PHONE_PUNCTUATION.sub("", text)
    return len(bare) >= 3 and bare.isdigit()


def normalize_e164(raw: str | None, default_region: str | None = None) -> str:
    """E.164 form of ``raw`` (e.g. "+61412345678").

    Numbers without a leading + need ``default_region`` (ISO 3166 code, e.g.
    "AU"); an unsupported region is treated as none. Parse failures for digit
    strings that are too short/long, or with an unknown country code after +,
    count as invalid_phone (number-like but not real), other failures as
    malformed_phone."""
    text = (raw or "").strip()
    if not text:
        raise PhoneError("missing_phone", "no phone number")
    region = (default_region or "").strip().upper() or None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = None
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        international = text.startswith("+") or text.lower().startswith("tel:+")
        if (exc.error_type == NumberParseException.INVALID_COUNTRY_CODE
                and not international and region is None and _looks_like_digits(text)):
            raise PhoneError(
                "local_format_phone",
                "phone number is in local format; use +country code",
            ) from exc
        if exc.error_type in _TOO_SHORT_OR_LONG or (
            exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and international
        ):
            raise PhoneError("invalid_phone", "not a valid phone number") from exc
        raise PhoneError("malformed_phone", "not a phone number") from exc
    if not phonenumbers.is_valid_number(number):
        raise PhoneError("invalid_phone", "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mask_phone(phone: str | None) -> str:
    """Log-safe form: "+61412345678" -> "+6141*****678"; None/blank -> "-".

    With fewer than 8 digits there is too little to keep both ends, so all but
    the last 2 characters become stars."""
    if phone is None or not phone.strip():
        return "-"
    text = phone.strip()
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) >= 8:
        plus = "+" if text.startswith("+") else ""
        return f"{plus}{digits[:4]}{_MASK}{digits[-3:]}"
    if len(text) <= 2:
        return "*" * len(text)
    return "*" * (len(text) - 2) + text[-2:]


def mask_phones_in_text(text: str) -> str:
    """Mask every E.164-looking run ("+" and 8-15 digits) in a free-text log line."""
    return _E164_IN_TEXT.sub(lambda m: mask_phone(m.group(0)), text)


@cache
def _zone_countries() -> dict[str, str]:
    """IANA zone -> ISO country code, from the tz database's zone.tab (the tzdata package, else
    the system's copy)."""
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        path = Path("/usr/share/zoneinfo/zone.tab")
        text = path.read_text() if path.exists() else ""
    rows = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return {row[2]: row[0] for row in rows if len(row) >= 3}


def region_for_timezone(tz: str | None) -> str | None:
    """The country an org's time zone lies in ("Australia/Brisbane" -> "AU"): the region a
    number stored without its country code was written in."""
    return _zone_countries().get((tz or "").strip())


def e164_or_none(raw: str | None, tz: str | None) -> str | None:
    """E.164 form of a number stored by hand (``0412 399 002`` in Brisbane), or None."""
    try:
        return normalize_e164(raw, region_for_timezone(tz))
    except PhoneError:
        return None
