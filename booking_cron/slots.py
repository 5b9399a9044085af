"""Pure backfill arithmetic: the tick times in a range, which still need a tick, and which slot
picks up what."""

from __future__ import annotations

import re
import uuid
from bisect import bisect_left
from datetime import datetime, timedelta
from typing import Sequence

_EVERY = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_every(text: str) -> timedelta:
    """`10m`, `1h`, `30s`, `1d` -> a positive timedelta."""
    match = _EVERY.match(text or "")
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"--every must look like 10m, 1h or 1d, got {text!r}")
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
