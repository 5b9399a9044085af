"""Which texts each slot of a backfill would queue: the tick's own plan_texts, fed the state the
database had at that slot.

A backfill completes and deducts a day of slots in a few statements, then asks, per slot that can
plan something, what a tick there would have queued. The state at an earlier slot is the state now
with this backfill's later changes taken back: a booking it completed at slot c was still
confirmed before c; a pack it deducted at slot d had one session fewer used before d.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Sequence

from booking_cron.domain.slots import slot_for
from booking_cron.domain.texts.plan import (
    BookingForTexts,
    OrgTexting,
    PlannedText,
    Schedule,
    enters_window,
    owing_window,
    plan_texts,
    send_time,
    texts_owed,
)


@dataclass(frozen=True, slots=True)
class Pack:
    """A paid pack of a candidate's client, as the database holds it now."""
    id: str
    client_id: str
    total: int
    used: int
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class PackBooking:
    """A booking on a pack of a candidate's client: what `{{sessions_booked}}` counts."""
    id: str
    client_id: str
    purchase_id: str
    start_time: datetime
    status: str


@dataclass
class History:
    """What this backfill changed so far. `written` is False in a dry run: the database then does
    not show these changes, so they are added to it rather than taken back."""
    written: bool
    completed_at: dict[str, datetime] = field(default_factory=dict)  # booking -> slot
    deducted: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))  # pack -> slots
    keys: set[str] = field(default_factory=set)  # texts planned (a dry run's are not in the outbox)

    def copy(self) -> "History":
        """A copy to extend: a day that fails and is retried starts again from the one it was given."""
        return History(self.written, dict(self.completed_at),
                       defaultdict(list, {pack: list(slots) for pack, slots in self.deducted.items()}), set(self.keys))

    def status_at(self, booking_id: str, status_now: str, slot: datetime) -> str:
        completed = self.completed_at.get(booking_id)
        if completed is None:
            return status_now
        return "completed" if slot >= completed else "confirmed"

    def used_at(self, pack: Pack, slot: datetime) -> int:
        slots = self.deducted.get(pack.id, ())
        if self.written:
            return pack.used - sum(1 for d in slots if d > slot)
        return pack.used + sum(1 for d in slots if d <= slot)


@dataclass(frozen=True)
class ReplayInputs:
    orgs: dict[str, OrgTexting]
    schedules: dict[str, list[Schedule]]
    candidates: list[BookingForTexts]  # status as now; pack figures filled in per slot
    packs: list[Pack]
    pack_bookings: list[PackBooking]
    existing_keys: set[str]
    lookahead: timedelta


def replay_texts(day: Sequence[datetime], inputs: ReplayInputs, history: History,
                 feedback_link: str) -> list[tuple[datetime, PlannedText]]:
    """(slot, text) for every text a tick at one of `day`'s slots would have queued, oldest first."""
    packs_of: dict[str, list[Pack]] = defaultdict(list)
    for pack in inputs.packs:
        packs_of[pack.client_id].append(pack)
    booked_of: dict[str, list[PackBooking]] = defaultdict(list)
    for b in inputs.pack_bookings:
        booked_of[b.client_id].append(b)

    by_slot: dict[datetime, list[BookingForTexts]] = defaultdict(list)
    for booking in inputs.candidates:
        for slot in _event_slots(booking, day, inputs, history):
            state = _state_at(booking, slot, history, packs_of[booking.client_id], booked_of[booking.client_id])
            if _candidate_at(state, slot, inputs.lookahead):
                by_slot[slot].append(state)

    known = inputs.existing_keys | history.keys
    planned: list[tuple[datetime, PlannedText]] = []
    for slot in sorted(by_slot):
        for text in plan_texts(slot, by_slot[slot], inputs.orgs, inputs.schedules, known, feedback_link):
            known.add(text.key)
            planned.append((slot, text))
    return planned


def _event_slots(booking: BookingForTexts, day: Sequence[datetime], inputs: ReplayInputs,
                 history: History) -> set[datetime]:
    """The slots at which this booking's texts can first be planned: when one becomes due (or at the
    day's first slot if already due), and when the backfill completes the booking."""
    org = inputs.orgs.get(booking.org_id)
    if org is None:
        return set()
    schedules = inputs.schedules.get(booking.org_id, [])
    # the tick first reads a booking when it enters its planning window: texts that can never go
    # (a negative offset, quiet hours until stale) are recorded `skipped` at that slot
    times = list(enters_window(booking, inputs.lookahead))
    completed = history.completed_at.get(booking.booking_id)
    if completed is not None:
        times.append(completed)
    for status in {history.status_at(booking.booking_id, booking.status, s) for s in (day[0], day[-1])}:
        for kind, _, due, stale_at in texts_owed(replace(booking, status=status), schedules):
            send_at, _problem = send_time(kind, due, stale_at, org)
            if send_at is not None:
                times.append(send_at)
    return {slot for t in times if (slot := slot_for(max(t, day[0]), day)) is not None}


def _state_at(booking: BookingForTexts, slot: datetime, history: History, packs: list[Pack],
              pack_bookings: list[PackBooking]) -> BookingForTexts:
    """The booking as the tick's planning query would have read it at `slot`."""
    active = [p for p in packs if p.expires_at is None or p.expires_at > slot]
    used = [history.used_at(p, slot) for p in active]
    ids = {p.id for p in active}
    booked = sum(1 for b in pack_bookings if b.purchase_id in ids and b.start_time > slot
                 and history.status_at(b.id, b.status, slot) in ("confirmed", "pending"))
    return replace(booking, status=history.status_at(booking.booking_id, booking.status, slot),
                   pack_used=sum(used), pack_booked=booked,
                   pack_remaining=sum(max(p.total - u, 0) for p, u in zip(active, used)))


def _candidate_at(booking: BookingForTexts, slot: datetime, lookahead: timedelta) -> bool:
    """The tick's planning query's window, at `slot`."""
    return owing_window(slot, slot, lookahead).holds(booking)
