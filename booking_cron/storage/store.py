"""The bookings store: every read and write the tick makes to PostgreSQL, one method each: on the
bookings and packs (BookingStore), and on the record of what each run did (RunRecords).

Each write is one set-based statement, in its own transaction: the tick's over a key range of the
work, a backfill's over the id arrays its flow assigned to slots, completing and deducting by the
same text (COMPLETE_STATEMENT, DEDUCT_STATEMENT). With dry_run the transaction is rolled back, so
a dry run reports exactly what a tick would do.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Sequence


from booking_cron.storage import database
from booking_cron.domain.due import ALL, DueBooking, Rejected, Shard
from booking_cron.storage.shard_sql import in_shard_sql
from booking_cron.faults import crash_point
from booking_cron.domain.results import COMPLETE, DEDUCT, REINSTATE, CountKey, StepResult

def loadable(column: str) -> str:
    """SQL: the timestamp column holds a time Python can hold and compute with (years 2 to 9998,
    a year's margin for offsets and time zones; not +/-infinity, BC or the year 10000, which
    anyone who can write the row can put there)."""
    return f"({column} >= '0002-01-01 00:00:00+00' and {column} < '9999-01-01 00:00:00+00')"


def loadable_time(column: str) -> str:
    """SQL for a timestamp column that yields null for times Python cannot hold."""
    return f"case when {loadable(column)} then {column} end"


# Rows with such times come back with null times, and rows whose client is another org's with
# client_in_org false; triage rejects them.
FETCH_DUE = ("""
select b.id::text, b.purchase_id::text, {start}, {end}, false, {client_in_org}
from public.bookings b
where b.status = 'confirmed' and b.end_time <= %(tick_at)s and """ + in_shard_sql("b.org_id") + """
union all
select b.id::text, b.purchase_id::text, {start}, {end}, true, {client_in_org}
from public.tick_completions tc
join public.bookings b on b.id = tc.booking_id
where tc.deduction is null and """ + in_shard_sql("b.org_id") + """
""").format(start=loadable_time("b.start_time"), end=loadable_time("b.end_time"),
           client_in_org="exists (select 1 from public.clients c where c.id = b.client_id and c.org_id = b.org_id)")

# Why a row is too broken to touch (null: it is fine), as triage (booking_cron.domain.due) judges it.
REJECTION = """case
  when not coalesce({start_ok} and {end_ok}, false) then 'invalid_time'
  when b.end_time < b.start_time then 'end_before_start'
  when not exists (select 1 from public.clients c where c.id = b.client_id and c.org_id = b.org_id)
    then 'client_of_another_org'
