"""`audit`: checks the contract's invariants against the database, one query per invariant."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg

from booking_cron.storage.shard_sql import org_shard_sql
from booking_cron.sms.outbox import TEXT_IDENTITY


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


# Packs whose sessions_used differs from their ledger: the sessions its rows moved, less the
# bookings' sessions given back (released). Shared with `doctor`.
LEDGER_DISAGREES = """
        select cp.id::text, format('sessions_used %s but the ledger says %s', coalesce(cp.sessions_used, 0),
                                   coalesce(sum(su.sessions) filter (where su.released_at is null), 0))
        from public.client_purchases cp
        left join public.session_usage su on su.purchase_id = cp.id
        group by cp.id, cp.sessions_used
        having coalesce(cp.sessions_used, 0) <> coalesce(sum(su.sessions) filter (where su.released_at is null), 0)"""

# A later finished tick `r` covered booking `b`'s org: it ticked every org, or the org's shard.
COVERS_ORG = f"(r.shard_count = 1 or {org_shard_sql('b.org_id', 'r.shard_count')} = r.shard_index)"

# (invariant name, query returning (subject, detail) rows)
CHECKS: list[tuple[str, str]] = [
    ("ledger_matches_sessions_used", LEDGER_DISAGREES),
    ("one_deduction_per_booking", """
        select su.booking_id::text, format('%s ledger rows', count(*))
        from public.session_usage su where su.booking_id is not null
        group by su.booking_id having count(*) > 1"""),
    # booking-cron's deductions, as each recorded the pack when it took its session (migration 0050):
    # what the app's forms later write into sessions_total is the app's (see NOTICES)
    ("never_past_sessions_total", """
        select su.purchase_id::text, format('booking %s took session %s of %s', su.booking_id, su.pack_used_after,
                                            su.pack_total)
        from public.session_usage su
        where su.pack_used_after > su.pack_total"""),
    ("tick_completions_deducted_or_explained", """
        select tc.booking_id::text,
               case when tc.deduction is null then 'completed by a tick, no deduction outcome after a later finished tick'
                    else 'recorded as deducted but has no ledger row' end
        from public.tick_completions tc join public.bookings b on b.id = tc.booking_id
        where tc.purchase_id is not null
          and ((tc.deduction is null and exists (
                  select 1 from public.tick_runs r
                  where r.state = 'finished' and r.started_at > tc.completed_at and """ + COVERS_ORG + """))
               or (tc.deduction = 'deducted' and not exists (
                  select 1 from public.session_usage su where su.booking_id = tc.booking_id)))"""),
    ("one_text_per_booking_kind_schedule", """
        select m.related_entity_id::text, format('%s %s texts sent for schedule %s', count(*), ident.kind,
                                                 coalesce(ident.schedule_id::text, '-'))
        from public.sms_messages m""" + TEXT_IDENTITY + """
        where m.status in ('sent', 'delivered') and ident.kind is not null
        group by m.related_entity_id, ident.kind, ident.schedule_id having count(*) > 1"""),
    ("no_text_after_expiry", """
        select m.id::text, format('%s sent at %s, stale from %s', m.kind, m.sent_at, m.expires_at)
        from public.sms_messages m
        where m.status in ('sent', 'delivered') and m.sent_at >= m.expires_at"""),
    ("no_text_to_a_suppressed_number", """
        select m.id::text, format('%s sent after the number was suppressed (%s)', m.kind, x.reason)
        from public.sms_messages m
        join public.sms_suppression x on x.org_id = m.org_id and x.phone = m.to_phone
        where m.status in ('sent', 'delivered') and x.created_at < m.sent_at"""),
    # A STOP the webhooks recorded, not lifted by a START before the send (the suppression row
    # may have been removed since, so the replies are the record).
    ("no_text_after_opt_out", """
        select m.id::text, format('%s sent at %s after an opt-out at %s', m.kind, m.sent_at, stop.received_at)
        from public.sms_messages m
        join public.sms_inbound stop on stop.from_phone = m.to_phone and m.org_id = any(stop.org_ids)
          and stop.action = 'opt_out' and stop.received_at < m.sent_at
        where m.status in ('sent', 'delivered')
          and not exists (select 1 from public.sms_inbound start
                          where start.from_phone = m.to_phone and m.org_id = any(start.org_ids)
                            and start.action = 'opt_in' and start.received_at > stop.received_at
                            and start.received_at < m.sent_at)"""),
    ("no_text_in_quiet_hours", """
        select m.id::text, format('%s sent at %s local', m.kind, (m.sent_at at time zone bs.timezone)::time)
        from public.sms_messages m""" + TEXT_IDENTITY + """
        join public.sms_settings s on s.org_id = m.org_id
        join public.booking_settings bs on bs.org_id = m.org_id
        cross join lateral (select extract(hour from m.sent_at at time zone bs.timezone)::int as h) local
        where m.status in ('sent', 'delivered') and ident.kind is not null
          and bs.timezone in (select name from pg_timezone_names)
          and ((s.quiet_hours_start < s.quiet_hours_end and local.h >= s.quiet_hours_start and local.h < s.quiet_hours_end)
            or (s.quiet_hours_start > s.quiet_hours_end and (local.h >= s.quiet_hours_start or local.h < s.quiet_hours_end)))"""),
    ("no_text_for_a_cancelled_booking", """
        select m.id::text, format('%s sent at %s, booking cancelled at %s', m.kind, m.sent_at, b.cancelled_at)
        from public.sms_messages m join public.bookings b on b.id = m.related_entity_id
        where m.status in ('sent', 'delivered') and b.status = 'cancelled' and b.cancelled_at < m.sent_at"""),
    ("cancelled_booking_gets_its_session_back", """
        select su.booking_id::text, format('cancelled at %s, its session still taken from pack %s after a later tick',
                                           b.cancelled_at, su.purchase_id)
        from public.session_usage su join public.bookings b on b.id = su.booking_id
        where b.status = 'cancelled' and su.released_at is null
          and exists (select 1 from public.tick_runs r
                      where r.state = 'finished' and r.started_at > coalesce(b.cancelled_at, b.updated_at)
                        and """ + COVERS_ORG + """)"""),
]


# The app's own data that looks tampered with: reported, never a violation (the app's API lets its
# users write it, so it says nothing about booking-cron).
NOTICES: list[tuple[str, str]] = [
    ("pack_past_sessions_total", """
        select cp.id::text, format('sessions_used %s of %s, as written outside booking-cron', cp.sessions_used,
                                   cp.sessions_total)
        from public.client_purchases cp
        where cp.sessions_total is not null and coalesce(cp.sessions_used, 0) > cp.sessions_total"""),
    # changes that still matter after the fact: allowed to the org's trainers, worth a look
    ("cancelled_after_it_started", """
        select b.id::text, format('cancelled at %s, after it started at %s: its session is given back', b.cancelled_at,
                                  b.start_time)
        from public.bookings b
        where b.status = 'cancelled' and b.cancelled_at > b.start_time
          and exists (select 1 from public.session_usage su where su.booking_id = b.id)"""),
    ("pack_unlinked_after_deduction", """
        select b.id::text, format('its session was taken from pack %s, and the booking now says %s', su.purchase_id,
                                  coalesce(b.purchase_id::text, 'no pack'))
        from public.session_usage su join public.bookings b on b.id = su.booking_id
        where su.released_at is null and b.purchase_id is distinct from su.purchase_id"""),
    ("booking_with_another_orgs_client", """
        select b.id::text, format('booking of org %s has client %s of org %s', b.org_id, c.id, c.org_id)
        from public.bookings b join public.clients c on c.id = b.client_id
        where c.org_id <> b.org_id"""),
]


def _findings(conn: psycopg.Connection, checks: list[tuple[str, str]]) -> list[Violation]:
    found: list[Violation] = []
    with conn.cursor() as cur:
        for name, query in checks:
            cur.execute(query)
            found.extend(Violation(name, subject, detail) for subject, detail in cur)
    conn.rollback()
    return found


def notices(conn: psycopg.Connection) -> list[Violation]:
    """What looks tampered with in the app's data; the audit still holds."""
    return _findings(conn, NOTICES)


def audit(conn: psycopg.Connection) -> list[Violation]:
    return _findings(conn, CHECKS)
