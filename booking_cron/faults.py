"""Named crash points for the fault suite: `BOOKING_CRON_CRASH_AT=<name>` makes this process
kill -9 itself when it reaches that point, so tests can prove the next tick repairs everything.
Unset (always, in production) it costs one dictionary lookup."""

from __future__ import annotations

import os
import signal

CRASH_POINTS = (
    "after_fetch",                  # due bookings read, nothing written
    "mid_complete",                 # the complete statement ran, its transaction not committed
    "between_complete_and_deduct",  # completions committed, no deduction yet
    "mid_batch",                    # a deduct batch ran, its transaction not committed
    "after_queue",                  # texts written to the outbox, none claimed
    "after_claim",                  # texts claimed (leased), none sent
    "after_provider_accept",        # the provider accepted a text, the outbox not yet updated
)


def crash_point(name: str) -> None:
    if os.environ.get("BOOKING_CRON_CRASH_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
