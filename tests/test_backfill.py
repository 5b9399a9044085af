"""Backfills: the outcome of one tick per slot, resumable, safe beside ticks, never sending stale texts."""

from __future__ import annotations

import json
import signal
import threading
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import psycopg
import pytest

from booking_cron.storage import database, schema
from booking_cron.ops.audit import audit
from booking_cron.reporting.backfill_report import Totals
from booking_cron.ops.seed import seed
from booking_cron.domain.slots import by_day, parse_every, slot_for, slots_to_run, tick_slots
from flows.backfill import backfill
from flows.tick import tick
from tests import factories as f
from tests import hosting
from tests.faultkit import cli, cli_env, sandbox, sandbox_server  # noqa: F401 (fixtures)
from tests.test_texts import texting_org

START = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)  # long past: every text it would owe is stale


def test_slots_are_the_half_open_range_oldest_first():
    slots = tick_slots(START, START + timedelta(hours=1), parse_every("10m"))
    assert slots[0] == START and slots[-1] == START + timedelta(minutes=50) and len(slots) == 6
    assert slots_to_run(slots, {slots[0], slots[2]}, force=False) == [slots[1]] + slots[3:]
    assert slots_to_run(slots, {slots[0]}, force=True) == slots
    assert slot_for(START + timedelta(minutes=10), slots) == slots[1]  # at: that slot's tick sees it
    assert slot_for(START + timedelta(minutes=11), slots) == slots[2]
    assert slot_for(START - timedelta(days=1), slots) == slots[0]
    assert slot_for(START + timedelta(minutes=51), slots) is None
    days = by_day(tick_slots(START + timedelta(hours=23), START + timedelta(hours=25), parse_every("30m")))
    assert [len(d) for d in days] == [2, 2] and days[1][0] == START + timedelta(days=1)
    for bad in ("10", "0m", "ten minutes"):
        with pytest.raises(ValueError):
            parse_every(bad)


@pytest.fixture
def three_days_of_bookings(db, sandbox):
    org = texting_org(db)
    packs, bookings = [], []
    for i in range(36):  # a session every two hours across three days, half on packs
        client = f.client(db, org, f"Client {i}", f"+6141234{i:04d}")
        pack = f.pack(db, org, client, total=5) if i % 2 == 0 else None
        packs.append(pack)
        bookings.append(f.booking(db, org, client, pack, start=START + timedelta(hours=2 * i, minutes=5)))
    return org, packs, bookings


def test_a_three_day_backfill_completes_every_booking_once_at_its_slot_and_sends_nothing_stale(
        db, three_days_of_bookings, sandbox):
    _, packs, bookings = three_days_of_bookings
    state = backfill(start=START, end=START + timedelta(days=3), every="10m", return_state=True)
    totals = state.result()
    assert totals["slots"] == 432 and totals["ticked"] == 432
    assert totals["completed"] == 36 and totals["deducted"] == 18
    assert state.message.startswith("432 slots ticked: 36 completed, 18 deducted, 0 texts sent")
    assert all(f.status(db, b) == "completed" for b in bookings)
    assert all(f.sessions_used(db, p) == 1 for p in packs if p)
    # every slot is on record as ticked; each booking's results carry the first slot at or after its end
    assert db.execute("select count(*) from tick_runs where state = 'finished' and trigger = 'backfill'"
                      ).fetchone()[0] == 432
    for i, booking in enumerate(bookings):
        ends = START + timedelta(hours=2 * i, minutes=65)
        slot = START + timedelta(hours=2 * i, minutes=70)  # first 10-minute slot at or after the end
        assert ends <= slot
        steps = db.execute("""select r.step, t.tick_at from tick_results r join tick_runs t using (flow_run_id)
                              where r.booking_id = %s and r.step in ('complete', 'deduct')""",
                           (booking,)).fetchall()
        assert {s for s, _ in steps} == ({"complete", "deduct"}) and {t for _, t in steps} == {slot}
    assert sandbox.messages == []  # every reminder and feedback request of last March is stale now
    statuses = dict(db.execute("select status, count(*) from sms_messages group by 1").fetchall())
    assert statuses and set(statuses) <= {"expired", "skipped", "failed"}, statuses
    assert audit(db) == []


