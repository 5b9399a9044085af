"""The SMS outbox in PostgreSQL: what planning reads, the one write that queues, and the lease-
based claim, re-check and fate updates the sender makes. Every statement is set-based or per
message; none is per booking in a loop."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Iterator, Sequence

import psycopg

from booking_cron.storage import database, org_sql
from booking_cron.domain.due import ALL, Shard
from booking_cron.storage.org_sql import org_default_params
from booking_cron.storage.phone_sql import phone_digits_sql
from booking_cron.storage.shard_sql import in_shard_sql
from booking_cron.sms.suppression import SUPPRESS, normalise_suppressions
from booking_cron.storage.store import loadable, loadable_time
from booking_cron.domain.texts.plan import (
    SENDER_NOT_ASSIGNED, BookingForTexts, OrgTexting, PlannedText, Schedule, lookahead, owing_window,
)
from booking_cron.domain.texts.replay import Pack, PackBooking, ReplayInputs
from booking_cron.domain.texts.sending import QuietHours, SendBudget

ORGS = f"""
select o.id::text, o.name, {org_sql.TIMEZONE}, {org_sql.QUIET_HOURS_START},
       {org_sql.QUIET_HOURS_END}, s.twilio_phone_number, s.twilio_messaging_service_sid,
       booking_cron.sender_assigned(s.org_id, s.twilio_phone_number, s.twilio_messaging_service_sid)
from public.sms_settings s
join public.orgs o on o.id = s.org_id
left join public.booking_settings bs on bs.org_id = s.org_id
where s.enabled
"""

SCHEDULES = """
select sc.id::text, sc.org_id::text, sc.type, sc.mins_offset, sc.body
from public.sms_schedules sc join public.sms_settings s on s.org_id = sc.org_id and s.enabled
where sc.enabled
"""

# Bookings that may owe a text at T (plan.owing_window(T, T, ...)), each with its client's pack summary
# (active paid packs).
BOOKINGS = """
with candidates as (
  select b.* from public.bookings b
  join public.sms_settings s on s.org_id = b.org_id and s.enabled
  where ((b.status = 'confirmed' and b.start_time > %(starts_after)s and b.start_time <= %(starts_until)s)
      or (b.status = 'completed' and b.end_time > %(ends_after)s and b.end_time <= %(ends_until)s))
    and """ + loadable("b.start_time") + " and " + loadable("b.end_time") + """  -- others are not texted
    and """ + in_shard_sql("b.org_id") + """
),
packs as (
  select cp.client_id, sum(coalesce(cp.sessions_used, 0)) as used,  -- bigint: packs of 2^31 sessions add up
         sum(greatest(cp.sessions_total::bigint - coalesce(cp.sessions_used, 0), 0)) as remaining,
         array_agg(cp.id) as ids
  from public.client_purchases cp
  join public.clients pc on pc.id = cp.client_id and pc.org_id = cp.org_id  -- only packs of the client's own org
  where cp.client_id in (select client_id from candidates)
    and cp.payment_status = 'succeeded' and cp.sessions_total is not null
    and (cp.expires_at is null or cp.expires_at > %(t)s)
  group by cp.client_id
),
booked as (
  select b.client_id, count(*)::int as booked
  from public.bookings b join packs p on p.client_id = b.client_id and b.purchase_id = any(p.ids)
  where b.status in ('confirmed', 'pending') and b.start_time > %(t)s
  group by b.client_id
)
select b.id::text, b.org_id::text, b.client_id::text, c.full_name, c.phone,
       coalesce(c.sms_reminder_enabled, true), coalesce(c.sms_followup_enabled, true),
       exists (select 1 from public.sms_suppression x where x.org_id = b.org_id
                 and x.phone = """ + phone_digits_sql("c.phone") + """),  -- both sides E.164
       b.start_time, b.end_time, b.status, coalesce(b.client_confirmed, false), """ + loadable_time("b.confirmation_sent_at") + """,
       b.location_type, coalesce(p.used, 0), coalesce(k.booked, 0), coalesce(p.remaining, 0)
