"""Comparison 3: the fixed cost of a tick, nothing due, vs a one-task Prefect flow.

Both run in this process against the bench's Prefect server, interleaved, after one warm-up
run each; the figure is the median of `runs`. The database holds seed() data around T + 30
days, so the tick does all its steps and finds nothing to complete, deduct or text.
"""

from __future__ import annotations

import statistics
import time

from prefect import flow, task

from bench.data import load_background
from bench.env import T, scratch_database, use_database
from booking_cron.storage import database


@task
def nothing() -> int:
    return 1


@flow(name="one-task")
def one_task_flow() -> int:
    return nothing()


def run(server: str, runs: int = 7) -> dict:
    from flows.tick import tick

    def the_tick():
        return tick(tick_at=T, dry_run=False, trigger="bench")

    with scratch_database(server, "fixed") as url, use_database(url):
        load_background(url)
        one_task_flow(), the_tick()  # warm-up: imports, first connections, flow registration
        flows, ticks = [], []
        statements = database.statements_sent()
        for _ in range(runs):
            started = time.perf_counter()
            one_task_flow()
            flows.append(time.perf_counter() - started)
            started = time.perf_counter()
            summary = the_tick()
            ticks.append(time.perf_counter() - started)
        if summary["completed"] or summary["deducted"]:
            raise RuntimeError(f"the nothing-due tick did something: {summary}")
    return {"runs": runs, "tick_median": statistics.median(ticks), "flow_median": statistics.median(flows),
            "ticks": ticks, "flows": flows,
            "statements_per_tick": (database.statements_sent() - statements) / runs}
