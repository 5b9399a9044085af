"""`doctor`: what makes running beside the app on Supabase unsafe, each hazard with its fix.

Read-only. It looks for open doors (API roles that can execute booking-cron's functions or reach
its tables), the app's own housekeeping still running beside the tick (completions and texts
booking-cron did not make), packs whose ledger disagrees, and migrations not applied yet.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg

from booking_cron.audit import LEDGER_DISAGREES
from booking_cron.schema import MIGRATIONS_DIR

API_ROLES = ("anon", "authenticated", "service_role")
RECENT = "24 hours"


@dataclass(frozen=True)
class Hazard:
    hazard: str
    subject: str
    detail: str
    fix: str

    def as_dict(self) -> dict:
        return asdict(self)


# Which API role must not execute which of booking-cron's functions: anon none of them;
# authenticated not the batch forms and helpers (the app never calls them); service_role no helper.
FUNCTIONS_OPEN = r"""
select r.rolname, p.oid::regprocedure::text
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
cross join pg_catalog.pg_roles r
where n.nspname = 'public' and r.rolname = any(%(roles)s)
  and (p.proname in ('use_sessions', 'release_sessions', 'use_session', 'release_session', 'complete_booking')
       or p.proname like 'booking\_cron\_%%')
  and has_function_privilege(r.oid, p.oid, 'execute')
  and (r.rolname = 'anon'
       or (r.rolname = 'authenticated' and (p.proname in ('use_sessions', 'release_sessions')
                                           or p.proname like 'booking\_cron\_%%'))
       or (r.rolname = 'service_role' and p.proname like 'booking\_cron\_%%'))
order by 2, 1
"""

OWN_TABLES = r"""
select c.oid, c.relname, c.relrowsecurity from pg_catalog.pg_class c
join pg_catalog.pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'p')
  and (c.relname like 'tick\_%%' or c.relname = 'sms_inbound' or c.relname like '\_yoyo%%' or c.relname like 'yoyo\_%%')
order by c.relname
"""

# (table, privileges no API role in `roles` may hold on it)
GUARDED = [
    ("session_usage", ("INSERT", "UPDATE", "DELETE", "TRUNCATE"), API_ROLES),
    ("sms_messages", ("INSERT", "UPDATE", "DELETE", "TRUNCATE"), ("anon", "authenticated")),
]

APP_COMPLETIONS = f"""
select count(*)::int, min(b.id::text) from public.bookings b
where b.status = 'completed' and b.purchase_id is not null
  and b.end_time > now() - interval '{RECENT}' and b.end_time <= now()
  and not exists (select 1 from public.tick_completions tc where tc.booking_id = b.id)
  and not exists (select 1 from public.session_usage su where su.booking_id = b.id)
"""

APP_TEXTS = f"""
select count(*) filter (where m.sent_at > now() - interval '{RECENT}')::int,
       count(*) filter (where m.created_at > now() - interval '{RECENT}' and m.status in ('pending', 'queued'))::int
from public.sms_messages m
where m.kind is null
"""

UPGRADE = "run `booking-cron db upgrade` as the database owner (it re-applies the lockdown every time)"


def diagnose(conn: psycopg.Connection) -> list[Hazard]:
    """Every hazard found, in the order an operator fixes them."""
    pending = _pending_migrations(conn)
    hazards = [Hazard("migrations_pending", ", ".join(pending[:3]) + (" ..." if len(pending) > 3 else ""),
                      f"{len(pending)} booking-cron migration(s) not applied", UPGRADE)] if pending else []
    hazards += _open_functions(conn) + _open_tables(conn)
    if not pending:
        hazards += _app_still_running(conn) + _ledger(conn)
    conn.rollback()
    return hazards


def _pending_migrations(conn: psycopg.Connection) -> list[str]:
    wanted = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql") if not p.stem.startswith("post-apply"))
    if conn.execute("select to_regclass('public._yoyo_migration')").fetchone()[0] is None:
        return wanted
    applied = {m for (m,) in conn.execute("select migration_id from public._yoyo_migration")}
    return [m for m in wanted if m not in applied]


def _open_functions(conn: psycopg.Connection) -> list[Hazard]:
    return [Hazard("api_can_execute", function, f"role {role} can execute {function} through the API",
                   f"revoke execute on function {function} from {role}; or {UPGRADE}")
            for role, function in conn.execute(FUNCTIONS_OPEN, {"roles": list(API_ROLES)})]


def _open_tables(conn: psycopg.Connection) -> list[Hazard]:
    roles = [r for (r,) in conn.execute("select rolname from pg_catalog.pg_roles where rolname = any(%s)",
                                        (list(API_ROLES),))]
    hazards = []
    for oid, table, rls in conn.execute(OWN_TABLES).fetchall():
        for role in roles:
            held = _privileges(conn, role, oid, ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"))
            if held:
                hazards.append(Hazard("api_can_reach_table", table, f"role {role} holds {', '.join(held)} on {table}",
                                      f"revoke all on public.{table} from {role}; or {UPGRADE}"))
        if roles and not rls:
            hazards.append(Hazard("api_table_without_rls", table, f"{table} has row-level security off",
                                  f"alter table public.{table} enable row level security; or {UPGRADE}"))
    for table, privileges, guarded in GUARDED:
        oid = conn.execute("select to_regclass(%s)::oid", (f"public.{table}",)).fetchone()[0]
        for role in (r for r in roles if r in guarded and oid is not None):
            held = _privileges(conn, role, oid, privileges)
            if held:
                hazards.append(Hazard("api_can_write_table", table,
                                      f"role {role} holds {', '.join(held)} on {table}, which booking-cron trusts",
                                      f"revoke {', '.join(held).lower()} on public.{table} from {role}; or {UPGRADE}"))
    return hazards


def _privileges(conn: psycopg.Connection, role: str, oid: int, privileges: tuple[str, ...]) -> list[str]:
    row = conn.execute("select " + ", ".join(f"has_table_privilege(%(r)s, %(t)s::oid, '{p}')" for p in privileges),
                       {"r": role, "t": oid}).fetchone()
    return [p for p, held in zip(privileges, row) if held]


def _app_still_running(conn: psycopg.Connection) -> list[Hazard]:
    hazards = []
    completed, example = conn.execute(APP_COMPLETIONS).fetchone()
    if completed:
        hazards.append(Hazard(
            "app_auto_complete_active", example,
            f"{completed} booking(s) on a pack completed in the last {RECENT} outside booking-cron",
            "turn off the app's auto-complete: the AUTO-COMPLETE step of the cron-sms-reminders edge function "
            "and the calendar page's completion of past bookings; the tick completes and deducts them"))
    sent, queued = conn.execute(APP_TEXTS).fetchone()
    if sent:
        hazards.append(Hazard("app_sms_worker_active", "sms_messages",
                              f"the app sent {sent} text(s) in the last {RECENT}",
                              "unschedule the app's sms-worker edge function once its queue is empty"))
    if queued:
        hazards.append(Hazard("app_sms_reminders_active", "sms_messages",
                              f"the app queued {queued} text(s) in the last {RECENT}",
                              "unschedule the app's cron-sms-reminders edge function; booking-cron queues them"))
    return hazards


def _ledger(conn: psycopg.Connection) -> list[Hazard]:
    return [Hazard("ledger_disagrees", pack, detail,
                   "find who changed the pack or its ledger rows outside booking-cron (`booking-cron audit`), "
                   "then correct sessions_used through the app's Edit package form (it is recorded)")
            for pack, detail in conn.execute(LEDGER_DISAGREES)]
