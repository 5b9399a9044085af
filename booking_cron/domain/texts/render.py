"""Render coach-written SMS templates safely.

Coach templates are untrusted input, so they are parsed by jinja2's
SandboxedEnvironment and, on top of that, may only contain literal text and
plain ``{{placeholder}}`` substitutions: no statements, filters, attribute
access or arithmetic (which the sandbox alone would still allow, e.g. CPU-bound
``{{ 9**9**9 }}``). Everything here is pure: no I/O, no clock.
"""

from __future__ import annotations

from functools import lru_cache

import unicodedata
from datetime import datetime
from typing import Mapping

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError, TemplateError as _JinjaError
from jinja2.sandbox import SandboxedEnvironment

from booking_cron.domain.texts.quiet_hours import load_zone

MAX_BODY_CHARS = 1600
# Templates far longer than any sendable body are rejected before parsing.
MAX_TEMPLATE_CHARS = 8 * MAX_BODY_CHARS

PLACEHOLDERS = frozenset({
    "client_name", "session_datetime", "location", "coach_name",
    "feedback_link", "sessions_remaining", "sessions_booked", "session_summary",
})

DEFAULT_REMINDER_TEMPLATE = (
    "Hi {{client_name}}, a reminder of your session with {{coach_name}} "
    "on {{session_datetime}}."
)
DEFAULT_FEEDBACK_TEMPLATE = (
    "Hi {{client_name}}, thanks for your session with {{coach_name}}! "
    "How did it go? {{feedback_link}}"
)
DEFAULT_UNCONFIRMED_TEMPLATE = (
    "Hi {{client_name}}, please confirm your session with {{coach_name}} "
    "on {{session_datetime}}. Reply YES to confirm."
)
DEFAULT_TEMPLATES = {
    "session_reminder": DEFAULT_REMINDER_TEMPLATE,
    "feedback_request": DEFAULT_FEEDBACK_TEMPLATE,
    "unconfirmed_reminder": DEFAULT_UNCONFIRMED_TEMPLATE,
}

_LOCATIONS = {"in_person": "in person", "online": "online", "outdoor": "outdoors"}
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun",
           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# Bidi overrides/isolates are "control characters" too and enable name spoofing.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENV.globals.clear()  # no range/lipsum/cycler/...: only the variables we pass


class TemplateError(ValueError):
    """A template that cannot be sent; ``reason`` is a short machine code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def clean_text(value: str) -> str:
    """Drop control characters (keeping newlines) so stored text can't inject
    terminal escapes, NULs or bidi tricks into an SMS or a log line."""
    return "".join(
        ch for ch in value
        if ch == "\n"
        or (unicodedata.category(ch) != "Cc" and ch not in _BIDI_CONTROLS)
    )


def first_name(full_name: str | None) -> str:
    """First whitespace-separated token of the cleaned name; "there" if none,
    so "Hi {{client_name}}" still reads naturally."""
    parts = clean_text(full_name or "").split()
    return parts[0] if parts else "there"


def format_session_datetime(start: datetime, tz: str) -> str:
    """E.g. "Tue 24 Nov, 9:30am" in the org's zone; locale-independent."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    try:
        zone = load_zone(tz)
    except ValueError as exc:
        raise TemplateError("unknown_timezone", f"unknown time zone {tz!r}") from exc
    local = start.astimezone(zone)
    hour = local.hour % 12 or 12
    ampm = "am" if local.hour < 12 else "pm"
    return (f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]}, "
            f"{hour}:{local.minute:02d}{ampm}")


def session_summary(used: int, booked: int, remaining: int) -> str:
    """A sentence about the client's active packs, like the app's own; "" without a pack, so a
    template can end with it and a client without a pack reads no pack line."""
    total = used + remaining
    if total <= 0:
        return ""
    available = max(remaining - booked, 0)
    left = f"{available} more to book" if available else "none left to book"
    return (f"You have used {used} of your {total} {'session' if total == 1 else 'sessions'}, "
            f"with {booked} booked and {left}.")


def location_text(location_type: str | None) -> str:
    return _LOCATIONS.get((location_type or "").strip().lower(), "")


def _as_text(value: object) -> str:
    # Every value reaches the template as a cleaned str: no objects to poke at.
    if value is None:
        return ""
    return clean_text(value if isinstance(value, str) else str(value))


@lru_cache(maxsize=256)
def _placeholders(template: str) -> tuple[str, ...]:
    """Parse and return the placeholder names, rejecting anything that is not
    literal text or a bare ``{{name}}``. Cached: a tick renders one template many times."""
    try:
        tree = _ENV.parse(template)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            "template_syntax", f"template syntax error on line {exc.lineno}: {exc.message}"
        ) from exc
    except RecursionError as exc:
        raise TemplateError("template_unsafe", "template is nested too deeply") from exc
    names: list[str] = []
    for node in tree.body:
        children = node.nodes if isinstance(node, nodes.Output) else [node]
        for child in children:
            if isinstance(child, nodes.TemplateData):
                continue
            if isinstance(child, nodes.Name) and child.ctx == "load":
                names.append(child.name)
                continue
            raise TemplateError(
                "template_unsafe",
                "only plain {{placeholder}} substitutions are allowed "
                f"(found {type(child).__name__.lower()} on line {child.lineno})",
            )
    return tuple(names)


@lru_cache(maxsize=256)
def _compiled(template: str):
    return _ENV.from_string(template)


def render_body(template: str, variables: Mapping[str, object]) -> str:
    """Render an SMS body; raises TemplateError with a reason the UI can map."""
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            "body_too_long",
            f"template is {len(template)} characters; the limit is {MAX_BODY_CHARS}",
        )
    unknown = sorted({n for n in _placeholders(template) if n not in variables})
    if unknown:
        shown = ", ".join("{{" + n + "}}" for n in unknown)
        noun = "placeholder" if len(unknown) == 1 else "placeholders"
        raise TemplateError("unknown_placeholder", f"unknown {noun} {shown}")
    values = {str(k): _as_text(v) for k, v in variables.items()}
    try:
        body = _compiled(template).render(values)
    except SecurityError as exc:
        raise TemplateError("template_unsafe", f"template rejected: {exc}") from exc
    except UndefinedError as exc:
        raise TemplateError("unknown_placeholder", str(exc)) from exc
    except _JinjaError as exc:
        raise TemplateError("template_syntax", f"template error: {exc}") from exc
    body = clean_text(body).strip()
    if not body:
        raise TemplateError("empty_body", "the message is empty")
    if len(body) > MAX_BODY_CHARS:
        raise TemplateError(
            "body_too_long",
            f"message is {len(body)} characters; the limit is {MAX_BODY_CHARS}",
        )
    return body
