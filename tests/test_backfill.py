"""Backfills: one tick per slot, resumable, safe beside ticks, never sending stale texts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from booking_cron.audit import audit
from booking_cron.slots import parse_every, slots_to_run, tick_slots
from flows.backfill import backfill
from flows.tick import tick
from tests import factories as f
from tests.faultkit import sandbox, sandbox_server  # noqa: F401 (fixtures)
from tests.test_texts import texting_org

START = datetime(2026, 3, 2, 0, 0, tzinfo=timezone.utc)  # long past: every text it would owe is stale


def test_slots_are_the_half_open_range_oldest_first():
    slots = tick_slots(START, START + timedelta(hours=1), parse_every("10m"))
    assert slots[0] == START and slots[-1] == START + timedelta(minutes=50) and len(slots) == 6
    assert slots_to_run(slots, {slots[0], slots[2]}, force=False) == [slots[1]] + slots[3:]
    assert slots_to_run(slots, {slots[0]}, force=True) == slots
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


def test_a_three_day_backfill_completes_every_booking_once_and_sends_nothing_stale(db, three_days_of_bookings, sandbox):
    _, packs, bookings = three_days_of_bookings
    state = backfill(start=START, end=START + timedelta(days=3), every="10m", return_state=True)
    totals = state.result()
    assert totals["slots"] == 432 and totals["ticked"] == 432
    assert totals["completed"] == 36 and totals["deducted"] == 18
    assert all(f.status(db, b) == "completed" for b in bookings)
    assert all(f.sessions_used(db, p) == 1 for p in packs if p)
    assert sandbox.messages == []  # every reminder and feedback request of last March is stale now
    assert db.execute("select count(*) from sms_messages where status = 'sent'").fetchone()[0] == 0
    assert audit(db) == []


def test_an_interrupted_backfill_resumes_where_it_stopped(db, three_days_of_bookings, prefect_api, database_url):
    end = START + timedelta(hours=12)
    env = {**os.environ, "DATABASE_URL": database_url, "PREFECT_API_URL": prefect_api}
    proc = subprocess.Popen([sys.executable, "-m", "booking_cron", "backfill", "--start", START.isoformat(),
                             "--end", end.isoformat(), "--every", "10m", "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and finished_slots(database_url) < 5:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = finished_slots(database_url)
    assert 5 <= done_before < 72

    totals = backfill(start=START, end=end, every="10m")
    assert totals["skipped"] == done_before
    assert totals["ticked"] == 72 - done_before
    assert finished_slots(database_url) == 72
    assert db.execute("select count(*) from tick_runs where trigger = 'backfill' and state = 'finished' "
                      "group by tick_at having count(*) > 1").fetchall() == []
    assert audit(db) == []


def finished_slots(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("select count(distinct tick_at) from tick_runs where state = 'finished'").fetchone()[0]


def test_backfill_dry_run_reports_and_writes_nothing(db, three_days_of_bookings):
    totals = backfill(start=START, end=START + timedelta(hours=6), every="1h", dry_run=True)
    assert totals["dry_run"] is True and totals["ticked"] == 6
    assert totals["completed"] >= 3
    assert db.execute("select count(*) from bookings where status = 'completed'").fetchone()[0] == 0
    assert db.execute("select count(*) from tick_runs").fetchone()[0] == 0


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


def test_backfill_command_prints_json_and_exits_0(db, three_days_of_bookings):
    from typer.testing import CliRunner

    from booking_cron.cli import app

    result = CliRunner().invoke(app, ["backfill", "--start", START.isoformat(), "--end",
                                      (START + timedelta(hours=2)).isoformat(), "--every", "30m", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert (payload["slots"], payload["ticked"], payload["state"]) == (4, 4, "Completed")
    again = json.loads(CliRunner().invoke(app, ["backfill", "--start", START.isoformat(), "--end",
                                                (START + timedelta(hours=2)).isoformat(), "--every", "30m",
                                                "--json"]).stdout)
    assert (again["ticked"], again["skipped"]) == (0, 4)
