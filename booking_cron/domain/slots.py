"""Pure backfill arithmetic: the tick times in a range, which still need a tick, and which slot
picks up what."""

from __future__ import annotations

import re
import uuid
from bisect import bisect_left
from datetime import datetime, timedelta
from typing import Sequence

from booking_cron.domain.due import DueBooking, Triage, triage

_EVERY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_every(text: str) -> timedelta:
    """`10m`, `1h`, `30s`, `1d` -> a positive timedelta."""
    match = _EVERY.match(text or "")
    if not match:
        raise ValueError(f"--every must look like 10m, 1h or 1d, got {text!r}")
    if int(match.group(1)) == 0:
        raise ValueError(f"--every must be longer than zero, got {text!r} (e.g. 10m, 1h or 1d)")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def tick_slots(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """Every tick time in [start, end), oldest first."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end need a UTC offset")
    if end <= start:
        raise ValueError("end must be after start")
    slots, at = [], start
    while at < end:
        slots.append(at)
        at += every
    return slots


def slots_to_run(slots: list[datetime], finished: set[datetime], force: bool) -> list[datetime]:
    return list(slots) if force else [s for s in slots if s not in finished]


def slot_for(when: datetime, slots: Sequence[datetime]) -> datetime | None:
    """The first slot at or after `when` (the slot whose tick would pick it up), None past the last."""
    i = bisect_left(slots, when)
    return slots[i] if i < len(slots) else None


def by_day(slots: Sequence[datetime]) -> list[list[datetime]]:
    """Slots grouped by UTC day, oldest first: the unit a backfill commits and reports."""
    days: list[list[datetime]] = []
    for slot in slots:
        if days and days[-1][0].date() == slot.date():
            days[-1].append(slot)
        else:
            days.append([slot])
    return days


def slot_run_id(backfill_run_id: str, slot: datetime) -> str:
    """A stable id for a slot's tick record within one backfill run (a retried day reuses it)."""
    return str(uuid.uuid5(uuid.UUID(backfill_run_id), slot.isoformat()))


def assign_slots(due: Sequence[DueBooking], day: Sequence[datetime], todo: Sequence[datetime],
                 dry_run: bool) -> tuple[Triage, dict[str, datetime], dict[str, datetime]]:
    """For one day of a backfill, what its last slot's tick would see (triaged): the slot of each
    booking to complete or deduct, and of each row to reject. A booking's slot is the first at or after its end (the tick there would pick
    it up); one left over from an earlier day (failed, or added since) goes to the day's first slot;
    owed deductions too. A rejected row stays confirmed, so every later day sees it again: it is
    recorded once, at the backfill's first slot that saw it. In a dry run nothing was written, so
    bookings an earlier day reported are that day's."""
    plan = triage(due)
    slot_of: dict[str, datetime] = {}
    for booking in plan.to_complete:
        assert booking.end_time is not None  # triage completes only bookings with both times
        slot = slot_for(booking.end_time, todo)
        assert slot is not None  # due by the day's last slot: it ended at or before it
        if slot >= day[0] or not dry_run:
            slot_of[booking.id] = max(slot, day[0])
    if day[0] == todo[0] or not dry_run:
        slot_of.update({b.id: day[0] for b in plan.to_deduct_only})
    ends = {b.id: b.end_time for b in due}  # a row without times (-infinity): the first slot
    rejected_at = {}
    for r in plan.rejected:
        slot = (slot_for(end, todo) if (end := ends.get(r.booking_id)) else None) or todo[0]
        if day[0] <= slot <= day[-1]:
            rejected_at[r.booking_id] = slot
    return plan, slot_of, rejected_at
