"""Which texts a tick queues: pure decisions over bookings, org settings and schedules.

Three kinds, each with a stable idempotency key `kind:schedule:booking`:
- session_reminder: per confirmed booking and enabled pre_session schedule, due at
  start - mins_offset, stale at start;
- feedback_request: per completed booking and enabled post_session schedule, due at
  end + mins_offset, stale 48 h after end;
- unconfirmed_reminder: per confirmed booking not confirmed by the client whose confirmation
  was sent, due 24 h before start, stale at start. Any tick between due and stale queues it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from booking_cron.domain.texts.phones import PhoneError, normalize_e164
from booking_cron.domain.texts.quiet_hours import adjust_send_time, next_allowed_send
from booking_cron.domain.texts.render import (
    DEFAULT_UNCONFIRMED_TEMPLATE,
    TemplateError,
    first_name,
    format_session_datetime,
    location_text,
    render_body,
    session_summary,
)

SESSION_REMINDER = "session_reminder"
FEEDBACK_REQUEST = "feedback_request"
UNCONFIRMED_REMINDER = "unconfirmed_reminder"
KINDS = (SESSION_REMINDER, FEEDBACK_REQUEST, UNCONFIRMED_REMINDER)
FEEDBACK_STALE_AFTER = timedelta(hours=48)
UNCONFIRMED_LEAD = timedelta(hours=24)
# How far ahead of T a tick looks at upcoming sessions: the longest schedule offset plus a
# quiet-hours shift (under a day) plus the unconfirmed lead.
LOOKAHEAD_SLACK = timedelta(days=2)
# The org's sender is not assigned to it by the platform (migration 0049): its texts wait in the
# outbox, unsent, until it is.
SENDER_NOT_ASSIGNED = "sender_not_assigned"


@dataclass(frozen=True, slots=True)
class OrgTexting:
    org_id: str
    org_name: str
    timezone: str
    quiet_start: int
    quiet_end: int
    from_phone: str | None
    messaging_service_sid: str | None
    sender_assigned: bool = True  # the sender above is assigned to this org (booking_cron.senders)


# The largest offset a schedule may have, either way: 30 days. A trainer can store any integer
# (2147483647 minutes is 4,000 years); such a schedule's texts are recorded once as skipped with
# the reason, and it does not widen the window of bookings every tick reads.
MAX_OFFSET_MINUTES = 30 * 24 * 60


@dataclass(frozen=True, slots=True)
class Schedule:
    id: str
    org_id: str
    type: str  # pre_session | post_session
    mins_offset: int
    body: str

    @property
    def usable(self) -> bool:
        return abs(self.mins_offset) <= MAX_OFFSET_MINUTES


@dataclass(frozen=True, slots=True)
class BookingForTexts:
    booking_id: str
    org_id: str
    client_id: str
    client_name: str | None
    phone: str | None
    reminders_on: bool
    followups_on: bool
    suppressed: bool
    start_time: datetime
    end_time: datetime
    status: str
    client_confirmed: bool
    confirmation_sent_at: datetime | None
    location_type: str | None
    pack_used: int = 0
    pack_booked: int = 0
    pack_remaining: int = 0


def lookahead(schedules: dict[str, list[Schedule]]) -> timedelta:
    """How far past T planning looks for upcoming sessions: the longest usable offset plus slack."""
    longest = max((s.mins_offset for group in schedules.values() for s in group if s.usable), default=0)
    return timedelta(minutes=max(longest, 0)) + LOOKAHEAD_SLACK


@dataclass(frozen=True, slots=True)
class OwingWindow:
    """The bookings that may still owe a text at some T from `first` to `last`: confirmed ones
    starting in (first, last + lookahead] (reminders, unconfirmed reminders), completed ones ending
    in (first - FEEDBACK_STALE_AFTER, last] (feedback, stale that long after the end). The tick's
    query (first = last = T), a backfill day's query and its per-slot check all use this one rule."""
    starts_after: datetime
    starts_until: datetime
    ends_after: datetime
    ends_until: datetime

    def holds(self, booking: BookingForTexts) -> bool:
        if booking.status == "confirmed":
            return self.starts_after < booking.start_time <= self.starts_until
        return booking.status == "completed" and self.ends_after < booking.end_time <= self.ends_until


