"""Overlap: eight ticks at once on one data set, runs at T and backfill slots at earlier times,
in threads of one process and in separate processes. Nothing is deducted or texted twice, and
all the work is done by the time they have all finished."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta


from tests import factories as f
from tests.faultkit import (  # noqa: F401 (fixtures)
    ROOT, T, assert_world, cli_env, count, duplicate_texts, fault_counts, phone, run_tick, sandbox, sandbox_server,
    summary_of, texting_org, violations, world,
)


def together(jobs) -> list:
    """Run the callables at the same moment, one thread each; their results (or exceptions)."""
    start = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)

    def run(i, job):
        start.wait()
        try:
            results[i] = job()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            results[i] = error

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    return results


def test_eight_overlapping_ticks_in_threads_runs_and_backfill_slots(db, sandbox):
    w = world(db, on_pack=40, no_pack=8, reminders=10, packs=2, orgs=2)
    sandbox.configure(latency=0.05)
    # Backfill slots 10 to 40 minutes back. A sender's clock follows a future tick_at, so a tick at T sees
    # the slots' 5-minute leases as long expired and takes their texts over mid-send: only the claim
    # fencing of the send (status 'sending' and the same attempts, under the row lock) keeps each text
    # to one send here (test_a_sender_that_outlives_its_lease_does_not_send_twice is the exact case).
    slots = [T - timedelta(minutes=m) for m in (10, 20, 30, 40)]
    jobs = [lambda: run_tick(T) for _ in range(4)]
    jobs += [lambda at=at: run_tick(at, trigger="backfill") for at in slots]
    summaries = together(jobs)
    count("overlapping_ticks", len(jobs))

    assert [s for s in summaries if not isinstance(s, dict)] == []
    assert sum(s["completed"] for s in summaries) == len(w.due)
    assert sum(s["deducted"] for s in summaries) == len(w.due_on_pack)
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)

    run_tick(T + timedelta(minutes=10))  # nothing left over: the next tick finds nothing to do
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)


def test_overlapping_ticks_in_separate_processes(db, sandbox, prefect_api):
    """Four `booking-cron run` processes at T, joined by two in-process ticks (one a backfill slot)
    as soon as the processes have started their flow runs."""
    w = world(db, on_pack=24, no_pack=4, reminders=6, packs=2, orgs=2)
    sandbox.configure(latency=0.1)
    env = cli_env(prefect_api, sandbox)
    started = [subprocess.Popen([sys.executable, "-m", "booking_cron", "run", "--at", T.isoformat(), "--json"],
                                env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for _ in range(4)]
    deadline = time.monotonic() + 120
    while db.execute("select count(*) from tick_runs").fetchone()[0] < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    results = together([lambda: run_tick(T), lambda: run_tick(T - timedelta(minutes=20), trigger="backfill")])
    outputs = [p.communicate(timeout=300) for p in started]
    count("overlapping_ticks", len(started) + 2)
    count("ticks", len(started))

    assert [r for r in results if not isinstance(r, dict)] == []
    assert [p.returncode for p in started] == [0] * len(started), [err[-3000:] for _, err in outputs]
    summaries = results + [summary_of(subprocess.CompletedProcess(p.args, 0, out, err))
                           for p, (out, err) in zip(started, outputs)]
    assert sum(s["completed"] for s in summaries) == len(w.due)
    assert sum(s["deducted"] for s in summaries) == len(w.due_on_pack)
    assert violations(db, sandbox) == []
    assert_world(db, w, sandbox)


def test_a_sender_that_outlives_its_lease_does_not_send_twice(db, sandbox):
    """Sender A claims a batch at T and is slow (provider stalls, a long batch); its 5-minute lease
    runs out while it still holds texts it has not sent yet. Tick B at T + 6 minutes reclaims them,
    finds nothing at the provider, and sends. A must then not send them again."""
    import uuid

    from booking_cron.sms.outbox import Outbox
    from booking_cron.sms.rate import SendRate
    from booking_cron.sms.sender import LEASE, Sender
    from booking_cron.sms.step import sms_gateway
    from flows.tick import queue_texts

    org = texting_org(db)
    f.booking(db, org, f.client(db, org, "Ava Nguyen", phone()), start=T + timedelta(minutes=30))
    queue_texts.fn(str(uuid.uuid4()), T, False, True)
    outbox = Outbox()
    claimed = outbox.claim(str(uuid.uuid4()), T, 200, LEASE)  # A's claim, A still working on others
    assert len(claimed) == 1

    run_tick(T + timedelta(minutes=6))  # B: A's lease has run out
    count("overlapping_ticks", 2)
    assert len(sandbox.messages) == 1

    quiet, budget = outbox.sending_context(claimed, T)  # A reaches the text at last
    Sender(outbox, sms_gateway(), SendRate(500, 0), concurrency=1, clock=lambda: T + timedelta(minutes=1)).deliver(
        claimed, quiet, budget)
    assert duplicate_texts(sandbox) == []
    assert len(sandbox.messages) == 1
