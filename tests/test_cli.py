"""The command line of the contract: exit codes and output a user sees."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import timedelta

import pandas as pd
import pytest
from typer.testing import CliRunner

from booking_cron.cli import app
from tests import factories as f
from tests.factories import T

runner = CliRunner()


@pytest.fixture
def member(db, prefect_api):
    org_id = f.org(db)
    return org_id, f.client(db, org_id)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_run_json_reports_the_contract_fields(db, member):
    f.booking(db, *member, f.pack(db, *member))
    f.booking(db, *member, None)
    result = invoke("run", "--at", T.isoformat(), "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    for key in ("flow_run_id", "tick_at", "completed", "deducted", "not_deducted", "queued", "sent", "failed"):
        assert key in payload
    assert payload["completed"] == 2 and payload["deducted"] == 1
    assert payload["not_deducted"] == {"no_pack": 1}
    assert payload["tick_at"] == T.isoformat()


def test_run_without_json_prints_counts_and_a_per_booking_table(db, member):
    f.booking(db, *member, f.pack(db, *member))
    result = invoke("run", "--at", T.isoformat())
    assert result.exit_code == 0
    assert "completed" in result.stdout and "Per-booking results" in result.stdout


def test_run_refuses_a_time_without_offset(db):
    result = runner.invoke(app, ["run", "--at", "2026-11-24T09:00:00"])
    assert result.exit_code == 2
    assert "offset" in result.output


def test_audit_exits_0_after_ticks_and_1_listing_a_corruption(db, member):
    pack = f.pack(db, *member, total=5, used=1)
    f.booking(db, *member, pack)
    assert invoke("run", "--at", T.isoformat(), "--json").exit_code == 0
    assert invoke("run", "--at", (T + timedelta(minutes=10)).isoformat(), "--json").exit_code == 0
    assert invoke("audit").exit_code == 0

    db.execute("delete from session_usage where purchase_id = %s and booking_id is not null", (pack,))  # owner only
    result = invoke("audit", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False
    assert report["violations"][0]["invariant"] == "ledger_matches_sessions_used"
    assert report["violations"][0]["subject"] == pack
    plain = invoke("audit")
    assert plain.exit_code == 1 and pack in plain.stdout


def test_results_json_and_csv_match_the_database(db, member):
    b = f.booking(db, *member, f.pack(db, *member))
    run_id = json.loads(invoke("run", "--at", T.isoformat(), "--json").stdout)["flow_run_id"]
    rows = json.loads(invoke("results", "--run", run_id, "--json").stdout)
    stored = db.execute("select booking_id::text, step, outcome from tick_results where flow_run_id = %s order by step",
                        (run_id,)).fetchall()
    assert sorted((r["booking_id"], r["step"], r["outcome"]) for r in rows) == stored
    frame = pd.read_csv(io.StringIO(invoke("results", "--booking", b, "--csv").stdout))
    assert list(frame["step"]) == ["complete", "deduct"]


def test_seed_makes_realistic_data_that_audits_clean(db):
    result = invoke("seed", "--orgs", "4", "--clients", "60", "--bookings", "300", "--seed", "3", "--at", T.isoformat())
    assert result.exit_code == 0, result.output
    statuses = {s for (s,) in db.execute("select distinct status from bookings")}
    assert statuses == {"pending", "confirmed", "cancelled", "completed", "no_show"}
    assert db.execute("select count(distinct timezone) from booking_settings").fetchone()[0] == 4
    assert db.execute("select count(*) from clients where phone is null").fetchone()[0] > 0
    assert db.execute("select min(sessions_total), max(sessions_total) from client_purchases").fetchone() == (5, 20)
    assert db.execute("select count(*) from client_purchases where expires_at < %s", (T,)).fetchone()[0] > 0
    assert db.execute("select count(*) from client_purchases where sessions_total - sessions_used <= 1").fetchone()[0] > 0
    assert db.execute("select count(*) from bookings where start_time > %s", (T,)).fetchone()[0] > 0
    assert invoke("audit").exit_code == 0


def test_the_installed_command_exits_0_and_prints_json(db, member, prefect_api, database_url):
    f.booking(db, *member, f.pack(db, *member))
    env = {**os.environ, "DATABASE_URL": database_url, "PREFECT_API_URL": prefect_api}
    done = subprocess.run([sys.executable, "-m", "booking_cron", "run", "--at", T.isoformat(), "--json"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["deducted"] == 1


def test_a_tick_against_an_unreachable_database_exits_non_zero(prefect_api):
    env = {**os.environ, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none", "PREFECT_API_URL": prefect_api,
           "BOOKING_CRON_RETRY_DELAYS": "0", "BOOKING_CRON_DB_TIMEOUT": "1"}
    done = subprocess.run([sys.executable, "-m", "booking_cron", "run", "--at", T.isoformat(), "--json"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 1
    payload = json.loads(done.stdout)
    assert payload["state"] == "Failed"
    assert "cannot reach the bookings database at postgresql://postgres@127.0.0.1:1/none" in payload["error"]
