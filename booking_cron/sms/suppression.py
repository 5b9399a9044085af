"""Suppressed numbers, kept in E.164 so that they match the numbers texts go to.

booking-cron writes E.164 only; the app and people may store `0412 399 002`. Such rows are
rewritten in E.164 with the org's country (from its time zone): by the migration for rows that
existed at upgrade, and at the start of every tick's planning for rows written since. SQL has
no phone-number library, so this runs in Python; a row that is no phone number stays as it is.
"""

from __future__ import annotations

from booking_cron.domain.texts.phones import e164_or_none
from booking_cron.storage import org_sql
from booking_cron.storage.org_sql import org_default_params

E164_PATTERN = r"^\+[1-9][0-9]{6,14}$"

NOT_E164 = rf"""
select x.id::text, x.org_id::text, x.phone, {org_sql.TIMEZONE}
from public.sms_suppression x
left join public.booking_settings bs on bs.org_id = x.org_id
where x.phone !~ '{E164_PATTERN}'
for update of x skip locked
"""

# The E.164 row may exist already (the number suppressed twice, in two spellings): keep that one.
DROP_DUPLICATE = """
delete from public.sms_suppression x
where x.id = %(id)s
  and exists (select 1 from public.sms_suppression y where y.org_id = %(org)s and y.phone = %(e164)s)
"""
REWRITE = "update public.sms_suppression set phone = %(e164)s where id = %(id)s"

SUPPRESS = """
insert into public.sms_suppression (org_id, phone, reason) values (%s, %s, %s)
on conflict (org_id, phone) do nothing
"""


def normalise_suppressions(cur) -> int:
    """Rewrite stored suppressions in E.164; returns how many rows changed. `cur` is a cursor in
    the caller's transaction (psycopg 3)."""
    rows = cur.execute(NOT_E164, org_default_params()).fetchall()
    changed = 0
    for row_id, org_id, phone, tz in rows:
        e164 = e164_or_none(phone, tz)
        if e164 is None:
            continue
        params = {"id": row_id, "org": org_id, "e164": e164}
        cur.execute(DROP_DUPLICATE, params)
        if cur.rowcount == 0:
            cur.execute(REWRITE, params)
        changed += 1
    return changed
