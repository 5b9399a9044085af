"""Pure backfill arithmetic: the tick times in a range, and which of them still need a tick."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

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
