"""Comparisons 1 and 2: ticks over n due bookings, and the two baselines at the largest n.

Each tick runs in a fresh subprocess on a freshly loaded database (bench.worker): its wall
time, the span of its complete + deduct steps, statements sent and peak RSS. The baselines run
in this process, each on its own freshly loaded database with the same data.
"""

from __future__ import annotations

import os

from bench import baselines
from bench.backfill import timed_cli
from bench.data import load_due
from bench.env import T, scratch_database
from bench.runner import tick_in_subprocess


def tick_at_size(server: str, n: int) -> dict:
    with scratch_database(server, f"tick_{n}") as url:
        loaded = load_due(url, n)
        result = tick_in_subprocess(url, T)
        state = baselines.end_state(url)
    summary = result["summary"]
    if summary["completed"] != loaded["due"] or summary["deducted"] != loaded["due"]:
        raise RuntimeError(f"tick over {n} due bookings did not complete and deduct them all: {summary}")
    if state != {"completed": loaded["due"], "sessions_used": loaded["due"]}:
        raise RuntimeError(f"unexpected end state after the tick: {state}")
    return {**result, "n": n, "loaded": loaded}


def process_at_size(server: str, n: int) -> dict:
    """A whole `booking-cron run --at T --json` process (interpreter start-up, imports, the flow and
    its Prefect server calls), as an operator or a worker runs it, over n due bookings."""
    with scratch_database(server, f"process_{n}") as url:
        loaded = load_due(url, n)
        result = timed_cli(["run", "--at", T.isoformat()], url, os.environ["PREFECT_API_URL"])
        state = baselines.end_state(url)
    if state != {"completed": loaded["due"], "sessions_used": loaded["due"]}:
        raise RuntimeError(f"`booking-cron run` over {n} due bookings left {state}")
    return {**result, "n": n}


def raw_baseline(server: str, n: int, repeats: int = 3) -> dict:
    """(a) on `repeats` freshly loaded databases; the median run."""
    runs = []
    for _ in range(max(1, repeats)):
        with scratch_database(server, f"raw_{n}") as url:
            load_due(url, n)
            runs.append({**baselines.raw_set_based(url), "end_state": baselines.end_state(url)})
    runs.sort(key=lambda r: r["seconds"])
    return {**runs[len(runs) // 2], "runs": len(runs), "all_seconds": [r["seconds"] for r in runs]}


def seed_app_baseline(server: str, n: int, limit: int | None = None) -> dict:
    """(b) over all n, or over the first `limit` and scaled to n (said in the result)."""
    with scratch_database(server, f"seed_app_{n}") as url:
        load_due(url, n)
        result = baselines.seed_app_design(url, limit=limit if limit and limit < n else None)
        result["end_state"] = baselines.end_state(url)
    done = result["completed"]
    result["measured_over"] = done
    if done < n:
        result["seconds"] *= n / done
        result["statements"] = n + 2  # one select, one update, one call per booking
        result["extrapolated"] = True
    return result
