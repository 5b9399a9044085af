"""The tick: complete the sessions that ended, deduct each from its pack once, give back the
sessions of cancelled bookings, text clients.

Every step is a task at an I/O boundary with its retry policy beside it; every decision
lives in a pure function in booking_cron; every write is one set-based SQL statement.
"""

# No `from __future__ import annotations` here: `flow.serve` validates parameters against these
# annotations, and as strings (`datetime`) they fail with "TickModel is not fully defined".
from datetime import datetime, timezone

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from blocks import load_blocks_into_environment
from booking_cron import config, database
from booking_cron.artifacts import results_table, summary_markdown, utc_time
from booking_cron.attention import state_message
from booking_cron.due import DueBooking, Rejected, Shard, deduction_batches, owed_after_completion, triage
from booking_cron.faults import crash_point
from booking_cron.report import results_frame
from booking_cron.results import Outcomes, StepResult, not_completed, summarize, summarize_counts
from booking_cron.sms.outbox import Outbox
from booking_cron.sms.step import queue_due_texts, send_claimed_texts, sms_gateway
from booking_cron.store import BookingStore

# The run's summary is kept (as JSON in Prefect's result storage, counts only) so that whoever
# started the run can read it from the state the API returns: after a retried state update the
# API answers with its own copy of the state, which holds a result only if one was kept.
KEEP_RESULT = dict(persist_result=True, result_serializer="json")
RETRIES = dict(retries=3, retry_delay_seconds=config.retry_delays(), retry_jitter_factor=0.5, cache_policy=NO_CACHE)


def resolve_tick_at(tick_at: datetime | None) -> datetime:
    """The as-of time: the parameter, else the scheduled time of this run, else now (UTC)."""
    when = tick_at or flow_run.scheduled_start_time or datetime.now(timezone.utc)
    if when.tzinfo is None:
        raise ValueError("tick_at must carry a time zone offset")
    return datetime.fromtimestamp(when.timestamp(), timezone.utc)


def tick_run_name() -> str:
    params = flow_run.parameters or {}
    when = resolve_tick_at(params.get("tick_at"))
    name = f"{'dry-run tick' if params.get('dry_run') else 'tick'} {when:%Y-%m-%d %H:%M} UTC"
    return name + (f" shard {params['shard']}" if params.get("shard") else "")


@task(task_run_name="fetch due bookings", **RETRIES)
def fetch_due_bookings(tick_at: datetime, shard: Shard) -> list[DueBooking]:
    return BookingStore().fetch_due(tick_at, shard)


@task(task_run_name="record rejected bookings", **RETRIES)
def record_rejections(run_id: str, rejected: list[Rejected], dry_run: bool) -> list[StepResult]:
    return BookingStore().record_rejections(run_id, rejected, dry_run)


# Big inputs are passed quote()d and big results wrapped in Outcomes: Prefect would otherwise
# walk them item by item looking for futures (seconds at 100k bookings; see bench/README.md).
@task(task_run_name="complete {count} bookings", **RETRIES)
def complete_bookings(run_id: str, booking_ids: list[str], count: int, dry_run: bool) -> Outcomes:
    """A real tick's outcomes are in tick_results; only the bookings not completed come back
    (with a dry run's, which records nothing, every outcome)."""
    return Outcomes(BookingStore().complete(run_id, booking_ids, dry_run, all_outcomes=dry_run))


@task(task_run_name="deduct batch {batch_no}/{batches}", **RETRIES)
def deduct_sessions(run_id: str, batch: list[DueBooking], batch_no: int, batches: int, dry_run: bool) -> Outcomes:
    """A real tick's outcomes are in tick_results; only a dry run's come back (Prefect keeps every
    batch's result until the flow ends: at 100k bookings, the tick's peak memory)."""
    outcomes = BookingStore().deduct(run_id, batch, dry_run)
    return Outcomes(outcomes if dry_run else [])


@task(task_run_name="reinstate cancelled sessions", **RETRIES)
def reinstate_sessions(run_id: str, shard: Shard, dry_run: bool) -> list[StepResult]:
    return BookingStore().reinstate_cancelled(run_id, shard, dry_run)


@task(task_run_name="queue texts", **RETRIES)
def queue_texts(run_id: str, tick_at: datetime, dry_run: bool, provider_ready: bool,
                shard: Shard = Shard()) -> list[StepResult]:
    return queue_due_texts(run_id, tick_at, dry_run, provider_ready, shard)


