"""The two baselines of comparison 1, each on its own freshly loaded database.

(a) the physical limit: the same writes as a tick's complete + deduct (bookings to completed,
    one ledger row per booking, packs' sessions_used) in ONE set-based statement, with none of
    the tick's checks or records.
(b) the seed app's design: one select, one update by id list, then one
    `select use_session(purchase_id)` (the one-argument form) per booking, autocommit, over
    one connection, as the app's RPC loop would.
"""

from __future__ import annotations

import time

import psycopg

from bench.env import T, one
from booking_cron.storage.database import CountingConnection, statements_sent

RAW_ONE_STATEMENT = """
with due as (
  select b.id from public.bookings b where b.status = 'confirmed' and b.end_time <= %(t)s
),
done as (
  update public.bookings b set status = 'completed', updated_at = now()
  from due where b.id = due.id
  returning b.id, b.org_id, b.client_id, b.purchase_id, b.start_time
),
ledger as (
  insert into public.session_usage (org_id, client_id, purchase_id, booking_id, session_date, source)
  select d.org_id, d.client_id, d.purchase_id, d.id, (d.start_time at time zone 'UTC')::date, 'booking'
  from done d where d.purchase_id is not null
  returning purchase_id
),
packs as (
  update public.client_purchases cp set sessions_used = coalesce(cp.sessions_used, 0) + n.sessions
  from (select purchase_id, count(*)::int as sessions from ledger group by purchase_id) n
  where cp.id = n.purchase_id
  returning cp.id
)
select (select count(*) from done), (select count(*) from ledger), (select count(*) from packs)
"""


def raw_set_based(url: str) -> dict:
    """(a): one statement, one transaction. It writes its ledger rows itself, so it says so the way
    booking-cron's functions do (booking_cron.ledger_write, set at connect time): the ledger trigger
    then adds nothing, and the outcome matches the tick's row for row."""
    with psycopg.connect(url, options="-c booking_cron.ledger_write=on") as conn:
        started = time.perf_counter()
        completed, ledger, packs = one(conn.execute(RAW_ONE_STATEMENT, {"t": T}).fetchone())
        conn.commit()
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "completed": completed, "deducted": ledger, "packs": packs, "statements": 1}


def seed_app_design(url: str, limit: int | None = None) -> dict:
    """(b): one select, one update by id list, one use_session(purchase) per booking.

    With `limit`, only the first `limit` due bookings are processed (to extrapolate when the
    full run would take too long); the result says how many were done.
    """
    with CountingConnection.connect(url, autocommit=True) as conn:
        before = statements_sent()
        started = time.perf_counter()
        rows = conn.execute(
            "select id, purchase_id from public.bookings where status = 'confirmed' and end_time <= %s "
            "order by id", (T,)).fetchall()
        rows = rows[:limit] if limit else rows
        conn.execute("update public.bookings set status = 'completed', updated_at = now() where id = any(%s)",
                     ([r[0] for r in rows],))
        deducted = 0
        for _, purchase_id in rows:
            if purchase_id is not None:
                deducted += one(conn.execute("select public.use_session(%s)", (purchase_id,)).fetchone())[0]
        seconds = time.perf_counter() - started
        statements = statements_sent() - before
    return {"seconds": seconds, "completed": len(rows), "deducted": deducted, "statements": statements}


def end_state(url: str) -> dict:
    """What each design left: completed bookings and sessions taken from the bench's packs."""
    with psycopg.connect(url) as conn:
        completed, used = one(conn.execute(
            """select (select count(*) from public.bookings where status = 'completed' and end_time <= %(t)s),
                      (select coalesce(sum(sessions_used), 0) from public.client_purchases
                       where id in (select purchase_id from public.bookings where end_time <= %(t)s))""",
            {"t": T}).fetchone())
    return {"completed": completed, "sessions_used": int(used)}
