"""`db upgrade` on an existing database of the seed app: adds what is missing, keeps the data."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from booking_cron import database, schema
from booking_cron.audit import audit
from tests.factories import T

APP_SCHEMA = (Path(__file__).parent / "app_shaped_schema.sql").read_text()


@pytest.fixture
def app_database(server_url):
    name = f"booking_cron_app_{uuid.uuid4().hex[:10]}"
    url = database.create_database(server_url, name)
    try:
        yield url
    finally:
        database.drop_database(server_url, name)


def test_upgrade_in_place_keeps_usage_and_balances_the_ledger(app_database):
    with psycopg.connect(app_database, autocommit=True) as conn:
        conn.execute(APP_SCHEMA)
        org = conn.execute("insert into orgs (name, slug) values ('Harbour Strength', 'harbour') returning id").fetchone()[0]
        client = conn.execute("insert into clients (org_id, full_name, phone) values (%s, 'Mia Chen', '+61412345678') returning id",
                              (org,)).fetchone()[0]
        offer = conn.execute("insert into offers (org_id, name, offer_type, price_cents) values (%s, '10 pack', 'session_pack', 90000) returning id",
                             (org,)).fetchone()[0]
        pack = conn.execute(
            """insert into client_purchases (org_id, client_id, offer_id, amount_paid_cents, sessions_total, sessions_used, payment_status)
               values (%s, %s, %s, 90000, 10, 4, 'succeeded') returning id""", (org, client, offer)).fetchone()[0]
        booking = conn.execute(
            "insert into bookings (org_id, client_id, purchase_id, start_time, end_time) values (%s, %s, %s, %s, %s) returning id",
            (org, client, pack, T - timedelta(hours=2), T - timedelta(hours=1))).fetchone()[0]
        assert conn.execute("select use_session(%s)", (pack,)).fetchone()[0] is True  # the app's own call

    applied = schema.upgrade(app_database)
    assert applied and schema.upgrade(app_database) == []

    with psycopg.connect(app_database, autocommit=True) as conn:
        assert conn.execute("select sessions_used, sessions_remaining from client_purchases where id = %s",
                            (pack,)).fetchone() == (5, 5)
        assert conn.execute("select count(*) from session_usage where purchase_id = %s and source = 'baseline'",
                            (pack,)).fetchone()[0] == 5
        assert conn.execute("select timezone from booking_settings").fetchall() == []  # none existed; column added
        assert audit(conn) == []

        # the tick's deduction and the old one-argument callers both keep the books balanced
        assert conn.execute("select use_session(%s, %s)", (pack, booking)).fetchone()[0] == "deducted"
        assert conn.execute("select use_session(%s::uuid)", (pack,)).fetchone()[0] is True
        assert conn.execute("select sessions_used, sessions_remaining from client_purchases where id = %s",
                            (pack,)).fetchone() == (7, 3)
        assert audit(conn) == []
        conn.execute("update client_purchases set sessions_used = 9 where id = %s", (pack,))
        assert [v.invariant for v in audit(conn)] == ["ledger_matches_sessions_used"]


def test_a_tick_runs_on_the_upgraded_app_database(app_database, prefect_api, monkeypatch):
    with psycopg.connect(app_database, autocommit=True) as conn:
        conn.execute(APP_SCHEMA)
        org = conn.execute("insert into orgs (name, slug) values ('Core Studio', 'core') returning id").fetchone()[0]
        client = conn.execute("insert into clients (org_id, full_name) values (%s, 'Leo Kelly') returning id", (org,)).fetchone()[0]
        offer = conn.execute("insert into offers (org_id, name, offer_type, price_cents) values (%s, '5 pack', 'session_pack', 1) returning id",
                             (org,)).fetchone()[0]
        pack = conn.execute(
            """insert into client_purchases (org_id, client_id, offer_id, amount_paid_cents, sessions_total, sessions_used, payment_status)
               values (%s, %s, %s, 1, 5, 2, 'succeeded') returning id""", (org, client, offer)).fetchone()[0]
        booking = conn.execute(
            "insert into bookings (org_id, client_id, purchase_id, start_time, end_time) values (%s, %s, %s, %s, %s) returning id",
            (org, client, pack, T - timedelta(hours=2), T - timedelta(hours=1))).fetchone()[0]
    schema.upgrade(app_database)
    monkeypatch.setenv("DATABASE_URL", app_database)
    from flows.tick import tick

    summary = tick(tick_at=T)
    assert (summary["completed"], summary["deducted"]) == (1, 1)
    with psycopg.connect(app_database, autocommit=True) as conn:
        assert conn.execute("select status from bookings where id = %s", (booking,)).fetchone()[0] == "completed"
        assert conn.execute("select sessions_used from client_purchases where id = %s", (pack,)).fetchone()[0] == 3
        assert audit(conn) == []
