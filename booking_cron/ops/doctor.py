"""`doctor`: what makes running beside the app on Supabase unsafe, each hazard with its fix.

Read-only. It looks for open doors (API roles that can execute booking-cron's functions or reach
its tables), the app's own housekeeping still running beside the tick (completions and texts
booking-cron did not make), packs whose ledger disagrees, migrations not applied yet,
booking-cron objects that a superuser owns in a database whose owner is not one, and orgs that
text from a sender the platform did not assign to them (claimed by several orgs, or by one).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from booking_cron.ops.audit import LEDGER_DISAGREES
from booking_cron.reporting.operator_text import printable
from booking_cron.storage.schema import FUNCTIONS, MIGRATIONS_DIR, misowned_fix, ownership
from booking_cron.sms import senders

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
# authenticated not the batch forms and helpers (the app never calls them); service_role no helper;
# none of them anything in booking-cron's own schema (the callable functions' privileged part).
FUNCTIONS_OPEN = r"""
select r.rolname, p.oid::regprocedure::text
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
cross join pg_catalog.pg_roles r
where r.rolname = any(%(roles)s)
  and has_function_privilege(r.oid, p.oid, 'execute')
  and (n.nspname = 'booking_cron'
       or (n.nspname = 'public'
           and (p.proname = any(%(ours)s) or p.proname like 'booking\_cron\_%%')
           and (r.rolname = 'anon'
                or (r.rolname = 'authenticated' and (p.proname in ('use_sessions', 'release_sessions')
                                                    or p.proname like 'booking\_cron\_%%'))
                or (r.rolname = 'service_role' and p.proname like 'booking\_cron\_%%'))))
order by 2, 1
"""

# The app's functions that write the outbox with their owner's rights (its insert_sms_direct), when
# an API role may call them: a planted text would go out in the org's name.
OUTBOX_WRITERS = r"""
select r.rolname, p.oid::regprocedure::text
from pg_catalog.pg_proc p
join pg_catalog.pg_namespace n on n.oid = p.pronamespace
cross join pg_catalog.pg_roles r
where n.nspname = 'public' and p.prosecdef and r.rolname in ('anon', 'authenticated')
  and p.prosrc ~* 'insert\s+into\s+(public\.)?sms_messages'
  and p.proname not like 'booking\_cron\_%%'
  and has_function_privilege(r.oid, p.oid, 'execute')
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
select count(*) over ()::int, b.id::text, b.end_time, c.full_name, o.name
from public.bookings b
left join public.clients c on c.id = b.client_id
left join public.orgs o on o.id = b.org_id
where b.status = 'completed' and b.purchase_id is not null
  and b.end_time > now() - interval '{RECENT}' and b.end_time <= now()
  and not exists (select 1 from public.tick_completions tc where tc.booking_id = b.id)
  and not exists (select 1 from public.session_usage su where su.booking_id = b.id)
order by b.id
limit 1
"""

# Whose a pack is, for a hazard's words.
PACK_OWNER = """
select c.full_name, o.name from public.client_purchases p
left join public.clients c on c.id = p.client_id
left join public.orgs o on o.id = p.org_id
where p.id::text = %s
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
    hazards += _superuser_owned(conn) + _open_functions(conn) + _outbox_writers(conn) + _open_tables(conn)
    if not pending:
        hazards += _app_still_running(conn) + _ledger(conn) + _senders(conn)
    conn.rollback()
    return hazards


