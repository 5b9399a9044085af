"""Comparison 8: what one send slot costs, three ways of holding a provider rate.

(a) booking-cron's: `booking_cron.take_send_slot` in PostgreSQL (sms/rate.py), one short
    transaction per send over the pool, shared by every process that sends;
(b) the per-process pacer it replaced (a lock and a clock, in this process only: it cannot hold
    a rate across workers, so it is the floor, not an alternative);
(c) Prefect's distributed alternative: `rate_limit` on a global concurrency limit with slot decay
    (strict, so that a missing limit fails instead of silently not limiting), one API call per send.

Rates are set far above what is taken, so no slot waits: the figures are the bookkeeping alone,
per send, with `THREADS` senders taking slots at once (a tick's sender runs 8).
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

from bench.env import scratch_database
from booking_cron.sms.rate import SendRate

THREADS = 8
UNLIMITED = 1_000_000.0  # a second: far above what the bench takes, so no slot waits


class OldPacer:
    """The pacer sms/sender.py had until issue 18: at most `rate` sends a second in this process."""

    def __init__(self, rate: float):
        self.interval, self._next, self._lock = 1.0 / rate, 0.0, threading.Lock()

    def wait(self) -> None:
        with self._lock:
            slot = max(time.monotonic(), self._next)
            self._next = slot + self.interval
        if (delay := slot - time.monotonic()) > 0:
            time.sleep(delay)


def per_slot(take, n: int) -> float:
    """Seconds per slot for n slots taken by THREADS threads at once."""
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda i: take(f"+6140000{i % 50:04d}"), range(n)))
    return (time.perf_counter() - started) / n


def prefect_rate_limit(n: int) -> float:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.concurrency.sync import rate_limit

    name = f"bench-sms-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
            name=name, limit=int(UNLIMITED), slot_decay_per_second=UNLIMITED))
    try:
        return per_slot(lambda sender: rate_limit(name, occupy=1, strict=True), n)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(name)


def run(server: str, n: int = 2000) -> dict:
    with scratch_database(server, "send_rate") as url:
        rate = SendRate(UNLIMITED, UNLIMITED, "AC-bench", url)
        rate.take("+61400000000")  # the pool's first connection, apart
        postgres = per_slot(rate.wait, n)
    pacer = OldPacer(UNLIMITED)
    old = per_slot(lambda sender: pacer.wait(), n)
    prefect_n = max(n // 4, 50)  # an HTTP call each: fewer suffice
    prefect = prefect_rate_limit(prefect_n)
    return {"n": n, "threads": THREADS, "postgres_seconds": postgres, "pacer_seconds": old,
            "prefect_n": prefect_n, "prefect_seconds": prefect}
