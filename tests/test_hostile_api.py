"""What was attended is deducted, whatever a client or trainer writes through the app's API.

On a database built like the app's, each write is one request exactly as PostgREST makes it
(logged in as `authenticator`, `set local role`, the JWT claims; tests/supabase.rest). The app's
own policies let a client update any column of their own bookings and let anyone own an org;
booking-cron's guard (migration 0048) refuses what would cost a coach a session or give one back.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from booking_cron.ops.audit import audit
from tests import supabase as app

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DENIED = psycopg.errors.InsufficientPrivilege


@pytest.fixture
def conn(app_db):
    with psycopg.connect(app_db, autocommit=True) as c:
        yield c


@pytest.fixture
def tick(app_db, prefect_api, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", app_db)
    monkeypatch.delenv("TWILIO_ACCOUNT_SID", raising=False)
    from flows.tick import tick as run

    return lambda: run(tick_at=datetime.now(timezone.utc))


class World:
    """A coach's org with a client who signed in to the client app, a pack, a session the client
    attended an hour ago (not completed yet) and one in two days; and the client's own org, which
    sign-up gave them."""

    def __init__(self, conn, url: str):
        self.url = url
        self.org = app.org(conn, "Harbour Strength")
        self.client = app.client(conn, self.org)
        self.user = app.client_user(conn, self.client)
        self.pack = app.add_package(conn, self.org, self.client)
        self.attended = self.booking(conn, NOW - timedelta(hours=1))
        self.upcoming = self.booking(conn, NOW + timedelta(days=2))
        self.own_org = app.org(conn, "Client's Own Gym")  # its owner is another new user...
        conn.execute("insert into org_members (org_id, user_id, role) values (%s, %s, 'owner')",
                     (self.own_org.id, self.user))  # ...and the client owns it too

    def booking(self, conn, ends: datetime) -> str:
        return conn.execute(
            "insert into bookings (org_id, client_id, purchase_id, start_time, end_time, status) "
            "values (%s, %s, %s, %s, %s, 'confirmed') returning id::text",
            (self.org.id, self.client, self.pack, ends - timedelta(hours=1), ends)).fetchone()[0]

    def as_client(self, statement: str, *params) -> int:
        with app.rest(self.url, "authenticated", self.user) as api:
            return api.execute(statement, params).rowcount

    def as_trainer(self, statement: str, *params) -> int:
        with app.rest(self.url, "authenticated", self.org.trainer) as api:
            return api.execute(statement, params).rowcount


@pytest.fixture
def world(conn, app_db):
    return World(conn, app_db)


def used(conn, pack: str) -> int:
    return conn.execute("select sessions_used from client_purchases where id = %s", (pack,)).fetchone()[0]


def row(conn, booking: str) -> tuple:
    return conn.execute("select org_id::text, client_id::text, purchase_id::text, status, start_time, end_time, "
                        "cancelled_at from bookings where id = %s", (booking,)).fetchone()


DODGES = {
    "cancel after attending": "update bookings set status = 'cancelled' where id = %s",
    "unlink the pack": "update bookings set purchase_id = null where id = %s",
    "move the times into the future": "update bookings set start_time = start_time + interval '30 days', "
                                      "end_time = end_time + interval '30 days' where id = %s",
    "mark it no-show": "update bookings set status = 'no_show' where id = %s",
    "mark it completed": "update bookings set status = 'completed' where id = %s",
}


@pytest.mark.parametrize("dodge", DODGES, ids=list(DODGES))
def test_a_client_cannot_dodge_the_deduction_of_a_session_they_attended(conn, world, tick, dodge):
    before = row(conn, world.attended)
    with pytest.raises(DENIED):
        world.as_client(DODGES[dodge], world.attended)
    assert row(conn, world.attended) == before
    tick()
    assert row(conn, world.attended)[3] == "completed" and used(conn, world.pack) == 1
    assert audit(conn) == []


def test_a_client_cannot_move_a_booking_to_their_own_org_and_back(conn, world, tick):
    """The round trip that used to give a completed, deducted session back at the next tick."""
    tick()
    assert used(conn, world.pack) == 1
    with pytest.raises(DENIED):
        world.as_client("update bookings set org_id = %s where id = %s", world.own_org.id, world.attended)
    mine = app.client(conn, world.own_org, "Me Myself")  # a client row of their own, in their own org
    conn.execute("update clients set auth_user_id = %s where id = %s", (world.user, mine))
    with pytest.raises(DENIED):
        world.as_client("update bookings set org_id = %s, client_id = %s, purchase_id = null where id = %s",
                        world.own_org.id, mine, world.attended)
    assert row(conn, world.attended)[0] == world.org.id
    assert tick()["reinstated"] == 0 and used(conn, world.pack) == 1


def test_a_client_can_still_cancel_an_upcoming_booking_and_its_time_is_now(conn, world):
    backdated = NOW - timedelta(days=30)
    assert world.as_client("update bookings set status = 'cancelled', cancelled_at = %s where id = %s",
                           backdated, world.upcoming) == 1
    status, cancelled_at = row(conn, world.upcoming)[3:7:3]
    assert status == "cancelled" and cancelled_at > NOW - timedelta(minutes=5)
    with pytest.raises(DENIED):  # nor backdate it afterwards
        world.as_client("update bookings set cancelled_at = %s where id = %s", backdated, world.upcoming)
    assert world.as_client("update bookings set client_confirmed = true where id = %s", world.attended) == 1


def test_nobody_puts_another_orgs_client_or_pack_on_a_booking(conn, world):
    other = app.org(conn, "Other Studio")
    stranger = app.client(conn, other, "Sam Stranger", "+61400000999")
    stranger_pack = app.add_package(conn, other, stranger)
    with pytest.raises(DENIED, match="not a client of its org"):
        world.as_trainer("update bookings set client_id = %s where id = %s", stranger, world.upcoming)
    with pytest.raises(DENIED, match="pack"):
        world.as_trainer("update bookings set purchase_id = %s where id = %s", stranger_pack, world.upcoming)
    with pytest.raises(DENIED):
        world.as_trainer("insert into bookings (org_id, client_id, start_time, end_time) values (%s, %s, %s, %s)",
                         world.org.id, stranger, NOW, NOW + timedelta(hours=1))
    with pytest.raises(DENIED):  # nor into an org the trainer is not a member of
        world.as_trainer("update bookings set org_id = %s where id = %s", other.id, world.upcoming)
    # the trainer's own changes still work
    assert world.as_trainer("update bookings set start_time = start_time + interval '1 hour', "
                            "end_time = end_time + interval '1 hour' where id = %s", world.upcoming) == 1


def test_a_booking_whose_client_is_another_orgs_is_rejected_by_the_tick_and_not_texted(conn, world, tick):
    """Written before the guard existed, or by service_role: the tick names it and leaves it alone."""
    texting = app.org(conn, "Texting Studio", sms=True, phone="+61280000042")
    conn.execute("insert into sms_schedules (org_id, type, label, mins_offset, body) "
                 "values (%s, 'pre_session', '1h', 60, 'See you soon {{client_name}}')", (texting.id,))
    own = app.client(conn, texting, "Olive Own", "+61400000111")
    other = app.org(conn, "Other Studio")
    stranger = app.client(conn, other, "Sam Stranger", "+61400000999")

    def booking(client: str, starts: datetime) -> str:
        return conn.execute(
            "insert into bookings (org_id, client_id, start_time, end_time, status) "
            "values (%s, %s, %s, %s, 'confirmed') returning id::text",
            (texting.id, client, starts, starts + timedelta(hours=1))).fetchone()[0]

    planted_past = booking(stranger, NOW - timedelta(hours=2))
    booking(stranger, NOW + timedelta(minutes=30))  # its reminder would be due: nothing may go
    own_soon = booking(own, NOW + timedelta(minutes=30))
    summary = tick()
    assert summary["rejected"] == {"client_of_another_org": 1}
    assert row(conn, planted_past)[3] == "confirmed"
    assert conn.execute("select outcome, reason from tick_results where booking_id = %s", (planted_past,)).fetchall() == [
        ("rejected", "client_of_another_org")]
    texted = {b for (b,) in conn.execute("select related_entity_id::text from sms_messages where org_id = %s",
                                         (texting.id,))}
    assert texted == {own_soon}  # the org's own client gets the reminder; the planted ones nothing
    assert row(conn, world.attended)[3] == "completed" and used(conn, world.pack) == 1


def test_a_client_books_themselves_but_only_as_their_own_client_in_its_org(conn, world):
    """The app's client booking page inserts a booking for the signed-in client."""
    starts = NOW + timedelta(days=5)
    assert world.as_client("insert into bookings (org_id, client_id, purchase_id, start_time, end_time, status) "
                           "values (%s, %s, %s, %s, %s, 'pending')", world.org.id, world.client, world.pack,
                           starts, starts + timedelta(hours=1)) == 1
    with pytest.raises(DENIED, match="not a client of its org"):  # their client row, another org's booking
        world.as_client("insert into bookings (org_id, client_id, start_time, end_time) values (%s, %s, %s, %s)",
                        world.own_org.id, world.client, starts, starts + timedelta(hours=1))
    with pytest.raises(DENIED, match="upcoming"):  # nor a session that already happened, to be texted for
        world.as_client("insert into bookings (org_id, client_id, start_time, end_time, status) "
                        "values (%s, %s, %s, %s, 'completed')", world.org.id, world.client,
                        NOW - timedelta(hours=2), NOW - timedelta(hours=1))