from candidates b
join public.clients c on c.id = b.client_id and c.org_id = b.org_id  -- another org's client: no text
left join packs p on p.client_id = b.client_id
left join booked k on k.client_id = b.client_id
"""

# booking-cron's texts wait for their time as 'scheduled': the app's sms-worker sends 'queued'
# rows (and its queue_pending_sms() makes due 'pending' rows 'queued'), so it never takes ours.
# Planning and the sender speak of a waiting text as "queued"; the outbox stores it as WAITING.
QUEUED = "queued"
WAITING = "scheduled"


def stored_status(status: str) -> str:
    return WAITING if status == QUEUED else status


# What each outbox row is, booking-cron's and the app's alike: (kind, schedule) from booking-cron's
# own columns, else read from the app's keys (`sched-<schedule>-<booking>`, whose schedule's type
# gives the kind, and `unconfirmed-24h-<booking>`). Used as `from public.sms_messages m {TEXT_IDENTITY}`.
TEXT_IDENTITY = """
left join public.sms_schedules app_sc
  on m.kind is null
 and app_sc.id = (case when m.idempotency_key ~ '^sched-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}-'
                       then substr(m.idempotency_key, 7, 36)::uuid end)
 and m.idempotency_key = 'sched-' || app_sc.id::text || '-' || m.related_entity_id::text
cross join lateral (
  select coalesce(m.kind,
                  case app_sc.type when 'pre_session' then 'session_reminder' when 'post_session' then 'feedback_request' end,
                  case when m.idempotency_key = 'unconfirmed-24h-' || m.related_entity_id::text
                       then 'unconfirmed_reminder' end) as kind,
         coalesce(m.schedule_id, app_sc.id) as schedule_id,
         m.kind is null as by_app
) ident
"""

# A backfill's day: every booking that may owe a text at one of its slots (plan.owing_window(first,
# last, ...)), and its client's packs.
REPLAY_BOOKINGS = """
select b.id::text, b.org_id::text, b.client_id::text, c.full_name, c.phone,
       coalesce(c.sms_reminder_enabled, true), coalesce(c.sms_followup_enabled, true),
       exists (select 1 from public.sms_suppression x where x.org_id = b.org_id
                 and x.phone = """ + phone_digits_sql("c.phone") + """),  -- as the tick's BOOKINGS
       b.start_time, b.end_time, b.status, coalesce(b.client_confirmed, false), """ + loadable_time("b.confirmation_sent_at") + """,
       b.location_type
from public.bookings b
join public.sms_settings s on s.org_id = b.org_id and s.enabled
join public.clients c on c.id = b.client_id and c.org_id = b.org_id  -- as the tick's BOOKINGS
where b.status in ('confirmed', 'completed')  -- either window: a backfill may complete it within the day
  and ((b.start_time > %(starts_after)s and b.start_time <= %(starts_until)s)
    or (b.end_time > %(ends_after)s and b.end_time <= %(ends_until)s))
  and """ + loadable("b.start_time") + " and " + loadable("b.end_time") + """  -- as the tick's BOOKINGS
  and """ + in_shard_sql("b.org_id") + """
"""

REPLAY_PACKS = """
select cp.id::text, cp.client_id::text, cp.sessions_total, coalesce(cp.sessions_used, 0),
       """ + loadable_time("cp.expires_at") + """  -- past Python's range (infinity): never expires
from public.client_purchases cp
join public.clients pc on pc.id = cp.client_id and pc.org_id = cp.org_id  -- as the tick's packs
where cp.client_id = any(%(clients)s::uuid[]) and cp.payment_status = 'succeeded' and cp.sessions_total is not null
  and (cp.expires_at is null or cp.expires_at > %(first)s)
"""

REPLAY_PACK_BOOKINGS = """
select b.id::text, b.client_id::text, b.purchase_id::text, b.start_time, b.status
from public.bookings b
where b.client_id = any(%(clients)s::uuid[]) and b.purchase_id is not null and b.start_time > %(first)s
  and """ + loadable("b.start_time") + """ and b.status in ('confirmed', 'pending', 'completed')
"""

# Keys of texts a booking already has, the app's translated to booking-cron's `kind:schedule:booking`
# (the app's count once it queued or sent them; its failed or cancelled ones do not, nor rows an
# API role queued through the app's functions (queued_by, migration 0050): planted, they would
# silence the reminder for good once the app's worker is off).
EXISTING_KEYS = f"""
select case when ident.by_app
            then ident.kind || ':' || coalesce(ident.schedule_id::text, '-') || ':' || m.related_entity_id::text
            else m.idempotency_key end
