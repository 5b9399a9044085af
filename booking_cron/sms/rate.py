"""One send rate for every process that sends: the provider's limits per sender and per account,
held in PostgreSQL (booking_cron.take_send_slot, migration 0053) so that shard ticks on several
workers share them instead of each pacing at the full rate on its own.

Each send first takes a slot: the database answers how long to wait (its clock, shared by all
workers), and the wait happens here, outside any transaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from booking_cron import config
from booking_cron.storage import database

# Slots are spaced for 95% of each rate: network jitter can bunch two requests together at the
# provider, and a 429 costs a retry, which costs more than the 5%.
HEADROOM = 0.95
TAKE_SLOT = "select booking_cron.take_send_slot(%s, %s, %s, %s)"


@dataclass(frozen=True)
class SendRate:
    """Sends a second per sender (number or messaging service) and per account; 0 is no limit."""

    per_sender: float
    per_account: float
    account: str = ""
    url: str | None = None  # the bookings database (default: DATABASE_URL or the embedded one)

    @classmethod
    def from_config(cls, account: str = "") -> "SendRate":
        return cls(config.sms_rate(), config.sms_account_rate(), account)

    def spaced(self, rate: float) -> float:
        return rate * HEADROOM if rate > 0 else 0.0

    def take(self, sender: str) -> float:
        """Take the next slot for `sender`; the seconds to wait before sending (0: now)."""
        if self.per_sender <= 0 and self.per_account <= 0:
            return 0.0
        with database.connection(self.url) as conn:  # its own short transaction: the row locks end here
            row = conn.execute(TAKE_SLOT, (sender, self.spaced(self.per_sender), self.account,
                                           self.spaced(self.per_account))).fetchone()
            assert row is not None  # a function call without from: one row
            (delay,) = row
        return delay

    def wait(self, sender: str) -> None:
        delay = self.take(sender)
        if delay > 0:
            time.sleep(delay)
