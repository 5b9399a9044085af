"""Scale-out (issue 18): the tick as four shard runs on four workers, on a real `prefect server
start` backed by PostgreSQL, with one send rate across all of them.

What runs (the README's "Scaling beyond one machine" describes the same): a scratch database
with pg_trgm for the Prefect server on the tests' PostgreSQL server; `booking-cron deploy --shards 4`
(each shard's schedule then set to every minute, as an operator would in the UI); four
`prefect worker start --pool booking-cron --limit 1`; a Twilio sandbox that accepts R texts a
second and answers 429 beyond, with the account's rate set below it. One org's pack is held locked
(the app editing it), so the run of that org's shard stops in its deduction: its worker is killed
there; the heartbeat automation marks the run Crashed, and the shard's next scheduled run must
repair everything. The end state is compared with
one unsharded tick over a copy of the same data taken before anything ran. Then the shard count
changes 4 -> 2 -> 1.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import psutil
import psycopg
import pytest
from psycopg import sql

from booking_cron.storage import database, schema
from booking_cron.storage.shard_sql import org_shard_sql
from booking_cron.sandbox import TwilioSandbox
from tests import factories as f
from tests import hosting
from tests.conftest import has_pg_trgm
from tests.faultkit import SANDBOX_TOKEN, cli, cli_env, phone, texting_org
from tests.prefect_server import ROOT, api, booking_cron, prefect_server, wait_for

PORT = 4320
SHARDS, WORKERS = 4, 4
PROVIDER_RATE = 5  # the sandbox accepts 5 texts in any second, and answers 429 beyond
ACCOUNT_RATE = 4  # what the operator sets: below the provider's, for bunching on a loaded machine
EVERY_MINUTE = "* * * * *"
RUN_TIMEOUT = 240

# The end state a user sees, without times or run ids (the two databases tick at different moments).
END_STATE = {
    "bookings": "select id::text, status from public.bookings order by id",
    "packs": "select id::text, sessions_used from public.client_purchases order by id",
    "ledger": "select booking_id::text, purchase_id::text, sessions, source from public.session_usage "
              "order by purchase_id, booking_id nulls first, source",
    "outbox": "select related_entity_id::text, kind, status, to_phone, body from public.sms_messages "
              "order by related_entity_id, kind",
}


def end_state(url: str) -> dict[str, list[tuple]]:
    with psycopg.connect(url) as conn:
        return {name: conn.execute(query).fetchall() for name, query in END_STATE.items()}


def shard_of(conn, org: str, shards: int) -> int:
    """1-based, as deployments name shards."""
    return conn.execute(f"select {org_shard_sql('%s::uuid', '%s')}", (org, shards)).fetchone()[0] + 1


def seed(conn) -> tuple[list[str], int]:
    """Texting orgs until every shard has two; each with two clients, each with a session that
    ended an hour ago (complete, deduct, feedback text) and one starting in 40 minutes (reminder).
    Quiet hours off, so the test's time of day does not matter. Returns (orgs, texts due)."""
    now = datetime.now(timezone.utc)
    orgs, per_shard = [], {i: 0 for i in range(1, SHARDS + 1)}
    while min(per_shard.values()) < 2:
        org = texting_org(conn, name=f"Shard Gym {len(orgs) + 1}", quiet=(0, 0), tz="UTC")
        per_shard[shard_of(conn, org, SHARDS)] += 1
        orgs.append(org)
        for n in range(2):
            client = f.client(conn, org, f"Client {n}", phone())
            pack = f.pack(conn, org, client)
            f.booking(conn, org, client, pack, start=now - timedelta(hours=2))
            f.booking(conn, org, client, pack, start=now + timedelta(minutes=40))
    return orgs, 4 * len(orgs)


@dataclass
class World:
    url: str  # the sharded run's database
    copy_url: str  # the same data, for one unsharded tick
    orgs: list[str]
    texts_due: int


@pytest.fixture(scope="module")
def world(server_url):
    owner = hosting.ensure_owner(server_url)
    with hosting.owned_database(server_url, "booking_cron_scale") as url:
        schema.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            orgs, texts_due = seed(conn)
        database.close_pools()
        name = urlsplit(url).path.lstrip("/")
        copy = f"{name}_copy"
        with psycopg.connect(server_url, autocommit=True) as conn:  # the provider copies a database
            conn.execute(sql.SQL("create database {} template {} owner {}").format(
                sql.Identifier(copy), sql.Identifier(name), sql.Identifier(owner)))
        try:
            yield World(url, hosting.as_role(database.with_database(server_url, copy), owner), orgs, texts_due)
        finally:
            database.close_pools()
            database.drop_database(server_url, copy)