end""".format(start_ok=loadable("b.start_time"), end_ok=loadable("b.end_time"))


def key_range(column: str, lo: str | None, hi: str | None) -> str:
    """SQL: `column` in [lo, hi) (an open end when None), as %(lo)s and %(hi)s. Built per range, not
    `%(lo)s is null or ...`, so that every statement, prepared or not, is an index range scan."""
    return "".join([f" and {column} >= %(lo)s::uuid" if lo is not None else "",
                    f" and {column} < %(hi)s::uuid" if hi is not None else ""])


# The first key of every `size` rows in key order: ranges [key i, key i+1) of about `size` rows each.
# One statement, walked by PostgreSQL over an index; what comes back is a few keys, not the work.
PLAN_COMPLETE_RANGES = """
select k::text from (
  select b.id as k, row_number() over (order by b.id) as n
  from public.bookings b
  where b.status = 'confirmed' and b.end_time <= %(tick_at)s and """ + in_shard_sql("b.org_id") + """
) d where (d.n - 1) %% %(size)s = 0 order by k
"""

PLAN_DEDUCT_RANGES = """
select distinct k::text from (
  select tc.purchase_id as k, row_number() over (order by tc.purchase_id) as n
  from public.tick_completions tc join public.bookings b on b.id = tc.booking_id
  where tc.deduction is null and tc.purchase_id is not null and """ + in_shard_sql("b.org_id") + """
) d where (d.n - 1) %% %(size)s = 0 order by 1
"""

# Completing and deducting, each written once. The tick's statements take their work from the
# database by key range (*_RANGE_DUE, *_RANGE_OWED below); a backfill's take it by id array from
# the flow (which triaged and assigned each booking to a slot: *_IDS_DUE, *_IDS_OWED), each booking
# with its own slot's run id (%(runs)s, parallel to %(ids)s; null means %(run)s for all). What is
# done to that work, and recorded, is the same text.

# One range of due bookings (the tick), each with its run id and why it is too broken to touch.
COMPLETE_RANGE_DUE = """
  select b.id, %(run)s::uuid as run, """ + REJECTION + """ as rejection
  from public.bookings b
  where b.status = 'confirmed' and b.end_time <= %(tick_at)s and """ + in_shard_sql("b.org_id") + """{range}"""

# The bookings a backfill's day completes, already triaged: none is rejected here. One the app
# deleted or changed meanwhile is not confirmed, so it is skipped.
COMPLETE_IDS_DUE = """
  select x.id, coalesce(x.run, %(run)s::uuid) as run, null::text as rejection
  from unnest(%(ids)s::uuid[], %(runs)s::uuid[]) as x(id, run)"""

# Complete `due` in one statement: every outcome is recorded in tick_results under its booking's
# run (a row too broken to touch is rejected and stays confirmed; a row the app changed while this
# statement waited for it is skipped), each completion in tick_completions.
COMPLETE_STATEMENT = """
with due as ({due}
),
done as (
  update public.bookings b
  set status = 'completed', updated_at = now()
  from due d
  where b.id = d.id and d.rejection is null and b.status = 'confirmed'
  returning b.id, b.purchase_id, d.run
),
marked as (
  insert into public.tick_completions (booking_id, purchase_id, flow_run_id, deduction)
  select d.id, d.purchase_id, d.run, case when d.purchase_id is null then 'no_pack' end
  from done d
  on conflict (booking_id) do nothing
),
outcomes as (
  select d.id, d.run, 'complete' as step, 'completed' as outcome, null as reason from done d
  union all
  select d.id, d.run, 'deduct', 'not_deducted', 'no_pack' from done d where d.purchase_id is null
  union all
  select s.id, s.run, 'complete', 'skipped', 'no_longer_confirmed'
  from (select x.id, x.run from due x where x.rejection is null
        except select d.id, d.run from done d) s  -- a set difference: not a nested loop over the CTEs
),
recorded as (
  insert into public.tick_results (flow_run_id, booking_id, step, outcome, reason)
  select o.run, o.id, o.step, o.outcome, o.reason from outcomes o
  on conflict do nothing
),
rejected as (
  insert into public.tick_results (flow_run_id, booking_id, step, outcome, reason)
  select x.run, x.id, 'complete', 'rejected', x.rejection from due x where x.rejection is not null
  on conflict (flow_run_id, booking_id, step)
    do update set outcome = excluded.outcome, reason = excluded.reason, recorded_at = now()
)
"""

# The tick's: counts by `step:outcome`.
COMPLETE_RANGE = COMPLETE_STATEMENT.replace("{due}", COMPLETE_RANGE_DUE) + """
select o.step || ':' || o.outcome, count(*)::int from outcomes o group by 1
union all
select 'complete:rejected', count(*)::int from due x where x.rejection is not null
"""

# A backfill's: each outcome (those other than `completed` only, unless %(all)s).
COMPLETE_BOOKINGS = COMPLETE_STATEMENT.replace("{due}", COMPLETE_IDS_DUE) + """
select o.id::text, o.step, o.outcome, o.reason from outcomes o
where %(all)s or o.outcome <> 'completed'
"""

# One range of packs (the tick): the sessions owed for the bookings ticks completed on them (this
# tick's and any an interrupted tick left). A pack is never split between ranges, so each range's
# outcome is independent of the others'.
DEDUCT_RANGE_OWED = """
  select tc.booking_id, b.purchase_id, %(run)s::uuid as run, """ + REJECTION + """ as rejection
  from public.tick_completions tc join public.bookings b on b.id = tc.booking_id
  where tc.deduction is null and tc.purchase_id is not null and """ + in_shard_sql("b.org_id") + """{range}"""

# A backfill's batch, already triaged and on a pack (booking_cron.domain.due.deduction_batches).
DEDUCT_IDS_OWED = """
  select x.booking_id, x.purchase_id, coalesce(x.run, %(run)s::uuid) as run, null::text as rejection
  from unnest(%(ids)s::uuid[], %(purchases)s::uuid[], %(runs)s::uuid[]) as x(booking_id, purchase_id, run)"""

# Take the sessions `owed` through use_sessions() in one statement; every outcome recorded under
# its booking's run.
DEDUCT_STATEMENT = """
with owed as ({owed}
),
outcome as (
  select u.booking_id, u.outcome
  from (select array_agg(o.purchase_id order by o.booking_id) as purchases,
               array_agg(o.booking_id order by o.booking_id) as bookings
        from owed o where o.rejection is null and o.purchase_id is not null) a
  cross join lateral public.use_sessions(a.purchases, a.bookings) u
  where a.bookings is not null
),
marked as (
  update public.tick_completions tc
  set deduction = coalesce(tc.deduction, o.outcome)
  from outcome o
  where tc.booking_id = o.booking_id
),
recorded as (
  insert into public.tick_results (flow_run_id, booking_id, step, outcome, reason)
  select w.run, o.booking_id, 'deduct',
         case when o.outcome = 'deducted' then 'deducted' else 'not_deducted' end,
         nullif(o.outcome, 'deducted')
  from outcome o join owed w on w.booking_id = o.booking_id
  on conflict do nothing
),
rejected as (
  insert into public.tick_results (flow_run_id, booking_id, step, outcome, reason)
  select x.run, x.booking_id, 'complete', 'rejected', x.rejection from owed x where x.rejection is not null
  on conflict (flow_run_id, booking_id, step)
    do update set outcome = excluded.outcome, reason = excluded.reason, recorded_at = now()
)
"""

# The tick's: counts by `step:outcome`.
DEDUCT_RANGE = DEDUCT_STATEMENT.replace("{owed}", DEDUCT_RANGE_OWED) + """
select 'deduct:' || o.outcome, count(*)::int from outcome o group by 1
union all
select 'complete:rejected', count(*)::int from owed x where x.rejection is not null
"""

# A backfill's: each booking's outcome.
DEDUCT_SESSIONS = DEDUCT_STATEMENT.replace("{owed}", DEDUCT_IDS_OWED) + """
select o.booking_id::text, o.outcome from outcome o
"""

RUN_RESULTS = "select booking_id::text, step, outcome, reason, detail from public.tick_results where flow_run_id = %s"

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


# [lo, hi) over uuids; None is an open end.
Range = tuple[str | None, str | None]


def key_ranges(starts: Sequence[str]) -> list[Range]:
    """Ranges that cover the whole key space, split at `starts` (sorted): the first range is open
    below, so rows added meanwhile with a smaller key are not lost; none when there is no work."""
    if not starts:
        return []
    bounds: list[str | None] = [None, *starts[1:], None]
    return list(zip(bounds[:-1], bounds[1:]))


def _shard(shard: Shard) -> dict:
    return {"shard": shard.index, "shards": shard.count}


def _counts(cur) -> dict[str, int]:
    return {key: n for key, n in cur.fetchall() if n}


# The UTC dates in [%(first)s, %(last)s] that a backfill's tick could find work on: those within a
# margin of some booking's times (any status; the longest text offset plus the texts' look-ahead and
# the 48 hours feedback looks back, with slack). One statement; a day not listed has no booking to
# complete, reject or text, so its slots can be recorded in bulk. Rows whose times Python cannot hold
# are the first day's (a backfill rejects them at its first slot), and a day after a failed one is
# always ticked (it picks up the failed day's leftovers): the flow decides those.
DAYS_WITH_WORK = """
with margin as (
  select interval '3 days'
         + make_interval(mins => least(coalesce(max(abs(s.mins_offset::bigint)), 0), 5000000)::int) as m
  from public.sms_schedules s
),
spans as (
  select greatest(least(b.start_time, b.end_time) - margin.m, %(first)s) as lo,
         least(greatest(b.start_time, b.end_time) + margin.m, %(last)s) as hi
  from public.bookings b, margin
  where """ + loadable("b.start_time") + " and " + loadable("b.end_time") + """
    and """ + in_shard_sql("b.org_id") + """
)
select distinct (g at time zone 'UTC')::date
from spans, generate_series(date_trunc('day', spans.lo at time zone 'UTC'), spans.hi at time zone 'UTC',
                            interval '1 day') as g
