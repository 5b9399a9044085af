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

from booking_cron.ops.cli import app
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


def cli(*args: str, database_url: str, prefect_api: str) -> subprocess.CompletedProcess:
    """The installed command in a 100-column terminal, as an operator runs it."""
    env = {**os.environ, "DATABASE_URL": database_url, "PREFECT_API_URL": prefect_api, "COLUMNS": "100"}
    return subprocess.run([sys.executable, "-m", "booking_cron", *args], capture_output=True, text=True, env=env,
                          timeout=180)


def a_tick_with_problems(db, member) -> tuple[str, str]:
    """One deducted booking, one on an expired pack, one that ends before it starts."""
    f.booking(db, *member, f.pack(db, *member))
    expired = f.booking(db, *member, f.pack(db, *member, expires_at=T - timedelta(days=1)))
    f.booking(db, *member, None, minutes=-10)
    return expired, json.loads(invoke("run", "--at", T.isoformat(), "--json").stdout)["flow_run_id"]


def fits(output: str, width: int = 100) -> bool:
    return max(len(line) for line in output.splitlines()) <= width


def test_run_prints_what_needs_attention_and_the_first_results_in_100_columns(db, member, database_url, prefect_api):
    f.booking(db, *member, f.pack(db, *member, expires_at=T - timedelta(days=1)))
    f.booking(db, *member, f.pack(db, *member))
    done = cli("run", "--at", T.isoformat(), database_url=database_url, prefect_api=prefect_api)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("database booking_cron_test_") and lines[0].endswith("(DATABASE_URL)")
    assert lines[1] == f"Prefect API {prefect_api} (PREFECT_API_URL)"
    assert lines[2] == "Tick at 2026-11-24 09:00 UTC: 2 completed, 1 deducted, 0 texts sent"
    assert lines[3] == "1 needs attention: 1 expired pack"
    assert "not deducted: expired" in done.stdout and "failures first" in done.stdout
    table = lines[lines.index(next(line for line in lines if line.startswith("outcome"))) + 2:]
    assert table[0].startswith("not deducted   expired")  # the failure before what went well
    assert fits(done.stdout) and "NaN" not in done.stdout and "+61412345678" not in done.stdout
    assert lines[-1].startswith("All of them: booking-cron results --run ")


def test_results_is_a_table_that_fits_100_columns_failures_first(db, member, database_url, prefect_api):
    expired, run_id = a_tick_with_problems(db, member)
    done = cli("results", "--run", run_id, database_url=database_url, prefect_api=prefect_api)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("outcome"))
    assert lines[header].split() == ["outcome", "reason", "step", "client", "session", "start"]
    rows = [line for line in lines[header + 2:] if line.strip() and not line.startswith("--wide")]
    assert [row.split()[:2] for row in rows] == [
        ["rejected", "end"], ["not", "deducted"], ["completed", "complete"], ["completed", "complete"],
        ["deducted", "deduct"]]
    assert rows[1].split() == ["not", "deducted", "expired", "deduct", "Ava", "Nguyen", "24", "Nov", "17:00", "AEST"]
    assert fits(done.stdout) and "NaN" not in done.stdout and "None" not in done.stdout

    wide = cli("results", "--run", run_id, "--wide", database_url=database_url, prefect_api=prefect_api)
    assert wide.returncode == 0, wide.stderr
    first = next(line for line in wide.stdout.splitlines() if line.startswith("not deducted"))
    assert expired in first and run_id in first and "+6141*****678" in first and "Peak Form PT" in first
    assert "+61412345678" not in wide.stdout and "NaN" not in wide.stdout


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
    assert {"flow_run_id", "tick_at", "booking_id", "org", "client", "start_time", "booking_status", "step", "outcome",
            "reason", "to", "recorded_at"} <= set(rows[0])  # the export's columns: added to, never renamed
    assert rows[0]["phone"] == "+6141*****678" and "+61412345678" not in json.dumps(rows)
    assert all("." not in r["recorded_at"] for r in rows)  # whole seconds
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
    assert db.execute("select count(*) from bookings where date_trunc('minute', start_time) <> start_time "
                      "or extract(minute from start_time)::int % 15 <> 0").fetchone()[0] == 0
    assert invoke("audit").exit_code == 0


def test_seeded_texts_read_naturally(db, prefect_api):
    """What the seed's templates render to: no pack line for clients without a pack, nothing left blank."""
    assert invoke("seed", "--orgs", "2", "--clients", "40", "--bookings", "300", "--at", T.isoformat()).exit_code == 0
    assert invoke("run", "--at", T.isoformat(), "--json").exit_code == 0
    bodies = db.execute(
        """select m.kind, m.body, exists (select 1 from client_purchases p where p.client_id = m.client_id
                  and p.payment_status = 'succeeded' and (p.expires_at is null or p.expires_at > %s))
           from sms_messages m where m.status = 'scheduled'  -- waiting for a provider""", (T,)).fetchall()
    feedback = [(body, has_pack) for kind, body, has_pack in bodies if kind == "feedback_request"]
    assert any(has_pack for _, has_pack in feedback) and not all(has_pack for _, has_pack in feedback)
    for body, has_pack in feedback:
        assert ("You have used" in body) == has_pack, body
    for _, body, _ in bodies:
        assert "{{" not in body and "()" not in body and "  " not in body and " ." not in body, body


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