def test_days_no_booking_comes_near_are_recorded_slot_by_slot_like_empty_slots_of_a_worked_day(
        db, three_days_of_bookings):
    _, packs, bookings = three_days_of_bookings
    start = START - timedelta(days=8)  # five days no booking (nor its texts) comes near, then the three
    totals = backfill(start=start, end=START + timedelta(days=4), every="1h")
    assert totals["slots"] == totals["ticked"] == 12 * 24 and totals["completed"] == 36 and totals["deducted"] == 18
    runs = db.execute("select flow_run_id::text, tick_at, state, summary from tick_runs where trigger = 'backfill' "
                      "order by tick_at").fetchall()
    assert [t for _, t, _, _ in runs] == tick_slots(start, START + timedelta(days=4), timedelta(hours=1))
    assert {state for _, _, state, _ in runs} == {"finished"}
    for run, at, _, summary in runs:
        assert summary["flow_run_id"] == run and summary["tick_at"] == at.isoformat()
    quiet = [summary for _, at, _, summary in runs if at < START - timedelta(days=5)]
    worked_but_empty = [summary for _, at, _, summary in runs if START <= at and summary["results"] == 0]
    assert len(quiet) == 3 * 24 and worked_but_empty  # days -8 to -6 at least are quiet
    strip = lambda s: {k: v for k, v in s.items() if k not in ("flow_run_id", "tick_at")}  # noqa: E731
    assert all(strip(s) == strip(worked_but_empty[0]) for s in quiet)
    # the quiet days after the first (which always ticks in full) were not read day by day: their
    # records were written finished, in one statement
    assert db.execute("select count(*) from tick_runs where trigger = 'backfill' and tick_at >= %s and tick_at < %s "
                      "and started_at = finished_at", (start + timedelta(days=1), START - timedelta(days=5))
                      ).fetchone()[0] == 2 * 24
    assert all(f.status(db, b) == "completed" for b in bookings)
    assert all(f.sessions_used(db, p) == 1 for p in packs if p)
    assert audit(db) == []


def digest(url: str) -> dict:
    """Everything a tick leaves behind that a backfill must leave the same (run ids aside)."""
    with psycopg.connect(url) as conn:
        q = lambda sql: sorted(conn.execute(sql).fetchall())  # noqa: E731
        return {
            "bookings": q("select id::text, status from bookings"),
            "packs": q("select id::text, sessions_used from client_purchases"),
            "ledger": q("select booking_id::text, purchase_id::text from session_usage where booking_id is not null"),
            "outbox": q("""select idempotency_key, status, body, scheduled_for, coalesce(error_code, ''),
                                  coalesce(to_phone, '') from sms_messages"""),
            "results": q("""select r.booking_id::text, r.step, r.outcome, coalesce(r.reason, ''), t.tick_at
                            from tick_results r join tick_runs t using (flow_run_id)"""),
            "runs": q("select tick_at, state from tick_runs"),
        }


@pytest.fixture
def twin_databases(server_url, database_url, monkeypatch):
    """Two databases with the same seeded data (several orgs and time zones, packs nearly used up,
    expired and unpaid, texts on), owned by the test owner; DATABASE_URL points at the first."""
    with hosting.owned_database(server_url, "booking_cron_twin") as first:
        schema.upgrade(first)
        with psycopg.connect(first, autocommit=True) as conn:
            seed(conn, orgs=3, clients=40, bookings=1500, seed=11, at=START + timedelta(days=14))
            conn.execute("insert into bookings (id, org_id, client_id, start_time, end_time, status) select "
                         "gen_random_uuid(), org_id, client_id, %s, %s, 'confirmed' from bookings limit 1",
                         (START + timedelta(days=14, hours=5), START + timedelta(days=14, hours=4)))  # end before start
        twin = f"booking_cron_twin_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'create database "{twin}" template "{urlsplit(first).path[1:]}" owner "{hosting.OWNER}"')
        monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
        monkeypatch.setenv("DATABASE_URL", first)
        try:
            yield [first, database.with_database(first, twin)]
        finally:
            monkeypatch.setenv("DATABASE_URL", database_url)
            database.close_pools()
            database.drop_database(server_url, twin)


