"""Operating booking-cron the Prefect way: deployment, blocks, artifacts, a real Prefect server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from prefect.flows import load_flow_from_entrypoint

from booking_cron.ops.schedules import with_slugs
from flows.tick import tick
from tests import factories as f
from tests.conftest import delete_saved_blocks, free_port
from tests.factories import T

ROOT = Path(__file__).resolve().parent.parent


def test_the_deployment_definition_loads_and_points_at_the_real_flow():
    spec = yaml.safe_load((ROOT / "deployments" / "prefect.yaml").read_text())
    deployment = next(d for d in spec["deployments"] if d["name"] == "booking-cron-tick")
    cwd = os.getcwd()
    os.chdir(ROOT)  # entrypoints are relative to the project root
    try:
        loaded = load_flow_from_entrypoint(deployment["entrypoint"])
    finally:
        os.chdir(cwd)
    assert loaded.name == tick.name == "tick"
    assert deployment["schedules"] == [{"cron": "*/10 * * * *", "timezone": "UTC"}]  # deploy names it after itself:
    tick_schedules = next(d for d in with_slugs(spec)["deployments"] if d["name"] == "booking-cron-tick")["schedules"]
    assert [s["slug"] for s in tick_schedules] == ["cron */10 * * * * UTC"]
    assert deployment["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert deployment["work_pool"]["name"] == "booking-cron"


def test_prefect_deploy_registers_the_cron_schedule(prefect_api, tmp_path):
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "BOOKING_CRON_HOME": str(ROOT)}
    prefect = [sys.executable, "-m", "prefect"]
    subprocess.run(prefect + ["work-pool", "create", "booking-cron", "--type", "process", "--overwrite"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    done = subprocess.run(prefect + ["--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml",
                                     "--name", "booking-cron-tick"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr

    async def read():
        async with get_client() as client:
            return await client.read_deployment_by_name("tick/booking-cron-tick")

    deployment = asyncio.run(read())
    assert deployment.entrypoint == "flows/tick.py:tick"
    assert [s.schedule.cron for s in deployment.schedules] == ["*/10 * * * *"]
    assert deployment.global_concurrency_limit.limit == 1
    assert deployment.concurrency_options.collision_strategy == "CANCEL_NEW"


def test_blocks_save_from_the_environment_and_load_into_it(prefect_api, monkeypatch, database_url):
    from blocks import DATABASE_BLOCK, TWILIO_BLOCK, TwilioCredentials, load_blocks_into_environment
    from blocks.connections import register_blocks_from_environment

    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "ACblocktest")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "block-secret-token")
    monkeypatch.setenv("TWILIO_API_URL", "http://127.0.0.1:9")
    try:
        assert register_blocks_from_environment() == [DATABASE_BLOCK, TWILIO_BLOCK]
        saved = TwilioCredentials.load(TWILIO_BLOCK)
        assert "block-secret-token" not in repr(saved) and saved.auth_token.get_secret_value() == "block-secret-token"
        for name in ("DATABASE_URL", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_URL"):
            monkeypatch.delenv(name)
        assert load_blocks_into_environment(refresh=True) == [DATABASE_BLOCK, TWILIO_BLOCK]
        assert os.environ["TWILIO_AUTH_TOKEN"] == "block-secret-token"
        assert os.environ["TWILIO_API_URL"] == "http://127.0.0.1:9"
        import psycopg

        with psycopg.connect(os.environ["DATABASE_URL"]) as conn:  # the block's URL reaches the test DB
            assert conn.execute("select current_database()").fetchone()[0] == urlsplit(database_url).path[1:]
    finally:
        delete_saved_blocks()
        load_blocks_into_environment(refresh=True)


def flow_run_artifacts(flow_run_id: str) -> dict:
    """The run's artifacts by key (Prefect's own unkeyed "result" artifact, which points at the
    kept summary, is left out)."""
    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))
    return {a.key: a for a in asyncio.run(read()) if a.key}


def test_a_tick_publishes_a_results_table_and_a_summary_an_operator_can_read(db, prefect_api):
    org = f.org(db, name="Harbour Strength", tz="Australia/Sydney", sms=True)
    ava = f.client(db, org, "Ava Nguyen", phone="+61412349999")
    for _ in range(3):
        f.booking(db, org, ava, f.pack(db, org, ava), start=T - timedelta(hours=2) + timedelta(seconds=12, microseconds=345678))
    expired = f.pack(db, org, ava, expires_at=T - timedelta(days=30))
    late = f.booking(db, org, ava, expired)
    bad = f.booking(db, org, ava, None, minutes=-10)
    ben = f.client(db, org, "Ben Smith", phone=None)
    db.execute("insert into sms_schedules (id, org_id, type, label, mins_offset, body, enabled) "
               "values (gen_random_uuid(), %s, 'post_session', '90 min after', 90, 'Thanks {{client_name}}!', true)",
               (org,))
    f.booking(db, org, ben, None, start=T - timedelta(hours=3))  # its feedback request is skipped: no phone
    summary = tick(tick_at=T)
    artifacts = flow_run_artifacts(summary["flow_run_id"])
    assert set(artifacts) == {"tick-results", "tick-summary"}
    table = artifacts["tick-results"].data
    table = json.loads(table) if isinstance(table, str) else table
    # failures first: the rejected booking and the expired pack, before anything that went as planned
    assert {(r["outcome"], r["reason"]) for r in table[:2]} == {("rejected", "end before start"),
                                                                ("not deducted", "expired")}
    assert {r["booking id"] for r in table[:2]} == {bad, late}
    assert list(table[0])[:6] == ["attention", "outcome", "reason", "step", "client", "session start"]
    assert list(table[0])[-1] == "booking id"
    assert [r["attention"] for r in table[:2]] == ["⚠ needs attention"] * 2
    assert {r["attention"] for r in table[2:]} == {""}
    # Made by the flow run itself, so its Artifacts tab lists them under "Flow run", not "Task runs".
    assert {(str(a.flow_run_id), a.task_run_id) for a in artifacts.values()} == {(summary["flow_run_id"], None)}
    skipped = next(r for r in table if r["outcome"] == "skipped")
    assert skipped["step"] == "feedback request" and skipped["reason"] == "missing phone"
    assert skipped["schedule"] == "90 min after" and skipped["client"] == "Ben Smith"
    deducted = next(r for r in table if r["step"] == "deduct" and r["outcome"] == "deducted")
    assert deducted["client"] == "Ava Nguyen (+6141*****999)"
    assert deducted["session start"] == "24 Nov 18:00 AEDT"  # T - 2 h in Sydney (UTC+11), to the minute
    assert not any("text:" in r["step"] for r in table)

    markdown = artifacts["tick-summary"].data
    assert markdown.startswith("# Tick 2026-11-24 09:00 UTC: 2 need attention")
    assert markdown.index("## Needs attention") < markdown.index("## Texts") < markdown.index("## Completions")
    assert "| expired pack | 1 |" in markdown and "| rejected booking | 1 |" in markdown
    assert "| skipped | missing phone | 1 |" in markdown
    assert "| deduct | deducted |  | 3 |" in markdown
    assert f"booking-cron results --run {summary['flow_run_id']}" in markdown
    seen = json.dumps(table) + markdown
    assert "+61412349999" not in seen and "NaN" not in seen and "None" not in seen
    assert not re.search(r"\d:\d\d\.\d", seen)  # no fractions of a second

    async def final_state():
        async with get_client() as client:
            return (await client.read_flow_run(uuid.UUID(summary["flow_run_id"]))).state
    state = asyncio.run(final_state())
    assert (state.type.value, state.name) == ("COMPLETED", "Needs attention")  # the runs list shows the name
    assert state.message == "5 completed, 3 deducted; 2 need attention: 1 expired pack, 1 rejected booking; 0 texts sent"


def test_the_table_is_capped_and_says_where_the_rest_is(db, prefect_api, monkeypatch):
    monkeypatch.setenv("BOOKING_CRON_ARTIFACT_ROWS", "4")
    org = f.org(db)
    client = f.client(db, org)
    for _ in range(5):
        f.booking(db, org, client, None)
    summary = tick(tick_at=T)
    markdown = flow_run_artifacts(summary["flow_run_id"])["tick-summary"].data
    assert "The `tick-results` table shows 4 of 10 per-booking results (failures first)." in markdown


@pytest.fixture
def prefect_server(tmp_path):
    """A real `prefect server start`, as an operator runs it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_UI_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            pytest.fail("prefect server did not start")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_an_operator_sees_the_per_booking_table_on_the_flow_run_in_a_real_prefect_server(db, database_url, prefect_server):
    org = f.org(db)
    client = f.client(db, org)
    booking = f.booking(db, org, client, f.pack(db, org, client))
    env = {**os.environ, "DATABASE_URL": database_url, "PREFECT_API_URL": prefect_server}
    done = subprocess.run([sys.executable, "-m", "booking_cron", "run", "--at", T.isoformat(), "--json"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["flow_run_id"]
    run = httpx.get(f"{prefect_server}/flow_runs/{run_id}").json()
    assert run["name"] == f"tick {T:%Y-%m-%d %H:%M} UTC"
    assert (run["state"]["type"], run["state"]["name"]) == ("COMPLETED", "Completed")  # nothing needs attention
    artifacts = httpx.post(f"{prefect_server}/artifacts/filter",
                           json={"artifacts": {"flow_run_id": {"any_": [run_id]}}}).json()
    by_key = {a["key"]: a for a in artifacts}
    assert {(by_key[k]["flow_run_id"], by_key[k]["task_run_id"]) for k in ("tick-results", "tick-summary")} == {
        (run_id, None)}
    assert by_key["tick-results"]["type"] == "table" and by_key["tick-summary"]["type"] == "markdown"
    rows = by_key["tick-results"]["data"]
    rows = json.loads(rows) if isinstance(rows, str) else rows
    assert {(r["booking id"], r["step"], r["outcome"]) for r in rows} == {
        (booking, "complete", "completed"), (booking, "deduct", "deducted")}
    tasks = httpx.post(f"{prefect_server}/task_runs/filter",
                       json={"task_runs": {"flow_run_id": {"any_": [run_id]}}}).json()
    assert {"plan complete batches", "complete batch 1/1", "plan deduct batches", "deduct batch 1/1",
            "read results table"} <= {t["name"] for t in tasks}


def test_the_overdue_alert_says_its_window_in_words_wherever_it_shows_it():
    from booking_cron.ops.setup import automation_specs, duration_words, overdue_window

    assert [duration_words(timedelta(seconds=s)) for s in (20, 60, 120, 3600, 5400, 86400)] == [
        "20 seconds", "1 minute", "2 minutes", "1 hour", "1 hour 30 minutes", "1 day"]
    assert overdue_window(None) == timedelta(minutes=30)
    for window, said in ((None, "30 minutes"), (timedelta(minutes=2), "2 minutes")):
        overdue, failed, crashed = automation_specs(None, window)
        text = json.dumps(overdue.model_dump(mode="json"))
        assert overdue.trigger.within == (window or timedelta(minutes=30))
        assert f"for {said}:" in overdue.description and "0:02:00" not in text and "0:30:00" not in text
        assert "{{ automation.trigger.within }}" not in text
        assert (said == "30 minutes") == ("30 minutes" in text)  # nothing still says the default
        assert crashed.trigger.within == timedelta(seconds=90)  # the heartbeat watch keeps its own window
    spec = yaml.safe_load((ROOT / "deployments" / "automations.yaml").read_text())["automations"]
    subject = next(a["subject"] for s in spec if s["name"] == "booking-cron tick failed" for a in s["actions"])
    assert subject == "booking-cron: {{ flow_run.name }} {{ flow_run.state.name }}"  # the name says "tick ..."


def test_the_readme_lists_each_command_once():
    table = [line.split("|")[1].strip() for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith("| `booking-cron ")]
    assert len(table) == len(set(table)), [c for c in table if table.count(c) > 1]
