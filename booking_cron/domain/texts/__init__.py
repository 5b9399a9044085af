"""Pure text decisions for client SMS: rendering, quiet hours, phone numbers."""

from booking_cron.domain.texts.phones import PhoneError, mask_phone, mask_phones_in_text, normalize_e164
from booking_cron.domain.texts.quiet_hours import (
    adjust_send_time,
    in_quiet_hours,
    next_allowed_send,
    quiet_window_around,
)
from booking_cron.domain.texts.render import (
    DEFAULT_FEEDBACK_TEMPLATE,
    DEFAULT_REMINDER_TEMPLATE,
    DEFAULT_TEMPLATES,
    DEFAULT_UNCONFIRMED_TEMPLATE,
    MAX_BODY_CHARS,
    PLACEHOLDERS,
    TemplateError,
    clean_text,
    first_name,
    format_session_datetime,
    location_text,
    render_body,
    session_summary,
)

__all__ = [
    "DEFAULT_FEEDBACK_TEMPLATE", "DEFAULT_REMINDER_TEMPLATE", "DEFAULT_TEMPLATES",
    "DEFAULT_UNCONFIRMED_TEMPLATE", "MAX_BODY_CHARS", "PLACEHOLDERS", "PhoneError",
    "TemplateError", "adjust_send_time", "clean_text", "first_name",
    "format_session_datetime", "in_quiet_hours", "location_text", "mask_phone",
    "mask_phones_in_text", "next_allowed_send", "normalize_e164",
    "quiet_window_around", "render_body", "session_summary",
]