from public.sms_messages m
{TEXT_IDENTITY}
where m.related_entity_id = any(%(ids)s::uuid[]) and m.idempotency_key is not null
  and not (m.status = 'cancelled' and m.error_code = 'booking_rescheduled')
  and not (ident.by_app and (ident.kind is null or m.status in ('failed', 'cancelled')
                             or coalesce(m.queued_by, '') in ('anon', 'authenticated')))
"""

# A text cancelled because its booking moved may be queued again (same key, one row, one send).
ENQUEUE = """
insert into public.sms_messages as m (org_id, client_id, to_phone, from_phone, messaging_service_sid, body,
  related_entity_type, related_entity_id, idempotency_key, kind, schedule_id, status, scheduled_for,
  expires_at, session_start, error_code, flow_run_id)
select t.org_id, t.client_id, t.to_phone, t.from_phone, t.mss, t.body, 'booking', t.booking_id, t.key, t.kind,
       t.schedule_id, t.status, t.scheduled_for, t.expires_at, t.session_start, t.reason, coalesce(t.run, %(run)s::uuid)
from unnest(%(org)s::uuid[], %(client)s::uuid[], %(to)s::text[], %(from)s::text[], %(mss)s::text[],
            %(body)s::text[], %(booking)s::uuid[], %(key)s::text[], %(kind)s::text[], %(schedule)s::uuid[],
            %(status)s::text[], %(sched_for)s::timestamptz[], %(expires)s::timestamptz[],
            %(start)s::timestamptz[], %(reason)s::text[], %(runs)s::uuid[])
  as t(org_id, client_id, to_phone, from_phone, mss, body, booking_id, key, kind, schedule_id, status,
       scheduled_for, expires_at, session_start, reason, run)
on conflict (idempotency_key) do update
  set status = excluded.status, body = excluded.body, to_phone = excluded.to_phone,
      scheduled_for = excluded.scheduled_for, expires_at = excluded.expires_at,
      session_start = excluded.session_start, error_code = excluded.error_code,
      flow_run_id = excluded.flow_run_id, attempts = 0, updated_at = now()
  where m.status = 'cancelled' and m.error_code = 'booking_rescheduled'
returning m.idempotency_key
"""

# Claim due texts with a lease. A 'sending' row whose lease ran out belonged to a sender that
# died mid-send: it comes back flagged, and is looked up at the provider before any resend.
# A text whose sender is not assigned to its org waits unclaimed until it is (or until it is
# stale, when the sender expires it without sending).
CLAIM = """
with due as (
  select m.id, m.status as was, m.locked_until as was_until,
         coalesce(m.attempted_at, m.updated_at) as was_attempted from public.sms_messages m
  where m.kind is not null and """ + in_shard_sql("m.org_id") + """
    and ((m.status = 'unknown'  -- fate unknown: looked up again by every later tick (once a tick) until it is settled
          and m.flow_run_id is distinct from %(run)s::uuid)
      or (m.status = 'scheduled' and m.scheduled_for <= %(now)s and (m.locked_until is null or m.locked_until < %(now)s)
          and (m.expires_at <= %(now)s or booking_cron.sender_assigned(m.org_id, m.from_phone, m.messaging_service_sid)))
      or (m.status = 'sending' and m.locked_until < %(now)s))
  order by m.status = 'unknown' desc, m.scheduled_for, m.id  -- reconcile before new sends
  limit %(limit)s
  for update skip locked
)
update public.sms_messages m
set status = 'sending', locked_until = %(now)s + %(lease)s, attempts = m.attempts + 1,
    flow_run_id = %(run)s, updated_at = now()
from due
where m.id = due.id
returning m.id::text, m.idempotency_key, m.kind, m.schedule_id::text, m.related_entity_id::text, m.org_id::text,
          m.client_id::text, m.to_phone, nullif(m.from_phone, ''), m.messaging_service_sid, m.body,
          m.expires_at, m.attempts, due.was = 'sending',
          case when due.was = 'sending' then due.was_until - %(lease)s end,
          due.was = 'unknown', case when due.was = 'unknown' then due.was_attempted end, m.created_at