def owing_window(first: datetime, last: datetime, ahead: timedelta) -> OwingWindow:
    """The window for ticks from `first` to `last`, `ahead` being `lookahead(schedules)`."""
    return OwingWindow(first, last + ahead, first - FEEDBACK_STALE_AFTER, last)


def enters_window(booking: BookingForTexts, ahead: timedelta) -> tuple[datetime, datetime]:
    """When `booking` first falls in a tick's window: as a confirmed booking, then as a completed one."""
    return booking.start_time - ahead, booking.end_time


@dataclass(frozen=True, slots=True)
class PlannedText:
    key: str
    kind: str
    schedule_id: str | None
    booking_id: str
    org_id: str
    client_id: str
    to_phone: str
    from_phone: str
    messaging_service_sid: str | None
    body: str
    scheduled_for: datetime
    expires_at: datetime
    session_start: datetime
    status: str  # queued | skipped | failed
    reason: str | None = None


def idempotency_key(kind: str, schedule_id: str | None, booking_id: str) -> str:
    return f"{kind}:{schedule_id or '-'}:{booking_id}"


def texts_owed(booking: BookingForTexts, schedules: list[Schedule]) -> list[tuple[str, Schedule | None, datetime, datetime]]:
    """(kind, schedule, due, stale-at) for every text this booking should get, sent or not."""
    owed: list[tuple[str, Schedule | None, datetime, datetime]] = []
    if booking.status == "confirmed":
        for s in schedules:
            if s.type == "pre_session":
                stale_at = booking.start_time
                due = stale_at - timedelta(minutes=s.mins_offset) if s.usable else stale_at  # never goes
                owed.append((SESSION_REMINDER, s, due, stale_at))
        if not booking.client_confirmed and booking.confirmation_sent_at is not None:
            owed.append((UNCONFIRMED_REMINDER, None, booking.start_time - UNCONFIRMED_LEAD, booking.start_time))
    elif booking.status == "completed":
        for s in schedules:
            if s.type == "post_session":
                stale_at = booking.end_time + FEEDBACK_STALE_AFTER
                due = booking.end_time + timedelta(minutes=s.mins_offset) if s.usable else stale_at
                owed.append((FEEDBACK_REQUEST, s, due, stale_at))
    return owed


def why_not_sendable(booking: BookingForTexts, kind: str) -> str | None:
    """A reason the client must not get this kind of text, checked before anything renders."""
    if kind == FEEDBACK_REQUEST and not booking.followups_on:
        return "opted_out"
    if kind != FEEDBACK_REQUEST and not booking.reminders_on:
        return "opted_out"
    if booking.suppressed:
        return "suppressed"
    return None


def plan_texts(
    tick_at: datetime,
    bookings: list[BookingForTexts],
    orgs: dict[str, OrgTexting],
    schedules: dict[str, list[Schedule]],
    existing_keys: set[str],
    feedback_link: str,
    tick_interval: timedelta = timedelta(minutes=10),
) -> list[PlannedText]:
    """Texts to write to the outbox at this tick: those due by T (or by the next tick when quiet
    hours move them earlier) and not stale, with a body, or with the reason they cannot go."""
    planned: list[PlannedText] = []
    for booking in bookings:
        org = orgs.get(booking.org_id)
        if org is None:
            continue
        for kind, schedule, due, stale_at in texts_owed(booking, schedules.get(booking.org_id, [])):
            key = idempotency_key(kind, schedule.id if schedule else None, booking.booking_id)
            if key in existing_keys or tick_at >= stale_at:
                continue
            if due >= stale_at:  # can never go: record it once, with the reason
                reason = ("offset_out_of_range" if schedule and not schedule.usable
                          else "negative_offset" if schedule and schedule.mins_offset < 0 else "due_after_stale")
                planned.append(_plan_one(booking, org, kind, schedule, tick_at, stale_at, key, feedback_link,
                                         (reason, "skipped")))
                continue
            send_at, problem = send_time(kind, due, stale_at, org, tick_interval)
            if send_at is not None and send_at > tick_at:
                continue
            if problem is None and quiet_until_stale(send_at, tick_at, stale_at, org):
                send_at, problem = tick_at, ("quiet_hours", "skipped")
            planned.append(_plan_one(booking, org, kind, schedule, send_at, stale_at, key, feedback_link, problem))
    return planned


