"""One tick in this process, measured: `python -m bench.worker --db URL --at T [--shard i/N] --out FILE`.

Run in a fresh subprocess per measurement, so its peak RSS is the tick's own (plus imports).
Writes one JSON object to --out: wall time of the `tick()` call, CPU time, statements sent to
PostgreSQL, RSS before and peak, the time spent in each store step, and the tick's summary.

Step timings come from wrapping the store methods the flow's tasks call (BookingStore.*,
RunRecords.*, queue_due_texts, results_frame) in this process; "complete+deduct" is the span from
the start of the first complete batch (BookingStore.complete_range) to the end of the last deduct
batch (BookingStore.deduct_range), so it includes the deduct ranges' planning and the Prefect task
hand-offs between them; "fetch" is the planning of the complete ranges.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import threading
import time
from collections import defaultdict
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

os.environ["BOOKING_CRON_COUNT_STATEMENTS"] = "1"  # before any pool exists
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")

import psutil  # noqa: E402

if TYPE_CHECKING:
    from prefect.states import State

SPANS: list[tuple[str, float, float]] = []


def _timed(name: str, fn):
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            SPANS.append((name, started, time.perf_counter()))
    wrapper.__name__ = getattr(fn, "__name__", name)
    return wrapper


def instrument() -> None:
    import flows.tick as tick_module
    from booking_cron.storage.store import BookingStore, RunRecords

    # method -> the step it is timed as (the key-range tick plans instead of fetching, and completes
    # and deducts by range; the backfill still fetches and works by id lists)
    steps = {"fetch_due": "fetch_due", "plan_complete_ranges": "fetch_due", "plan_deduct_ranges": "plan_deduct",
             "complete": "complete", "complete_range": "complete", "deduct": "deduct", "deduct_range": "deduct",
             "dry_run_steps": "complete", "record_results": "record_results", "start_run": "start_run",
             "finish_run": "finish_run", "run_counts": "run_counts"}
    for store in (BookingStore, RunRecords):
        for method, name in steps.items():
            if method in vars(store):  # the flow may stop using some; what is absent costs nothing
                setattr(store, method, _timed(name, getattr(store, method)))
    for attribute, name in (("queue_due_texts", "queue_texts"), ("send_claimed_texts", "send_texts"),
                            ("results_frame", "results_frame")):
        if hasattr(tick_module, attribute):
            setattr(tick_module, attribute, _timed(name, getattr(tick_module, attribute)))


class PeakRss:
    """Samples this process's RSS (psutil) every few milliseconds; the kernel's high-water mark too."""

    def __init__(self, every: float = 0.05):
        self.process, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.wait(self.every)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def high_water_rss() -> int:
    """This process's peak RSS in bytes: the kernel's high-water mark of its own memory (VmHWM).
    Not getrusage's ru_maxrss: Linux carries the parent's peak into a child started by vfork/exec
    (subprocess's default), so ru_maxrss reported the bench process's memory after it loaded the
    rows (571 MiB for a tick whose own peak was 184 MiB at a million bookings)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def step_times() -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for name, start, end in SPANS:
        totals[name] += end - start
    complete = [s for s in SPANS if s[0] == "complete"]
    deduct = [s for s in SPANS if s[0] == "deduct"]
    if complete or deduct:
        totals["complete+deduct"] = max(s[2] for s in complete + deduct) - min(s[1] for s in complete + deduct)
    totals["deduct_span"] = (max(s[2] for s in deduct) - min(s[1] for s in deduct)) if deduct else 0.0
    totals["complete_span"] = (max(s[2] for s in complete) - min(s[1] for s in complete)) if complete else 0.0
    totals["deduct_batches"] = len(deduct)
    totals["complete_batches"] = len(complete)
    return dict(totals)


def run(db: str, at: datetime, shard: str | None) -> dict:
    os.environ["DATABASE_URL"] = db
    from booking_cron.storage import database
    from flows.tick import tick

    instrument()
    process = psutil.Process()
    rss_before = process.memory_info().rss
    cpu_before, statements_before = process.cpu_times(), database.statements_sent()
    with PeakRss() as sampler:
        started_at, started = time.time(), time.perf_counter()
        # a sync flow's call returns its State (Prefect's overloads read an unannotated flow as maybe async)
        state = cast("State[Any]", tick(tick_at=at, dry_run=False, trigger="bench", shard=shard, return_state=True))
        seconds = time.perf_counter() - started
    cpu_after = process.cpu_times()
    summary = state.result() if state.is_completed() else {"state": state.name, "error": state.message}
    return {
        "seconds": seconds, "started_at": started_at, "finished_at": started_at + seconds,
        "cpu_seconds": (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system),
        "statements": database.statements_sent() - statements_before,
        "rss_before": rss_before, "rss_peak_sampled": sampler.peak,
        "rss_peak": high_water_rss(),
        # getrusage's ru_maxrss, kept for comparison: it is not this process's own peak (see high_water_rss)
        "rss_peak_rusage": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "steps": step_times(), "shard": shard, "completed": state.is_completed(),
        "summary": {k: summary.get(k) for k in ("flow_run_id", "completed", "deducted", "not_deducted", "queued",
                                                "sent", "failed", "state", "error")},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--at", required=True, type=datetime.fromisoformat)
    parser.add_argument("--shard")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    result = run(args.db, args.at, args.shard)
    with open(args.out, "w") as out:
        json.dump(result, out, default=str)


if __name__ == "__main__":
    main()