"""

CLAIM_LOST = "claim_lost"

# The claim fence: the text must still be this sender's claim (its lease may have run out and
# another sender reclaimed it, bumping attempts). Held FOR UPDATE through the send, so no one
# else can claim it meanwhile (CLAIM skips locked rows).
LOCK_CLAIM = """
select 1 from public.sms_messages m
where m.id = %(id)s and m.status = 'sending' and m.attempts = %(attempts)s
for update
"""

# Why a text must not go now. Read after LOCK_BOOKING, so that a cancellation committed before
# the send is seen, and one attempted during the send waits for it to finish.
LOCK_BOOKING = """
select 1 from public.bookings b
where b.id = (select m.related_entity_id from public.sms_messages m where m.id = %(id)s)
for share
"""

BLOCKER = """
select case
  when b.id is null then 'booking_deleted'
  when m.kind <> 'feedback_request' and b.status <> 'confirmed' then 'booking_' || b.status
  when m.kind = 'feedback_request' and b.status <> 'completed' then 'booking_' || b.status
  when m.session_start is not null and b.start_time <> m.session_start then 'booking_rescheduled'
  when m.kind = 'unconfirmed_reminder' and coalesce(b.client_confirmed, false) then 'client_confirmed'
  when m.kind = 'feedback_request' and not coalesce(c.sms_followup_enabled, true) then 'opted_out'
  when m.kind <> 'feedback_request' and not coalesce(c.sms_reminder_enabled, true) then 'opted_out'
  when exists (select 1 from public.sms_suppression x where x.org_id = m.org_id and x.phone = m.to_phone)
    then 'suppressed'
  when not booking_cron.sender_assigned(m.org_id, m.from_phone, m.messaging_service_sid)
    then '""" + SENDER_NOT_ASSIGNED + """'