@pytest.fixture(scope="module")
def server(server_url, tmp_path_factory):
    """`prefect server start` on a scratch PostgreSQL database. Deployment concurrency leases last
    30 s (the least Prefect allows; 300 s by default), so a killed run's slot frees within a minute."""
    if not has_pg_trgm(server_url):
        pytest.skip("the PostgreSQL server has no pg_trgm, which Prefect's PostgreSQL backend needs")
    with database.scratch_prefect_database(server_url) as prefect_db:
        with prefect_server(tmp_path_factory.mktemp("prefect-pg-home"), PORT,
                            PREFECT_SERVER_DATABASE_CONNECTION_URL=prefect_db,
                            PREFECT_SERVER_CONCURRENCY_INITIAL_DEPLOYMENT_LEASE_DURATION="30") as started:
            yield started


@pytest.fixture(scope="module")
def provider():
    with TwilioSandbox(auth_token=SANDBOX_TOKEN, rate_limit=PROVIDER_RATE) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def env(server, world, provider):
    env = cli_env(server[0], provider, world.url, BOOKING_CRON_HOME=str(ROOT), PREFECT_WORKER_QUERY_SECONDS="2",
                  BOOKING_CRON_SMS_RATE="100", BOOKING_CRON_SMS_ACCOUNT_RATE=str(ACCOUNT_RATE),
                  BOOKING_CRON_SMS_CONCURRENCY="8", BOOKING_CRON_RETRY_DELAYS="1,2,3",
                  PREFECT_LOGGING_LEVEL="INFO",  # the workers say which runs they submit
                  PREFECT_FLOWS_HEARTBEAT_FREQUENCY="30")  # the least Prefect allows
    return env


def tick_deployments(server) -> dict[str, dict]:
    found = api(server, "POST", "/deployments/filter", json={"flows": {"name": {"any_": ["tick"]}}})
    return {d["name"]: d for d in found}


def overdue_alerts(server) -> list[str]:
    return sorted(a["name"] for a in api(server, "POST", "/automations/filter", json={})
                  if a["name"].startswith("booking-cron tick overdue"))


def runs(server, deployment_ids: list[str], states: list[str]) -> list[dict]:
    return api(server, "POST", "/flow_runs/filter", json={
        "deployments": {"id": {"any_": deployment_ids}}, "flow_runs": {"state": {"type": {"any_": states}}}})


def runs_flow_run(worker: subprocess.Popen, flow_run_id: str) -> bool:
    """Whether the flow run's process is the worker's child (a process worker passes the run's id
    to it as PREFECT__FLOW_RUN_ID)."""
    for child in psutil.Process(worker.pid).children(recursive=True):
        try:
            if child.environ().get("PREFECT__FLOW_RUN_ID") == flow_run_id:
                return True
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return False


def heartbeats_recorded(server: str, flow_run_id: str) -> int:
    """How many heartbeats of the flow run the Prefect server has recorded (at most a page)."""
    page = api(server, "POST", "/events/filter", json={
        "filter": {"event": {"name": ["prefect.flow-run.heartbeat"]},
                   "resource": {"id": [f"prefect.flow-run.{flow_run_id}"]}},
        "limit": 50})
    return len(page["events"])


def kill_tree(pid: int) -> None:
    """SIGKILL a worker and the flow run it started: the machine going away."""
    process = psutil.Process(pid)
    for p in [*process.children(recursive=True), process]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


@dataclass
class Scaled:
    deploy: subprocess.CompletedProcess
    deployments: dict[str, dict]
    completed: dict[str, dict]  # deployment name -> its first completed scheduled run
    killed_shard: int
    killed_run: dict
    repair_run: dict
    worker_logs: list[str]
    alerts: list[str]


