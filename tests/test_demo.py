"""The demo sends texts whatever the hour it is run at (the sender checks quiet hours on the wall clock)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from booking_cron.demo import daytime_zones
from booking_cron.seed import QUIET_HOURS, TIMEZONES
from booking_cron.texts.quiet_hours import in_quiet_hours


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
