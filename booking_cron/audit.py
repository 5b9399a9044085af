"""`audit`: checks the contract's invariants against the database, one query per invariant."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import psycopg


@dataclass(frozen=True)
class Violation:
    invariant: str
    subject: str
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


# (invariant name, query returning (subject, detail) rows)
CHECKS: list[tuple[str, str]] = [
    ("ledger_matches_sessions_used", """
        select cp.id::text, format('sessions_used %s but %s ledger rows', coalesce(cp.sessions_used, 0), count(su.id))
        from public.client_purchases cp
        left join public.session_usage su on su.purchase_id = cp.id
        group by cp.id, cp.sessions_used
        having coalesce(cp.sessions_used, 0) <> count(su.id)"""),
    ("one_deduction_per_booking", """
        select su.booking_id::text, format('%s ledger rows', count(*))
        from public.session_usage su where su.booking_id is not null
        group by su.booking_id having count(*) > 1"""),
    ("never_past_sessions_total", """
        select cp.id::text, format('sessions_used %s of %s', cp.sessions_used, cp.sessions_total)
        from public.client_purchases cp
        where cp.sessions_total is not null and coalesce(cp.sessions_used, 0) > cp.sessions_total"""),
    ("tick_completions_deducted_or_explained", """
        select tc.booking_id::text,
               case when tc.deduction is null then 'completed by a tick, no deduction outcome after a later finished tick'
                    else 'recorded as deducted but has no ledger row' end
        from public.tick_completions tc
        where tc.purchase_id is not null
          and ((tc.deduction is null and exists (
                  select 1 from public.tick_runs r
                  where r.state = 'finished' and r.started_at > tc.completed_at))
               or (tc.deduction = 'deducted' and not exists (
                  select 1 from public.session_usage su where su.booking_id = tc.booking_id)))"""),
]


def audit(conn: psycopg.Connection) -> list[Violation]:
    violations: list[Violation] = []
    with conn.cursor() as cur:
        for invariant, query in CHECKS:
            cur.execute(query)
            violations.extend(Violation(invariant, subject, detail) for subject, detail in cur)
    conn.rollback()
    return violations
