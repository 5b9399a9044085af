"""What an org gets for a setting it has not stored: the one home of these defaults.

An org without a `booking_settings` row (or a null in `sms_settings`) is texted as if it had set
these. Every SQL statement that reads an org's settings takes them as query parameters
(booking_cron/storage/org_sql.py), and the seed gives its orgs the same quiet hours, so changing
one here changes it everywhere booking-cron decides.

Migrations 0001 and 0002 also gave the columns these values as their column defaults (rows the app
inserts without them); those are history: changing a value here needs a new migration that alters
the column defaults too (tests/test_texts.py pins that they agree).
"""

from __future__ import annotations

TIMEZONE = "Australia/Brisbane"
QUIET_HOURS_START = 21  # local hour quiet hours start: no texts from 21:00 ...
QUIET_HOURS_END = 8  # ... to 08:00
MAX_SMS_PER_HOUR = 100  # texts an org may send in any hour
MAX_SMS_PER_CLIENT_PER_DAY = 5  # texts one client may get in any 24 hours
