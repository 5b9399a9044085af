"""The tick: complete the sessions that ended, deduct each from its pack once, give back the
sessions of cancelled bookings, text clients.

Every step is a task at an I/O boundary with its retry policy beside it; every decision
lives in a pure function in booking_cron; every write is one set-based SQL statement.
The work stays in the database: PostgreSQL plans key ranges over it (booking ids to complete,
packs to deduct from) and each batch is one statement over one range; only the ranges' keys and
each batch's counts pass through Python and Prefect, never the bookings.
"""

# No `from __future__ import annotations` here: `flow.serve` validates parameters against these
# annotations, and as strings (`datetime`) they fail with "TickModel is not fully defined".
from datetime import datetime, timezone
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from prefect.states import Completed
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import load_blocks_into_environment
from booking_cron import config
from booking_cron.storage import database
from booking_cron.reporting.artifacts import artifact_key, results_table, summary_markdown, utc_time
from booking_cron.reporting.attention import state_message, state_name
from booking_cron.domain.due import Shard
from booking_cron.faults import crash_point
from booking_cron.reporting.report import results_frame
from booking_cron.domain.results import Outcomes, StepResult, summarize, summarize_counts
from booking_cron.sms.outbox import Outbox
from booking_cron.sms.step import configured_sms_gateway, queue_due_texts, send_claimed_texts, sms_gateway
from booking_cron.storage.store import BookingStore, Range, RunRecords

# The run's summary is kept (as JSON in Prefect's result storage, counts only) so that whoever
# started the run can read it from the state the API returns: after a retried state update the
# API answers with its own copy of the state, which holds a result only if one was kept.
KEEP_RESULT: dict[str, Any] = dict(persist_result=True, result_serializer="json")
RETRIES: dict[str, Any] = dict(retries=3, retry_delay_seconds=config.retry_delays(), retry_jitter_factor=0.5, cache_policy=NO_CACHE)


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


@task(task_run_name="plan {step} batches", **RETRIES)
def plan_batches(step: str, tick_at: datetime, shard: Shard, size: int) -> list[Range]:
    """Key ranges PostgreSQL picks over the work (booking ids to complete, or packs to deduct from):
    a few keys come back, never the work itself."""
    store = BookingStore()
    if step == "complete":
        return store.plan_complete_ranges(tick_at, shard, size)
    return store.plan_deduct_ranges(shard, size)


@task(task_run_name="complete batch {batch_no}/{batches}", **RETRIES)
def complete_batch(run_id: str, tick_at: datetime, shard: Shard, key: Range, batch_no: int = 1,
                   batches: int = 1) -> dict[str, int]:
    """One statement over one range of due bookings; each booking's outcome is in tick_results, the
    counts come back."""
    return BookingStore().complete_range(run_id, tick_at, shard, (key[0], key[1]))


@task(task_run_name="deduct batch {batch_no}/{batches}", **RETRIES)
def deduct_batch(run_id: str, shard: Shard, key: Range, batch_no: int = 1, batches: int = 1) -> dict[str, int]:
    """use_sessions over one range of packs, in one statement; outcomes in tick_results, counts back."""
    return BookingStore().deduct_range(run_id, shard, (key[0], key[1]))


@task(task_run_name="dry-run complete and deduct", **RETRIES)
def dry_run_steps(run_id: str, tick_at: datetime, shard: Shard) -> Outcomes:
    """The real statements in one transaction that is rolled back: every outcome, nothing changed."""
    return Outcomes(BookingStore().dry_run_steps(run_id, tick_at, shard))


def run_batches(task, ranges: list[Range], *args) -> int:
    """Run a step's batches (up to the task runner's workers at once); how many failed after retries."""
    futures = task.map(*(unmapped(a) for a in args), ranges, range(1, len(ranges) + 1), unmapped(len(ranges)))
    failed = 0
    for future in futures:
        try:
            future.result()
        except Exception:
            failed += 1
    return failed


@task(task_run_name="reinstate cancelled sessions", **RETRIES)
def reinstate_sessions(run_id: str, shard: Shard, dry_run: bool) -> list[StepResult]:
    return BookingStore().reinstate_cancelled(run_id, shard, dry_run)


@task(task_run_name="queue texts", **RETRIES)
def queue_texts(run_id: str, tick_at: datetime, dry_run: bool, provider_ready: bool,
                shard: Shard = Shard()) -> list[StepResult]:
    return queue_due_texts(run_id, tick_at, dry_run, provider_ready, shard)