def test_nobody_but_the_orgs_members_moves_a_client_to_another_org(conn, world, tick):
    """A client moved away would make their attended session another org's client's: rejected, not deducted."""
    with pytest.raises(DENIED, match="move a client"):
        world.as_client("update clients set org_id = %s where id = %s", world.own_org.id, world.client)
    conn.execute("update clients set onboarding_token = gen_random_uuid() where id = %s", (world.client,))
    with pytest.raises(DENIED, match="move a client"):  # the signed-out onboarding page
        with app.rest(world.url, "anon") as api:
            api.execute("update clients set org_id = %s where id = %s", (world.own_org.id, world.client))
    assert world.as_client("update clients set phone = '+61400000777' where id = %s", world.client) == 1
    tick()
    assert row(conn, world.attended)[3] == "completed" and used(conn, world.pack) == 1


def test_a_caller_reads_back_only_its_own_calls(conn, world):
    with app.rest(world.url, "authenticated", world.org.trainer) as api:
        assert api.execute("select complete_booking(%s)", (world.attended,)).fetchone()[0] == "deducted"
    with app.rest(world.url, "authenticated", world.org.trainer) as api:
        assert api.execute("select count(*) from booking_cron.api_calls").fetchone()[0] == 1
    with app.rest(world.url, "authenticated", world.user) as api:
        assert api.execute("select count(*) from booking_cron.api_calls").fetchone()[0] == 0


