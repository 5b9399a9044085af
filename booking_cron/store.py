"""The bookings store: every read and write the tick makes to PostgreSQL, one method each.

Each write is one set-based statement over an id array, in its own transaction. With
dry_run the transaction is rolled back, so a dry run reports exactly what a tick would do.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Sequence


from booking_cron import database
from booking_cron.due import ALL, DueBooking, Rejected, Shard, in_shard_sql
from booking_cron.faults import crash_point
from booking_cron.results import COMPLETE, DEDUCT, REINSTATE, CountKey, StepResult

def loadable_time(column: str) -> str:
    """SQL for a timestamp column that yields null for times Python cannot hold (-infinity, BC)."""
    return f"case when isfinite({column}) and {column} >= '0001-01-01 00:00:00+00' then {column} end"


# Rows with such times come back with null times; triage rejects them.
FETCH_DUE = ("""
select b.id::text, b.purchase_id::text, {start}, {end}, false
from public.bookings b
where b.status = 'confirmed' and b.end_time <= %(tick_at)s and """ + in_shard_sql("b.org_id") + """
union all
select b.id::text, b.purchase_id::text, {start}, {end}, true
from public.tick_completions tc
join public.bookings b on b.id = tc.booking_id
where tc.deduction is null and """ + in_shard_sql("b.org_id") + """
""").format(start=loadable_time("b.start_time"), end=loadable_time("b.end_time"))

# %(runs)s: a backfill's per-booking slot run ids, parallel to the ids; null means %(run)s for all.
SLOT_RUNS = """
slot as (
  select x.id, x.run from unnest(%(ids)s::uuid[], %(runs)s::uuid[]) as x(id, run) where %(runs)s::uuid[] is not null
)"""

COMPLETE_BOOKINGS = """
with """ + SLOT_RUNS + """,
done as (
  update public.bookings b
  set status = 'completed', updated_at = now()
  where b.id = any(%(ids)s::uuid[]) and b.status = 'confirmed'
  returning b.id, b.purchase_id
),
marked as (
  insert into public.tick_completions (booking_id, purchase_id, flow_run_id, deduction)
  select d.id, d.purchase_id, coalesce(s.run, %(run)s::uuid), case when d.purchase_id is null then 'no_pack' end
  from done d left join slot s on s.id = d.id
  on conflict (booking_id) do nothing
),
outcomes as (
  select d.id, 'complete' as step, 'completed' as outcome, null as reason from done d
  union all
  select d.id, 'deduct', 'not_deducted', 'no_pack' from done d where d.purchase_id is null
  union all
  select x.id, 'complete', 'skipped', 'no_longer_confirmed'
  from unnest(%(ids)s::uuid[]) as x(id)
  where not exists (select 1 from done d where d.id = x.id)
),
recorded as (
  insert into public.tick_results (flow_run_id, booking_id, step, outcome, reason)
  select coalesce(s.run, %(run)s::uuid), o.id, o.step, o.outcome, o.reason
  from outcomes o left join slot s on s.id = o.id
  on conflict do nothing
)
select o.id::text, o.step, o.outcome, o.reason from outcomes o
where %(all)s or o.outcome <> 'completed'
"""

DEDUCT_SESSIONS = """
with """ + SLOT_RUNS + """,
outcome as (
  select u.booking_id, u.outcome from public.use_sessions(%(purchases)s::uuid[], %(ids)s::uuid[]) u
),
marked as (
  update public.tick_completions tc
  set deduction = coalesce(tc.deduction, o.outcome)
  from outcome o
  where tc.booking_id = o.booking_id
),
recorded as (
  insert into public.tick_results (flow_run_id, booking_id, step, outcome, reason)
  select coalesce(s.run, %(run)s::uuid), o.booking_id,
         'deduct',
         case when o.outcome = 'deducted' then 'deducted' else 'not_deducted' end,
         nullif(o.outcome, 'deducted')
  from outcome o left join slot s on s.id = o.booking_id
  on conflict do nothing
)
select o.booking_id::text, o.outcome from outcome o
"""

# Sessions taken for bookings that were cancelled since: given back through release_sessions(),
# once each (a concurrent tick's give-back comes back already_released and is not recorded).
# Only the ledger and the bookings' status are read; nothing here comes from an API-writable table
# of booking-cron's.
REINSTATE_CANCELLED = """
with owed as (
  select su.purchase_id, su.booking_id
  from public.session_usage su join public.bookings b on b.id = su.booking_id
  where b.status = 'cancelled' and su.released_at is null
    and """ + in_shard_sql("b.org_id") + """
),
given as (
  select r.booking_id, r.outcome
  from (select array_agg(o.purchase_id order by o.booking_id) as purchases,
               array_agg(o.booking_id order by o.booking_id) as bookings from owed o) a
  cross join lateral public.release_sessions(a.purchases, a.bookings) r
  where a.bookings is not null
),
recorded as (
  insert into public.tick_results (flow_run_id, booking_id, step, outcome)
  select %(run)s, g.booking_id, '""" + REINSTATE + """', 'reinstated' from given g where g.outcome = 'released'
  on conflict do nothing
)
select g.booking_id::text from given g where g.outcome = 'released'
"""

RECORD_RESULTS = """
insert into public.tick_results (flow_run_id, booking_id, step, outcome, reason, detail)
select coalesce(r.run, %(run)s::uuid), r.booking_id, r.step, r.outcome, r.reason, r.detail
from unnest(%(ids)s::uuid[], %(steps)s::text[], %(outcomes)s::text[], %(reasons)s::text[], %(details)s::jsonb[],
            %(runs)s::uuid[])
  as r(booking_id, step, outcome, reason, detail, run)
