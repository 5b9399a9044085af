"""Pure decisions about due bookings: no database, milliseconds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from booking_cron.domain.due import DueBooking, deduction_batches, triage
from tests.factories import T


def due(i: int, pack: str | None = "p1", minutes: int = 60, earlier: bool = False) -> DueBooking:
    start = T - timedelta(hours=3, minutes=i)
    return DueBooking(f"b{i:04d}", pack, start, start + timedelta(minutes=minutes), earlier)


def test_triage_splits_new_owed_and_broken_rows():
    plan = triage([due(1), due(2, earlier=True), due(3, minutes=-5), due(4, pack=None)])
    assert [b.id for b in plan.to_complete] == ["b0001", "b0004"]
    assert [b.id for b in plan.to_deduct_only] == ["b0002"]
    assert [(r.booking_id, r.reason) for r in plan.rejected] == [("b0003", "end_before_start")]


def test_batches_never_split_a_pack():
    bookings = [due(i, pack=f"p{i % 3}") for i in range(30)]
    batches = deduction_batches(bookings, 4)
    packs_seen: dict[str, int] = {}
    for n, batch in enumerate(batches):
        for b in batch:
            assert packs_seen.setdefault(b.purchase_id, n) == n
    assert sum(len(b) for b in batches) == 30


def test_batch_size_must_be_positive():
    with pytest.raises(ValueError):
        deduction_batches([due(1)], 0)


@given(st.lists(st.tuples(st.integers(0, 400), st.sampled_from(["a", "b", "c", "d", "e", "f"])), max_size=200),
       st.integers(1, 50))
def test_batches_hold_every_booking_once_and_stay_near_the_size(items, size):
    bookings = [due(i, pack=p) for i, (_, p) in enumerate(items)]
    batches = deduction_batches(bookings, size)
    flat = [b.id for batch in batches for b in batch]
    assert sorted(flat) == sorted(b.id for b in bookings)
    for batch in batches[:-1]:
        assert len(batch) >= size
