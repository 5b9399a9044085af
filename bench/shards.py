"""Comparison 5: four shard ticks at once vs one tick, on two databases loaded identically.

One tick (`shard=None`) runs in a subprocess on database A; four subprocesses run
`tick(shard="i/4")` at the same time on database B. The end states must match (digests of
bookings' statuses, packs' sessions_used and the ledger); the speed-up compares the single
tick's time with the window from the first shard's start to the last shard's end (tick calls
only; interpreter start-up is reported apart). System-wide CPU use during each run says what
limits the speed-up on this machine.
"""

from __future__ import annotations

import psutil

from bench.data import load_due
from bench.env import T, digests, scratch_database
from bench.runner import finish_tick, start_tick, tick_in_subprocess

SHARDS = 4


def _busy(before, after) -> float:
    """Fraction of all cores busy between two psutil.cpu_times() readings."""
    idle = (after.idle + getattr(after, "iowait", 0)) - (before.idle + getattr(before, "iowait", 0))
    total = sum(after) - sum(before)
    return 1 - idle / total if total else 0.0


def run(server: str, n: int) -> dict:
    with scratch_database(server, "one_tick") as one_url, scratch_database(server, "shards") as shard_url:
        load_due(one_url, n)
        load_due(shard_url, n)
        if digests(one_url) != digests(shard_url):
            raise RuntimeError("the two databases were not loaded identically")

        cpu = psutil.cpu_times()
        single = tick_in_subprocess(one_url, T)
        single_busy = _busy(cpu, psutil.cpu_times())

        cpu = psutil.cpu_times()
        launched = [start_tick(shard_url, T, shard=f"{i}/{SHARDS}") for i in range(1, SHARDS + 1)]
        shards = [finish_tick(*launch) for launch in launched]
        shard_busy = _busy(cpu, psutil.cpu_times())

        one_state, shard_state = digests(one_url), digests(shard_url)
    window = max(s["finished_at"] for s in shards) - min(s["started_at"] for s in shards)
    return {
        "n": n, "single_seconds": single["seconds"], "single_process_wall": single["process_wall"],
        "shards_window": window, "shards_process_wall": max(s["process_wall"] for s in shards),
        "speedup": single["seconds"] / window, "speedup_with_startup":
            single["process_wall"] / max(s["process_wall"] for s in shards),
        "same_end_state": one_state == shard_state, "digests": {"one": one_state, "shards": shard_state},
        "per_shard": [{"shard": s["shard"], "completed": s["summary"]["completed"], "seconds": s["seconds"],
                       "complete+deduct": s["steps"].get("complete+deduct", 0.0), "cpu_seconds": s["cpu_seconds"]}
                      for s in shards],
        "single_cpu_seconds": single["cpu_seconds"], "single_complete_deduct": single["steps"].get("complete+deduct"),
        "cpu_busy_single": single_busy, "cpu_busy_shards": shard_busy,
    }