end
from public.sms_messages m
left join public.bookings b on b.id = m.related_entity_id
left join public.clients c on c.id = m.client_id
where m.id = %(id)s
"""


@dataclass(frozen=True, slots=True)
class ClaimedText:
    id: str
    key: str
    kind: str
    schedule_id: str | None
    booking_id: str
    org_id: str
    client_id: str | None
    to_phone: str
    from_phone: str | None
    messaging_service_sid: str | None
    body: str
    expires_at: datetime
    attempts: int
    reclaimed: bool
    previous_claim_at: datetime | None  # when the sender that died claimed it (reclaimed texts)
    unknown: bool = False  # its fate was unknown: look it up before anything else
    attempted_at: datetime | None = None  # real time its last send attempt began (unknown texts)
    created_at: datetime | None = None  # real time it was queued: no send of it can be older


def window_params(first: datetime, last: datetime, ahead: timedelta) -> dict:
    """BOOKINGS' and REPLAY_BOOKINGS' window bounds, for ticks from `first` to `last` (plan.owing_window)."""
    return asdict(owing_window(first, last, ahead))


def _texting_orgs(cur) -> tuple[dict[str, OrgTexting], dict[str, list[Schedule]]]:
    """Orgs that text and their schedules, after rewriting hand-stored suppressions in E.164 so that
    they match the numbers texts go to."""
    normalise_suppressions(cur)
    orgs = {row[0]: OrgTexting(*row) for row in cur.execute(ORGS, org_default_params())}
    schedules: dict[str, list[Schedule]] = {}
    for row in cur.execute(SCHEDULES):
        schedules.setdefault(row[1], []).append(Schedule(*row))
    return orgs, schedules


class Outbox:
    def __init__(self, url: str | None = None):
        self.url = database.resolve_url(url)

    def _cursor(self, dry_run: bool = False):
        return database.transaction(self.url, dry_run)

    def planning_inputs(self, tick_at: datetime, shard: Shard = ALL, dry_run: bool = False):
        """Orgs that text, their schedules, candidate bookings and keys already in the outbox
        (suppressions stored by hand are first rewritten in E.164, so that they match)."""
        with self._cursor(dry_run) as cur:
            orgs, schedules = _texting_orgs(cur)
            params = {"t": tick_at, "shard": shard.index, "shards": shard.count,
                      **window_params(tick_at, tick_at, lookahead(schedules))}
            bookings = [BookingForTexts(*row) for row in cur.execute(BOOKINGS, params)]
            keys = {k for (k,) in cur.execute(EXISTING_KEYS, {"ids": [b.booking_id for b in bookings]})}
        return orgs, schedules, bookings, keys

    def replay_inputs(self, first: datetime, last: datetime, shard: Shard = ALL) -> ReplayInputs:
        """What replay_texts needs for the slots from `first` to `last` (one backfill day)."""
        with self._cursor() as cur:
            orgs, schedules = _texting_orgs(cur)
            ahead = lookahead(schedules)
            params = {"first": first, "last": last, "shard": shard.index, "shards": shard.count,
                      **window_params(first, last, ahead)}
            bookings = [BookingForTexts(*row) for row in cur.execute(REPLAY_BOOKINGS, params)] if orgs else []
            params["clients"] = list({b.client_id for b in bookings})
            packs = [Pack(*row) for row in cur.execute(REPLAY_PACKS, params)] if bookings else []
            booked = [PackBooking(*row) for row in cur.execute(REPLAY_PACK_BOOKINGS, params)] if packs else []
            keys = {k for (k,) in cur.execute(EXISTING_KEYS, {"ids": [b.booking_id for b in bookings]})}
        return ReplayInputs(orgs, schedules, bookings, packs, booked, keys, ahead)

    def enqueue(self, run_id: str, planned: Sequence[PlannedText], dry_run: bool = False,
                runs: Sequence[str] | None = None) -> set[str]:
        """Write planned texts in one statement (`runs`: a backfill's per-text slot runs); returns the
        keys this call wrote."""
        if not planned:
            return set()
        cols = {
            "org": [p.org_id for p in planned], "client": [p.client_id for p in planned],
            "to": [p.to_phone for p in planned], "from": [p.from_phone for p in planned],
            "mss": [p.messaging_service_sid for p in planned], "body": [p.body for p in planned],
            "booking": [p.booking_id for p in planned], "key": [p.key for p in planned],
            "kind": [p.kind for p in planned], "schedule": [p.schedule_id for p in planned],
            "status": [stored_status(p.status) for p in planned], "sched_for": [p.scheduled_for for p in planned],
            "expires": [p.expires_at for p in planned], "start": [p.session_start for p in planned],
            "reason": [p.reason for p in planned], "run": run_id,
            "runs": list(runs) if runs is not None else None,
        }
        with self._cursor(dry_run) as cur:
            cur.execute(ENQUEUE, cols)
            return {k for (k,) in cur}

    def claim(self, run_id: str, now: datetime, limit: int, lease: timedelta, shard: Shard = ALL) -> list[ClaimedText]:
        with self._cursor() as cur:
            cur.execute(CLAIM, {"run": run_id, "now": now, "limit": limit, "lease": lease,
                                "shard": shard.index, "shards": shard.count})
            return [ClaimedText(*row) for row in cur]

    def sending_context(self, texts: Sequence[ClaimedText], now: datetime) -> tuple[dict[str, QuietHours], SendBudget]:
        """Quiet hours of the orgs that still text, and what their caps leave to send."""
        orgs = list({t.org_id for t in texts})
        clients = list({t.client_id for t in texts if t.client_id})
        with self._cursor() as cur:
            rows = cur.execute(
                f"""select s.org_id::text, {org_sql.TIMEZONE}, {org_sql.QUIET_HOURS_START},
                          {org_sql.QUIET_HOURS_END}, {org_sql.MAX_SMS_PER_HOUR},
                          {org_sql.MAX_SMS_PER_CLIENT_PER_DAY},
                          (select count(*) from public.sms_messages m where m.org_id = s.org_id
                             and m.sent_at > %(now)s - interval '1 hour')::int
                   from public.sms_settings s left join public.booking_settings bs on bs.org_id = s.org_id
                   where s.org_id = any(%(orgs)s::uuid[]) and s.enabled""",
                org_default_params(orgs=orgs, now=now)).fetchall()
            per_client = dict(cur.execute(
                """select client_id::text, count(*)::int from public.sms_messages
                   where client_id = any(%(clients)s::uuid[]) and sent_at > %(now)s - interval '24 hours'
                   group by client_id""", {"clients": clients, "now": now}).fetchall())
        quiet = {org: QuietHours(tz, start, end) for org, tz, start, end, *_ in rows}
        budget = SendBudget(
            max_per_hour={r[0]: r[4] for r in rows}, max_per_client_per_day={r[0]: r[5] for r in rows},
            sent_last_hour={r[0]: r[6] for r in rows}, sent_last_day=per_client)
        return quiet, budget

    def receipt_counts(self, tick_at: datetime) -> dict[str, int]:
        """Texts that went out in the 48 hours to `tick_at`: delivered, undelivered (failed after
        the send) and awaiting a receipt (still `sent`)."""
        with self._cursor() as cur:
            row = cur.execute(
                """select count(*) filter (where status = 'delivered'),
                          count(*) filter (where status = 'failed'),
                          count(*) filter (where status = 'sent')
                   from public.sms_messages
                   where sent_at > %(t)s - interval '48 hours' and status in ('sent', 'delivered', 'failed')""",
                {"t": tick_at}).fetchone()
        return dict(zip(("delivered", "undelivered", "awaiting_receipt"), row))

    @contextmanager
    def send_guard(self, message_id: str, attempts: int) -> Iterator[tuple[str | None, psycopg.Connection]]:
        """Holds the claim and the booking's share lock while the caller sends and settles on the
        same connection; yields why the text must not go (CLAIM_LOST, a reason, or None)."""
        with database.connection(self.url) as conn:
            with conn.transaction():
                if conn.execute(LOCK_CLAIM, {"id": message_id, "attempts": attempts}).fetchone() is None:
                    yield CLAIM_LOST, conn
                    return
                conn.execute(LOCK_BOOKING, {"id": message_id})
                row = conn.execute(BLOCKER, {"id": message_id}).fetchone()
                yield (row[0] if row else "message_deleted"), conn

    def settle(self, message_id: str, attempts: int, status: str, *, sid: str | None = None,
               code: str | None = None, detail: str | None = None, until: datetime | None = None,
               sent_at: datetime | None = None, attempted_at: datetime | None = None,
               conn: psycopg.Connection | None = None) -> None:
        """Record a text's fate (or put it back in the queue, with `until` as its new time), only
        while it is still this claim (status sending, same attempts): a sender that outlived its
        lease changes nothing."""
        if conn is None:
            with database.connection(self.url) as own:
                return self.settle(message_id, attempts, status, sid=sid, code=code, detail=detail, until=until,
                                   sent_at=sent_at, attempted_at=attempted_at, conn=own)
        with conn.cursor() as cur:
            cur.execute(
                """update public.sms_messages
                   set status = %(status)s, provider_message_id = coalesce(%(sid)s, provider_message_id),
                       error_code = %(code)s, error_message = %(detail)s, locked_until = null,
                       scheduled_for = coalesce(%(until)s, scheduled_for),
                       sent_at = coalesce(%(sent_at)s, sent_at),
                       attempted_at = coalesce(%(attempted_at)s, attempted_at), updated_at = now()
                   where id = %(id)s and status = 'sending' and attempts = %(attempts)s""",
                {"status": stored_status(status), "sid": sid, "code": code, "detail": detail, "until": until,
                 "sent_at": sent_at, "attempted_at": attempted_at, "id": message_id, "attempts": attempts})

    def sids_taken(self, text: ClaimedText) -> frozenset[str]:
        """Provider sids other texts of the same number and body already hold: a look-up for this
        text must not take one of them (two sessions at one time can share a body)."""
        with self._cursor() as cur:
            rows = cur.execute(
                """select provider_message_id from public.sms_messages
                   where to_phone = %s and body = %s and id <> %s and provider_message_id is not null""",
                (text.to_phone, text.body, text.id)).fetchall()
        return frozenset(sid for (sid,) in rows)

    def suppress(self, org_id: str, phone: str, reason: str, conn: psycopg.Connection) -> None:
        with conn.cursor() as cur:
            cur.execute(SUPPRESS, (org_id, phone, reason))
