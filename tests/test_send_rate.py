"""One send rate across processes (issue 18 item 2): booking_cron.take_send_slot (migration 0053)
spaces every sender's and the account's sends on the database's clock, so processes that each
pace themselves cannot add up to more than the provider allows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from booking_cron.sms.rate import TAKE_SLOT

ROOT = Path(__file__).resolve().parent.parent

# One process that takes `count` slots for `sender` and prints when each send may go (Unix time).
TAKER = """
import json, sys, time
from booking_cron.sms.rate import SendRate
rate = SendRate(float(sys.argv[1]), float(sys.argv[2]), "AC-test-rate", sys.argv[3])
times = []
for _ in range(int(sys.argv[4])):
    rate.wait(sys.argv[5])
    times.append(time.time())
print(json.dumps(times))
"""


def peak_per_second(times: list[float]) -> int:
    times, best, first = sorted(times), 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= 1.0:
            first += 1
        best = max(best, last - first + 1)
    return best


def take(conn, sender: str, per_sender: float, per_account: float, account: str = "AC-sql") -> float:
    return conn.execute(TAKE_SLOT, (sender, per_sender, account, per_account)).fetchone()[0]


def test_slots_for_one_sender_are_spaced_by_its_rate_and_the_account_binds_all_senders(database_url):
    with psycopg.connect(database_url, autocommit=True) as a, psycopg.connect(database_url, autocommit=True) as b:
        waits = [take(conn, "+61400000001", 10, 0, "AC-one") for conn in (a, b, a, b)]
        assert waits[0] < 0.05
        assert [round(w, 1) for w in waits[1:]] == pytest.approx([0.1, 0.2, 0.3], abs=0.05)
        # other senders are not held up by this one, until the account's rate (4 a second) binds
        fresh = [take(a, f"+6140000010{i}", 0, 4, "AC-two") for i in range(3)]
        assert [round(w, 2) for w in fresh] == pytest.approx([0, 0.25, 0.5], abs=0.05)


def test_no_rate_means_no_wait(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert [take(conn, "+61400000002", 0, 0, "AC-free") for _ in range(5)] == [0, 0, 0, 0, 0]


def test_the_tick_role_takes_slots_but_cannot_touch_the_table(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("grant booking_cron_tick to current_user")
        conn.execute("set role booking_cron_tick")
        assert take(conn, "+61400000003", 5, 100) >= 0
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("update booking_cron.send_slots set next_at = now()")


def test_four_processes_together_keep_one_senders_rate(database_url):
    """Each process paces at 4 a second: alone, four of them would send 16 a second. Sharing the slots
    they stay within 5 (4 is the margin an operator leaves below the provider's 5: a loaded machine
    can wake a sleeping sender late and bunch two sends together)."""
    provider, rate, per_process = 5, 4, 6
    takers = [subprocess.Popen([sys.executable, "-c", TAKER, str(rate), "0", database_url, str(per_process),
                                "+61400000004"], cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(4)]
    times = [t for p in takers for t in json.loads(p.communicate(timeout=120)[0])]
    assert len(times) == 4 * per_process
    assert peak_per_second(times) <= provider
