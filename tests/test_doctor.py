"""`booking-cron doctor` on a database built like the app's: each hazard named with its fix, exit 1;
exit 0 once `db upgrade` ran on a database without them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from tests import supabase as app


def cli(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "booking_cron", *args], capture_output=True, text=True,
                          env={**os.environ, "DATABASE_URL": url}, timeout=120)


def doctor(url: str) -> tuple[int, set[tuple[str, str]], list[dict]]:
    done = cli(url, "doctor", "--json")
    report = json.loads(done.stdout)
    assert report["ok"] == (done.returncode == 0)
    return done.returncode, {(h["hazard"], h["subject"]) for h in report["hazards"]}, report["hazards"]


@pytest.fixture(scope="module")
def app_db(server_url):
    with app.app_database(server_url, "booking_cron_doctor") as url:
        yield url


def test_doctor_names_each_hazard_and_passes_after_upgrade(app_db):
    code, found, _ = doctor(app_db)  # the app alone: nothing of booking-cron's yet, the app's functions open to anon
    assert code == 1
    assert {h for h, _ in found} == {"migrations_pending", "api_can_execute", "api_can_write_table",
                                     "api_can_write_outbox"}
    assert {s for h, s in found if h == "api_can_write_outbox"} == {
        "insert_sms_direct(uuid,uuid,text,timestamp with time zone,text,uuid,text)"}  # anon's, with the revoke
    assert {("api_can_write_table", "session_usage"), ("api_can_write_table", "sms_messages")} <= found
    assert ("api_can_execute", "use_session(uuid)") in found and ("api_can_execute", "release_session(uuid)") in found

    assert cli(app_db, "db", "upgrade").returncode == 0
    clean = cli(app_db, "doctor")
    assert clean.returncode == 0, clean.stdout
    assert "no hazards" in clean.stdout

    now = datetime.now(timezone.utc)
    with psycopg.connect(app_db, autocommit=True) as conn:
        conn.execute("grant execute on function public.use_sessions(uuid[], uuid[]) to anon")
        conn.execute("grant insert on public.tick_completions to authenticated")
        conn.execute("grant insert on public.session_usage to authenticated")
        a = app.org(conn, "Still Running", sms=True)
        c = app.client(conn, a)
        pack = app.add_package(conn, a, c)
        booking = conn.execute(
            "insert into bookings (org_id, client_id, purchase_id, start_time, end_time) values (%s, %s, %s, %s, %s) "
            "returning id::text", (a.id, c, pack, now - timedelta(hours=2), now - timedelta(hours=1))).fetchone()[0]
        with app.api(conn, "service_role"):  # cron-sms-reminders' AUTO-COMPLETE, the app's way
            conn.execute("update bookings set status = 'completed' where id = %s", (booking,))
            conn.execute("select use_session(%s::uuid)", (pack,))
        app.queue_app_text(conn, a, c, booking, f"feedback-{booking}", sent=True)     # its sms-worker sent one
        other = str(uuid.uuid4())
        app.queue_app_text(conn, a, c, booking, f"sched-{other}-{booking}")           # and it still queues
        conn.execute("update session_usage set sessions = 2 where purchase_id = %s", (pack,))  # a ledger row tampered with

    code, found, hazards = doctor(app_db)
    assert code == 1
    assert found == {
        ("api_can_execute", "use_sessions(uuid[],uuid[])"),
        ("api_can_reach_table", "tick_completions"),
        ("api_can_write_table", "session_usage"),
        ("app_auto_complete_active", booking),
        ("app_sms_worker_active", "sms_messages"),
        ("app_sms_reminders_active", "sms_messages"),
        ("ledger_disagrees", pack),
    }
    assert all(h["fix"] for h in hazards)
    words = {h["hazard"]: h["detail"] for h in hazards}  # whose booking and pack, in words
    assert 'client "Mia Chen" of org "Still Running"\'s session that ended' in words["app_auto_complete_active"]
    assert words["ledger_disagrees"].startswith('client "Mia Chen" of org "Still Running"\'s pack: ')

    text = cli(app_db, "doctor")
    assert text.returncode == 1 and "HAZARD app_auto_complete_active" in text.stdout and "fix:" in text.stdout
    assert cli(app_db, "db", "upgrade").returncode == 0     # takes back the grants; the app's jobs are the operator's
    code, found, _ = doctor(app_db)
    assert {h for h, _ in found} == {"app_auto_complete_active", "app_sms_worker_active", "app_sms_reminders_active",
                                     "ledger_disagrees"}


def test_the_projects_own_seed_data_has_no_hazards(server_url):
    """The seed's completions are booking-cron's history (deducted as a tick deducts), not the app's
    auto-complete: seed, then doctor, exits 0, however recent its completed sessions are."""
    from tests import hosting

    with hosting.owned_database(server_url, "booking_cron_doctor_seed") as url:
        assert cli(url, "db", "upgrade").returncode == 0
        # around now, enough that some completions fall within the last 24 hours at any hour of any day
        # (400 left none on one CI run: the seed is deterministic, so that depended on the time of day)
        seeded = cli(url, "seed", "--bookings", "4000")
        assert seeded.returncode == 0, seeded.stderr
        with psycopg.connect(url) as conn:
            recent = conn.execute("select count(*) from bookings where status = 'completed' and purchase_id is not null"
                                  " and end_time > now() - interval '24 hours' and end_time <= now()").fetchone()[0]
        assert recent > 0
        clean = cli(url, "doctor")
        assert clean.returncode == 0, clean.stdout
        assert cli(url, "audit").returncode == 0


def test_hazards_show_names_from_the_database_as_text():
    from booking_cron.ops.doctor import _whose

    assert _whose("Ann\x1b]0;pwned\x07", None) == 'client "Ann\\x1b]0;pwned\\x07"\'s'