def test_a_backfill_ends_exactly_as_one_tick_per_slot(twin_databases, monkeypatch, prefect_api):
    one_by_one, backfilled = twin_databases
    start, end, every = START + timedelta(days=14), START + timedelta(days=15), "2h"
    for slot in tick_slots(start, end, parse_every(every)):
        assert tick(tick_at=slot, trigger="backfill", return_state=True).is_completed()
    monkeypatch.setenv("DATABASE_URL", backfilled)
    dry = backfill(start=start, end=end, every=every, dry_run=True)
    totals = backfill(start=start, end=end, every=every)
    ticks, ours = digest(one_by_one), digest(backfilled)
    assert ours["results"] and ours["outbox"] and ours["ledger"]  # the data exercises every step
    assert {reason for (_, step, _, reason, _) in ours["results"] if step == "deduct"} >= {"", "unpaid", "expired"}
    # A row too broken to complete stays confirmed, so every tick rejects it again; the backfill
    # records it once, at the first slot that saw it.
    rejected = [r for r in ticks["results"] if r[2] == "rejected"]
    assert len(rejected) == 10  # it ends at 04:00: the slots from 04:00 to 22:00
    ticks["results"] = [r for r in ticks["results"] if r not in rejected[1:]]
    for key in ticks:
        assert ours[key] == ticks[key], key
    assert totals["completed"] == dry["completed"] > 0 and totals["deducted"] == dry["deducted"] > 0
    assert totals["not_deducted"] == dry["not_deducted"] and totals["rejected"] == dry["rejected"] == {
        "end_before_start": 1}
    with psycopg.connect(backfilled) as conn:
        assert audit(conn) == []


