"""The demo sends texts whatever the hour it is run at (the sender checks quiet hours on the wall clock),
and the command it prints for all of a tick's results works as printed."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from booking_cron.ops.demo import daytime_zones
from booking_cron.ops.seed import QUIET_HOURS, TIMEZONES
from booking_cron.domain.texts.quiet_hours import in_quiet_hours


@pytest.mark.parametrize("day", [datetime(2026, 1, 15, tzinfo=timezone.utc), datetime(2026, 7, 15, tzinfo=timezone.utc)],
                         ids=["january", "july"])
def test_at_every_quarter_hour_the_demo_has_an_org_where_it_is_daytime(day):
    for quarter in range(96):
        now = day + timedelta(minutes=15 * quarter)
        zones = daytime_zones(now, TIMEZONES, 3)
        assert len(set(zones)) == 3
        assert not in_quiet_hours(now, zones[0], *QUIET_HOURS), (now, zones)
        # and at least two hours of daytime left there, so that reminders an hour ahead go out
        assert not in_quiet_hours(now + timedelta(hours=2), zones[0], *QUIET_HOURS), (now, zones)


def test_the_results_command_the_demo_prints_works_as_printed(tmp_path, database_url, prefect_api):
    """The demo's database is not the shell's (nor the embedded server's default one): the hint names it.
    Run as `make demo` runs it (.venv/bin/booking-cron, the venv not on PATH), the hint runs as printed."""
    bin_dir = os.path.dirname(sys.executable)  # booking-cron, as installed beside this interpreter
    user_path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if d != bin_dir)
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "COLUMNS": "100", "PATH": user_path,
           "BOOKING_CRON_DATA_DIR": str(tmp_path / "data")}  # DATABASE_URL stays set, as in a user's shell
    demo = subprocess.run([os.path.join(bin_dir, "booking-cron"), "demo"], capture_output=True, text=True,
                          env=env, timeout=600)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    hint = next(line for line in demo.stdout.splitlines() if line.startswith("All of them: "))
    command = hint.removeprefix("All of them: ")
    assert command.startswith("DATABASE_URL= BOOKING_CRON_EMBEDDED_DATABASE=booking_cron_demo ")
    assert f"{bin_dir}/booking-cron results --run " in command
    shown = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "per-booking results" in shown.stdout and "UndefinedTable" not in shown.stderr
