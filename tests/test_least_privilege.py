"""Least privilege and secrets.

- The role `booking_cron_tick` (migration 0007) can run every statement a tick runs, and a whole
  tick through a login role that is only a member of it; it cannot touch a pack or the ledger
  except through use_sessions().
- No log line, tick_results row, tick_runs summary or Prefect artifact or log holds the Twilio
  auth token or a client's full phone number.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from datetime import timedelta
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from booking_cron.storage import store
from booking_cron.sms import outbox
from booking_cron.storage.org_sql import org_default_params
from tests import factories as f
from tests.faultkit import (  # noqa: F401 (fixtures)
    SANDBOX_TOKEN, T, assert_world, cli_env, cli_tick, fault_counts, phone, sandbox, sandbox_server, summary_of,
    texting_org, violations, world,
)

ROLE = "booking_cron_tick"


@pytest.fixture
def as_tick(database_url):
    """A connection acting as booking_cron_tick (`set role`), in autocommit. The owner (CREATEROLE)
    makes itself a member first, as it would grant the role to the tick's login role."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"grant {ROLE} to current_user")
        conn.execute(f"set role {ROLE}")
        yield conn


@pytest.fixture
def login_role(db, database_url):
    """A LOGIN role with a random name and password, member of booking_cron_tick only; its URL."""
    name, password = f"bc_tick_test_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    db.execute(sql.SQL("create role {} login password {} in role {}").format(
        sql.Identifier(name), sql.Literal(password), sql.Identifier(ROLE)))
    parts = urlsplit(database_url)
    host = parts.netloc.rpartition("@")[2]
    try:
        yield urlunsplit(parts._replace(netloc=f"{quote(name)}:{quote(password)}@{host}"))
    finally:
        db.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", (name,))
        db.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


def test_the_tick_role_exists_and_cannot_log_in(db):
    assert db.execute("select rolcanlogin, rolsuper, rolbypassrls from pg_roles where rolname = %s",
                      (ROLE,)).fetchone() == (False, False, False)


@pytest.mark.parametrize("statement", [
    "update client_purchases set sessions_used = sessions_used + 1",
    "update client_purchases set payment_status = 'succeeded'",
    "insert into session_usage (org_id, client_id, purchase_id) select org_id, client_id, id from client_purchases",
    "delete from session_usage",
    "update bookings set purchase_id = null",
    "delete from bookings",
    "select public.use_session(id) from client_purchases",
    "select public.complete_booking(id) from bookings",
    "truncate tick_results",
])
def test_the_tick_role_cannot_write_packs_or_the_ledger_directly(db, as_tick, statement):
    org = f.org(db)
    client = f.client(db, org)
    pack = f.pack(db, org, client, used=1)
    f.booking(db, org, client, pack)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_tick.execute(statement)
    assert f.sessions_used(db, pack) == 1
    assert violations(db) == []


def test_the_tick_role_runs_every_statement_of_a_tick(db, as_tick):
    org = texting_org(db)
    client = f.client(db, org, phone=phone())
    pack = f.pack(db, org, client, used=2)
    b = f.booking(db, org, client, pack)
    run = str(uuid.uuid4())
    cur = as_tick.cursor()
    cur.execute("insert into tick_runs (flow_run_id, tick_at, trigger) values (%s, %s, 'test')", (run, T))
    cur.execute(store.FETCH_DUE, {"tick_at": T, "shard": 0, "shards": 1})
    assert [r[0] for r in cur.fetchall()] == [b]
    cur.execute(store.COMPLETE_BOOKINGS, {"ids": [b], "run": run, "runs": None, "all": True})
    assert ("complete", "completed") in [r[1:3] for r in cur.fetchall()]
    cur.execute(store.DEDUCT_SESSIONS, {"purchases": [pack], "ids": [b], "run": run, "runs": [run]})
    assert cur.fetchall() == [(b, "deducted")]
    # the tick's key-range statements (the backfill's by-id ones above)
    pack2 = f.pack(db, org, client)
    b2 = f.booking(db, org, client, pack2)
    shard = {"shard": 0, "shards": 1}
    cur.execute(store.PLAN_COMPLETE_RANGES, {"tick_at": T, "size": 5000, **shard})
    assert cur.fetchall() == [(b2,)]
    cur.execute(store.COMPLETE_RANGE.replace("{range}", store.key_range("b.id", b2, None)),
                {"tick_at": T, "run": run, "lo": b2, "hi": None, **shard})
    assert ("complete:completed", 1) in cur.fetchall()
    cur.execute(store.PLAN_DEDUCT_RANGES, {"size": 5000, **shard})
    assert cur.fetchall() == [(pack2,)]
    cur.execute(store.DEDUCT_RANGE.replace("{range}", store.key_range("tc.purchase_id", None, None)),
                {"run": run, "lo": None, "hi": None, **shard})
    assert ("deduct:deducted", 1) in cur.fetchall()
    cur.execute("select outcome from use_sessions(%s::uuid[], %s::uuid[])", ([pack], [b]))
    assert cur.fetchone() == ("already_deducted",)
    cur.execute(outbox.ORGS, org_default_params())
    cur.execute(outbox.SCHEDULES)
    window = outbox.window_params(T, T, timedelta(days=2))
    cur.execute(outbox.BOOKINGS, {"t": T, "shard": 0, "shards": 1, **window})
    replay = {"first": T, "last": T, "shard": 0, "shards": 1, "clients": [client], **window}
    for query in (outbox.REPLAY_BOOKINGS, outbox.REPLAY_PACKS, outbox.REPLAY_PACK_BOOKINGS):  # a backfill's reads
        cur.execute(query, replay)
    cur.execute(outbox.LOCK_BOOKING, {"id": str(uuid.uuid4())})
    cur.execute("insert into sms_suppression (org_id, phone, reason) values (%s, '+61400000001', 'opt_out')", (org,))
    cur.execute("update tick_runs set state = 'finished', finished_at = now() where flow_run_id = %s", (run,))
    assert f.sessions_used(db, pack) == 3
    assert violations(db) == []