@task(task_run_name="send texts batch {batch_no}", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def send_texts(run_id: str, tick_at: datetime, batch_no: int, shard: Shard) -> list[StepResult]:
    return send_claimed_texts(run_id, tick_at, sms_gateway(), shard)


@task(task_run_name="record tick start", **RETRIES)
def record_tick_start(run_id: str, tick_at: datetime, trigger: str, shard: Shard = Shard()) -> None:
    BookingStore().start_run(run_id, tick_at, trigger, shard)


@task(task_run_name="summarize tick", **RETRIES)
def summarize_tick(run_id: str, tick_at: datetime, state: str) -> dict:
    """Counts from the database's per-booking results (the record of truth), kept on tick_runs."""
    store = BookingStore()
    counts, bookings = store.run_counts(run_id)
    summary = summarize_counts(run_id, tick_at.isoformat(), counts, bookings).as_dict()
    summary["receipts"] = Outbox().receipt_counts(tick_at)
    store.finish_run(run_id, state, summary)
    return summary


@task(task_run_name="publish results", **RETRIES)
def publish_results(run_id: str, summary: dict) -> None:
    """The per-booking table and the markdown summary, attached to this flow run in the UI."""
    with database.connection() as conn:
        frame = results_frame(conn, run_id=run_id, limit=config.artifact_rows(), failures_first=True)
    total = summary["results"]
    rows = results_table(frame, config.artifact_rows())
    create_table_artifact(rows, key="tick-results",
                          description=f"Per-booking results, {len(rows)} of {total} rows, failures first")
    create_markdown_artifact(summary_markdown(summary, total, len(rows), run_id), key="tick-summary",
                             description=f"What the tick at {utc_time(summary['tick_at'])} did, and what needs attention")


@flow(name="tick", flow_run_name=tick_run_name, task_runner=ThreadPoolTaskRunner(max_workers=4), **KEEP_RESULT)
def tick(tick_at: datetime | None = None, dry_run: bool = False, trigger: str = "run", shard: str | None = None):
    """One tick at `tick_at` (default: the scheduled time). Returns the summary (counts);
    per-booking results are in tick_results and in this run's artifacts."""
    logger = get_run_logger()
    used_blocks = load_blocks_into_environment()
    if used_blocks:
        logger.info("configuration from Prefect blocks: %s", ", ".join(used_blocks))
    tick_at, scope = resolve_tick_at(tick_at), Shard.parse(shard)
    run_id = str(flow_run.id)
    if not dry_run:
        record_tick_start(run_id, tick_at, trigger, scope)

    plan = triage(fetch_due_bookings(tick_at, scope))
    crash_point("after_fetch")
    results = record_rejections(run_id, plan.rejected, dry_run) if plan.rejected else []

    ids = [b.id for b in plan.to_complete]
    completion = complete_bookings(run_id, quote(ids), len(ids), dry_run).items if ids else []
    crash_point("between_complete_and_deduct")
    # Per-booking results are in tick_results; only a dry run (which records nothing) counts them here.
    results += completion if dry_run else []
    owed = owed_after_completion(plan, not_completed(completion))
    del plan, completion, ids  # 100k-booking lists: the peak memory of a big tick

    batches = deduction_batches(owed, config.batch_size())
    futures = deduct_sessions.map(
        unmapped(run_id), [quote(b) for b in batches], range(1, len(batches) + 1), unmapped(len(batches)),
        unmapped(dry_run),
    )
    failed_batches = 0
    for future in futures:
        try:
            results += future.result().items
        except Exception:
            failed_batches += 1
    if failed_batches:
        summarize_tick(run_id, tick_at, "failed")
        raise RuntimeError(
            f"{failed_batches} of {len(batches)} deduct batches failed after retries; their bookings "
            "stay owed and the next tick deducts them"
        )

    results += reinstate_sessions(run_id, scope, dry_run)

    provider_ready = sms_gateway() is not None
    results += queue_texts(run_id, tick_at, dry_run, provider_ready, scope)
    if provider_ready and not dry_run:
        batch_no = 1
        while sent := send_texts(run_id, tick_at, batch_no, scope):
            results += sent
            batch_no += 1
    elif not provider_ready:
        logger.warning("no SMS provider configured (TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN): texts stay queued")

    if dry_run:
        summary = summarize(run_id, tick_at.isoformat(), results, dry_run=True).as_dict()
    else:
        summary = summarize_tick(run_id, tick_at, "finished")
        publish_results(run_id, summary)
    message = state_message(summary)
    logger.info("tick %s: %s", f"{tick_at:%Y-%m-%d %H:%M:%S} UTC", message)
    return Completed(message=message, data=summary)
