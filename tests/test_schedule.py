"""The first promise: on a real `prefect server start`, the scheduler creates tick runs that
complete, through a worker (`booking-cron deploy` + `prefect worker start`) and through
`booking-cron serve`; and the automations alert when ticks stop or fail.

One server for the module (ports 4300-4399). The worker and serve wait for their first
scheduled run side by side (one minute boundary, not two); the overdue alert is then observed
with the worker stopped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import psycopg
import pytest

from tests import factories as f
from tests.prefect_server import ROOT, api, booking_cron, prefect_server, wait_for
SERVER_PORT, ALERT_PORT = 4310, 4311
EVERY_MINUTE = "* * * * *"
# A scheduled run needs the next minute boundary, the scheduler's loop, the worker's poll and
# the run itself: at most about 80 s here.
RUN_TIMEOUT = 150


class AlertRecorder(BaseHTTPRequestHandler):
    """The operator's webhook endpoint: keeps every POSTed JSON body."""

    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def alerts():
    server = ThreadingHTTPServer(("127.0.0.1", ALERT_PORT), AlertRecorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield AlertRecorder.received
    server.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`prefect server start` on SQLite (its default). Yields (api url, path of its log)."""
    with prefect_server(tmp_path_factory.mktemp("prefect-home"), SERVER_PORT) as started:
        yield started


@pytest.fixture(scope="module")
def env(server, database_url, alerts):
    """What an operator exports before the README's commands."""
    url, _ = server
    return {**os.environ, "PREFECT_API_URL": url, "DATABASE_URL": database_url, "BOOKING_CRON_HOME": str(ROOT),
            "BOOKING_CRON_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{ALERT_PORT}/alerts",
            "PREFECT_WORKER_QUERY_SECONDS": "2", "PREFECT_RUNNER_POLL_FREQUENCY": "2"}


@pytest.fixture(scope="module")
def conn(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("truncate public.tick_results, public.tick_runs, public.tick_completions, public.session_usage, "
                     "public.bookings, public.client_purchases, public.clients, public.booking_settings, "
                     "public.orgs cascade")
        yield conn


def server_objects(server) -> dict:
    """Names and ids of what deploy made, to compare two runs of it."""
    return {
        "pools": sorted((p["name"], p["id"]) for p in api(server, "POST", "/work_pools/filter", json={})),
        "deployments": sorted((d["name"], d["id"], tuple(s["id"] for s in d["schedules"]))
                              for d in api(server, "POST", "/deployments/filter", json={})),
        "automations": sorted((a["name"], a["id"]) for a in api(server, "POST", "/automations/filter", json={})),
        "blocks": sorted((b["name"], b["id"]) for b in api(server, "POST", "/block_documents/filter", json={})),
    }


def due_booking(conn) -> tuple[str, str]:
    """A session on a pack that ended an hour ago: the next tick completes and deducts it."""
    org = f.org(conn)
    client = f.client(conn, org)
    pack = f.pack(conn, org, client)
    return f.booking(conn, org, client, pack, start=datetime.now(timezone.utc) - timedelta(hours=2)), pack


def scheduled_completed_run(server, deployment_id: str):
    """The first completed run the scheduler created for the deployment, if any yet. A busy
    server (SQLite, several processes) may time out a read: that is "not yet", not a failure."""
    try:
        runs = api(server, "POST", "/flow_runs/filter", json={
            "deployments": {"id": {"any_": [deployment_id]}},
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
    except httpx.TimeoutException:
        return None
    return next((r for r in runs if r["auto_scheduled"]), None)


def tick_state(conn, run_id: str):
    row = conn.execute("select state from public.tick_runs where flow_run_id = %s", (run_id,)).fetchone()
    return row and row[0]


def stop(process: subprocess.Popen, sig=signal.SIGINT) -> tuple[int, str]:
    process.send_signal(sig)
    out, err = process.communicate(timeout=60)
    return process.returncode, out + err


def schedules_of(server, name: str) -> list[tuple]:
    """(slug, cron, active) of each schedule of the deployment `flow/name`."""
    deployment = api(server, "GET", f"/deployments/name/{name}")
    return [(s["slug"], s["schedule"]["cron"], s["active"]) for s in deployment["schedules"]]


def deployment_named(server, name: str):
    try:
        response = httpx.get(f"{server[0]}/deployments/name/{name}", timeout=30)
    except httpx.TimeoutException:
        return None
    return response.json() if response.status_code == 200 else None


@pytest.fixture(scope="module")
def deployed(env, server):
    """`booking-cron deploy` on the fresh server, and what the server then holds."""
    return booking_cron(env, "deploy"), server_objects(server)


@dataclass
class Scheduled:
    worker_run: dict
    serve_run: dict
    serve_deployment: dict
    bookings: dict  # booking id -> pack id
    alerts_while_ticking: list
    worker_exit: tuple
    serve_exit: tuple
    serve_stopped: dict  # the served deployment once serve stopped


@pytest.fixture(scope="module")
def scheduled(env, server, deployed, conn, alerts):
    """Both ways of running on a schedule at once, each on an every-minute schedule: the tick
    deployment (its schedule edited as an operator does in the UI) with one worker, and
    `booking-cron serve`. Waits for the first run the scheduler created for each to complete,
    then stops both with Ctrl-C (SIGINT); the worker stays stopped, for the overdue alert."""
    bookings = dict(due_booking(conn) for _ in range(2))
    tick = api(server, "GET", "/deployments/name/tick/booking-cron-tick")
    api(server, "PATCH", f"/deployments/{tick['id']}/schedules/{tick['schedules'][0]['id']}",
        json={"schedule": {"cron": EVERY_MINUTE, "timezone": "UTC"}})
    started = [subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for command in ([sys.executable, "-m", "prefect", "worker", "start", "--pool", "booking-cron"],
                               [sys.executable, "-m", "booking_cron", "serve", "--cron", EVERY_MINUTE])]
    try:
        served = wait_for(lambda: deployment_named(server, "tick/booking-cron-serve"), 90,
                          "serve did not create its deployment")
        worker_run = wait_for(lambda: scheduled_completed_run(server, tick["id"]), RUN_TIMEOUT,
                              "no scheduled tick completed through the worker")
        serve_run = wait_for(lambda: scheduled_completed_run(server, served["id"]), RUN_TIMEOUT,
                             "no scheduled tick completed under serve")
    finally:
        worker_exit, serve_exit = (stop(process) for process in started)
    return Scheduled(worker_run, serve_run, served, bookings, list(alerts), worker_exit, serve_exit,
                     api(server, "GET", "/deployments/name/tick/booking-cron-serve"))


@pytest.fixture(scope="module")
def redeployed(env, server, scheduled):
    """`booking-cron deploy` again, once the worker has stopped, shortening the overdue window
    (30 minutes by default) as an operator would to see the alert arrive."""
    return booking_cron(env, "deploy", "--alert-window", "20s"), server_objects(server)


def test_the_scheduler_creates_tick_runs_that_complete_through_the_worker(scheduled, conn, server):
    run = scheduled.worker_run
    assert run["auto_scheduled"] and run["state_type"] == "COMPLETED" and run["name"].startswith("tick ")
    assert tick_state(conn, run["id"]) == "finished"
    code, output = scheduled.worker_exit
    assert code == 0 and "Traceback" not in output
    log = server[1].read_text()
    assert "Can't evaluate bulk DML" not in log
    assert not [line for line in log.splitlines() if "ERROR" in line and "schedul" in line.lower()]


def test_serve_runs_scheduled_ticks_and_stops_cleanly_on_ctrl_c(scheduled, conn):
    run = scheduled.serve_run
    assert run["auto_scheduled"] and run["state_type"] == "COMPLETED" and run["name"].startswith("tick ")
    assert tick_state(conn, run["id"]) == "finished"
    assert [s["slug"] for s in scheduled.serve_deployment["schedules"]] == ["cron * * * * * UTC"]
    assert not scheduled.serve_deployment["paused"]
    code, output = scheduled.serve_exit
    assert code == 0, output
    assert "Traceback" not in output and "serve stopped" in output


def test_serve_stopped_pauses_its_deployment_so_no_late_runs_pile_up(scheduled, server):
    assert scheduled.serve_stopped["paused"] is True
    deployment_id = scheduled.serve_stopped["id"]
    waiting = api(server, "POST", "/flow_runs/filter", json={
        "deployments": {"id": {"any_": [deployment_id]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}}})
    assert waiting == []


def test_serve_on_another_cron_resumes_with_that_schedule_only(env, server, scheduled):
    """A second `serve` with a changed --cron: one schedule, named after the new cron, active while
    it serves; paused again on Ctrl-C."""
    process = subprocess.Popen([sys.executable, "-m", "booking_cron", "serve", "--cron", "*/7 * * * *"], cwd=ROOT,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        serving = wait_for(lambda: (d := deployment_named(server, "tick/booking-cron-serve")) and not d["paused"] and d,
                           90, "the second serve did not resume its deployment")
    finally:
        code, output = stop(process)
    assert code == 0, output
    assert [(s["slug"], s["schedule"]["cron"]) for s in serving["schedules"]] == [
        ("cron */7 * * * * UTC", "*/7 * * * *")]
    assert schedules_of(server, "tick/booking-cron-serve") == [("cron */7 * * * * UTC", "*/7 * * * *", True)]
    assert api(server, "GET", "/deployments/name/tick/booking-cron-serve")["paused"] is True


def test_the_scheduled_ticks_complete_and_deduct_each_due_booking_once(scheduled, conn):
    runs = {scheduled.worker_run["id"], scheduled.serve_run["id"]}
    for booking, pack in scheduled.bookings.items():
        results = conn.execute("select flow_run_id::text, step, outcome from public.tick_results "
                               "where booking_id = %s and outcome in ('completed', 'deducted')", (booking,)).fetchall()
        assert sorted((step, outcome) for _, step, outcome in results) == [("complete", "completed"),
                                                                          ("deduct", "deducted")]
        assert {run for run, *_ in results} <= runs
        assert f.status(conn, booking) == "completed" and f.sessions_used(conn, pack) == 1


def test_deploy_sets_everything_up_and_running_it_again_changes_nothing(deployed, redeployed):
    (first, after_first), (second, after_second) = deployed, redeployed
    assert first.returncode == 0, first.stdout + first.stderr
    assert second.returncode == 0, second.stdout + second.stderr
    served = [d for d in after_second["deployments"] if d[0] == "booking-cron-serve"]  # made by serve meanwhile
    assert {**after_second, "deployments": [d for d in after_second["deployments"] if d not in served]} == after_first
    assert [name for name, _ in after_first["pools"]] == ["booking-cron"]
    assert [name for name, *_ in after_first["deployments"]] == ["booking-cron-backfill", "booking-cron-tick"]
    assert "schedule */10 * * * * UTC" in first.stdout and "removed the schedule" not in first.stdout + second.stdout
    assert [name for name, _ in after_first["automations"]] == [
        "booking-cron tick crashed without heartbeat", "booking-cron tick failed", "booking-cron tick overdue"]
    assert {"booking-cron-alerts", "booking-cron-db"} <= {name for name, _ in after_first["blocks"]}
    assert "automation 'booking-cron tick overdue'" in first.stdout and ": created" in first.stdout
    assert ": created" not in second.stdout and ": updated" in second.stdout
    assert f"BOOKING_CRON_HOME={ROOT} prefect worker start --pool booking-cron" in second.stdout


def test_deploy_names_a_missing_alert_block_and_stops(env, deployed):
    done = booking_cron(env, "deploy", "--alert-block", "slack-webhook/nowhere", timeout=120)
    assert done.returncode == 1
    assert "no block 'slack-webhook/nowhere'" in done.stderr and "Traceback" not in done.stdout + done.stderr


def test_serve_refuses_the_work_pool_deployments_name(env, deployed):
    done = booking_cron(env, "serve", "--name", "booking-cron-tick", timeout=60)
    assert done.returncode == 1
    assert "tick/booking-cron-tick is deployed to the work pool 'booking-cron'" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_the_overdue_alert_reaches_the_webhook_once_the_worker_stopped(scheduled, redeployed, alerts):
    assert not [a for a in scheduled.alerts_while_ticking if "no tick completed" in a.get("subject", "")]
    overdue = wait_for(lambda: [a for a in alerts if "no tick completed" in a.get("subject", "")], 90,
                       "the overdue automation did not reach the webhook")
    assert "booking-cron-tick" in overdue[0]["body"] and overdue[0]["text"].startswith(overdue[0]["subject"])


def test_a_failed_tick_alerts(env, alerts):
    failing = subprocess.run([sys.executable, "-c", "from flows.tick import tick; tick(shard='5/4')"], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=120)
    assert failing.returncode != 0
    failed = wait_for(lambda: [a for a in alerts if a.get("subject", "").endswith(" Failed")], 60,
                      "the failed-tick automation did not reach the webhook")
    assert "shard '5/4'" in failed[0]["body"]


# What `booking-cron deploy` runs for the deployments, on prefect.yaml with the tick's cron changed
# (the repository's prefect.yaml stays as it is).
REDEPLOY_WITH_CRON = """
import sys
from prefect import get_client
from booking_cron.ops.setup import deploy_flows, project_spec, remove_replaced_schedules
spec = project_spec()
tick = next(d for d in spec["deployments"] if d["name"] == "booking-cron-tick")
tick["schedules"] = [{"cron": sys.argv[1], "timezone": "UTC"}]
deploy_flows(spec)
with get_client(sync_client=True) as client:
    print("\\n".join(remove_replaced_schedules(client, spec)))
"""


def test_redeploying_a_changed_cron_leaves_one_schedule_named_after_it(env, server, redeployed):
    assert schedules_of(server, "tick/booking-cron-tick") == [("cron */10 * * * * UTC", "*/10 * * * *", True)]
    done = subprocess.run([sys.executable, "-c", REDEPLOY_WITH_CRON, "*/5 * * * *"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "booking-cron-tick: removed the schedule it replaced (cron */10 * * * * UTC" in done.stdout
    assert schedules_of(server, "tick/booking-cron-tick") == [("cron */5 * * * * UTC", "*/5 * * * *", True)]
    assert schedules_of(server, "backfill/booking-cron-backfill") == []


def test_a_tick_that_needs_attention_still_counts_as_completed_for_the_overdue_alert(env, server, deployed, conn):
    """Such a tick ends in the COMPLETED state named "Needs attention"; the server's event for it
    is prefect.flow-run.Needs attention, which the overdue automation must expect beside Completed."""
    org = f.org(conn)
    client = f.client(conn, org)
    expired = f.pack(conn, org, client, expires_at=datetime.now(timezone.utc) - timedelta(days=30))
    f.booking(conn, org, client, expired, start=datetime.now(timezone.utc) - timedelta(hours=2))
    done = subprocess.run([sys.executable, "-c", "from flows.tick import tick; print(tick()['flow_run_id'])"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = done.stdout.split()[-1]
    run = api(server, "GET", f"/flow_runs/{run_id}")
    assert (run["state"]["type"], run["state"]["name"]) == ("COMPLETED", "Needs attention")

    def final_event():
        events = api(server, "POST", "/events/filter", json={"filter": {
            "resource": {"id": [f"prefect.flow-run.{run_id}"]}, "event": {"prefix": ["prefect.flow-run."]}}})
        return next((e["event"] for e in events["events"] if e["event"].endswith("Needs attention")), None)
    event = wait_for(final_event, 60, "no event for the tick's final state")
    overdue = next(a for a in api(server, "POST", "/automations/filter", json={})
                   if a["name"] == "booking-cron tick overdue")
    assert event in overdue["trigger"]["expect"] and "prefect.flow-run.Completed" in overdue["trigger"]["expect"]