def test_a_whole_tick_runs_as_a_login_role_that_is_only_a_tick_member(db, sandbox, prefect_api, login_role):
    w = world(db)
    tick = cli_tick(T, cli_env(prefect_api, sandbox, database_url=login_role))
    assert tick.returncode == 0, tick.stderr[-4000:]
    assert summary_of(tick)["deducted"] == len(w.due_on_pack)
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)


# --- secrets ---------------------------------------------------------------------------------


def full_phones(db) -> set[str]:
    phones = {p for (p,) in db.execute("select phone from clients where phone is not null")}
    return phones | {re.sub(r"\D", "", p) for p in phones}  # with or without the +


def leaks(text: str, phones: set[str]) -> list[str]:
    found = [p for p in phones if len(p) >= 8 and p in text]
    return found + (["auth token"] if SANDBOX_TOKEN in text else [])


def prefect_records(flow_run_id: str) -> str:
    """Everything Prefect keeps about a flow run that an operator can read: artifacts, logs, parameters."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId

    async def read() -> str:
        async with get_client() as client:
            run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[uuid.UUID(flow_run_id)]))
            artifacts = await client.read_artifacts(flow_run_filter=run_filter)
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))
            run = await client.read_flow_run(uuid.UUID(flow_run_id))
            assert {a.key for a in artifacts} >= {"tick-results", "tick-summary"}
            return json.dumps([[a.model_dump(mode="json") for a in artifacts], [entry.message for entry in logs],
                               run.model_dump(mode="json")])
    return asyncio.run(read())


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_no_log_result_or_artifact_holds_the_auth_token_or_a_full_phone(db, sandbox, prefect_api, level):
    w = world(db)
    org = texting_org(db, name="Faults")
    rejected, slow = phone(), phone()
    sandbox.configure(number_errors={rejected: 21211}, one_shot_faults=["ok", "ok", "timeout_after_accept", "500"],
                      stall_seconds=1)
    for tel in (rejected, slow):
        f.booking(db, org, f.client(db, org, "Rae Reject", tel), start=T + timedelta(minutes=40))
    f.booking(db, org, f.client(db, org, "Lou Local", "0412 345 678"), start=T + timedelta(minutes=40))
    tick = cli_tick(T, cli_env(prefect_api, sandbox, PREFECT_LOGGING_LEVEL=level, BOOKING_CRON_SMS_TIMEOUT="0.5"))
    assert tick.returncode == 0, tick.stderr[-4000:]
    run = summary_of(tick)["flow_run_id"]
    assert w.texts <= len(sandbox.messages)

    phones = full_phones(db)
    assert leaks(tick.stdout + tick.stderr, phones) == []
    results = db.execute("select coalesce(string_agg(r::text, E'\\n'), '') from tick_results r").fetchone()[0]
    runs = db.execute("select coalesce(string_agg(r::text, E'\\n'), '') from tick_runs r").fetchone()[0]
    assert "+6141*****" in results  # masked numbers are there, so the search looks in the right place
    assert leaks(results + runs, phones) == []
    assert leaks(prefect_records(run), phones) == []
    assert violations(db, sandbox) == []


def test_the_role_migration_can_run_again(db):
    """Roles are cluster-wide: the migration must tolerate the role (and its grants) existing already."""
    from booking_cron.storage.schema import MIGRATIONS_DIR

    migration = (MIGRATIONS_DIR / "0007_tick_role.sql").read_text()
    with db.transaction():
        db.execute(migration)
        db.execute(migration)
    assert db.execute("select count(*) from pg_roles where rolname = %s", (ROLE,)).fetchone()[0] == 1


def test_on_an_app_database_with_row_level_security_the_role_sees_every_org(server_url):
    """The app's bookings, client_purchases and session_usage have RLS on: the migration gives the tick
    role a policy on the tables it reads, so a tick sees every org's rows (and still writes no pack)."""
    from booking_cron.storage import schema
    from tests import supabase

    with supabase.app_database(server_url, "booking_cron_rls") as url:
        schema.upgrade(url)
        with psycopg.connect(url, autocommit=True) as conn:
            org = conn.execute("insert into orgs (name, slug) values ('Harbour', 'harbour') returning id").fetchone()[0]
            client = conn.execute("insert into clients (org_id, full_name) values (%s, 'Mia') returning id",
                                  (org,)).fetchone()[0]
            conn.execute("insert into bookings (org_id, client_id, start_time, end_time) values (%s, %s, %s, %s)",
                         (org, client, T - timedelta(hours=2), T - timedelta(hours=1)))
            policies = {t for (t,) in conn.execute(
                "select tablename from pg_policies where policyname = 'booking_cron_tick'")}
            assert {"bookings", "client_purchases", "session_usage", "tick_completions"} <= policies
            conn.execute(f"grant {ROLE} to current_user")
            conn.execute(f"set role {ROLE}")
            assert conn.execute("select count(*) from bookings").fetchone()[0] == 1
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("update client_purchases set sessions_used = 0")