def send_time(kind: str, due: datetime, stale_at: datetime, org: OrgTexting,
              tick_interval: timedelta = timedelta(minutes=10)) -> tuple[datetime | None, tuple[str, str] | None]:
    """When a text may be queued (the earliest tick that plans it; None: quiet hours leave no time),
    and a problem (reason, status) that fails it."""
    try:
        send_at = adjust_send_time(due, stale_at, kind, org.timezone, org.quiet_start, org.quiet_end)
    except (ValueError, KeyError):
        return due, ("unknown_timezone", "failed")
    if send_at is not None and send_at < due:
        send_at -= tick_interval  # moved before quiet hours: the tick before they begin sends it
    return send_at, None


def quiet_until_stale(send_at: datetime | None, tick_at: datetime, stale_at: datetime, org: OrgTexting) -> bool:
    """Quiet hours cover all the time this text has left: it can never go out."""
    if send_at is None:
        return True
    return next_allowed_send(max(send_at, tick_at), org.timezone, org.quiet_start, org.quiet_end) >= stale_at


def _plan_one(booking, org, kind, schedule, send_at, stale_at, key, feedback_link, problem) -> PlannedText:
    status, reason, body, phone = "queued", None, "", booking.phone or ""
    if problem:
        reason, status = problem
    elif (why := why_not_sendable(booking, kind)) is not None:
        status, reason = "skipped", why
    else:
        try:
            phone = normalize_e164(booking.phone)
            body = render_body(schedule.body if schedule else DEFAULT_UNCONFIRMED_TEMPLATE,
                               _variables(booking, org, feedback_link))
        except PhoneError as error:
            status, reason = "skipped", error.reason
        except TemplateError as error:
            status, reason = "failed", error.reason
    if status == "queued" and not (org.from_phone or org.messaging_service_sid):
        status, reason = "failed", "no_sender"
    elif status == "queued" and not org.sender_assigned:
        reason = SENDER_NOT_ASSIGNED  # queued all the same: it waits for its sender (sms/outbox.py CLAIM)
    return PlannedText(
        key=key, kind=kind, schedule_id=schedule.id if schedule else None, booking_id=booking.booking_id,
        org_id=booking.org_id, client_id=booking.client_id, to_phone=phone, from_phone=org.from_phone or "",
        messaging_service_sid=org.messaging_service_sid, body=body, scheduled_for=send_at, expires_at=stale_at,
        session_start=booking.start_time, status=status, reason=reason,
    )


def _variables(booking: BookingForTexts, org: OrgTexting, feedback_link: str) -> dict[str, object]:
    return {
        "client_name": first_name(booking.client_name),
        "session_datetime": format_session_datetime(booking.start_time, org.timezone),
        "location": location_text(booking.location_type),
        "coach_name": org.org_name,
        "feedback_link": feedback_link.format(booking_id=booking.booking_id),
        "sessions_remaining": booking.pack_remaining,
        "sessions_booked": booking.pack_booked,
        "session_summary": session_summary(booking.pack_used, booking.pack_booked, booking.pack_remaining),
    }
