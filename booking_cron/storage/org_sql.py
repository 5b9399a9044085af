"""An org's settings as SQL reads them, each falling back to booking_cron.domain.org_defaults.

The defaults are query parameters, never literals in the SQL text: a statement that uses these
expressions runs with `org_default_params()` merged into its own parameters."""

from __future__ import annotations

from booking_cron.domain import org_defaults

TIMEZONE = "coalesce(bs.timezone, %(default_timezone)s)"  # bs: the org's booking_settings
QUIET_HOURS_START = "coalesce(s.quiet_hours_start, %(default_quiet_start)s)"  # s: its sms_settings
QUIET_HOURS_END = "coalesce(s.quiet_hours_end, %(default_quiet_end)s)"
MAX_SMS_PER_HOUR = "coalesce(s.max_sms_per_hour, %(default_max_per_hour)s)"
MAX_SMS_PER_CLIENT_PER_DAY = "coalesce(s.max_sms_per_client_per_day, %(default_max_per_client_per_day)s)"


def org_default_params(**params: object) -> dict[str, object]:
    """`params` with the defaults the expressions above name."""
    return {"default_timezone": org_defaults.TIMEZONE,
            "default_quiet_start": org_defaults.QUIET_HOURS_START,
            "default_quiet_end": org_defaults.QUIET_HOURS_END,
            "default_max_per_hour": org_defaults.MAX_SMS_PER_HOUR,
            "default_max_per_client_per_day": org_defaults.MAX_SMS_PER_CLIENT_PER_DAY,
            **params}