@task(task_run_name="send texts batch {batch_no}", retries=1, retry_delay_seconds=5, cache_policy=NO_CACHE)
def send_texts(run_id: str, tick_at: datetime, batch_no: int, shard: Shard) -> list[StepResult]:
    return send_claimed_texts(run_id, tick_at, configured_sms_gateway(), shard)


@task(task_run_name="record tick start", **RETRIES)
def record_tick_start(run_id: str, tick_at: datetime, trigger: str, shard: Shard = Shard()) -> None:
    RunRecords().start_run(run_id, tick_at, trigger, shard)


@task(task_run_name="summarize tick", **RETRIES)
def summarize_tick(run_id: str, tick_at: datetime, state: str) -> dict:
    """Counts from the database's per-booking results (the record of truth), kept on tick_runs."""
    records = RunRecords()
    counts, bookings = records.run_counts(run_id)
    summary = summarize_counts(run_id, tick_at.isoformat(), counts, bookings).as_dict()
    summary["receipts"] = Outbox().receipt_counts(tick_at)
    summary["receipts_requested"] = config.status_callback_url() is not None  # sends ask Twilio for them
    records.finish_run(run_id, state, summary)
    return summary


@task(task_run_name="read results table", **RETRIES)
def read_results_table(run_id: str) -> list[dict]:
    """The first BOOKING_CRON_ARTIFACT_ROWS per-booking results, failures first, as artifact rows."""
    with database.connection() as conn:
        frame = results_frame(conn, run_id=run_id, limit=config.artifact_rows(), failures_first=True)
    return results_table(frame, config.artifact_rows())


def publish_results(run_id: str, summary: dict, rows: list[dict], shard: Shard = Shard()) -> None:
    """The per-booking table and the markdown summary. Created by the flow itself, not a task: an
    artifact made in a task belongs to that task run, and the run's Artifacts tab then opens on
    "Flow run: None" with them under "Task runs"."""
    total = summary["results"]
    create_table_artifact(rows, key=artifact_key("tick-results", shard),
                          description=f"Per-booking results, {len(rows)} of {total} rows, failures first")
    create_markdown_artifact(summary_markdown(summary, total, len(rows), run_id),
                             key=artifact_key("tick-summary", shard),
                             description=f"What the tick at {utc_time(summary['tick_at'])} did, and what needs attention")


# Prefect's own example of a flow's task runner; its generic types reject it ("ThreadPoolTaskRunner[Never]")
@flow(name="tick", flow_run_name=tick_run_name, task_runner=ThreadPoolTaskRunner(max_workers=4),  # type: ignore[arg-type]
      **KEEP_RESULT)
def tick(tick_at: datetime | None = None, dry_run: bool = False, trigger: str = "run", shard: str | None = None):
    """One tick at `tick_at` (default: the scheduled time). Returns the summary (counts);
    per-booking results are in tick_results and in this run's artifacts."""
    logger = get_run_logger()
    used_blocks = load_blocks_into_environment()  # explicit settings win (booking_cron/ops/wiring.py)
    if used_blocks:
        logger.info("configuration from Prefect blocks: %s", ", ".join(used_blocks))
    logger.info("bookings %s", database.describe_database(database.resolve_url()))
    tick_at, scope = resolve_tick_at(tick_at), Shard.parse(shard)
    run_id = str(flow_run.id)
    if not dry_run:
        record_tick_start(run_id, tick_at, trigger, scope)

    results: list[StepResult] = []
    if dry_run:
        crash_point("after_fetch")
        results += dry_run_steps(run_id, tick_at, scope).items
    else:
        size = config.batch_size()
        ranges = plan_batches("complete", tick_at, scope, size)
        crash_point("after_fetch")
        failed = run_batches(complete_batch, ranges, run_id, tick_at, scope)
        crash_point("between_complete_and_deduct")
        # also what an interrupted tick (or a failed complete batch's retry) left owed
        packs = plan_batches("deduct", tick_at, scope, size)
        failed_deducts = run_batches(deduct_batch, packs, run_id, scope)
        if failed or failed_deducts:
            summarize_tick(run_id, tick_at, "failed")
            raise RuntimeError(
                f"{failed} of {len(ranges)} complete batches and {failed_deducts} of {len(packs)} deduct "
                "batches failed after retries; their bookings stay due or owed and the next tick finishes them"
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
        publish_results(run_id, summary, read_results_table(run_id), scope)
    message = state_message(summary)
    logger.info("tick %s: %s", f"{tick_at:%Y-%m-%d %H:%M:%S} UTC", message)
    # A COMPLETED state either way; named "Needs attention" when something does, for the runs list.
    return Completed(message=message, data=summary, name=state_name(summary))