def test_a_text_planted_through_the_apps_outbox_writer_silences_nothing(conn, world, tick, app_db):
    """The app's insert_sms_direct is executable by anon on the app's database: `db upgrade` takes that
    back, `doctor` names it if it is given again, and a row planted through it never counts as the
    booking's reminder."""
    soon = world.booking(conn, NOW + timedelta(minutes=100))
    conn.execute("update sms_settings set enabled = true where org_id = %s", (world.org.id,))
    schedule = conn.execute("insert into sms_schedules (org_id, type, label, mins_offset, body) values "
                            "(%s, 'pre_session', '1h', 60, 'See you') returning id::text", (world.org.id,)).fetchone()[0]
    plant = ("select insert_sms_direct(%s, %s, 'nothing to see', now() + interval '1 year', 'booking', %s, %s)",
             (world.org.id, world.client, soon, f"sched-{schedule}-{soon}"))
    with pytest.raises(DENIED):
        with app.rest(world.url, "anon") as api:
            api.execute(*plant)
    conn.execute("grant execute on function insert_sms_direct(uuid, uuid, text, timestamptz, text, uuid, text) to anon")
    try:
        with app.rest(world.url, "anon") as api:
            api.execute(*plant)
        from booking_cron.ops.doctor import diagnose
        with psycopg.connect(app_db) as check:
            assert ("api_can_write_outbox", "anon") in {(h.hazard, h.detail.split()[1]) for h in diagnose(check)}
        tick()
        keys = {k for (k,) in conn.execute("select idempotency_key from sms_messages where related_entity_id = %s",
                                           (soon,))}
        assert keys == {f"sched-{schedule}-{soon}", f"session_reminder:{schedule}:{soon}"}  # ours is queued too
    finally:
        conn.execute("revoke execute on function insert_sms_direct(uuid, uuid, text, timestamptz, text, uuid, text) "
                     "from anon")


def test_trainers_cannot_backdate_a_cancellation_or_a_suppression(conn, world):
    world.as_trainer("update bookings set status = 'cancelled', cancelled_at = %s where id = %s",
                     NOW - timedelta(days=30), world.upcoming)
    assert row(conn, world.upcoming)[6] > NOW - timedelta(minutes=5)
    with pytest.raises(DENIED, match="when it was made"):
        world.as_trainer("update bookings set cancelled_at = %s where id = %s", NOW - timedelta(days=30), world.upcoming)
    with app.rest(world.url, "authenticated", world.org.trainer) as api:
        api.execute("insert into sms_suppression (org_id, phone, reason, created_at) values (%s, '+61412345678', "
                    "'manual', %s)", (world.org.id, NOW - timedelta(days=30)))
    assert conn.execute("select created_at from sms_suppression where org_id = %s", (world.org.id,)).fetchone()[0] \
        > NOW - timedelta(minutes=5)


def test_a_trainers_edit_package_neither_fails_the_audit_nor_hides_a_real_violation(conn, world, tick):
    from booking_cron.ops.audit import notices

    tick()
    assert used(conn, world.pack) == 1
    world.as_trainer("update client_purchases set sessions_total = 0 where id = %s", world.pack)
    assert audit(conn) == []  # the app's data, not booking-cron's doing...
    assert [n.invariant for n in notices(conn) if n.subject == world.pack] == ["pack_past_sessions_total"]  # ...said
    # a deduction booking-cron itself took past the pack's total stays a violation, whatever the pack says now
    conn.execute("update session_usage set pack_used_after = pack_total + 1 where booking_id = %s", (world.attended,))
    world.as_trainer("update client_purchases set sessions_total = 100 where id = %s", world.pack)
    assert [v.invariant for v in audit(conn)] == ["never_past_sessions_total"]
    conn.execute("update session_usage set pack_used_after = pack_total where booking_id = %s", (world.attended,))


def test_what_still_matters_after_the_fact_is_a_notice(conn, world, tick):
    from booking_cron.ops.audit import notices

    tick()
    world.as_trainer("update bookings set purchase_id = null where id = %s", world.attended)
    assert [n.invariant for n in notices(conn) if n.subject == world.attended] == ["pack_unlinked_after_deduction"]
    world.as_trainer("update bookings set status = 'cancelled' where id = %s", world.attended)
    assert "cancelled_after_it_started" in {n.invariant for n in notices(conn) if n.subject == world.attended}
    assert audit(conn) == []
