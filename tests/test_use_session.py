"""use_session, use_sessions, complete_booking against a live PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import psycopg
import pytest

from tests import factories as f
from tests.factories import T


def use(conn, purchase_id, booking_id) -> str:
    return conn.execute("select use_session(%s, %s)", (purchase_id, booking_id)).fetchone()[0]


@pytest.fixture
def member(db):
    org_id = f.org(db)
    return org_id, f.client(db, org_id)


def test_deducts_once_then_reports_already_deducted(db, member):
    pack = f.pack(db, *member, total=5)
    b = f.booking(db, *member, pack)
    assert use(db, pack, b) == "deducted"
    assert use(db, pack, b) == "already_deducted"
    assert f.sessions_used(db, pack) == 1
    assert f.ledger_rows(db, b) == 1


def test_exhausted_pack_is_never_overdrawn(db, member):
    pack = f.pack(db, *member, total=2, used=2)
    b = f.booking(db, *member, pack)
    assert use(db, pack, b) == "exhausted"
    assert f.sessions_used(db, pack) == 2


def test_expiry_is_judged_at_the_session_end_not_now(db, member):
    start = T - timedelta(days=30)
    # expired long before today, but after this old session ended: the session counts
    valid_then = f.pack(db, *member, expires_at=start + timedelta(hours=2))
    old = f.booking(db, *member, valid_then, start=start)
    assert use(db, valid_then, old) == "deducted"
    # expired during the session: too late
    expired = f.pack(db, *member, expires_at=start + timedelta(minutes=30))
    late = f.booking(db, *member, expired, start=start)
    assert use(db, expired, late) == "expired"
    assert f.sessions_used(db, expired) == 0


@pytest.mark.parametrize("payment_status", ["pending", "failed", "refunded"])
def test_unpaid_packs_are_not_deducted(db, member, payment_status):
    pack = f.pack(db, *member, payment_status=payment_status)
    b = f.booking(db, *member, pack)
    assert use(db, pack, b) == "unpaid"
    assert f.sessions_used(db, pack) == 0


@pytest.mark.parametrize("total", [None, 0])
def test_a_purchase_that_is_not_a_pack(db, member, total):
    pack = f.pack(db, *member, total=total)
    b = f.booking(db, *member, pack)
    assert use(db, pack, b) == "not_a_pack"


def test_mismatches_and_missing_rows(db, member):
    pack = f.pack(db, *member)
    other_pack = f.pack(db, *member)
    b = f.booking(db, *member, pack)
    assert use(db, other_pack, b) == "purchase_mismatch"
    assert use(db, "00000000-0000-4000-8000-000000000000", b) == "purchase_mismatch"
    assert use(db, pack, "00000000-0000-4000-8000-000000000000") == "booking_not_found"
    # a booking pointing at another client's pack
    org_id, _ = member
    stranger = f.client(db, org_id, name="Other Client")
    theirs = f.pack(db, org_id, stranger)
    wrong = f.booking(db, *member, theirs)
    assert use(db, theirs, wrong) == "purchase_mismatch"
    assert f.sessions_used(db, theirs) == 0


def test_batch_takes_a_packs_last_places_by_session_order(db, member):
    pack = f.pack(db, *member, total=3, used=1)
    early, middle, late = (f.booking(db, *member, pack, start=T - timedelta(hours=h)) for h in (30, 20, 10))
    rows = db.execute("select booking_id::text, outcome from use_sessions(%s::uuid[], %s::uuid[])",
                      ([pack] * 3, [late, early, middle])).fetchall()
    assert dict(rows) == {early: "deducted", middle: "deducted", late: "exhausted"}
    assert f.sessions_used(db, pack) == 3


def test_concurrent_calls_for_one_booking_deduct_once(db, member, database_url):
    pack = f.pack(db, *member, total=10)
    b = f.booking(db, *member, pack)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def call():
        with psycopg.connect(database_url, autocommit=True) as conn:
            barrier.wait()
            outcomes.append(use(conn, pack, b))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["already_deducted"] * 7 + ["deducted"]
    assert f.sessions_used(db, pack) == 1
    assert f.ledger_rows(db, b) == 1


def test_concurrent_calls_on_a_pack_with_one_place_left(db, member, database_url):
    pack = f.pack(db, *member, total=5, used=4)
    bookings = [f.booking(db, *member, pack, start=T - timedelta(hours=h)) for h in range(2, 8)]
    outcomes: list[str] = []
    barrier = threading.Barrier(len(bookings))

    def call(b):
        with psycopg.connect(database_url, autocommit=True) as conn:
            barrier.wait()
            outcomes.append(use(conn, pack, b))

    threads = [threading.Thread(target=call, args=(b,)) for b in bookings]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["deducted"] + ["exhausted"] * 5
    assert f.sessions_used(db, pack) == 5


def test_one_argument_form_still_works_and_is_guarded(db, member):
    pack = f.pack(db, *member, total=2)
    assert db.execute("select use_session(%s::uuid)", (pack,)).fetchone()[0] is True
    assert db.execute("select use_session(%s::uuid)", (pack,)).fetchone()[0] is True
    assert db.execute("select use_session(%s::uuid)", (pack,)).fetchone()[0] is False
    assert f.sessions_used(db, pack) == 2
    legacy = db.execute("select count(*) from session_usage where purchase_id = %s and booking_id is null "
                        "and source = 'legacy'", (pack,)).fetchone()[0]
    assert legacy == 2


def test_complete_booking_completes_and_deducts_in_one_call(db, member):
    pack = f.pack(db, *member)
    b = f.booking(db, *member, pack)
    assert db.execute("select complete_booking(%s)", (b,)).fetchone()[0] == "deducted"
    assert db.execute("select complete_booking(%s)", (b,)).fetchone()[0] == "not_confirmed"
    assert f.status(db, b) == "completed"
    assert f.sessions_used(db, pack) == 1


def test_the_apps_functions_are_invoker_their_privileged_part_definer_all_pinned_and_not_public(db):
    """What the API reaches (public) runs with the caller's rights; what it calls with more rights is
    security definer in booking-cron's own schema (migration 0047) or a batch form no API role holds."""
    rows = db.execute("""
        select n.nspname, p.oid::regprocedure::text, p.prosecdef, p.proconfig,
               has_function_privilege('public', p.oid, 'execute')
        from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where p.proname in ('use_session', 'use_sessions', 'complete_booking')""").fetchall()
    assert {(schema, definer) for schema, _, definer, _, _ in rows} == {("public", False), ("public", True),
                                                                        ("booking_cron", True)}
    assert len(rows) == 7
    for schema, signature, definer, settings, public_can_execute in rows:
        assert definer == (schema == "booking_cron" or signature.startswith("use_sessions(")), signature
        assert settings == ["search_path=pg_catalog, pg_temp"], signature
        assert not public_can_execute, signature