def _one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row of a query that always returns one (an aggregate, or a select without from)."""
    if row is None:
        raise RuntimeError("the query returned no row")
    return row


def _pending_migrations(conn: psycopg.Connection) -> list[str]:
    wanted = sorted(p.stem for p in MIGRATIONS_DIR.glob("*.sql") if not p.stem.startswith("post-apply"))
    (table,) = _one(conn.execute("select to_regclass('public._yoyo_migration')").fetchone())
    if table is None:
        return wanted
    applied = {m for (m,) in conn.execute("select migration_id from public._yoyo_migration")}
    return [m for m in wanted if m not in applied]


def _superuser_owned(conn: psycopg.Connection) -> list[Hazard]:
    own = ownership(conn)
    return [Hazard("owned_by_superuser", name,
                   f"{kind} {name} belongs to superuser {owner}: "
                   + ("as a security definer function it runs with every privilege" if kind == "function"
                      else f"the database owner {own.database_owner} cannot upgrade it"),
                   misowned_fix(own))
            for kind, name, owner in own.misowned]


def _open_functions(conn: psycopg.Connection) -> list[Hazard]:
    return [Hazard("api_can_execute", function, f"role {role} can execute {function} through the API",
                   f"revoke execute on function {function} from {role}; or {UPGRADE}")
            for role, function in conn.execute(FUNCTIONS_OPEN, {"roles": list(API_ROLES),
                                                                "ours": list(FUNCTIONS)})]


def _outbox_writers(conn: psycopg.Connection) -> list[Hazard]:
    return [Hazard("api_can_write_outbox", function,
                   f"role {role} can queue texts through the app's {function}, as any org",
                   f"revoke execute on function {function} from {role}; or {UPGRADE}")
            for role, function in conn.execute(OUTBOX_WRITERS)]


def _api_roles(conn: psycopg.Connection) -> list[str]:
    """The API roles this cluster has (Supabase's; none on a plain PostgreSQL)."""
    return [r for (r,) in conn.execute("select rolname from pg_catalog.pg_roles where rolname = any(%s)",
                                       (list(API_ROLES),))]


def _open_tables(conn: psycopg.Connection) -> list[Hazard]:
    roles = _api_roles(conn)
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
        (oid,) = _one(conn.execute("select to_regclass(%s)::oid", (f"public.{table}",)).fetchone())
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
    return [p for p, held in zip(privileges, _one(row)) if held]


def _app_still_running(conn: psycopg.Connection) -> list[Hazard]:
    hazards = []
    row = conn.execute(APP_COMPLETIONS).fetchone()
    if row:
        completed, example, ended, client, org = row
        hazards.append(Hazard(
            "app_auto_complete_active", example,
            f"{completed} booking(s) on a pack completed in the last {RECENT} outside booking-cron, e.g. "
            f"{_whose(client, org)} session that ended {ended:%Y-%m-%d %H:%M %Z}",
            "turn off the app's auto-complete: the AUTO-COMPLETE step of the cron-sms-reminders edge function "
            "and the calendar page's completion of past bookings; the tick completes and deducts them"))
    sent, queued = _one(conn.execute(APP_TEXTS).fetchone())
    if sent:
        hazards.append(Hazard("app_sms_worker_active", "sms_messages",
                              f"the app sent {sent} text(s) in the last {RECENT}",
                              "unschedule the app's sms-worker edge function once its queue is empty"))
    if queued:
        hazards.append(Hazard("app_sms_reminders_active", "sms_messages",
                              f"the app queued {queued} text(s) in the last {RECENT}",
                              "unschedule the app's cron-sms-reminders edge function; booking-cron queues them"))
    return hazards


def _whose(client: str | None, org: str | None) -> str:
    """`client "Ava Nguyen" of org "Peak Form PT"'s`: names written through the app, as printable text."""
    return (f'client "{printable(client)}"' if client is not None else "an unknown client") + \
        (f' of org "{printable(org)}"' if org is not None else "") + "'s"


def _ledger(conn: psycopg.Connection) -> list[Hazard]:
    hazards = []
    for pack, detail in conn.execute(LEDGER_DISAGREES).fetchall():
        owner = conn.execute(PACK_OWNER, (pack,)).fetchone() or (None, None)
        hazards.append(Hazard("ledger_disagrees", pack, f"{_whose(*owner)} pack: {detail}",
                              "find who changed the pack or its ledger rows outside booking-cron (`booking-cron audit`), "
                              "then correct sessions_used through the app's Edit package form (it is recorded)"))
    return hazards


def _senders(conn: psycopg.Connection) -> list[Hazard]:
    """Orgs that text from a sender the platform did not assign to them: their texts wait unsent."""
    hazards = []
    roles = _api_roles(conn)
    (oid,) = _one(conn.execute("select to_regclass('booking_cron.senders')::oid").fetchone())
    for role in roles:
        held = _privileges(conn, role, oid, ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"))
        if held:
            hazards.append(Hazard("api_can_reach_table", "booking_cron.senders",
                                  f"role {role} holds {', '.join(held)} on booking_cron.senders, which says "
                                  "which org may send from which number", f"revoke all on booking_cron.senders "
                                  f"from {role}; or {UPGRADE}"))
    claims = senders.unassigned_claims(conn)
    shared: dict[tuple[str, str], list[senders.Claim]] = {}
    for claim in claims:
        if claim.claimed_by > 1:
            shared.setdefault((claim.kind, claim.sender), []).append(claim)
        else:
            hazards.append(_not_assigned(claim))
    hazards += [_claimed_by_several(kind, sender, group) for (kind, sender), group in shared.items()]
    return hazards


def _not_assigned(claim: senders.Claim) -> Hazard:
    where = f"assigned to org {claim.assigned_to}" if claim.assigned_to else "assigned to no org"
    detail = (f'org {claim.org_id} ("{printable(claim.org_name)}") texts from '
              f"{senders.shown(claim.kind, claim.sender)}, which is {where}: its texts wait unsent")
    own = "set the org's own sender in its sms_settings (as service_role)"
    if not senders.valid(claim.kind, claim.sender):
        return Hazard("sender_not_assigned", claim.org_id, detail, own)
    unassign = (f"`booking-cron senders unassign --{senders.option(claim.kind)} {claim.sender}`, then "
                if claim.assigned_to else "")
    assign = senders.assign_command(claim.org_id, claim.kind, claim.sender)
    return Hazard("sender_not_assigned", claim.org_id, detail,
                  f"if {claim.sender} is this org's: {unassign}`{assign}`; otherwise {own}")


def _claimed_by_several(kind: str, sender: str, waiting: list[senders.Claim]) -> Hazard:
    holder, named = waiting[0].assigned_to, senders.shown(kind, sender)
    orgs = ", ".join(c.org_id for c in waiting)
    if holder:
        detail = (f"{waiting[0].claimed_by} orgs that text name {named} in their sms_settings; it is assigned to "
                  f"org {holder}, which alone sends from it; the texts of org(s) {orgs} wait unsent")
        fix = (f"give org(s) {orgs} their own sender (in their sms_settings, as service_role, or "
               f"`booking-cron senders assign --org ORG --{senders.option(kind)} SENDER`); if {sender} is not "
               f"{holder}'s: `booking-cron senders unassign --{senders.option(kind)} {sender}` and assign it to its org")
    elif senders.valid(kind, sender):
        detail = (f"{waiting[0].claimed_by} orgs that text name {named} in their sms_settings and it is assigned "
                  f"to none of them: the texts of org(s) {orgs} wait unsent")
        fix = (f"`{senders.assign_command('ORG', kind, sender)}` with the org it belongs to; give the others "
               "their own sender")
    else:
        detail = f"{waiting[0].claimed_by} orgs that text name {named}: the texts of org(s) {orgs} wait unsent"
        fix = "give each its own sender in its sms_settings (as service_role)"
    return Hazard("sender_claimed_by_several_orgs", named, detail, fix)
