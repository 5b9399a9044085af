"""`make soak` (`python -m tests.soak`): many random crashes, then the next tick, then the checks.

Each run: fresh random data (booking_cron.ops.seed, random size and seed) around a random future
time T; a real `booking-cron run --at T` in a subprocess killed by SIGKILL at a random named
crash point (sometimes twice in a row); then an in-process tick at T + 10 minutes (after the
crashed sender's 5-minute lease); then the audit, lost deductions, and resends at the Twilio
sandbox. Prints the fault suite's counts table; exits 1 on any violation.

It starts its own Prefect server (prefect_test_harness) and its own databases (one per worker,
on DATABASE_URL's server or the embedded one), and drops them at the end.

    python -m tests.soak [--runs 200] [--workers 2] [--seed 1] [--fault-rate 0.1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import sys
import time
import traceback
import uuid
from collections import Counter
from datetime import timedelta

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def worker(index: int, runs: int, seed: int, prefect_api: str, server_url: str, fault_rate: float,
           results: mp.Queue, replay: int | None = None, keep: bool = False) -> None:
    """One worker process: its own database and sandbox; `runs` crash-and-repair rounds."""
    import psycopg

    from booking_cron.storage import database, schema
    from booking_cron.faults import CRASH_POINTS
    from booking_cron.sandbox import TwilioSandbox
    from booking_cron.ops.seed import seed as load_seed
    from tests import faultkit as kit

    rng = random.Random(seed * 1000 + index)
    name = f"booking_cron_soak_{uuid.uuid4().hex[:8]}_{index}"
    url = database.create_database(server_url, name)
    counts, failures = Counter(), []
    try:
        schema.upgrade(url)
        os.environ.update(DATABASE_URL=url, PREFECT_API_URL=prefect_api)
        with TwilioSandbox(auth_token=kit.SANDBOX_TOKEN, seed=seed + index) as sandbox, \
                psycopg.connect(url, autocommit=True) as conn:
            os.environ.update(kit.sandbox_env(sandbox))
            os.environ["BOOKING_CRON_SMS_TIMEOUT"] = "0.5"
            for n in range(runs):
                at = kit.T + timedelta(minutes=rng.randrange(0, 7 * 24 * 60))
                points = [rng.choice(CRASH_POINTS)] + ([rng.choice(CRASH_POINTS)] if rng.random() < 0.2 else [])
                faulty = rng.random() < 0.5
                size = dict(orgs=rng.randint(1, 4), clients=rng.randint(5, 40), bookings=rng.randint(50, 300),
                            seed=rng.randrange(1 << 30))
                if replay is not None and n != replay:
                    continue  # every draw is made, so run `replay` gets the same data as in the full soak
                label = f"worker {index} run {n}: T={at.isoformat()} crash at {' then '.join(points)}"
                try:
                    kit.empty(conn)
                    sandbox.reset()
                    sandbox.configure(stall_seconds=1, fault_rate=fault_rate if faulty else 0.0)
                    load_seed(conn, at=at, **size)
                    for k, point in enumerate(points):
                        proc = kit.cli_tick(at + timedelta(minutes=10 * k),
                                            kit.cli_env(prefect_api, sandbox, url, BOOKING_CRON_CRASH_AT=point,
                                                        BOOKING_CRON_SMS_TIMEOUT="0.5",
                                                        BOOKING_CRON_RETRY_DELAYS="0.2"))
                        if proc.returncode == -signal.SIGKILL:
                            counts["crash_points"] += 1
                        elif proc.returncode == 0:
                            counts["crash point not reached (nothing to do there)"] += 1
                        else:
                            raise AssertionError(f"crashed tick exit {proc.returncode}: {proc.stderr[-2000:]}")
                    kit.run_tick(at + timedelta(minutes=10 * len(points) + 10))
                    found = kit.violations(conn, count_them=False)
                    found += [f"at the provider {extra} more time(s) than the outbox says sent: {to}"
                              for to, _, extra in kit.excess_texts(conn, sandbox)]
                    counts["faults_injected"] += sandbox.stats()["faults_injected"]
                    counts["texts at the provider"] += len(sandbox.messages)
                    counts["bookings deducted"] += conn.execute(
                        "select count(*) from tick_completions where deduction = 'deducted'").fetchone()[0]
                    if found:
                        counts["violations"] += len(found)
                        failures.append(f"{label}: {found[:5]}")
                except Exception:  # noqa: BLE001 - a soak reports every failure and goes on
                    counts["errors"] += 1
                    failures.append(f"{label}: {traceback.format_exc(limit=6)}")
                counts["runs"] += 1
                counts["ticks"] += len(points) + 1
                if (n + 1) % 10 == 0 or n + 1 == runs:
                    print(f"worker {index}: {n + 1}/{runs} runs, {counts['crash_points']} crashes, "
                          f"{counts['violations']} violations, {counts['errors']} errors", flush=True)
    finally:
        database.close_pools()
        if keep:
            print(f"worker {index}: kept database {url}", flush=True)
        else:
            database.drop_database(server_url, name)
        results.put((index, dict(counts), failures))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="random crash-and-repair rounds in all")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (one database each)")
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--fault-rate", type=float, default=0.1, help="provider fault rate in half of the runs")
    parser.add_argument("--replay", metavar="WORKER:RUN", help="run only this run of a soak (same --seed and "
                        "--workers), e.g. one a failure line names; keeps its database")
    args = parser.parse_args(argv)
    replay = tuple(int(x) for x in args.replay.split(":")) if args.replay else None

    from prefect.testing.utilities import prefect_test_harness

    from booking_cron.storage import database
    from tests import faultkit as kit

    server_url = os.environ.get("DATABASE_URL") or database.embedded_url()
    started = time.monotonic()
    print(f"soak: {args.runs} runs, {args.workers} workers, seed {args.seed}", flush=True)
    with prefect_test_harness(server_startup_timeout=60):
        from prefect.settings import PREFECT_API_URL

        api = PREFECT_API_URL.value()
        results: mp.Queue = mp.get_context("spawn").Queue()
        shares = [args.runs // args.workers + (i < args.runs % args.workers) for i in range(args.workers)]
        if replay:
            shares = [replay[1] + 1 if i == replay[0] else 0 for i in range(args.workers)]
        procs = [mp.get_context("spawn").Process(target=worker, args=(i, share, args.seed, api, server_url,
                                                                      args.fault_rate, results,
                                                                      replay[1] if replay else None, bool(replay)))
                 for i, share in enumerate(shares) if share]
        for p in procs:
            p.start()
        totals, failures = Counter(), []
        for _ in procs:
            index, counts, worker_failures = results.get()
            totals.update(counts)
            failures += worker_failures
        for p in procs:
            p.join()
    elapsed = time.monotonic() - started
    for failure in failures:
        print("FAILED", failure, file=sys.stderr)
    totals["violations"] += 0
    print(kit.counts_table(totals, title=f"soak (seed {args.seed}, {elapsed:.0f} s)"))
    return 1 if failures or totals["runs"] < (1 if replay else args.runs) else 0


if __name__ == "__main__":
    sys.exit(main())