where spans.lo <= spans.hi
"""


class _Store:
    """PostgreSQL through psycopg 3; `url=None` means DATABASE_URL or the embedded server."""

    def __init__(self, url: str | None = None):
        self.url = database.resolve_url(url)

    def _transaction(self, dry_run: bool = False):
        return database.transaction(self.url, dry_run)


class BookingStore(_Store):
    """The bookings and packs: what is due, completing it and deducting for it, giving sessions back."""

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

    def plan_complete_ranges(self, tick_at: datetime, shard: Shard = ALL, size: int = 5000) -> list[Range]:
        """Key ranges over the ids of the bookings due at `tick_at`, about `size` each (PLAN_COMPLETE_RANGES)."""
        with self._transaction() as cur:
            cur.execute(PLAN_COMPLETE_RANGES, {"tick_at": tick_at, "size": size, **_shard(shard)})
            return key_ranges([k for (k,) in cur])

    def plan_deduct_ranges(self, shard: Shard = ALL, size: int = 5000) -> list[Range]:
        """Key ranges over the packs of the completed bookings not yet deducted, about `size` each."""
        with self._transaction() as cur:
            cur.execute(PLAN_DEDUCT_RANGES, {"size": size, **_shard(shard)})
            return key_ranges([k for (k,) in cur])

    def complete_range(self, run_id: str, tick_at: datetime, shard: Shard, key: Range,
                       cur=None) -> dict[str, int]:
        """Complete the due bookings with ids in `key` in one statement; counts by `step:outcome`.
        With `cur`, in that transaction (a dry run's); otherwise in its own."""
        statement = COMPLETE_RANGE.replace("{range}", key_range("b.id", *key))
        params = {"run": run_id, "tick_at": tick_at, "lo": key[0], "hi": key[1], **_shard(shard)}
        if cur is not None:
            cur.execute(statement, params)
            return _counts(cur)
        with self._transaction() as cur:
            cur.execute(statement, params)
            counts = _counts(cur)
            crash_point("mid_complete")
            return counts

    def deduct_range(self, run_id: str, shard: Shard, key: Range, cur=None) -> dict[str, int]:
        """Deduct the sessions owed on the packs with ids in `key` in one statement; counts by `step:outcome`."""
        statement = DEDUCT_RANGE.replace("{range}", key_range("tc.purchase_id", *key))
        params = {"run": run_id, "lo": key[0], "hi": key[1], **_shard(shard)}
        if cur is not None:
            cur.execute(statement, params)
            return _counts(cur)
        with self._transaction() as cur:
            cur.execute(statement, params)
            counts = _counts(cur)
            crash_point("mid_batch")
            return counts

    def dry_run_steps(self, run_id: str, tick_at: datetime, shard: Shard = ALL) -> list[StepResult]:
        """What complete + deduct would do: the same statements over every range in one transaction,
        its per-booking results read back, then rolled back (nothing changes)."""
        everything: Range = (None, None)
        with self._transaction(dry_run=True) as cur:
            self.complete_range(run_id, tick_at, shard, everything, cur)
            self.deduct_range(run_id, shard, everything, cur)
            cur.execute(RUN_RESULTS, (run_id,))
            return [StepResult(*row) for row in cur]

    def reinstate_cancelled(self, run_id: str, shard: Shard = ALL, dry_run: bool = False) -> list[StepResult]:
        """Give back the sessions of bookings cancelled after one was taken (no_show keeps it)."""
        with self._transaction(dry_run) as cur:
            cur.execute(REINSTATE_CANCELLED, {"run": run_id, "shard": shard.index, "shards": shard.count})
            return [StepResult(booking_id, REINSTATE, "reinstated") for (booking_id,) in cur]

    def days_with_work(self, first: datetime, last: datetime, shard: Shard = ALL) -> set:
        """The UTC dates from `first` to `last` whose slots could have work (DAYS_WITH_WORK)."""
        with self._transaction() as cur:
            cur.execute(DAYS_WITH_WORK, {"first": first, "last": last, **_shard(shard)})
            return {day for (day,) in cur}


class RunRecords(_Store):
    """What ticks did, kept beside the rows they changed: each run's record (tick_runs, with its
    shard, state and summary) and its per-booking results (tick_results)."""

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

    def record_empty_runs(self, run_ids: Sequence[str], tick_times: Sequence[datetime], trigger: str,
                          shard: Shard, empty: dict) -> None:
        """Slots whose tick had nothing to do, recorded finished in one statement, each with the summary
        `empty` (of no results) under its own run id and tick time (`tick_at` as Python writes it)."""
        with self._transaction() as cur:
            cur.execute(
                """insert into public.tick_runs (flow_run_id, tick_at, trigger, shard_index, shard_count, state,
                                                 finished_at, summary)
                   select r, t, %(trigger)s, %(shard)s, %(shards)s, 'finished', now(),
                          %(empty)s::jsonb || jsonb_build_object('flow_run_id', r::text, 'tick_at', iso)
                   from unnest(%(runs)s::uuid[], %(times)s::timestamptz[], %(isos)s::text[]) as x(r, t, iso)
                   on conflict (flow_run_id) do update
                     set state = 'finished', finished_at = now(), summary = excluded.summary""",
                {"runs": list(run_ids), "times": list(tick_times), "isos": [t.isoformat() for t in tick_times],
                 "trigger": trigger, "empty": json.dumps(empty), **_shard(shard)},
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
