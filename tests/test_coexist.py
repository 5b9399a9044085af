"""Living beside the app on Supabase: on a database built like the app's (tests/supabase), driven
the way the app drives it (API roles, its pages' writes, its edge functions), after an operator's
`booking-cron db upgrade`. Each hazard of issue 10 gets a test that shows it closed."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from booking_cron.storage import schema
from booking_cron.ops.audit import audit
from tests import supabase as app

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DENIED = (psycopg.errors.InsufficientPrivilege,)


@pytest.fixture(scope="module")
def app_db(server_url):
    with app.app_database(server_url, "booking_cron_supabase") as url:
        upgrade = subprocess.run([sys.executable, "-m", "booking_cron", "db", "upgrade"], capture_output=True,
                                 text=True, env={**os.environ, "DATABASE_URL": url}, timeout=120)
        assert upgrade.returncode == 0, upgrade.stderr
        yield url


@pytest.fixture
def conn(app_db):
    with psycopg.connect(app_db, autocommit=True) as c:
        yield c


@pytest.fixture
def tick(app_db, prefect_api, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", app_db)
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    from flows.tick import tick as run

    return lambda at=None: run(tick_at=at or datetime.now(timezone.utc))


def booking(conn, org: app.Org, client: str, pack: str | None, ends: datetime = NOW - timedelta(hours=1),
            status: str = "confirmed") -> str:
    return conn.execute(
        "insert into bookings (org_id, client_id, purchase_id, start_time, end_time, status) values (%s, %s, %s, %s, %s, %s) "
        "returning id::text", (org.id, client, pack, ends - timedelta(hours=1), ends, status)).fetchone()[0]


def used(conn, pack: str) -> int:
    return conn.execute("select sessions_used from client_purchases where id = %s", (pack,)).fetchone()[0]


def snapshot(conn) -> tuple:
    return tuple(conn.execute(f"select count(*), md5(coalesce(string_agg(t::text, ',' order by t::text), '')) from {t} t")
                 .fetchone() for t in ("bookings", "client_purchases", "session_usage", "tick_completions", "sms_messages"))


def booking_cron_functions(conn) -> list[str]:
    return [f for (f,) in conn.execute(
        r"""select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname = 'public' and (p.proname in ('use_sessions', 'release_sessions', 'use_session',
              'release_session', 'complete_booking') or p.proname like 'booking\_cron\_%')""")]


def test_anon_can_execute_none_of_booking_cron_functions(conn):
    functions = booking_cron_functions(conn)
    assert len(functions) >= 10
    for function in functions:
        assert not conn.execute("select has_function_privilege('anon', %s, 'execute')", (function,)).fetchone()[0], function
    a = app.org(conn, "Harbour Strength")
    c = app.client(conn, a)
    pack = app.add_package(conn, a, c)
    b = booking(conn, a, c, pack)
    before = snapshot(conn)
    for call in ("select complete_booking(%(b)s)", "select use_session(%(p)s, %(b)s)", "select use_session(%(p)s::uuid)",
                 "select release_session(%(p)s::uuid)", "select release_session(%(p)s, %(b)s)",
                 "select * from use_sessions(array[%(p)s]::uuid[], array[%(b)s]::uuid[])"):
        with pytest.raises(DENIED, match="permission denied"):
            with app.api(conn, "anon"):
                conn.execute(call, {"p": pack, "b": b})
    assert snapshot(conn) == before


def test_authenticated_users_cannot_call_the_batch_forms_or_helpers(conn):
    a = app.org(conn, "Core Studio")
    for function in booking_cron_functions(conn):
        may = conn.execute("select has_function_privilege('authenticated', %s, 'execute')", (function,)).fetchone()[0]
        app_calls = function.split("(")[0].removeprefix("public.") in ("use_session", "release_session", "complete_booking")
        assert may == app_calls, function
    with pytest.raises(DENIED):
        with app.api(conn, "authenticated", a.trainer):
            conn.execute("select * from release_sessions(array[]::uuid[], array[]::uuid[])")


def test_a_trainer_of_another_org_can_neither_complete_nor_touch_the_pack(conn):
    mine, theirs = app.org(conn, "Mine"), app.org(conn, "Theirs")
    c = app.client(conn, mine)
    pack = app.add_package(conn, mine, c, used=2)
    b = booking(conn, mine, c, pack)
    before = snapshot(conn)
    for call in ("select complete_booking(%(b)s)", "select use_session(%(p)s, %(b)s)", "select use_session(%(p)s::uuid)",
                 "select release_session(%(p)s::uuid)", "select release_session(%(p)s, %(b)s)"):
        with pytest.raises(DENIED, match="not a member"):
            with app.api(conn, "authenticated", theirs.trainer):
                conn.execute(call, {"p": pack, "b": b})
    assert snapshot(conn) == before

    with app.api(conn, "authenticated", mine.trainer):
        assert conn.execute("select complete_booking(%s)", (b,)).fetchone()[0] == "deducted"
    other = booking(conn, mine, c, pack)
    with app.api(conn, "service_role"):  # the app's edge functions act for any org
        assert conn.execute("select complete_booking(%s)", (other,)).fetchone()[0] == "deducted"
    assert used(conn, pack) == 4
    assert audit(conn) == []


def test_booking_cron_tables_are_out_of_the_apis_reach(conn):
    tables = [t for (t,) in conn.execute(
        r"select tablename from pg_tables where schemaname = 'public' and (tablename like 'tick\_%' or tablename like '%yoyo%')")]
    assert {"tick_runs", "tick_results", "tick_completions", "_yoyo_migration", "yoyo_lock"} <= set(tables)
    for table in tables:
        assert conn.execute("select relrowsecurity from pg_class where oid = %s::regclass", (f"public.{table}",)).fetchone()[0]
        for role in ("anon", "authenticated", "service_role"):
            for privilege in ("select", "insert", "update", "delete", "truncate"):
                assert not conn.execute("select has_table_privilege(%s, %s, %s)",
                                        (role, f"public.{table}", privilege)).fetchone()[0], (role, table, privilege)
    for role in ("anon", "service_role"):
        with pytest.raises(DENIED):
            with app.api(conn, role):
                conn.execute("delete from _yoyo_migration")


def test_a_forged_tick_completion_cannot_make_a_tick_deduct_twice(conn, tick):
    a = app.org(conn, "Forge Gym")
    c = app.client(conn, a)
    pack = app.add_package(conn, a, c)
    b = booking(conn, a, c, pack)
    with app.api(conn, "authenticated", a.trainer):  # the calendar's auto-complete, the app's way
        conn.execute("update bookings set status = 'completed' where id = %s", (b,))
        assert conn.execute("select use_session(%s::uuid)", (pack,)).fetchone()[0] is True
    for role, user in (("authenticated", a.trainer), ("anon", None), ("service_role", None)):
        with pytest.raises(DENIED):
            with app.api(conn, role, user):
                conn.execute("insert into tick_completions (booking_id, purchase_id, flow_run_id) values (%s, %s, %s)",
                             (b, pack, str(uuid.uuid4())))
    with pytest.raises(DENIED):  # nor a ledger row that would block or fake a deduction
        with app.api(conn, "authenticated", a.trainer):
            conn.execute("insert into session_usage (org_id, client_id, purchase_id, booking_id, session_date) "
                         "values (%s, %s, %s, %s, current_date)", (a.id, c, pack, b))
    tick()
    assert used(conn, pack) == 1
    assert audit(conn) == []


def test_the_books_balance_whoever_writes_the_pack(conn, tick):
    a = app.org(conn, "Ledger Lane")
    c = app.client(conn, a)
    pack = app.add_package(conn, a, c, used=3)                     # a pack inserted with usage on it
    stripe = app.add_package(conn, a, c, used=1, as_role="service_role")
    assert app.use_one(conn, a, pack) is True                      # "Use 1 Session"
    assert app.reinstate(conn, a, pack) == 3                       # "Reinstate"
    app.edit_package(conn, a, pack, used=6, total=12)             # "Edit package"
    app.edit_package(conn, a, stripe, used=0)
    assert app.reinstate(conn, a, stripe) == -1                   # nothing to give back, as before
    assert audit(conn) == []

    done, missed = booking(conn, a, c, pack), booking(conn, a, c, pack)
    tick()
    assert used(conn, pack) == 8
    app.cancel(conn, a, done)                                      # completed, then cancelled: one back
    no_show = booking(conn, a, c, pack)
    tick()
    conn.execute("update bookings set status = 'no_show' where id = %s", (no_show,))  # keeps its session
    summary = tick()
    assert used(conn, pack) == 8
    assert summary["reinstated"] == 0
    assert conn.execute("select outcome from tick_results where booking_id = %s and step = 'reinstate'",
                        (done,)).fetchall() == [("reinstated",)]
    assert app.reinstate(conn, a, pack) == 7                       # an unrelated give-back still works
    assert conn.execute("select count(*) from session_usage where booking_id = %s and released_at is not null",
                        (missed,)).fetchone()[0] == 0
    assert audit(conn) == []


def test_a_client_can_cancel_an_upcoming_booking_but_not_take_back_a_completed_session(conn, tick):
    a = app.org(conn, "Client Side")
    c = app.client(conn, a)
    user = app.client_user(conn, c)
    pack = app.add_package(conn, a, c)
    done = booking(conn, a, c, pack)
    upcoming = booking(conn, a, c, pack, ends=NOW + timedelta(days=2))
    tick()
    assert used(conn, pack) == 1
    assert app.client_sets_status(conn, user, upcoming) == 1       # the client app's cancel still works
    before = snapshot(conn)
    for status in ("cancelled", "confirmed", "no_show"):           # hostile: change a completed booking
        with pytest.raises(DENIED, match="only the org's trainers"):
            app.client_sets_status(conn, user, done, status)
    assert snapshot(conn) == before
    fresh = booking(conn, a, c, pack, ends=NOW + timedelta(days=3))
    with pytest.raises(DENIED):                                     # nor complete one before the tick
        app.client_sets_status(conn, user, fresh, "completed")
    summary = tick()
    assert summary["reinstated"] == 0 and used(conn, pack) == 1
    app.cancel(conn, a, done)                                       # the trainer still can: one back
    assert tick()["reinstated"] == 1 and used(conn, pack) == 0
    assert audit(conn) == []


def test_reinstate_after_cancelling_gives_that_bookings_session_back_once(conn, tick):
    a = app.org(conn, "Once Only")
    c = app.client(conn, a)
    pack = app.add_package(conn, a, c)
    b = booking(conn, a, c, pack)
    tick()
    app.cancel(conn, a, b)
    assert app.reinstate(conn, a, pack) == 0     # the trainer's Reinstate takes the cancelled booking's session
    summary = tick()                             # so the tick has nothing left to give back
    assert used(conn, pack) == 0 and summary["reinstated"] == 0
    with app.api(conn, "authenticated", a.trainer):
        assert conn.execute("select release_session(%s, %s)", (pack, b)).fetchone()[0] == "already_released"
    assert audit(conn) == []


def test_release_session_per_booking_is_exact_and_idempotent(conn):
    a = app.org(conn, "Exact")
    c = app.client(conn, a)
    pack = app.add_package(conn, a, c, used=2)
    first, second = booking(conn, a, c, pack), booking(conn, a, c, pack)
    with app.api(conn, "authenticated", a.trainer):
        assert conn.execute("select complete_booking(%s)", (first,)).fetchone()[0] == "deducted"
        assert conn.execute("select complete_booking(%s)", (second,)).fetchone()[0] == "deducted"
        outcomes = [conn.execute("select release_session(%s, %s)", (pack, first)).fetchone()[0] for _ in range(2)]
        assert conn.execute("select release_session(%s, %s)", (pack, str(uuid.uuid4()))).fetchone()[0] == "not_deducted"
    assert outcomes == ["released", "already_released"]
    assert used(conn, pack) == 3
    assert conn.execute("select booking_id::text from session_usage where purchase_id = %s and booking_id is not null "
                        "and released_at is null", (pack,)).fetchall() == [(second,)]
    assert audit(conn) == []


def test_texts_the_app_queued_or_sent_are_not_sent_again(conn, tick):
    a = app.org(conn, "Text Twice", sms=True)
    c = app.client(conn, a)
    reminder = conn.execute("insert into sms_schedules (org_id, type, label, mins_offset, body) values "
                            "(%s, 'pre_session', '2h', 120, 'Hi {{client_name}}') returning id::text", (a.id,)).fetchone()[0]
    sent_before = booking(conn, a, c, None, ends=NOW + timedelta(hours=2))
    queued_before = booking(conn, a, c, None, ends=NOW + timedelta(hours=2))
    ours = booking(conn, a, c, None, ends=NOW + timedelta(hours=2))
    app.queue_app_text(conn, a, c, sent_before, f"sched-{reminder}-{sent_before}", sent=True)
    app.queue_app_text(conn, a, c, queued_before, f"sched-{reminder}-{queued_before}")
    tick()
    keys = {b: [k for (k,) in conn.execute("select idempotency_key from sms_messages where related_entity_id = %s",
                                             (b,))] for b in (sent_before, queued_before, ours)}
    assert keys[sent_before] == [f"sched-{reminder}-{sent_before}"]
    assert keys[queued_before] == [f"sched-{reminder}-{queued_before}"]
    assert keys[ours] == [f"session_reminder:{reminder}:{ours}"]
    # booking-cron's text waits as 'scheduled', which the app's sms-worker never takes
    assert conn.execute("select status from sms_messages where related_entity_id = %s", (ours,)).fetchone()[0] == "scheduled"
    assert f"session_reminder:{reminder}:{ours}" not in app.sms_worker_takes(conn)
    assert audit(conn) == []
    # the audit counts the app's texts: a second send of the same reminder is a violation
    conn.execute("update sms_messages set status = 'sent', sent_at = now() where related_entity_id = %s", (queued_before,))
    conn.execute("""insert into sms_messages (org_id, client_id, to_phone, from_phone, body, related_entity_id,
                    idempotency_key, kind, schedule_id, status, sent_at) values (%s, %s, '+61412345678', '+61280000001',
                    'again', %s, %s, 'session_reminder', %s, 'sent', now())""",
                 (a.id, c, queued_before, f"session_reminder:{reminder}:{queued_before}", reminder))
    assert [(v.invariant, v.subject) for v in audit(conn)] == [("one_text_per_booking_kind_schedule", queued_before)]
    conn.execute("delete from sms_messages where idempotency_key = %s", (f"session_reminder:{reminder}:{queued_before}",))


def test_api_users_cannot_plant_texts_for_booking_cron_to_send(conn):
    a = app.org(conn, "Planted", sms=True)
    c = app.client(conn, a)
    b = booking(conn, a, c, None, ends=NOW + timedelta(hours=2))
    with pytest.raises(DENIED):
        with app.api(conn, "authenticated", a.trainer):
            conn.execute("""insert into sms_messages (org_id, client_id, to_phone, from_phone, body, related_entity_id,
                            kind, status) values (%s, %s, '+61400000000', 'x', 'spam', %s, 'session_reminder', 'scheduled')""",
                         (a.id, c, b))


def test_every_upgrade_takes_back_what_default_privileges_open(conn, app_db):
    conn.execute("create table public.tick_extra (id int)")  # a later migration's table: granted by default
    conn.execute("grant execute on function public.use_sessions(uuid[], uuid[]) to anon")
    assert conn.execute("select has_table_privilege('anon', 'public.tick_extra', 'select')").fetchone()[0]
    assert schema.upgrade(app_db) == []
    assert not conn.execute("select has_table_privilege('anon', 'public.tick_extra', 'select')").fetchone()[0]
    assert not conn.execute("select has_function_privilege('anon', 'public.use_sessions(uuid[], uuid[])', 'execute')").fetchone()[0]
    conn.execute("drop table public.tick_extra")
