"""Property-based: random sequences of bookings, status changes, cancellations, the app's own
completions, ticks at random times and crashed ticks; after every step the audit holds, and
after the next full tick nothing is owed and nothing was deducted twice.

A crash is simulated in-process by running only the first writes of a tick (the tasks' `.fn`,
in the flow's order) and stopping: after `complete`, or after the first deduct batch.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from booking_cron.domain.due import ALL
from flows.tick import complete_batch, deduct_batch, plan_batches, record_tick_start, summarize_tick
from tests import factories as f
from tests.faultkit import T, count, empty, fault_counts, lost_deductions, run_tick, violations  # noqa: F401

PACKS = [dict(total=3), dict(total=20), dict(total=20, expires_at=T + timedelta(hours=6)),
         dict(total=5, payment_status="pending")]

minutes = st.integers(min_value=-12 * 60, max_value=12 * 60)
ops = st.one_of(
    st.tuples(st.just("book"), st.integers(0, 1), st.one_of(st.none(), st.integers(0, len(PACKS) - 1)), minutes,
              st.sampled_from([30, 60, 90, -15])),
    st.tuples(st.just("status"), st.integers(0, 30), st.sampled_from(["cancelled", "pending", "no_show", "confirmed"])),
    st.tuples(st.just("app_complete"), st.integers(0, 30)),
    st.tuples(st.just("move"), st.integers(0, 30), st.integers(-180, 180)),
    st.tuples(st.just("refund"), st.integers(0, len(PACKS) - 1)),
    st.tuples(st.just("tick"), st.integers(0, 120)),
    st.tuples(st.just("crash"), st.integers(0, 120), st.sampled_from(["after_complete", "after_first_batch"])),
)


class Model:
    """The data set an example works on, and a clock that only moves forward."""

    def __init__(self, db):
        empty(db)
        self.db, self.clock = db, T - timedelta(hours=12)
        org = f.org(db)
        self.members = [(org, f.client(db, org, f"Client {i}")) for i in range(2)]
        self.packs = [f.pack(db, org, self.members[i % 2][1], used=1, **kw) for i, kw in enumerate(PACKS)]
        self.bookings: list[str] = []

    def pick(self, i: int) -> str | None:
        return self.bookings[i % len(self.bookings)] if self.bookings else None

    def apply(self, op) -> None:
        kind, *args = op
        if kind == "book":
            member, pack, offset, length = args
            # a pack belongs to one client: booking on another client's pack is a mismatch the tick must record
            on = self.packs[pack] if pack is not None else None
            self.bookings.append(f.booking(self.db, *self.members[member], on,
                                           start=self.clock + timedelta(minutes=offset), minutes=length))
        elif kind == "status" and (b := self.pick(args[0])):
            # any status, completed ones too (the app reopening a session the tick already completed)
            self.db.execute("update bookings set status = %s, cancelled_at = case when %s = 'cancelled' then now() end "
                            "where id = %s", (args[1], args[1], b))
        elif kind == "app_complete" and (b := self.pick(args[0])):
            self.db.execute("select complete_booking(%s)", (b,))
        elif kind == "move" and (b := self.pick(args[0])):
            self.db.execute("update bookings set start_time = start_time + make_interval(mins => %s), "
                            "end_time = end_time + make_interval(mins => %s) where id = %s and status = 'confirmed'",
                            (args[1], args[1], b))
        elif kind == "refund":
            self.db.execute("update client_purchases set payment_status = 'refunded' where id = %s",
                            (self.packs[args[0]],))
        elif kind in ("tick", "crash"):
            self.clock += timedelta(minutes=args[0])
            partial_tick(self.clock, stop=args[1] if kind == "crash" else None)
            count("ticks")


def partial_tick(at, stop: str | None = None, batch_size: int = 2) -> None:
    """The flow's database steps in its order, by their tasks' functions; `stop` ends it there,
    as a process killed at that point would (its tick_runs row stays 'running')."""
    run = str(uuid.uuid4())
    record_tick_start.fn(run, at, "property")
    for key in plan_batches.fn("complete", at, ALL, batch_size):
        complete_batch.fn(run, at, ALL, key)
    if stop == "after_complete":
        return
    for key in plan_batches.fn("deduct", at, ALL, batch_size):
        deduct_batch.fn(run, ALL, key)
        if stop == "after_first_batch":
            return
    summarize_tick.fn(run, at, "finished")


def settled(db) -> None:
    """What must hold once a tick has finished after everything: no violation, nothing owed."""
    assert violations(db) == []
    assert lost_deductions(db) == []
    assert db.execute("select count(*) from tick_completions where deduction is null").fetchone()[0] == 0
    per_booking = Counter(b for (b,) in db.execute("select booking_id from session_usage where booking_id is not null"))
    assert [b for b, n in per_booking.items() if n > 1] == []


PROPERTY = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                           HealthCheck.data_too_large])


@PROPERTY
@given(steps=st.lists(ops, min_size=1, max_size=14))
def test_invariants_hold_after_every_step_and_a_finished_tick_owes_nothing(db, steps):
    model = Model(db)
    for op in steps:
        model.apply(op)
        assert violations(db) == [], op
    partial_tick(model.clock + timedelta(minutes=10))
    settled(db)
    count("property_examples")


@settings(PROPERTY, max_examples=8)
@given(steps=st.lists(ops, min_size=1, max_size=10))
def test_the_real_flow_repairs_whatever_random_steps_and_crashes_left(db, prefect_api, steps):
    model = Model(db)
    for op in steps:
        model.apply(op)
        assert violations(db) == [], op
    run_tick(model.clock + timedelta(minutes=10))
    settled(db)
    count("property_examples")