on conflict (flow_run_id, booking_id, step)
  do update set outcome = excluded.outcome, reason = excluded.reason, recorded_at = now(),
                detail = coalesce(tick_results.detail, '{}') || coalesce(excluded.detail, '{}')
"""


class BookingStore:
    """PostgreSQL through psycopg 3; `url=None` means DATABASE_URL or the embedded server."""

    def __init__(self, url: str | None = None):
        self.url = database.resolve_url(url)

    def _transaction(self, dry_run: bool = False):
        return database.transaction(self.url, dry_run)

    def fetch_due(self, tick_at: datetime, shard: Shard = ALL) -> list[DueBooking]:
        with self._transaction() as cur:
            cur.execute(FETCH_DUE, {"tick_at": tick_at, "shard": shard.index, "shards": shard.count})
            return [DueBooking(*row) for row in cur]

    def complete(self, run_id: str, booking_ids: Sequence[str], dry_run: bool = False,
                 runs: Sequence[str] | None = None, all_outcomes: bool = True) -> list[StepResult]:
        """Complete by id list; `runs` (a backfill's) records each booking under its own slot's run.
        Every outcome is recorded; without `all_outcomes` only those other than `completed` come
        back (at 100k bookings, the list would be the tick's peak memory)."""
        if not booking_ids:
            return []
        with self._transaction(dry_run) as cur:
            cur.execute(COMPLETE_BOOKINGS, {"ids": list(booking_ids), "run": run_id, "all": all_outcomes,
                                            "runs": list(runs) if runs is not None else None})
            results = [StepResult(*row) for row in cur]
            crash_point("mid_complete")
            return results

    def deduct(self, run_id: str, bookings: Sequence[DueBooking], dry_run: bool = False,
               runs: Sequence[str] | None = None) -> list[StepResult]:
        """use_sessions over one batch; every booking gets an outcome (under its `runs` entry if given)."""
        if not bookings:
            return []
        params = {
            "purchases": [b.purchase_id for b in bookings],
            "ids": [b.id for b in bookings],
            "run": run_id,
            "runs": list(runs) if runs is not None else None,
        }
        with self._transaction(dry_run) as cur:
            cur.execute(DEDUCT_SESSIONS, params)
            rows = cur.fetchall()
            crash_point("mid_batch")
            return [
                StepResult(booking_id, DEDUCT, "deducted" if outcome == "deducted" else "not_deducted",
                           None if outcome == "deducted" else outcome)
                for booking_id, outcome in rows
            ]

    def reinstate_cancelled(self, run_id: str, shard: Shard = ALL, dry_run: bool = False) -> list[StepResult]:
        """Give back the sessions of bookings cancelled after one was taken (no_show keeps it)."""
        with self._transaction(dry_run) as cur:
            cur.execute(REINSTATE_CANCELLED, {"run": run_id, "shard": shard.index, "shards": shard.count})
            return [StepResult(booking_id, REINSTATE, "reinstated") for (booking_id,) in cur]

    def record_results(self, run_id: str, results: Sequence[StepResult], dry_run: bool = False,
                       runs: Sequence[str] | None = None) -> None:
        if not results:
            return
        with self._transaction(dry_run) as cur:
            cur.execute(RECORD_RESULTS, {
                "run": run_id,
                "ids": [r.booking_id for r in results],
                "steps": [r.step for r in results],
                "outcomes": [r.outcome for r in results],
                "reasons": [r.reason for r in results],
                "details": [json.dumps(r.detail) if r.detail is not None else None for r in results],
                "runs": list(runs) if runs is not None else None,
            })

    def record_rejections(self, run_id: str, rejected: Sequence[Rejected], dry_run: bool = False,
                          runs: Sequence[str] | None = None) -> list[StepResult]:
        results = [StepResult(r.booking_id, COMPLETE, "rejected", r.reason) for r in rejected]
        self.record_results(run_id, results, dry_run, runs)
        return results

    def start_run(self, run_id: str, tick_at: datetime, trigger: str, shard: Shard = ALL) -> None:
        self.start_runs([run_id], [tick_at], trigger, shard)

    def finish_run(self, run_id: str, state: str, summary: dict | None) -> None:
        with self._transaction() as cur:
            cur.execute(
                """update public.tick_runs set state = %s, finished_at = now(), summary = %s
                   where flow_run_id = %s""",
                (state, json.dumps(summary) if summary is not None else None, run_id),
            )

    def finished_ticks(self, tick_times: Sequence[datetime], shard: Shard = ALL) -> set[datetime]:
        """Which of these tick times already had a tick that finished (any trigger, not a dry run)
        for every org of `shard`: a tick of all orgs, or of that same shard."""
        with self._transaction() as cur:
            cur.execute(
                """select distinct tick_at from public.tick_runs
                   where state = 'finished' and tick_at = any(%(times)s::timestamptz[])
                     and (shard_count = 1 or (shard_count = %(shards)s and shard_index = %(shard)s))""",
                {"times": list(tick_times), "shard": shard.index, "shards": shard.count},
            )
            return {row[0] for row in cur}

    def start_runs(self, run_ids: Sequence[str], tick_times: Sequence[datetime], trigger: str,
                   shard: Shard = ALL) -> None:
        """Record ticks as running (many slots at once for a backfill's day), with the shard they cover."""
        with self._transaction() as cur:
            cur.execute(
                """insert into public.tick_runs (flow_run_id, tick_at, trigger, shard_index, shard_count)
                   select r, t, %(trigger)s, %(shard)s, %(shards)s
                   from unnest(%(runs)s::uuid[], %(times)s::timestamptz[]) as x(r, t)
                   on conflict (flow_run_id) do update set state = 'running', finished_at = null""",
                {"runs": list(run_ids), "times": list(tick_times), "trigger": trigger,
                 "shard": shard.index, "shards": shard.count},
            )

    def finish_runs(self, summaries: dict[str, dict]) -> None:
        """finish_run for many slots at once, each with its own summary."""
        with self._transaction() as cur:
            cur.execute(
                """update public.tick_runs t set state = 'finished', finished_at = now(), summary = s.summary
                   from unnest(%s::uuid[], %s::jsonb[]) as s(id, summary) where t.flow_run_id = s.id""",
                (list(summaries), [json.dumps(v) for v in summaries.values()]),
            )

    def run_counts(self, run_id: str) -> tuple[list[tuple[CountKey, int]], int]:
        """A run's results counted by (step, outcome, reason, queued), and its distinct bookings."""
        return self.runs_counts([run_id]).get(run_id, ([], 0))

    def runs_counts(self, run_ids: Sequence[str]) -> dict[str, tuple[list[tuple[CountKey, int]], int]]:
        """run_counts of several runs (a backfill's slots) in two statements; runs without results are absent."""
        out: dict[str, tuple[list[tuple[CountKey, int]], int]] = {}
        with self._transaction() as cur:
            cur.execute(
                """select flow_run_id::text, step, outcome, reason,
                          coalesce((detail->>'queued')::boolean, false), count(*)::int
                   from public.tick_results where flow_run_id = any(%s::uuid[]) group by 1, 2, 3, 4, 5""",
                (list(run_ids),),
            )
            for run, step, outcome, reason, queued, n in cur:
                out.setdefault(run, ([], 0))[0].append(((step, outcome, reason, queued), n))
            cur.execute("""select flow_run_id::text, count(distinct booking_id)::int from public.tick_results
                           where flow_run_id = any(%s::uuid[]) group by 1""", (list(run_ids),))
            for run, bookings in cur:
                out[run] = (out[run][0], bookings)
            return out
