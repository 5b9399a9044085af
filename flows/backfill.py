"""Backfill: one tick per slot in [start, end), oldest first, each its own flow run under this one.

Resumable (a slot that already had a finished tick is skipped unless `force`), safe beside the
cron deployment (ticks are idempotent and lock per pack and per text), and it never sends a
text that is stale now: the sender judges staleness on the real clock.
"""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.states import Completed, Failed
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from blocks import load_blocks_into_environment
from booking_cron import config
from booking_cron.slots import parse_every, slots_to_run, tick_slots
from booking_cron.store import BookingStore
from flows.tick import tick

TOTALS = ("completed", "deducted")
COUNTED = ("not_deducted", "rejected", "queued", "sent", "failed")


@task(task_run_name="find finished slots", retries=3, retry_delay_seconds=config.retry_delays(), cache_policy=NO_CACHE)
def find_finished_slots(slots: list[datetime]) -> set[datetime]:
    return BookingStore().finished_ticks(slots)


def backfill_run_name() -> str:
    from prefect.runtime import flow_run

    p = flow_run.parameters
    return f"backfill {p['start']:%Y-%m-%d %H:%M} to {p['end']:%Y-%m-%d %H:%M} UTC every {p.get('every', '10m')}"


def _add(totals: dict, summary: dict) -> None:
    for key in TOTALS:
        totals[key] += summary.get(key, 0)
    for key in COUNTED:
        for label, n in summary.get(key, {}).items():
            totals[key][label] = totals[key].get(label, 0) + n


@flow(name="backfill", flow_run_name=backfill_run_name)
def backfill(start: datetime, end: datetime, every: str = "10m", dry_run: bool = False, force: bool = False,
             shard: str | None = None):
    logger = get_run_logger()
    load_blocks_into_environment()
    slots = tick_slots(start, end, parse_every(every))
    finished = set() if dry_run else find_finished_slots(slots)
    todo = slots_to_run(slots, finished, force)
    totals: dict = {"slots": len(slots), "skipped": len(slots) - len(todo), "ticked": 0, "failed_slots": [],
                    **{k: 0 for k in TOTALS}, **{k: {} for k in COUNTED}, "dry_run": dry_run}
    logger.info("%s slots, %s already ticked, %s to run", len(slots), totals["skipped"], len(todo))
    artifact = create_progress_artifact(0.0, key="backfill-progress",
                                        description=f"{len(todo)} of {len(slots)} slots to tick")
    # The slots run in this process, inside this run: its heartbeat covers them. Their own would
    # cost each slot up to a second at exit (Prefect 3.8 joins a thread that sleeps in 1 s steps).
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}), \
            Progress(TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                     TextColumn("{task.description}"), console=Console(stderr=True)) as bar:
        progress = bar.add_task("", total=len(todo))
        for n, slot in enumerate(todo, 1):
            state = tick(tick_at=slot, dry_run=dry_run, trigger="backfill", shard=shard, return_state=True)
            if state.is_completed():
                _add(totals, state.result())
                totals["ticked"] += 1
            else:
                totals["failed_slots"].append(slot.isoformat())
            bar.update(progress, advance=1, description=f"{slot:%Y-%m-%d %H:%M} UTC")
            update_progress_artifact(artifact, progress=100.0 * n / max(len(todo), 1),
                                     description=f"{n} of {len(todo)} slots ticked, up to {slot.isoformat()}")
    if totals["failed_slots"]:
        return Failed(message=f"{len(totals['failed_slots'])} of {len(todo)} slots failed; re-run to retry them",
                      data=totals)
    return Completed(message=f"{totals['ticked']} slots ticked, {totals['skipped']} already done", data=totals)
