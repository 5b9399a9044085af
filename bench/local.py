"""Comparison 7: a nothing-due `booking-cron run` as a whole process against a one-task Prefect
flow run as a whole process, both against the same Prefect server: booking-cron's local server
(`<data dir>/prefect`, started once, as any command without PREFECT_API_URL starts it).

Each process is timed from spawn to exit (interpreter start-up, imports, the flow run, exit),
interleaved, after one warm-up each; the figure is the median of `runs`. The database holds
seed() data around T + 30 days, so the tick does all its steps and finds nothing due.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.data import load_background
from bench.env import T, scratch_database
from booking_cron.ops import prefect_api

ONE_TASK_FLOW = """
from prefect import flow, task

@task
def nothing():
    return 1

@flow(name="one-task")
def one_task():
    return nothing()

one_task()
"""

# Before the local server: the same nothing-due tick as a whole process without PREFECT_API_URL,
# where Prefect starts a temporary server inside each process (what every command did).
EPHEMERAL_TICK = """
import sys
from datetime import datetime
from flows.tick import tick

tick(tick_at=datetime.fromisoformat(sys.argv[1]), trigger="bench")
"""


def _timed(command: list[str], env: dict[str, str], failures: list[str] | None = None) -> float:
    """Seconds from spawn to exit. A failed process raises, unless `failures` collects its last line."""
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        if failures is None:
            raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stderr[-2000:]}")
        failures.append((done.stderr.strip().splitlines() or ["?"])[-1])
    return seconds


def run(server: str, runs: int = 7, ephemeral_runs: int = 3) -> dict:
    script = Path(sys.executable).parent / "booking-cron"
    booking_cron = [str(script)] if script.exists() else [sys.executable, "-m", "booking_cron"]
    with tempfile.TemporaryDirectory(prefix="bench-local-prefect-") as data, \
            scratch_database(server, "local") as url:
        load_background(url)
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "BOOKING_CRON_COUNT_STATEMENTS")}
        env.update(BOOKING_CRON_DATA_DIR=data, DATABASE_URL=url, PREFECT_LOGGING_LEVEL="ERROR")
        folder = (Path(data) / "prefect").resolve()
        try:
            start_seconds = _timed(booking_cron + ["prefect", "start"], env)
            local = prefect_api.recorded(folder)
            assert local is not None, "`booking-cron prefect start` recorded no server"
            flow_env = {**env, "PREFECT_API_URL": local.api_url}
            tick = booking_cron + ["run", "--at", T.isoformat(), "--json"]
            flow = [sys.executable, "-c", ONE_TASK_FLOW]
            _timed(tick, env), _timed(flow, flow_env)  # warm-up: the server's first flow registrations
            ticks, flows = [], []
            for _ in range(runs):
                ticks.append(_timed(tick, env))
                flows.append(_timed(flow, flow_env))
            ephemeral_env = {k: v for k, v in env.items() if k != "BOOKING_CRON_DATA_DIR"}
            # it fails when the machine is busy ("Timed out while attempting to connect to ephemeral
            # Prefect API server"): counted and reported, not fatal
            failed: list[str] = []
            ephemeral = [_timed([sys.executable, "-c", EPHEMERAL_TICK, T.isoformat()], ephemeral_env, failed)
                         for _ in range(ephemeral_runs)]
        finally:
            prefect_api.stop(folder)
    return {"runs": runs, "server_start": start_seconds, "tick_median": statistics.median(ticks),
            "flow_median": statistics.median(flows), "ticks": ticks, "flows": flows,
            "ephemeral_median": statistics.median(ephemeral), "ephemeral": ephemeral, "ephemeral_failed": failed}
