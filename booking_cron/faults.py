"""Named crash points for the fault suite: `BOOKING_CRON_CRASH_AT=<name>` makes this process
kill -9 itself when it reaches that point, so tests can prove the next tick repairs everything.
Unset (always, in production) it costs one dictionary lookup."""

from __future__ import annotations

import os
import signal

from booking_cron import config

CRASH_POINTS = (
    "after_fetch",                  # due bookings read, nothing written
    "mid_complete",                 # the complete statement ran, its transaction not committed
    "between_complete_and_deduct",  # completions committed, no deduction yet
    "mid_batch",                    # a deduct batch ran, its transaction not committed
    "after_queue",                  # texts written to the outbox, none claimed
    "after_claim",                  # texts claimed (leased), none sent
    "after_provider_accept",        # the provider accepted a text, the outbox not yet updated
)


_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """`BOOKING_CRON_CRASH_AT=name` dies the first time `name` is reached; `name@N` the Nth time
    (a backfill reaches each point once per day)."""
    target = config.crash_at()
    if not target or target.partition("@")[0] != name:
        return
    _reached[name] = _reached.get(name, 0) + 1
    if _reached[name] >= int(target.partition("@")[2] or 1):
        os.kill(os.getpid(), signal.SIGKILL)
