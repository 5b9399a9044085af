"""Backfill: the outcome of one tick per slot in [start, end), at the cost of the work in the range.

One flow run, one task per UTC day. A day's task asks which bookings its last slot's tick would see,
gives each the first slot at or after its end (the slot whose tick would have picked it up), and
completes and deducts them all in the tick's own set-based statements, each result recorded under
its slot's record in `tick_runs`. Then it asks, per slot that can plan something, which texts a
tick there would have queued (booking_cron/domain/texts/replay.py) and sends by the real clock, so
nothing stale now goes out. Empty slots cost nothing but a row in `tick_runs`: they are ticked.
Days that no booking comes near (one statement decides which, before the first day) are not read
at all: their slots' records, each with its summary of nothing done, are written in one statement
per run of such days.
Per pack, deductions happen in end-time order whatever the grouping (use_sessions orders them),
and a pack's expiry is judged at each session's end, so the end state is the per-slot one.

Resumable: a day's slots are marked finished when the day commits; slots that already had a
finished tick are skipped unless `force`.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast
from uuid import UUID

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, create_table_artifact, \
    update_progress_artifact
from prefect.runtime import flow_run
from prefect.states import Completed, Failed
from prefect.utilities.annotations import quote

from blocks import load_blocks_into_environment
from booking_cron import config
from booking_cron.reporting.backfill_report import Totals, day_row, progress_bar, summary_markdown
from booking_cron.domain.due import Shard, Triage, deduction_batches, owed_after_completion
from booking_cron.domain.results import StepResult, not_completed, summarize, summarize_counts
from booking_cron.domain.slots import assign_slots, by_day, parse_every, slot_run_id, slots_to_run, tick_slots
from booking_cron.sms.outbox import Outbox
from booking_cron.sms.sender import utc_now
from booking_cron.sms.step import configured_sms_gateway, queued_results, send_claimed_texts, sms_gateway
from booking_cron.storage.store import BookingStore, RunRecords
from booking_cron.domain.texts.replay import History, replay_texts
from flows.tick import KEEP_RESULT, RETRIES


def backfill_run_name() -> str:
    p = flow_run.parameters
    name = (f"{'dry-run backfill' if p.get('dry_run') else 'backfill'} {p['start']:%Y-%m-%d %H:%M} to "
            f"{p['end']:%Y-%m-%d %H:%M} UTC every {p.get('every', '10m')}")
    return name + (f" shard {p['shard']}" if p.get("shard") else "")


@task(task_run_name="find finished slots", **RETRIES)
def find_finished_slots(slots: list[datetime], shard: Shard) -> set[datetime]:
    return RunRecords().finished_ticks(slots, shard)


@task(task_run_name="find days with work", **RETRIES)
def find_days_with_work(first: datetime, last: datetime, shard: Shard) -> set:
    return BookingStore().days_with_work(first, last, shard)


class Summaries:
    """Slot summaries passed back as one opaque object: Prefect walks a returned dict item by item."""

    __slots__ = ("by_slot",)

    def __init__(self, by_slot: dict[datetime, dict]):
        self.by_slot = by_slot


@task(task_run_name="record {label}", **RETRIES)
def tick_empty_days(parent: str, label: str, slots: list[datetime], dry_run: bool, shard: Shard) -> Summaries:
    """Slots of days without work (find_days_with_work): each slot's tick record and its summary of
    nothing done, all in one statement (none in a dry run), without reading anything per slot."""
    empty = summarize_counts("", "", [], 0, dry_run=dry_run).as_dict()
    runs = [slot_run_id(parent, slot) for slot in slots]
    summaries = {slot: empty_summary(empty, run, slot) for slot, run in zip(slots, runs)}
    if not dry_run:
        RunRecords().record_empty_runs(runs, slots, "backfill", shard, empty)
    return Summaries(summaries)


class Day:
    """What one day's ticks did (each slot's summary, by slot), and the history with that day in
    it. A plain class: Prefect walks a returned dataclass item by item looking for futures."""

    __slots__ = ("summaries", "history", "worked", "stale")

    def __init__(self, summaries: dict[datetime, dict], history: History, worked: set[datetime], stale: int):
        self.summaries, self.history = summaries, history
        self.worked = worked  # the slots whose tick had something to do (the day's sends are not a slot's)
        self.stale = stale  # texts the day's sending expired as stale (a dry run: those it would)


@task(task_run_name="tick {label}", **RETRIES)
def tick_day(parent: str, label: str, day: list[datetime], todo: list[datetime], dry_run: bool, shard: Shard,
             history: History) -> Day:
    store, records, history = BookingStore(), RunRecords(), history.copy()
    runs = {slot: slot_run_id(parent, slot) for slot in day}
    if not dry_run:
        records.start_runs(list(runs.values()), day, "backfill", shard)
    due = store.fetch_due(day[-1], shard)
    plan, slot_of, rejected_at = assign_slots(due, day, todo, dry_run)
    by_id = {b.id: b for b in due}
    rejected = [r for r in plan.rejected if r.booking_id in rejected_at]
    at = [rejected_at[r.booking_id] for r in rejected]
    results: list[tuple[datetime, StepResult]] = list(
        zip(at, records.record_rejections(runs[day[0]], rejected, dry_run, [runs[s] for s in at])))

    # what this day's ticks see: the bookings that have a slot in it
    today = Triage([b for b in plan.to_complete if b.id in slot_of],
                   [b for b in plan.to_deduct_only if b.id in slot_of], [])
    ids = [b.id for b in today.to_complete]
    completion = store.complete(runs[day[0]], ids, dry_run, [runs[slot_of[i]] for i in ids])
    results += [(slot_of[r.booking_id], r) for r in completion]
    skipped = not_completed(completion)
    for batch in deduction_batches(owed_after_completion(today, skipped), config.batch_size()):
        for result in store.deduct(runs[day[0]], batch, dry_run, [runs[slot_of[b.id]] for b in batch]):
            slot = slot_of[result.booking_id]
            results.append((slot, result))
            if result.outcome == "deducted" and (pack := by_id[result.booking_id].purchase_id) is not None:
                history.deducted[pack].append(slot)
    history.completed_at.update({i: slot_of[i] for i in ids if i not in skipped})
    # sessions of bookings cancelled since they were taken come back at the day's first slot, as its tick would
    results += [(day[0], r) for r in store.reinstate_cancelled(runs[day[0]], shard, dry_run)]
    queued, sent, stale = queue_and_send_texts(runs, day, dry_run, shard, history)
    results += queued
    worked = {slot for slot, _ in results}  # the same in a dry run and a real one
    results += sent
    return Day(summarize_slots(records, runs, results, dry_run), history, worked, stale)


def queue_and_send_texts(runs: dict[datetime, str], day: list[datetime], dry_run: bool, shard: Shard,
                         history: History) -> tuple[list[tuple[datetime, StepResult]], list[tuple[datetime, StepResult]], int]:
    """The texts each slot's tick would have queued, recorded under that slot, then sent by the real
    clock at the day's end (a text stale now expires instead). Returns the queued results, the send
    results (recorded under the day's last slot) and how many texts expired as stale at the send; a dry
    run sends nothing, and counts the queued texts that would have been stale by now."""
    records, outbox = RunRecords(), Outbox()
    provider_ready = sms_gateway() is not None
    planned = replay_texts(day, outbox.replay_inputs(day[0], day[-1], shard), history, config.feedback_link())
    texts = [text for _, text in planned]
    written = outbox.enqueue(runs[day[-1]], texts, dry_run, [runs[slot] for slot, _ in planned])
    history.keys.update(text.key for text in texts)
    queued = queued_results(texts, written, provider_ready)
    text_slots = [slot for slot, text in planned if text.key in written]
    records.record_results(runs[day[-1]], queued, dry_run, [runs[slot] for slot in text_slots])
    results, sends = list(zip(text_slots, queued)), []
    if provider_ready and not dry_run:
        while sent := send_claimed_texts(runs[day[-1]], day[-1], configured_sms_gateway(), shard):
            sends += [(day[-1], r) for r in sent]
    if not provider_ready:
        return results, sends, 0  # nothing is sent: the texts stay queued
    if dry_run:
        now = utc_now()
        return results, sends, sum(1 for t in texts if t.key in written and t.status == "queued" and t.expires_at <= now)
    return results, sends, sum(1 for _, r in sends if r.outcome == "expired" and r.reason == "stale")


def summarize_slots(records: RunRecords, runs: dict[datetime, str], results: list[tuple[datetime, StepResult]],
                    dry_run: bool) -> dict[datetime, dict]:
    """Each slot's summary, as its tick would have made it; kept on its tick_runs row (not in a dry run)."""
    if dry_run:
        by_slot: dict[datetime, list[StepResult]] = {slot: [] for slot in runs}
        for slot, result in results:
            by_slot[slot].append(result)
        return {slot: summarize(runs[slot], slot.isoformat(), by_slot[slot], dry_run=True).as_dict() for slot in runs}
    counts = records.runs_counts(list(runs.values()))
    empty = summarize_counts("", "", [], 0).as_dict()  # most slots did nothing: one summary, copied
    summaries = {slot: (summarize_counts(run, slot.isoformat(), *counts[run]).as_dict() if run in counts
                        else empty_summary(empty, run, slot))
                 for slot, run in runs.items()}
    records.finish_runs({runs[slot]: summary for slot, summary in summaries.items()})
    return summaries


def empty_summary(empty: dict, run: str, slot: datetime) -> dict:
    """The summary of a slot whose tick had nothing to do, from `empty` (a summary of no results)."""
    return {**{k: (dict(v) if isinstance(v, dict) else v) for k, v in empty.items()},
            "flow_run_id": run, "tick_at": slot.isoformat()}


@flow(name="backfill", flow_run_name=backfill_run_name, **KEEP_RESULT)
def backfill(start: datetime, end: datetime, every: str = "10m", dry_run: bool = False, force: bool = False,
             shard: str | None = None):
    """The outcome of one tick per slot in [start, end), oldest first; returns the totals."""
    logger = get_run_logger()
    load_blocks_into_environment()
    scope = Shard.parse(shard)
    slots = tick_slots(start, end, parse_every(every))
    finished = find_finished_slots(slots, scope)  # a dry run reports what the real one would do: the same slots
    todo = slots_to_run(slots, finished, force)
    days = by_day(todo)
    totals = Totals(slots=len(slots), skipped=len(slots) - len(todo), dry_run=dry_run)
    logger.info("%s slots, %s already ticked, %s to run in %s day(s)", len(slots), totals.skipped, len(todo), len(days))
    if sms_gateway() is None:
        logger.warning("no SMS provider configured (TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN): texts stay queued")
    # a sync flow gets the artifact's id (Prefect's async_dispatch types it as the id or a coroutine)
    artifact = cast(UUID, create_progress_artifact(0.0 if todo else 100.0, key="backfill-progress",
                                                   description=f"{len(todo)} of {len(slots)} slots to tick" if todo
                                                   else f"nothing to do: all {len(slots)} slots already ticked"))
    history, rows, parent = History(written=not dry_run), [], str(flow_run.id)
    # Days no booking's times come near are recorded in bulk; the first day always ticks (it picks up
    # what is older than the range), and so does every day after a failed one (its leftovers).
    with_work = find_days_with_work(todo[0], todo[-1], scope) if todo else set()
    empty: list[list[datetime]] = []

    def record_day(advance, day: list[datetime], summaries: dict[datetime, dict] | None,
                   worked: set[datetime] | frozenset[datetime] = frozenset(), stale: int = 0, publish: bool = True) -> None:
        """A day that finished (its slots' `summaries`) or failed (None): in the totals, the day rows and
        the progress bar, and with `publish` in the progress artifact (up to that day)."""
        if summaries is None:
            totals.failed_slots += [slot.isoformat() for slot in day]
            rows.append(day_row(day, None))
        else:
            totals.add_day(summaries, set(worked), stale)
            rows.append(day_row(day, summaries, set(worked), stale))
        advance(len(day), f"{day[-1]:%Y-%m-%d %H:%M} UTC")
        if publish:
            update_progress_artifact(artifact, progress=100.0 * (totals.ticked + len(totals.failed_slots)) / len(todo),
                                     description=f"{totals.ticked} of {len(todo)} slots ticked, up to {day[-1].isoformat()}")

    def record_empty(advance) -> None:
        if not empty:
            return
        slots_ = [slot for day in empty for slot in day]
        label = f"{len(empty)} day(s) without work from {empty[0][0]:%Y-%m-%d}"
        state = tick_empty_days(parent, label, quote(slots_), dry_run, scope, return_state=True)
        recorded = state.result().by_slot if state.is_completed() else {}
        for day in empty:  # the progress artifact once, at the last of them
            record_day(advance, day, {slot: recorded[slot] for slot in day} if state.is_completed() else None,
                       publish=day is empty[-1])
        empty.clear()

    with progress_bar(len(todo), len(slots)) as advance:
        for day in days:
            if day is not days[0] and day[0].date() not in with_work and not totals.failed_slots:
                empty.append(day)
                continue
            record_empty(advance)
            label = f"{day[0]:%Y-%m-%d} ({len(day)} slots)"
            state = tick_day(parent, label, day, quote(todo), dry_run, scope, quote(history), return_state=True)
            if state.is_completed():
                ticked = state.result()
                history = ticked.history
                record_day(advance, day, ticked.summaries, ticked.worked, ticked.stale)
                logger.info("%s", ", ".join(f"{k}: {v}" for k, v in rows[-1].items() if v not in ("", 0)))
            else:
                record_day(advance, day, None)
        record_empty(advance)
    if rows:
        create_table_artifact(rows, key="backfill-days", description="What each day's ticks did")
    create_markdown_artifact(summary_markdown(totals, backfill_run_name()), key="backfill-summary")
    result = totals.as_dict()
    if totals.failed_slots:
        return Failed(message=f"{len(totals.failed_slots)} of {len(todo)} slots failed; re-run to retry them",
                      data=result)
    return Completed(message=totals.headline(), data=result)
