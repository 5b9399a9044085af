"""Quiet hours: when an org's clients must not be texted, and when to send instead.

Quiet hours are the org-local hours [start_hour, end_hour), possibly wrapping
midnight (an org's default: booking_cron.domain.org_defaults); start == end means none. A
local hour counts by the wall clock, so windows stretch or shrink on DST days. Pure: ``now`` is passed in.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
# Sent before the session, so being late is useless: move these earlier.
EARLIER_KINDS = frozenset({"session_reminder", "unconfirmed_reminder"})
# Not time-critical: wait until quiet hours are over.
LATER_KINDS = frozenset({"feedback_request"})
_EPS = timedelta(microseconds=1)


def load_zone(tz: str) -> ZoneInfo:
    """ZoneInfo for an IANA name; ValueError (not KeyError/OSError) if unknown."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as exc:
        raise ValueError(f"unknown time zone {tz!r}") from exc


def _check(at: datetime, start_hour: int, end_hour: int) -> None:
    for name, hour in (("start_hour", start_hour), ("end_hour", end_hour)):
        if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
            raise ValueError(f"{name} must be an int in 0..23, got {hour!r}")
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")


def _hour_is_quiet(hour: int, start_hour: int, end_hour: int) -> bool:
    if start_hour < end_hour:
        return start_hour <= hour < end_hour
    if start_hour > end_hour:  # wraps midnight
        return hour >= start_hour or hour < end_hour
    return False


def in_quiet_hours(at: datetime, tz: str, start_hour: int, end_hour: int) -> bool:
    _check(at, start_hour, end_hour)
    return _hour_is_quiet(at.astimezone(load_zone(tz)).hour, start_hour, end_hour)


def _instant(day: date, hour: int, zone: ZoneInfo) -> datetime:
    """UTC instant of local ``day hour:00``: fold=0 if ambiguous; if it falls in a
    DST gap, the first valid instant after it (the moment the clocks jump)."""
    local = datetime.combine(day, time(hour), tzinfo=zone)
    utc = local.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == local.replace(tzinfo=None):
        return utc
    # In a gap: fold=1 lands before the jump, fold=0 after it; bisect to the jump.
    naive = local.replace(tzinfo=None)
    lo = int(local.replace(fold=1).astimezone(UTC).timestamp())
    hi = int(utc.timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).replace(tzinfo=None) >= naive:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def _raw_window(at: datetime, zone: ZoneInfo, start_hour: int, end_hour: int):
    local = at.astimezone(zone)
    day, one = local.date(), timedelta(days=1)
    if start_hour < end_hour:
        return _instant(day, start_hour, zone), _instant(day, end_hour, zone)
    if local.hour >= start_hour:
        return _instant(day, start_hour, zone), _instant(day + one, end_hour, zone)
    return _instant(day - one, start_hour, zone), _instant(day, end_hour, zone)


def quiet_window_around(
    at: datetime, tz: str, start_hour: int, end_hour: int
) -> tuple[datetime, datetime] | None:
    """The quiet window containing ``at`` as aware UTC [start, end), or None.

    Windows that touch because DST swallowed the open hours between them are
    merged, so ``end`` is never itself quiet and ``start`` is never just after
    another quiet instant."""
    if not in_quiet_hours(at, tz, start_hour, end_hour):
        return None
    zone = load_zone(tz)
    start, end = _raw_window(at, zone, start_hour, end_hour)
    for _ in range(4):  # bounded: DST can swallow at most a day of open time
        if not in_quiet_hours(end, tz, start_hour, end_hour):
            break
        end = _raw_window(end, zone, start_hour, end_hour)[1]
    for _ in range(4):
        if not in_quiet_hours(start - _EPS, tz, start_hour, end_hour):
            break
        start = _raw_window(start - _EPS, zone, start_hour, end_hour)[0]
    return start, end


def adjust_send_time(
    due: datetime, expires: datetime, kind: str, tz: str, start_hour: int, end_hour: int
) -> datetime | None:
    """When a text should actually go out, or None if it can't go before ``expires``.

    Outside quiet hours: ``due``. Inside: reminders move EARLIER to one minute
    before the window starts (arriving before quiet hours beats arriving late);
    feedback requests move LATER to the window's end. An earlier move is at most
    the window's length (< 24h, or ~24h on a DST-back day with 23 quiet hours)
    before ``due``; it is not clamped, and may lie in the caller's past - the
    sender must then use ``next_allowed_send(now, ...)`` rather than send now.
    """
    if kind not in EARLIER_KINDS and kind not in LATER_KINDS:
        raise ValueError(f"unknown text kind {kind!r}")
    _check(expires, start_hour, end_hour)
    window = quiet_window_around(due, tz, start_hour, end_hour)
    if window is None:
        send_at = due
    elif kind in EARLIER_KINDS:
        send_at = window[0] - timedelta(minutes=1)
        if in_quiet_hours(send_at, tz, start_hour, end_hour):
            send_at = window[1]  # open gap under a minute (DST oddity): go later
    else:
        send_at = window[1]
    return None if send_at >= expires else send_at


def next_allowed_send(now: datetime, tz: str, start_hour: int, end_hour: int) -> datetime:
    """``now`` if texting is allowed now, else the end of the current quiet window."""
    window = quiet_window_around(now, tz, start_hour, end_hour)
    return now if window is None else window[1]