@pytest.fixture(scope="module")
def scaled(env, server, world, tmp_path_factory):
    deployed = booking_cron(env, "deploy", "--shards", str(SHARDS), timeout=300)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    deployments = tick_deployments(server)
    for d in deployments.values():  # every minute, as an operator edits the schedule in the UI
        api(server, "PATCH", f"/deployments/{d['id']}/schedules/{d['schedules'][0]['id']}",
            json={"schedule": {"cron": EVERY_MINUTE, "timezone": "UTC"}})
    ids = {d["id"]: name for name, d in deployments.items()}
    logs = tmp_path_factory.mktemp("workers")
    held = psycopg.connect(world.url)  # the app holds one org's pack: its shard's deduction waits
    killed_shard = shard_of(held, world.orgs[0], SHARDS)
    held.execute("select 1 from public.client_purchases where org_id = %s for update", (world.orgs[0],))
    killed_name = f"booking-cron-tick-{killed_shard}-of-{SHARDS}"
    workers = []
    for i in range(WORKERS):
        out = open(logs / f"worker-{i}.log", "w")
        workers.append((subprocess.Popen([sys.executable, "-m", "prefect", "worker", "start", "--pool", "booking-cron",
                                          "--limit", "1", "--name", f"scale-worker-{i}"], cwd=ROOT, env=env,
                                         stdout=out, stderr=subprocess.STDOUT), out))
    try:
        killed_run = wait_for(lambda: next(iter(runs(server, [deployments[killed_name]["id"]], ["RUNNING"])), None),
                              RUN_TIMEOUT, "the held shard's scheduled run did not start")
        with psycopg.connect(world.url, autocommit=True) as watch:  # its own: a transaction sees one snapshot of it
            wait_for(lambda: watch.execute("select count(*) from pg_stat_activity where datname = current_database() "
                                           "and wait_event_type = 'Lock'").fetchone()[0],
                     RUN_TIMEOUT, "the held shard's run did not reach its deduction")
        owner = wait_for(lambda: next((process for process, _ in workers if runs_flow_run(process, killed_run["id"])),
                                      None), 30, "no worker runs the held shard's run")
        # The automation watches runs that have sent a heartbeat; the run sends its first as it starts,
        # but a loaded machine may deliver it late: kill only once the server has recorded one.
        wait_for(lambda: heartbeats_recorded(server, killed_run["id"]), RUN_TIMEOUT,
                 "the held shard's run sent no heartbeat that the server recorded", every=2)
        kill_tree(owner.pid)
        held.rollback()
        held.close()
        # Prefect learns that the run died from its missing heartbeats: the automation "booking-cron
        # tick crashed without heartbeat" marks it Crashed 90 s after the last, which frees the
        # shard's one slot for its next scheduled run.
        try:
            wait_for(lambda: api(server, "GET", f"/flow_runs/{killed_run['id']}")["state_type"] == "CRASHED",
                     RUN_TIMEOUT, "the killed run was not marked Crashed", every=3)
        except BaseException:
            state = api(server, "GET", f"/flow_runs/{killed_run['id']}")["state_type"]
            print(f"the killed run is {state}, with {heartbeats_recorded(server, killed_run['id'])} heartbeat(s) recorded")
            raise

        def all_completed():
            done = {}
            for run in runs(server, list(ids), ["COMPLETED"]):
                if run["auto_scheduled"]:
                    done.setdefault(ids[run["deployment_id"]], run)
            return done if len(done) == SHARDS else None

        completed = wait_for(all_completed, RUN_TIMEOUT + 120, "not every shard completed a scheduled run", every=3)
        repair_run = completed[killed_name]
    finally:
        for process, out in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process, out in workers:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_tree(process.pid)
            out.close()
    return Scaled(deployed, deployments, completed, killed_shard, killed_run, repair_run,
                  [(logs / f"worker-{i}.log").read_text() for i in range(WORKERS)], overdue_alerts(server))


def test_deploy_makes_one_deployment_and_one_overdue_alert_per_shard(scaled):
    assert sorted(scaled.deployments) == [f"booking-cron-tick-{i}-of-4" for i in range(1, 5)]
    for i in range(1, 5):
        d = scaled.deployments[f"booking-cron-tick-{i}-of-4"]
        assert d["parameters"] == {"shard": f"{i}/4"} and d["work_pool_name"] == "booking-cron"
        assert d["concurrency_limit"] == 1 or (d.get("global_concurrency_limit") or {}).get("limit") == 1
    assert scaled.alerts == [f"booking-cron tick overdue (shard {i}/4)" for i in range(1, 5)]
    assert "--limit 1" in scaled.deploy.stdout


