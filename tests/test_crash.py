"""Crash at any step: a tick killed by SIGKILL at each named crash point, then the next tick.

The crashed tick is a real `booking-cron run` in a subprocess (BOOKING_CRON_CRASH_AT makes it
kill -9 itself there); the repair tick runs in-process at T + 10 minutes, after the 5-minute
lease of any text the crashed sender claimed (judged on the sender's clock, which follows a
future tick_at). Then: the audit is clean, no deduction is lost or doubled, every due text
reached the provider exactly once.
"""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import pytest

from booking_cron.faults import CRASH_POINTS
from tests import factories as f
from tests.faultkit import (  # noqa: F401 (fixtures)
    T, assert_world, cli_env, cli_tick, count, duplicate_texts, fault_counts, phone, run_tick, sandbox,
    sandbox_server, texting_org, violations, world,
)


def state(db, sandbox) -> dict:
    one = lambda q: db.execute(q).fetchone()[0]  # noqa: E731
    return {
        "completed": one("select count(*) from bookings b join tick_completions tc on tc.booking_id = b.id"),
        "ledger": one("select count(*) from session_usage where booking_id is not null"),
        "queued": one("select count(*) from sms_messages where status = 'scheduled'"),
        "sending": one("select count(*) from sms_messages where status = 'sending'"),
        "sent": one("select count(*) from sms_messages where status = 'sent'"),
        "at_provider": len(sandbox.messages),
    }


# What the database and the provider show right after the kill: proof it died at that step.
AT_THE_KILL = {
    "after_fetch": lambda s, w: s["completed"] == 0,
    "mid_complete": lambda s, w: s["completed"] == 0,
    "between_complete_and_deduct": lambda s, w: s["completed"] == len(w.due) and s["ledger"] == 0,
    "mid_batch": lambda s, w: s["completed"] == len(w.due) and s["ledger"] == 0,
    "after_queue": lambda s, w: s["ledger"] == len(w.due_on_pack) and s["queued"] == w.texts and s["at_provider"] == 0,
    "after_claim": lambda s, w: s["sending"] == w.texts and s["at_provider"] == 0,
    "after_provider_accept": lambda s, w: s["at_provider"] >= 1 and s["sent"] < s["at_provider"],
}


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_tick_killed_at_any_step_is_repaired_by_the_next(db, sandbox, prefect_api, point):
    w = world(db)
    crashed = cli_tick(T, cli_env(prefect_api, sandbox, BOOKING_CRON_CRASH_AT=point))
    assert crashed.returncode == -signal.SIGKILL, (
        f"the tick did not reach {point} (exit {crashed.returncode}):\n{crashed.stdout[-2000:]}\n"
        f"{crashed.stderr[-4000:]}")
    count("crash_points")
    at_kill = state(db, sandbox)
    assert AT_THE_KILL[point](at_kill, w), at_kill

    run_tick(T + timedelta(minutes=10))
    run_tick(T + timedelta(minutes=20))  # and a repaired world stays repaired
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)


def test_a_tick_killed_twice_in_a_row_is_still_repaired(db, sandbox, prefect_api):
    """Two crashed ticks back to back (the second finding the first's leftovers), then a good one."""
    w = world(db)
    for point, at in (("between_complete_and_deduct", T), ("after_provider_accept", T + timedelta(minutes=10))):
        crashed = cli_tick(at, cli_env(prefect_api, sandbox, BOOKING_CRON_CRASH_AT=point))
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-4000:]
        count("crash_points")
    run_tick(T + timedelta(minutes=20))
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)


EVENING = datetime(2030, 3, 12, 10, 55, tzinfo=timezone.utc)  # 20:55 in Brisbane; quiet hours from 21:00

def test_a_feedback_request_accepted_before_a_crash_is_not_sent_again_after_quiet_hours(db, sandbox, prefect_api):
    org = texting_org(db)  # quiet 21:00-08:00 Brisbane; feedback 30 min after the session
    client = f.client(db, org, "Ava Nguyen", phone())
    f.booking(db, org, client, f.pack(db, org, client), start=EVENING - timedelta(minutes=95))  # feedback due 20:50
    crashed = cli_tick(EVENING, cli_env(prefect_api, sandbox, BOOKING_CRON_CRASH_AT="after_provider_accept"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    count("crash_points")
    assert len(sandbox.messages) == 1

    run_tick(EVENING + timedelta(minutes=10))  # 21:05: quiet hours
    run_tick(EVENING + timedelta(hours=11, minutes=10))  # 08:05 the next morning
    assert duplicate_texts(sandbox) == []
    assert violations(db, sandbox, count_them=False) == []  # sent_at: when it went (20:55), not found (21:05)


def test_a_reminder_accepted_before_a_crash_is_recorded_as_sent_not_expired(db, sandbox, prefect_api):
    org = texting_org(db)
    b = f.booking(db, org, f.client(db, org, "Ava Nguyen", phone()), start=EVENING + timedelta(minutes=35))
    crashed = cli_tick(EVENING, cli_env(prefect_api, sandbox, BOOKING_CRON_CRASH_AT="after_provider_accept"))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-3000:]
    count("crash_points")
    assert len(sandbox.messages) == 1

    run_tick(EVENING + timedelta(minutes=10))  # 21:05: quiet hours until after the session starts
    assert db.execute("select status, provider_message_id from sms_messages where related_entity_id = %s",
                      (b,)).fetchone() == ("sent", sandbox.messages[0]["sid"])
    assert violations(db, sandbox, count_them=False) == []  # sent_at: when it went (20:55), not found (21:05)
