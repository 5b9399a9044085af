"""Pure decisions about due bookings: which to complete, which to deduct, in what batches."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from typing import Iterable, Iterator, Sequence


@dataclass(frozen=True, slots=True)
class DueBooking:
    id: str
    purchase_id: str | None
    start_time: datetime | None  # None: a time the database holds but Python cannot (-infinity)
    end_time: datetime | None
    completed_earlier: bool = False  # completed by an interrupted tick, deduction still owed
    client_in_org: bool = True  # False: its client belongs to another org (a hostile or broken write)


@dataclass(frozen=True, slots=True)
class Shard:
    """Which orgs a tick covers: those whose id hashes to `index` of `count` (0-based)."""
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> "Shard":
        """`"2/4"` is the second of four shards; None or `"1/1"` is everything."""
        if not text:
            return cls()
        try:
            number, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"shard must look like 2/4, got {text!r}") from None
        if not 1 <= number <= count:
            raise ValueError(f"shard {text!r}: the first number must be between 1 and {count}")
        return cls(number - 1, count)

    def __str__(self) -> str:
        return f"{self.index + 1}/{self.count}"


ALL = Shard()


@dataclass(frozen=True, slots=True)
class Rejected:
    booking_id: str
    reason: str


@dataclass(frozen=True)
class Triage:
    to_complete: list[DueBooking]
    to_deduct_only: list[DueBooking]
    rejected: list[Rejected]


def triage(due: Iterable[DueBooking]) -> Triage:
    """Split fetched bookings into new completions, owed deductions and rows too broken to touch."""
    to_complete: list[DueBooking] = []
    to_deduct_only: list[DueBooking] = []
    rejected: list[Rejected] = []
    for booking in due:
        if booking.start_time is None or booking.end_time is None:
            rejected.append(Rejected(booking.id, "invalid_time"))
        elif booking.end_time < booking.start_time:
            rejected.append(Rejected(booking.id, "end_before_start"))
        elif not booking.client_in_org:
            rejected.append(Rejected(booking.id, "client_of_another_org"))
        elif booking.completed_earlier:
            to_deduct_only.append(booking)
        else:
            to_complete.append(booking)
    return Triage(to_complete, to_deduct_only, rejected)


def on_a_pack(bookings: Iterable[DueBooking]) -> list[DueBooking]:
    return [b for b in bookings if b.purchase_id is not None]


def owed_after_completion(plan: Triage, not_completed: Iterable[str]) -> list[DueBooking]:
    """What a tick deducts once its complete step ran: the bookings on a pack it completed (all it
    was given except `not_completed`, which the app changed meanwhile) and those an earlier tick
    completed without deducting."""
    skip = set(not_completed)
    return [b for b in on_a_pack(plan.to_complete) if b.id not in skip] + on_a_pack(plan.to_deduct_only)


def deduction_batches(bookings: Sequence[DueBooking], size: int) -> list[list[DueBooking]]:
    """Batches of about `size` bookings, ordered by pack, never splitting a pack's bookings.

    Keeping a pack in one batch makes each batch's outcome independent of the others (so a
    dry run, which rolls every batch back, reports exactly what a real tick would do).
    """
    if size < 1:
        raise ValueError("batch size must be at least 1")
    ordered = sorted(bookings, key=lambda b: (b.purchase_id or "", b.end_time, b.id))
    batches: list[list[DueBooking]] = []
    current: list[DueBooking] = []
    for booking in ordered:
        if len(current) >= size and booking.purchase_id != current[-1].purchase_id:
            batches.append(current)
            current = []
        current.append(booking)
    if current:
        batches.append(current)
    return batches


def chunks(items: Sequence, size: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk
