"""The tick flow end to end under a real Prefect API, against a real PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest

from booking_cron.ops.audit import audit
from booking_cron.domain.due import ALL
from flows.tick import complete_batch, tick
from tests import factories as f
from tests.factories import T


@pytest.fixture
def member(db, prefect_api):
    org_id = f.org(db)
    return org_id, f.client(db, org_id)


def test_a_booking_is_completed_and_deducted_exactly_once_across_repeated_ticks(db, member):
    pack = f.pack(db, *member, total=10, used=3)
    b = f.booking(db, *member, pack)
    first = tick(tick_at=T)
    second = tick(tick_at=T + timedelta(minutes=10))
    assert (first["completed"], first["deducted"]) == (1, 1)
    assert (second["completed"], second["deducted"]) == (0, 0)
    assert f.status(db, b) == "completed"
    assert f.sessions_used(db, pack) == 4
    assert f.ledger_rows(db, b) == 1
    assert f.results(db, b) == [("complete", "completed", None), ("deduct", "deducted", None)]
    assert audit(db) == []


def test_the_summary_can_be_read_from_the_apis_copy_of_the_final_state(db, member):
    # After a retried state update the API answers with its own copy of the state (CI once saw
    # `booking-cron run` fail this way with MissingResult); that copy must lead to the summary.
    from prefect import get_client

    f.booking(db, *member, f.pack(db, *member))
    state = tick(tick_at=T, return_state=True)
    with get_client(sync_client=True) as client:
        api_state = client.read_flow_run(state.state_details.flow_run_id).state
    assert api_state.is_completed()
    assert api_state.result() == state.result()
    assert (api_state.result()["completed"], api_state.result()["deducted"]) == (1, 1)


def test_concurrent_ticks_deduct_each_booking_once(db, member, prefect_api):
    packs = [f.pack(db, *member, total=20) for _ in range(5)]
    bookings = [f.booking(db, *member, packs[i % 5], start=T - timedelta(hours=2, minutes=i)) for i in range(40)]
    summaries: list[dict] = []

    def run():
        summaries.append(tick(tick_at=T))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(summaries) == 4
    assert sum(s["completed"] for s in summaries) == 40
    assert sum(s["deducted"] for s in summaries) == 40
    assert sum(f.sessions_used(db, p) for p in packs) == 40
    assert all(f.ledger_rows(db, b) == 1 for b in bookings)
    assert audit(db) == []


def test_bookings_without_a_pack_are_completed_and_never_deducted(db, member):
    b = f.booking(db, *member, None)
    summary = tick(tick_at=T)
    assert f.status(db, b) == "completed"
    assert summary["not_deducted"] == {"no_pack": 1}
    assert f.results(db, b) == [("complete", "completed", None), ("deduct", "not_deducted", "no_pack")]
    assert db.execute("select count(*) from session_usage").fetchone()[0] == 0


def test_exhausted_expired_and_unpaid_packs_are_recorded_with_a_reason(db, member):
    exhausted = f.pack(db, *member, total=5, used=5)
    expired = f.pack(db, *member, expires_at=T - timedelta(hours=1, minutes=30))  # mid-session
    unpaid = f.pack(db, *member, payment_status="pending")
    fine_then = f.pack(db, *member, expires_at=T - timedelta(minutes=30))  # expired after the session ended
    cases = {f.booking(db, *member, p): reason for p, reason in
             [(exhausted, "exhausted"), (expired, "expired"), (unpaid, "unpaid"), (fine_then, None)]}
    summary = tick(tick_at=T)
    assert summary["not_deducted"] == {"exhausted": 1, "expired": 1, "unpaid": 1}
    assert summary["deducted"] == 1
    for b, reason in cases.items():
        deduct = [r for r in f.results(db, b) if r[0] == "deduct"]
        assert deduct == [("deduct", "not_deducted" if reason else "deducted", reason)]
    assert f.sessions_used(db, exhausted) == 5
    assert audit(db) == []


def test_crash_between_complete_and_deduct_is_repaired_by_the_next_tick(db, member):
    pack = f.pack(db, *member)
    b = f.booking(db, *member, pack)
    crashed_run = str(uuid.uuid4())
    complete_batch.fn(crashed_run, T, ALL, (None, None))  # only the first write of the tick ran
    assert f.status(db, b) == "completed"
    assert f.sessions_used(db, pack) == 0

    summary = tick(tick_at=T + timedelta(minutes=10))
    assert summary["completed"] == 0
    assert summary["deducted"] == 1
    assert f.sessions_used(db, pack) == 1
    assert tick(tick_at=T + timedelta(minutes=20))["deducted"] == 0
    assert f.sessions_used(db, pack) == 1
    assert audit(db) == []


def test_an_unfinished_deduction_is_an_audit_violation_once_a_later_tick_finished(db, member):
    pack = f.pack(db, *member)
    f.booking(db, *member, pack)
    complete_batch.fn(str(uuid.uuid4()), T, ALL, (None, None))
    db.execute("insert into tick_runs (flow_run_id, tick_at, state, started_at) values (%s, %s, 'finished', now() + interval '1 minute')",
               (str(uuid.uuid4()), T))
    assert [v.invariant for v in audit(db)] == ["tick_completions_deducted_or_explained"]



def test_a_crashed_tick_is_repaired_by_the_next_tick_of_its_shard_and_audit_waits_for_it(db, prefect_api):
    orgs = {shard: f.org_in_shard(db, shard, 2) for shard in (0, 1)}
    client = f.client(db, orgs[1])
    pack = f.pack(db, orgs[1], client)
    f.booking(db, orgs[1], client, pack)
    complete_batch.fn(str(uuid.uuid4()), T, ALL, (None, None))  # a tick that died before deducting
    assert tick(tick_at=T + timedelta(minutes=10), shard="1/2")["deducted"] == 0  # not this org's shard
    assert audit(db) == []  # no tick that covers the org has finished since: nothing is owed yet
    assert tick(tick_at=T + timedelta(minutes=10), shard="2/2")["deducted"] == 1
    assert f.sessions_used(db, pack) == 1 and audit(db) == []
    runs = db.execute("select shard_index, shard_count from tick_runs where state = 'finished' order by 1").fetchall()
    assert runs == [(0, 2), (1, 2)]

def test_cancelled_pending_future_and_app_completed_bookings_are_untouched(db, member):
    pack = f.pack(db, *member)
    untouched = {
        f.booking(db, *member, pack, status="cancelled"): "cancelled",
        f.booking(db, *member, pack, status="pending"): "pending",
        f.booking(db, *member, pack, status="no_show"): "no_show",
        f.booking(db, *member, pack, start=T - timedelta(minutes=30)): "confirmed",  # still running at T
        f.booking(db, *member, pack, start=T + timedelta(days=1)): "confirmed",
        f.booking(db, *member, pack, status="completed"): "completed",  # the app's to deduct
    }
    summary = tick(tick_at=T)
    assert summary["completed"] == 0 and summary["deducted"] == 0
    assert {b: f.status(db, b) for b in untouched} == untouched
    assert f.sessions_used(db, pack) == 0
    assert all(f.results(db, b) == [] for b in untouched)


def test_a_booking_the_app_completed_and_deducted_is_not_deducted_again(db, member):
    pack = f.pack(db, *member)
    b = f.booking(db, *member, pack)
    db.execute("select complete_booking(%s)", (b,))
    tick(tick_at=T)
    assert f.sessions_used(db, pack) == 1
    assert audit(db) == []


def test_a_bad_row_is_a_result_and_the_tick_goes_on(db, member):
    pack = f.pack(db, *member)
    bad = f.booking(db, *member, pack, minutes=-30)  # ends before it starts
    good = f.booking(db, *member, pack)
    summary = tick(tick_at=T)
    assert summary["rejected"] == {"end_before_start": 1}
    assert f.results(db, bad) == [("complete", "rejected", "end_before_start")]
    assert f.status(db, bad) == "confirmed"
    assert f.status(db, good) == "completed"
    assert f.sessions_used(db, pack) == 1


def test_dry_run_reports_and_writes_nothing(db, member):
    pack = f.pack(db, *member, total=1)
    f.booking(db, *member, pack, start=T - timedelta(hours=3))
    f.booking(db, *member, pack)
    f.booking(db, *member, None)

    def snapshot():
        return {t: db.execute(f"select md5(coalesce(string_agg(x::text, ',' order by x::text), '')) from {t} x").fetchone()[0]
                for t in ("bookings", "client_purchases", "session_usage", "tick_results", "tick_runs", "tick_completions")}

    before = snapshot()
    summary = tick(tick_at=T, dry_run=True)
    assert snapshot() == before
    assert summary["dry_run"] is True
    assert summary["completed"] == 3
    assert summary["deducted"] == 1
    assert summary["not_deducted"] == {"exhausted": 1, "no_pack": 1}


def test_results_are_keyed_by_flow_run_and_the_run_is_recorded(db, member):
    f.booking(db, *member, f.pack(db, *member))
    summary = tick(tick_at=T)
    run = db.execute("select state, tick_at, summary->>'deducted' from tick_runs where flow_run_id = %s",
                     (summary["flow_run_id"],)).fetchone()
    assert run == ("finished", T, "1")
    assert db.execute("select count(*) from tick_results where flow_run_id = %s",
                      (summary["flow_run_id"],)).fetchone()[0] == 2
