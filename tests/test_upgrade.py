"""`db upgrade` on an existing database of the seed app (tests/supabase): adds what is missing,
keeps the data, and from then on the ledger balances whoever writes the packs."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from booking_cron.storage import schema
from booking_cron.ops.audit import audit
from tests import supabase as app
from tests.factories import T


@pytest.fixture
def app_database(server_url):
    with app.app_database(server_url, "booking_cron_app") as url:
        yield url


def past_booking(conn, org: app.Org, client: str, pack: str) -> str:
    return conn.execute(
        "insert into bookings (org_id, client_id, purchase_id, start_time, end_time) values (%s, %s, %s, %s, %s) "
        "returning id::text", (org.id, client, pack, T - timedelta(hours=2), T - timedelta(hours=1))).fetchone()[0]


def test_upgrade_in_place_keeps_usage_and_balances_the_ledger(app_database):
    with psycopg.connect(app_database, autocommit=True) as conn:
        org = app.org(conn, "Harbour Strength")
        client = app.client(conn, org)
        pack = app.add_package(conn, org, client, used=4)
        booking = past_booking(conn, org, client, pack)
        assert app.use_one(conn, org, pack) is True  # the app's own, pre-upgrade use_session

    applied = schema.upgrade(app_database)
    assert applied and schema.upgrade(app_database) == []

    with psycopg.connect(app_database, autocommit=True) as conn:
        assert conn.execute("select sessions_used, sessions_remaining from client_purchases where id = %s",
                            (pack,)).fetchone() == (5, 5)
        assert conn.execute("select count(*) from session_usage where purchase_id = %s and source = 'baseline'",
                            (pack,)).fetchone()[0] == 5
        assert audit(conn) == []

        # the tick's deduction, the app's one-argument callers and its Edit package form all keep the books
        assert conn.execute("select use_session(%s, %s)", (pack, booking)).fetchone()[0] == "deducted"
        assert app.use_one(conn, org, pack) is True
        assert conn.execute("select sessions_used, sessions_remaining from client_purchases where id = %s",
                            (pack,)).fetchone() == (7, 3)
        app.edit_package(conn, org, pack, used=9)
        assert conn.execute("select sessions, source from session_usage where purchase_id = %s and source = 'adjustment'",
                            (pack,)).fetchall() == [(2, "adjustment")]
        assert audit(conn) == []
        conn.execute("delete from session_usage where booking_id = %s", (booking,))  # only the owner can
        assert [v.invariant for v in audit(conn)] == ["ledger_matches_sessions_used"]


def test_a_tick_runs_on_the_upgraded_app_database(app_database, prefect_api, monkeypatch):
    with psycopg.connect(app_database, autocommit=True) as conn:
        org = app.org(conn, "Core Studio")
        client = app.client(conn, org, "Leo Kelly")
        pack = app.add_package(conn, org, client, total=5, used=2)
        booking = past_booking(conn, org, client, pack)
    schema.upgrade(app_database)
    monkeypatch.setenv("DATABASE_URL", app_database)
    from flows.tick import tick

    summary = tick(tick_at=T)
    assert (summary["completed"], summary["deducted"]) == (1, 1)
    with psycopg.connect(app_database, autocommit=True) as conn:
        assert conn.execute("select status from bookings where id = %s", (booking,)).fetchone()[0] == "completed"
        assert conn.execute("select sessions_used from client_purchases where id = %s", (pack,)).fetchone()[0] == 3
        assert audit(conn) == []
