"""Database faults: the tick's connections terminated in the middle of a tick, and a restart-like
loss of every connection between ticks. The tick retries through it or fails clearly; the next
tick repairs; the audit is clean.

Only backends of this session's own test database are terminated (never the server, which other
sessions share), and never the test's own connections.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import timedelta

import psycopg
import pytest

from booking_cron.storage import database
from tests.faultkit import (  # noqa: F401 (fixtures)
    T, assert_world, cli_env, cli_tick, count, fast_retries, fault_counts, run_tick, sandbox, sandbox_server,
    violations, world,
)

TERMINATE_OTHERS = """
select count(pg_terminate_backend(a.pid)) from pg_stat_activity a
where a.datname = current_database() and a.pid <> pg_backend_pid() and a.pid <> all(%s)
  and a.backend_type = 'client backend'
"""


# Conditions a Terminator waits for before it starts: a client of the tick's process has connected
# (a backend that was not there when the Terminator was made), or the tick has begun its record.
CLIENT_CONNECTED = "select count(*) > 0 from pg_stat_activity a where a.datname = current_database() " \
                   "and a.pid <> all(%(spare)s) and a.backend_type = 'client backend'"
TICK_RECORDED = "select exists (select from public.tick_runs)"


class Terminator(threading.Thread):
    """Terminates every other backend of the test database every `every` seconds, from `start`
    seconds after `begin_when` holds, for `duration` seconds (or until stopped). It acts as the
    cluster superuser, as a server restart would. With `begin_when`, backends that existed when it
    was made (leftovers of an earlier process) are spared, so they cannot set it off."""

    def __init__(self, url: str, spare: list[int], every: float = 0.15, start: float = 0.0,
                 duration: float = 3600.0, begin_when: str | None = None):
        super().__init__(daemon=True)
        self.url, self.every, self.start_after, self.duration = url, every, start, duration
        self.begin_when = begin_when
        self.spare = list(spare)
        if begin_when:
            with psycopg.connect(url, autocommit=True) as conn:
                self.spare += [pid for (pid,) in conn.execute(
                    "select pid from pg_stat_activity where datname = current_database()")]
        self.stopped = threading.Event()
        self.terminated = 0

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            self.spare.append(conn.info.backend_pid)
            while self.begin_when and not self.stopped.is_set() and not conn.execute(
                    self.begin_when, {"spare": self.spare}).fetchone()[0]:
                self.stopped.wait(0.02)
            if self.stopped.wait(self.start_after):
                return
            until = time.monotonic() + self.duration
            while not self.stopped.is_set() and time.monotonic() < until:
                self.terminated += conn.execute(TERMINATE_OTHERS, (self.spare,)).fetchone()[0]
                self.stopped.wait(self.every)

    def stop(self) -> int:
        self.stopped.set()
        self.join(timeout=30)
        count("db_faults", self.terminated)
        return self.terminated


@pytest.fixture
def terminating(db, server_url):
    started: list[Terminator] = []

    def start(**kwargs) -> Terminator:
        t = Terminator(database.with_database(server_url, db.info.dbname), [db.info.backend_pid], **kwargs)
        t.start()
        started.append(t)
        return t

    yield start
    for t in started:
        t.stop()


@pytest.mark.parametrize("schedule", [
    # a storm from the tick's first connection on
    dict(begin_when=CLIENT_CONNECTED, start=0.0, duration=1.5, every=0.1),
    # from the moment the tick has recorded its start (its pool holds a connection then): a fixed
    # delay after the first connection missed the tick when a loaded machine slowed the process down
    dict(begin_when=TICK_RECORDED, start=0.0, duration=2.0, every=0.3),
    # without end: the tick must fail clearly, or finish
    dict(begin_when=CLIENT_CONNECTED, start=0.0, every=0.05),
], ids=["storm-at-start", "mid-tick", "until-it-ends"])
def test_connections_terminated_during_a_tick(db, sandbox, prefect_api, terminating, schedule):
    w = world(db, on_pack=12, no_pack=3, reminders=4)
    database.close_pools()  # this process's idle connections would count as the tick's
    killer = terminating(**schedule)
    tick = cli_tick(T, cli_env(prefect_api, sandbox, BOOKING_CRON_RETRY_DELAYS="0.2", BOOKING_CRON_DB_TIMEOUT="3"))
    terminated = killer.stop()
    assert terminated > 0
    assert tick.returncode in (0, 1), f"exit {tick.returncode}:\n{tick.stderr[-4000:]}"
    if tick.returncode:  # a clear failure, not a hang or a crash
        assert "tick failed" in tick.stderr, tick.stderr[-4000:]
    assert tick.returncode != -signal.SIGKILL

    database.close_pools()  # (its connections died too; what that does to a pool is the next test's)
    run_tick(T + timedelta(minutes=10))  # the repair: no faults now
    run_tick(T + timedelta(minutes=20))
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)


def test_a_restart_like_loss_of_every_connection_between_ticks(db, sandbox, terminating, monkeypatch):
    """Every connection of the test database dies at once between two ticks (what a server
    restart does to a pool). The next in-process tick, whose pool still holds the dead
    connections, must get through."""
    fast_retries(monkeypatch, 0.2)
    database.close_pools()
    w = world(db, on_pack=8, no_pack=2, reminders=4)
    pool = database.pool()
    with pool.connection() as a, pool.connection() as b, pool.connection() as c, pool.connection() as d, \
            pool.connection() as e:
        for conn in (a, b, c, d, e):  # a pool that has grown, as it does while texts are sent
            conn.execute("select 1")
    killer = terminating(duration=0.3, every=0.1)
    time.sleep(0.5)
    assert killer.stop() >= 5

    try:
        run_tick(T)
        run_tick(T + timedelta(minutes=10))
    finally:
        database.close_pools()
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)


def test_the_database_refusing_connections_for_a_while(db, sandbox, prefect_api, server_url):
    """Like a restart: all connections dropped and new ones refused for a second, mid-tick."""
    name, spare = db.info.dbname, [db.info.backend_pid]
    refuse = threading.Timer(1.0, lambda: refuse_for(server_url, name, 1.0, spare))
    w = world(db, on_pack=8, no_pack=2, reminders=4)
    refuse.start()
    tick = cli_tick(T, cli_env(prefect_api, sandbox, BOOKING_CRON_RETRY_DELAYS="0.5", BOOKING_CRON_DB_TIMEOUT="2"))
    refuse.join()
    assert tick.returncode in (0, 1), tick.stderr[-4000:]
    if tick.returncode:
        assert "tick failed" in tick.stderr, tick.stderr[-4000:]
    database.close_pools()
    run_tick(T + timedelta(minutes=10))
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)


def refuse_for(server_url: str, dbname: str, seconds: float, spare: list[int]) -> None:
    """`allow_connections false` on this database only, every backend terminated, then allowed
    again; by the cluster superuser, as a restart would."""
    from psycopg import sql

    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("alter database {} with allow_connections false").format(sql.Identifier(dbname)))
        try:
            n = admin.execute("""select count(pg_terminate_backend(pid)) from pg_stat_activity
                                 where datname = %s and pid <> all(%s) and backend_type = 'client backend'""",
                              (dbname, spare)).fetchone()[0]
            count("db_faults", n)
            time.sleep(seconds)
        finally:
            admin.execute(sql.SQL("alter database {} with allow_connections true").format(sql.Identifier(dbname)))