def finished_slots(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(distinct tick_at) from tick_runs where state = 'finished'").fetchone()[0]


def test_an_interrupted_backfill_resumes_where_it_stopped(db, three_days_of_bookings, prefect_api, database_url):
    from typer.testing import CliRunner

    from booking_cron.ops.cli import app

    args = ["backfill", "--start", START.isoformat(), "--end", (START + timedelta(days=3)).isoformat()]
    # killed inside the second day's complete statement: the first day committed, the second did not
    crashed = cli(args, cli_env(prefect_api, BOOKING_CRON_CRASH_AT="mid_complete@2"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    assert finished_slots(database_url) == 144

    resumed = CliRunner().invoke(app, args + ["--json"])
    totals = json.loads(resumed.stdout)
    assert (totals["skipped"], totals["ticked"], totals["completed"]) == (144, 288, 24)
    assert finished_slots(database_url) == 432
    assert db.execute("select count(*) from bookings where status = 'completed'").fetchone()[0] == 36

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0
    assert "nothing to do, all 432 slots already ticked" in again.stderr
    lines = again.stdout.splitlines()  # first what it acts on, then what it did
    assert lines[0].startswith("database booking_cron_test_") and lines[1] == f"Prefect API {prefect_api} (PREFECT_API_URL)"
    assert lines[2].startswith("0 slots ticked, 432 already done: 0 completed, 0 deducted, 0 texts sent")
    assert audit(db) == []


def test_backfill_dry_run_reports_and_writes_nothing(db, three_days_of_bookings, prefect_api):
    state = backfill(start=START, end=START + timedelta(hours=6), every="1h", dry_run=True, return_state=True)
    totals = state.result()
    assert totals["dry_run"] is True and totals["ticked"] == 6 and totals["completed"] == 2
    assert state.message.startswith("6 slots would tick: 2 completed, 1 deducted")
    assert db.execute("select count(*) from bookings where status = 'completed'").fetchone()[0] == 0
    assert db.execute("select count(*) from tick_runs").fetchone()[0] == 0
    assert db.execute("select count(*) from sms_messages").fetchone()[0] == 0

    from prefect import get_client

    async def name() -> str:
        async with get_client() as client:
            return (await client.read_flow_run(state.state_details.flow_run_id)).name

    import asyncio
    assert asyncio.run(name()) == "dry-run backfill 2026-03-02 00:00 to 2026-03-02 06:00 UTC every 1h"


def test_a_backfill_beside_running_ticks_deducts_and_texts_once(db, sandbox):
    org = texting_org(db)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    packs = []
    for i in range(20):
        client = f.client(db, org, f"Client {i}", f"+6141235{i:04d}")
        pack = f.pack(db, org, client, total=3)
        packs.append(pack)
        f.booking(db, org, client, pack, start=now - timedelta(hours=6) + timedelta(minutes=15 * i))
    errors: list[Exception] = []

    def run(fn, **kwargs):
        try:
            fn(**kwargs)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=run, args=(backfill,),
                                kwargs=dict(start=now - timedelta(hours=6), end=now, every="30m"))]
    threads += [threading.Thread(target=run, args=(tick,), kwargs=dict(tick_at=now)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(f.sessions_used(db, p) for p in packs) == 20
    keys = [m["to"] + m["body"] for m in sandbox.messages]
    assert len(keys) == len(set(keys))
    assert audit(db) == []


def test_backfill_command_prints_a_summary_or_json_and_exits_0(db, three_days_of_bookings, prefect_api):
    from typer.testing import CliRunner

    from booking_cron.ops.cli import app

    args = ["backfill", "--start", START.isoformat(), "--end", (START + timedelta(hours=2)).isoformat(),
            "--every", "30m"]
    human = CliRunner().invoke(app, args)
    assert human.exit_code == 0, human.output
    assert human.stdout.splitlines()[1] == f"Prefect API {prefect_api} (PREFECT_API_URL)"  # after the database
    assert human.stdout.splitlines()[2:4] == [
        "4 slots ticked: 1 completed, 1 deducted, 0 texts sent, 2 expired as stale",  # March's texts, too late now
        "  slots: 4 in range, 4 ticked, 2 with work, 0 skipped (already ticked)"]  # 00:00 queued a reminder
    again = json.loads(CliRunner().invoke(app, args + ["--json"]).stdout)
    assert (again["slots"], again["ticked"], again["skipped"], again["state"]) == (4, 0, 4, "Completed")
    bad = CliRunner().invoke(app, args[:3] + ["--end", START.isoformat()])
    assert bad.exit_code == 2 and "after" in bad.output


def test_a_backfill_gives_back_the_session_of_a_booking_cancelled_after_deduction_once(db, prefect_api):
    org = f.org(db)
    client = f.client(db, org)
    pack = f.pack(db, org, client, total=5)
    taken = f.booking(db, org, client, pack, start=START + timedelta(hours=1))
    tick(tick_at=START + timedelta(hours=3))
    assert f.sessions_used(db, pack) == 1
    db.execute("update bookings set status = 'cancelled' where id = %s", (taken,))
    totals = backfill(start=START + timedelta(days=1), end=START + timedelta(days=3), every="1h")
    again = backfill(start=START + timedelta(days=1), end=START + timedelta(days=3), every="1h", force=True)
    assert f.sessions_used(db, pack) == 0
    assert totals["reinstated"] == 1 and again["reinstated"] == 0
    assert [r for r in f.results(db, taken) if "reinstated" in r]
    assert not audit(db)


def test_a_shards_backfill_skips_only_the_slots_that_shard_or_a_whole_tick_finished(db, prefect_api):
    first, second = f.org_in_shard(db, 0, 2), f.org_in_shard(db, 1, 2)
    owed = {}
    for org in (first, second):
        client = f.client(db, org)
        pack = f.pack(db, org, client, total=5)
        owed[org] = (f.booking(db, org, client, pack, start=START + timedelta(hours=1)), pack)
    window = dict(start=START + timedelta(hours=2), end=START + timedelta(hours=6), every="1h")

    one = backfill(shard="1/2", **window)
    two = backfill(shard="2/2", **window)  # shard 1's ticks covered none of shard 2's orgs
    assert (one["skipped"], two["skipped"]) == (0, 0)
    for booking, pack in owed.values():
        assert f.status(db, booking) == "completed" and f.sessions_used(db, pack) == 1
    assert backfill(shard="2/2", **window)["skipped"] == 4  # its own finished slots
    assert backfill(**window)["skipped"] == 0  # the whole range for every org: no tick covered all
    assert backfill(shard="1/2", **window)["skipped"] == 4  # now a tick of every org finished each slot
    assert not audit(db)


def test_the_backfill_summary_counts_one_slot_and_one_text_in_the_singular():
    from booking_cron.reporting.backfill_report import Totals

    totals = Totals(slots=1, skipped=0)
    totals.add_day({datetime(2026, 11, 24, 9, tzinfo=timezone.utc): {"results": 1, "completed": 1, "deducted": 1,
                                                                      "sent": {"feedback_request": 1}}})
    assert totals.headline() == "1 slot ticked: 1 completed, 1 deducted, 1 text sent"


def test_a_backfill_judges_a_text_of_unknown_fate_as_a_tick_does():
    """The backfill's totals are the ticks' summaries added up (TickSummary.add), reasons included: a
    text of unknown fate is that, not a failed text to fix; one being looked up needs nobody."""
    from booking_cron.reporting.attention import attention_items
    from booking_cron.reporting.backfill_report import Totals

    unresolved = {"results": 2, "failed": {"session_reminder": 2},
                  "text_reasons": {"unknown": {"unresolved_2h_lookup_failed": 1, "lookup_failed": 1}}}
    totals = Totals(slots=2, skipped=0)
    totals.add_day({datetime(2026, 11, 24, 9, tzinfo=timezone.utc): unresolved,
                    datetime(2026, 11, 24, 9, 10, tzinfo=timezone.utc): {"results": 1, "completed": 1}})
    assert totals.attention() == {"text of unknown fate": 1}
    assert [label for label, _, _ in attention_items(unresolved)] == ["text of unknown fate"]
    assert "failed text" not in totals.headline()
    assert Totals.from_dict(totals.as_dict()).headline() == totals.headline()  # the CLI's copy of the flow's result
    assert totals.as_dict()["skipped"] == 0  # slots already ticked, not a tick's skipped bookings


def test_a_dry_run_agrees_with_the_real_run_and_both_count_the_texts_too_late_to_send(
        db, three_days_of_bookings, sandbox, prefect_api):
    """The real run sends at each day's end by the real clock, recording the sends under the day's last
    slot: that is not the slot's own work. Texts planned for March are stale now: both runs say so."""
    window = dict(start=START, end=START + timedelta(hours=3), every="10m")  # nothing due at 02:50
    dry = backfill(**window, dry_run=True, return_state=True)
    real = backfill(**window, return_state=True)
    would, did = dry.result(), real.result()
    assert did["stale"] > 0 and did["stale"] == would["stale"]
    assert sum(did["sent"].values()) == 0  # nothing stale went out
    for key in ("ticked", "slots_with_work", "completed", "deducted", "queued", "stale"):
        assert would[key] == did[key], key
    assert f"{did['stale']} expired as stale" in real.message and f"{did['stale']} would expire as stale" in dry.message
    lines = "\n".join(Totals.from_dict(did).lines())
    assert f"{did['stale']} texts expired as stale instead of being sent" in lines