def test_the_scheduler_runs_complete_on_several_workers(scaled, world):
    runs_by_worker = [{r["id"] for r in scaled.completed.values() if r["id"] in log} for log in scaled.worker_logs]
    assert sum(1 for found in runs_by_worker if found) >= 2, scaled.worker_logs
    with psycopg.connect(world.url) as conn:
        for name, run in scaled.completed.items():
            shard = conn.execute("select (shard_index + 1) || '-of-' || shard_count, state from public.tick_runs "
                                 "where flow_run_id = %s", (run["id"],)).fetchone()
            assert shard == (name.removeprefix("booking-cron-tick-"), "finished")


def test_each_shard_has_its_own_artifacts(scaled, server):
    for name, run in scaled.completed.items():
        keys = {a["key"] for a in api(server, "POST", "/artifacts/filter",
                                      json={"artifacts": {"flow_run_id": {"any_": [run["id"]]}}})
                if a["key"]}  # the run's kept result is an artifact without a key
        suffix = name.removeprefix("booking-cron-tick-")
        assert keys == {f"tick-results-shard-{suffix}", f"tick-summary-shard-{suffix}"}


def test_the_killed_workers_shard_is_repaired_by_its_next_run(scaled, world):
    assert scaled.repair_run["id"] != scaled.killed_run["id"]
    with psycopg.connect(world.url) as conn:
        assert conn.execute("select state from public.tick_runs where flow_run_id = %s",
                            (scaled.killed_run["id"],)).fetchone() == ("running",)  # it never finished
        results = conn.execute("select count(*) from public.tick_results where flow_run_id = %s and step = 'deduct'",
                               (scaled.repair_run["id"],)).fetchone()[0]
    assert results >= 1  # the repair run deducted what the killed one completed


def test_the_end_state_is_one_unsharded_ticks(scaled, world, prefect_api, server):
    """One tick at the same time over the copy (its own sandbox, no rate limit, the tests' Prefect API:
    the scale-out server's blocks name the sharded database)."""
    tick_at = min(datetime.fromisoformat(r["expected_start_time"]) for r in scaled.completed.values())
    with TwilioSandbox(auth_token=SANDBOX_TOKEN) as sandbox:
        done = cli(["run", "--at", tick_at.isoformat(), "--json"], cli_env(prefect_api, sandbox, world.copy_url))
        assert done.returncode == 0, done.stdout + done.stderr
    sharded, single = end_state(world.url), end_state(world.copy_url)
    for table in END_STATE:
        assert sharded[table] == single[table], table
    assert {row[2] for row in sharded["outbox"]} == {"sent"} and len(sharded["outbox"]) == world.texts_due


def test_the_provider_never_sees_more_than_its_rate_and_every_text_once(scaled, world, provider):
    sent = [(m["to"], m["body"]) for m in provider.messages]
    assert len(sent) == len(set(sent)) == world.texts_due
    assert provider.max_in_any_second() <= PROVIDER_RATE
    assert provider.stats()["rate_limited"] == 0


def test_changing_the_shard_count_replaces_the_shards_and_their_alerts(scaled, env, server):
    old_ids = [d["id"] for d in scaled.deployments.values()]
    done = booking_cron(env, "deploy", "--shards", "2", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    two = tick_deployments(server)
    assert sorted(two) == ["booking-cron-tick-1-of-2", "booking-cron-tick-2-of-2"]
    assert [two[n]["parameters"] for n in sorted(two)] == [{"shard": "1/2"}, {"shard": "2/2"}]
    assert overdue_alerts(server) == ["booking-cron tick overdue (shard 1/2)", "booking-cron tick overdue (shard 2/2)"]
    assert "deployment booking-cron-tick-3-of-4: deleted" in done.stdout
    # nothing left scheduled of the four shards: no slot is ticked by both counts
    assert runs(server, old_ids, ["SCHEDULED", "PENDING"]) == []

    done = booking_cron(env, "deploy", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    one = tick_deployments(server)
    assert sorted(one) == ["booking-cron-tick"] and one["booking-cron-tick"]["parameters"] == {}
    assert overdue_alerts(server) == ["booking-cron tick overdue"]
    assert runs(server, [d["id"] for d in two.values()], ["SCHEDULED", "PENDING"]) == []
