"""An org sends from, and receives replies on, only the senders the platform assigned to it.

On a database built like the app's, each API write is one request exactly as PostgREST makes it
(tests/supabase.rest); texts go to the Twilio sandbox through a real tick, replies come in as
signed HTTP requests to `booking-cron webhooks`. The hole: a trainer names another org's number in
their own sms_settings; the tick then texted as that org, and replies to it reached the trainer.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import httpx
import psycopg
import pytest
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

from booking_cron.storage import database, schema
from booking_cron.reporting.attention import attention_items
from booking_cron.ops.cli import app as cli_app
from booking_cron.ops.doctor import diagnose
from booking_cron.webhooks.app import BackgroundServer
from tests import supabase as app
from tests.faultkit import SANDBOX_TOKEN, sandbox, sandbox_server  # noqa: F401 (fixtures)

NOW = datetime.now(timezone.utc).replace(microsecond=0)
DENIED = psycopg.errors.InsufficientPrivilege
PUBLIC = "https://hooks.example.com/booking"
REMINDER = "See you soon {{client_name}}, {{coach_name}}"


def number() -> str:
    """A number no other test uses (the module's database is shared)."""
    return f"+6128{random.randrange(10**7):07d}"


def service_sid() -> str:
    return "MG" + uuid.uuid4().hex


@pytest.fixture
def conn(app_db):
    with psycopg.connect(app_db, autocommit=True) as c:
        yield c


@pytest.fixture
def tick(app_db, sandbox, monkeypatch):  # noqa: F811 (fixture)
    monkeypatch.setenv("DATABASE_URL", app_db)
    from flows.tick import tick as run

    return lambda at=None: run(tick_at=at or datetime.now(timezone.utc))


@pytest.fixture(scope="module")
def hooks(app_db):
    with BackgroundServer(SANDBOX_TOKEN, PUBLIC, port=0, database_url=app_db) as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            yield client


def reply(hooks, body: str, sender: str, to: str) -> httpx.Response:
    params = {"MessageSid": "SM" + uuid.uuid4().hex, "From": sender, "To": to, "Body": body, "NumMedia": "0"}
    signature = RequestValidator(SANDBOX_TOKEN).compute_signature(PUBLIC + "/twilio/inbound", params)
    return hooks.post("/twilio/inbound", content=urlencode(params),
                      headers={"X-Twilio-Signature": signature, "Content-Type": "application/x-www-form-urlencoded"})


def texting(conn, name: str, phone: str | None) -> app.Org:
    """An org that texts, as the platform sets it up (the owner writes its sms_settings), with a
    reminder an hour before each session."""
    org = app.org(conn, name, sms=True, phone=phone)
    conn.execute("insert into sms_schedules (org_id, type, label, mins_offset, body) "
                 "values (%s, 'pre_session', '1h', 60, %s)", (org.id, REMINDER))
    return org


def booking(conn, org: app.Org, client: str, starts: datetime, **cols) -> str:
    values = {"org_id": org.id, "client_id": client, "start_time": starts, "end_time": starts + timedelta(hours=1),
              "status": "confirmed", **cols}
    return conn.execute(f"insert into bookings ({', '.join(values)}) values ({', '.join(['%s'] * len(values))}) "
                        "returning id::text", tuple(values.values())).fetchone()[0]


def assigned_to(conn, sender: str) -> str | None:
    row = conn.execute("select org_id::text from booking_cron.senders where sender = %s", (sender,)).fetchone()
    return row[0] if row else None


def as_trainer(url: str, org: app.Org, statement: str, *params) -> int:
    with app.rest(url, "authenticated", org.trainer) as api:
        return api.execute(statement, params).rowcount


def hazards(conn) -> set[tuple[str, str]]:
    return {(h.hazard, h.subject) for h in diagnose(conn)}


def test_a_trainer_who_names_another_orgs_number_texts_nothing_from_it(conn, app_db, tick, sandbox):  # noqa: F811
    victim_number, trainer_number = number(), number()
    victim, trainer = texting(conn, "Harbour Strength", victim_number), texting(conn, "Rogue Fitness", trainer_number)
    assert (assigned_to(conn, victim_number), assigned_to(conn, trainer_number)) == (victim.id, trainer.id)
    assert as_trainer(app_db, trainer, "update sms_settings set twilio_phone_number = %s where org_id = %s",
                      victim_number, trainer.id) == 1
    assert assigned_to(conn, victim_number) == victim.id  # the trainer's claim assigned nothing

    victims_phone, trainers_phone = "+61400" + victim_number[-6:], "+61411" + victim_number[-6:]
    victims_client = app.client(conn, victim, "Vera Victim", victims_phone)
    planted = app.client(conn, trainer, "Vera Victim", victims_phone)  # the trainer texts the victim's client
    own = app.client(conn, trainer, "Tom Own", trainers_phone)
    soon = NOW + timedelta(minutes=30)
    for org, client in ((victim, victims_client), (trainer, planted), (trainer, own)):
        booking(conn, org, client, soon)
    summary = tick()

    from_victim_number = [(m["to"], m["body"]) for m in sandbox.messages if m["from"] == victim_number]
    assert from_victim_number == [(victims_phone, "See you soon Vera, Harbour Strength")]  # the victim's own text
    assert not [m for m in sandbox.messages if "Rogue Fitness" in m["body"]]
    held = conn.execute("select status, error_code, from_phone from sms_messages where org_id = %s", (trainer.id,))
    assert held.fetchall() == [("scheduled", "sender_not_assigned", victim_number)] * 2
    assert summary["text_reasons"]["queued"]["sender_not_assigned"] >= 2
    assert "text held for its sender" in [label for label, *_ in attention_items(summary)]
    found = hazards(conn)
    assert ("sender_claimed_by_several_orgs", victim_number) in found
    assert ("sender_not_assigned", trainer.id) not in found  # named once, in the conflict

    # The next ticks send nothing from it either; once stale, the held texts expire unsent.
    tick()
    tick(soon + timedelta(minutes=5))
    assert not [m for m in sandbox.messages if "Rogue Fitness" in m["body"]]
    assert [s for (s,) in conn.execute("select status from sms_messages where org_id = %s", (trainer.id,))] == [
        "expired", "expired"]


def test_back_on_its_own_number_the_trainers_org_texts_again(conn, app_db, tick, sandbox):  # noqa: F811
    victim_number, trainer_number = number(), number()
    texting(conn, "Harbour Strength", victim_number)
    trainer = texting(conn, "Rogue Fitness", trainer_number)
    as_trainer(app_db, trainer, "update sms_settings set twilio_phone_number = %s where org_id = %s",
               victim_number, trainer.id)
    as_trainer(app_db, trainer, "update sms_settings set twilio_phone_number = %s where org_id = %s",
               trainer_number, trainer.id)
    phone = "+61422" + trainer_number[-6:]
    booking(conn, trainer, app.client(conn, trainer, "Tom Own", phone), NOW + timedelta(minutes=30))
    tick()
    assert [(m["from"], m["to"]) for m in sandbox.messages if m["to"] == phone] == [(trainer_number, phone)]


def test_a_yes_to_another_orgs_number_confirms_nothing_in_the_trainers_org(conn, app_db, hooks):
    victim_number = number()
    victim, trainer = texting(conn, "Harbour Strength", victim_number), texting(conn, "Rogue Fitness", number())
    as_trainer(app_db, trainer, "update sms_settings set twilio_phone_number = %s where org_id = %s",
               victim_number, trainer.id)
    phone = "+61433" + victim_number[-6:]
    asked = datetime.now(timezone.utc)
    theirs = booking(conn, victim, app.client(conn, victim, "Vera Victim", phone), NOW + timedelta(days=2),
                     client_confirmed=False, confirmation_sent_at=asked)
    planted = booking(conn, trainer, app.client(conn, trainer, "Vera Victim", phone), NOW + timedelta(days=1),
                      client_confirmed=False, confirmation_sent_at=asked)  # sooner: it would have been confirmed

    assert reply(hooks, "Y", phone, victim_number).status_code == 200
    confirmed = dict(conn.execute("select id::text, client_confirmed from bookings where id = any(%s::uuid[])",
                                  ([theirs, planted],)))
    assert confirmed == {theirs: True, planted: False}
    assert reply(hooks, "STOP", phone, victim_number).status_code == 200
    assert conn.execute("select org_id::text from sms_suppression where phone = %s", (phone,)).fetchall() == [
        (victim.id,)]
    assert conn.execute("select org_ids from sms_inbound where from_phone = %s", (phone,)).fetchall() == [
        ([uuid.UUID(victim.id)],)] * 2


def test_a_reply_to_a_number_assigned_to_no_org_is_recorded_and_acts_on_nothing(conn, app_db, hooks):
    org = texting(conn, "Rogue Fitness", number())
    unassigned = number()
    as_trainer(app_db, org, "update sms_settings set twilio_phone_number = %s where org_id = %s", unassigned, org.id)
    phone = "+61444" + unassigned[-6:]
    planted = booking(conn, org, app.client(conn, org, "Vera Victim", phone), NOW + timedelta(days=1),
                      client_confirmed=False, confirmation_sent_at=datetime.now(timezone.utc))
    assert reply(hooks, "yes", phone, unassigned).status_code == 200
    assert conn.execute("select client_confirmed from bookings where id = %s", (planted,)).fetchone() == (False,)
    assert conn.execute("select org_ids, outcome from sms_inbound where from_phone = %s", (phone,)).fetchall() == [
        ([], "no_org")]
    assert ("sender_not_assigned", org.id) in hazards(conn)


def test_no_api_user_can_assign_a_sender_or_read_the_assignments(conn, app_db):
    org = texting(conn, "Rogue Fitness", number())
    for role, user in (("authenticated", org.trainer), ("anon", None), ("service_role", None)):
        for statement in ("insert into booking_cron.senders (kind, sender, org_id, assigned_by) "
                          f"values ('phone', '{number()}', '{org.id}', 'me')",
                          "select * from booking_cron.senders",
                          f"update booking_cron.senders set org_id = '{org.id}'",
                          "delete from booking_cron.senders"):
            with pytest.raises(DENIED):
                with app.rest(app_db, role, user) as api:
                    api.execute(statement)
    # a trainer's own settings page: its writes claim, never assign
    phone, service = number(), service_sid()
    assert as_trainer(app_db, org, "update sms_settings set twilio_phone_number = %s, "
                      "twilio_messaging_service_sid = %s where org_id = %s", phone, service, org.id) == 1
    assert (assigned_to(conn, phone), assigned_to(conn, service)) == (None, None)
    assert ("sender_not_assigned", org.id) in hazards(conn)


def test_service_role_writing_an_orgs_sender_assigns_it_unless_another_org_has_it(conn, app_db):
    org, other_number = texting(conn, "New Studio", None), number()
    other = texting(conn, "Harbour Strength", other_number)
    phone, service = number(), service_sid()
    with app.rest(app_db, "service_role") as api:  # the app's edge function provisioning the org's number
        api.execute("update sms_settings set twilio_phone_number = %s, twilio_messaging_service_sid = %s "
                    "where org_id = %s", (phone, service, org.id))
    assert (assigned_to(conn, phone), assigned_to(conn, service)) == (org.id, org.id)
    with app.rest(app_db, "service_role") as api:
        api.execute("update sms_settings set twilio_messaging_service_sid = null, twilio_phone_number = %s "
                    "where org_id = %s", (other_number, org.id))
    assert assigned_to(conn, other_number) == other.id  # not taken from the org that has it
    assert ("sender_claimed_by_several_orgs", other_number) in hazards(conn)

    # what a trainer typed is not laundered by a later platform write of the whole row
    typed = number()
    as_trainer(app_db, org, "update sms_settings set twilio_phone_number = %s where org_id = %s", typed, org.id)
    with app.rest(app_db, "service_role") as api:
        api.execute("update sms_settings set twilio_phone_number = twilio_phone_number, quiet_hours_start = 22 "
                    "where org_id = %s", (org.id,))
    assert assigned_to(conn, typed) is None


@pytest.mark.parametrize("phone, service, sends", [
    ("{phone}", None, True),
    ("{phone}", "", True),                   # an empty service: the number, as the sender picks it
    ("{spaced}", None, True),                # the same number, formatted
    ("{phone}", "{service}", True),          # the service, when set
    ("{other}", "{service}", True),
    ("{phone}", "{other_service}", False),   # the service wins, and it is not this org's
    ("{phone}", " ", False),
    ("{other}", None, False),
    (None, None, False),
])
def test_the_sender_checked_is_the_one_a_text_goes_from(conn, phone, service, sends):
    org = texting(conn, "Harbour Strength", number())
    mine = conn.execute("select twilio_phone_number from sms_settings where org_id = %s", (org.id,)).fetchone()[0]
    mss = service_sid()
    conn.execute("update sms_settings set twilio_messaging_service_sid = %s where org_id = %s", (mss, org.id))
    values = {"phone": mine, "spaced": f"{mine[:3]} {mine[3:4]} {mine[4:8]} {mine[8:]}", "other": number(),
              "service": mss, "other_service": service_sid()}
    phone, service = (v.format(**values) if v is not None else None for v in (phone, service))
    checked = conn.execute("select booking_cron.sender_assigned(%s, %s, %s)", (org.id, phone, service)).fetchone()
    assert checked == (sends,)


def test_the_upgrade_adopts_each_sender_one_org_names_and_an_operator_settles_the_rest(
        server_url, sandbox, monkeypatch):  # noqa: F811
    solo_number, shared, service = number(), number(), service_sid()
    solo_as_typed = f"{solo_number[:3]} {solo_number[3:]}"
    with app.app_database(server_url, "booking_cron_senders_upgrade") as url, \
            psycopg.connect(url, autocommit=True) as conn:
        # an install from before assignments, whose orgs each have a session in half an hour
        solo, with_service = texting(conn, "Solo Studio", solo_as_typed), texting(conn, "Service Studio", None)
        conn.execute("update sms_settings set twilio_messaging_service_sid = %s where org_id = %s",
                     (service, with_service.id))
        twin, other_twin = texting(conn, "Twin One", shared), texting(conn, "Twin Two", shared)
        phones = {}
        for i, org in enumerate((solo, with_service, twin, other_twin)):
            phones[org.id] = f"+6140{i}" + solo_number[-6:]
            booking(conn, org, app.client(conn, org, "Ava Nguyen", phones[org.id]), NOW + timedelta(minutes=30))

        schema.upgrade(url)
        assert dict(conn.execute("select sender, org_id::text from booking_cron.senders")) == {
            solo_number: solo.id, service: with_service.id}
        assert ("sender_claimed_by_several_orgs", shared) in hazards(conn)
        monkeypatch.setenv("DATABASE_URL", url)
        from flows.tick import tick

        tick(tick_at=datetime.now(timezone.utc))  # the unambiguous ones keep sending
        assert sorted((m["from"] or m["messaging_service_sid"], m["to"]) for m in sandbox.messages) == sorted([
            (solo_as_typed, phones[solo.id]), (service, phones[with_service.id])])

        runner, on = CliRunner(), f"senders on {database.safe_url(url)}"
        listed = runner.invoke(cli_app, ["senders", "list"])
        assert listed.exit_code == 0 and listed.output.startswith(f"{on}: 2 assigned")
        assert f"NOT ASSIGNED {shared}" in listed.output
        refused = runner.invoke(cli_app, ["senders", "assign", "--org", twin.id, "--phone", solo_number])
        assert refused.exit_code == 1 and assigned_to(conn, solo_number) == solo.id
        done = runner.invoke(cli_app, ["senders", "assign", "--org", twin.id, "--phone", shared])
        assert done.exit_code == 0 and done.output.splitlines()[0] == on, done.output
        tick(tick_at=datetime.now(timezone.utc))  # the held text was not lost: it goes now
        assert [m["to"] for m in sandbox.messages if m["from"] == shared] == [phones[twin.id]]
        conflict = [h for h in diagnose(conn) if h.subject == shared]  # Twin Two still names it
        assert [h.hazard for h in conflict] == ["sender_claimed_by_several_orgs"]
        assert f"assigned to org {twin.id}" in conflict[0].detail and other_twin.id in conflict[0].detail

        assert runner.invoke(cli_app, ["senders", "unassign", "--phone", shared]).exit_code == 0
        assert assigned_to(conn, shared) is None
        malformed = runner.invoke(cli_app, ["senders", "assign", "--org", twin.id, "--phone", "0280000001"])
        assert malformed.exit_code == 2


def test_doctor_shows_a_sender_a_trainer_typed_as_text_and_offers_no_command_for_it(conn, app_db):
    org = texting(conn, "Rogue Fitness", number())
    typed = "MG\x1b]0;owned\x07; rm -rf ~"
    as_trainer(app_db, org, "update sms_settings set twilio_messaging_service_sid = %s where org_id = %s", typed, org.id)
    [hazard] = [h for h in diagnose(conn) if h.subject == org.id]
    assert hazard.hazard == "sender_not_assigned" and "\x1b" not in hazard.detail + hazard.fix
    assert "not a messaging service sid" in hazard.detail and "booking-cron senders assign" not in hazard.fix
