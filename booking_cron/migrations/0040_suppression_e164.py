"""
Rewrite stored sms_suppression numbers in E.164 (`0412 399 002` -> `+61412399002`, with the
org's country from its time zone), so that a suppression matches the number texts go to.
Python, not SQL: normalising a phone number needs the phonenumbers library.

Self-contained on purpose: a migration that imported booking-cron's code would change whenever
that code does. This is the rule as it stood when the migration was written (booking_cron.sms.
suppression.normalise_suppressions with booking_cron.domain.texts.phones.e164_or_none); it imports only
third-party libraries. A row that is no valid phone number stays as it is; a number suppressed
twice, in two spellings, keeps its E.164 row.
"""

from importlib import resources
from pathlib import Path

import phonenumbers
from phonenumbers import NumberParseException
from yoyo import step

NOT_E164 = r"""
select x.id::text, x.org_id::text, x.phone, coalesce(bs.timezone, 'Australia/Brisbane')
from public.sms_suppression x
left join public.booking_settings bs on bs.org_id = x.org_id
where x.phone !~ '^\+[1-9][0-9]{6,14}$'
for update of x skip locked
"""

DROP_DUPLICATE = """
delete from public.sms_suppression x
where x.id = %(id)s
  and exists (select 1 from public.sms_suppression y where y.org_id = %(org)s and y.phone = %(e164)s)
"""

REWRITE = "update public.sms_suppression set phone = %(e164)s where id = %(id)s"


def zone_countries():
    """IANA zone -> ISO country code, from the tz database's zone.tab (the tzdata package, else
    the system's copy)."""
    try:
        text = resources.files("tzdata").joinpath("zoneinfo", "zone.tab").read_text()
    except (ModuleNotFoundError, FileNotFoundError):
        path = Path("/usr/share/zoneinfo/zone.tab")
        text = path.read_text() if path.exists() else ""
    rows = (line.split("\t") for line in text.splitlines() if line and not line.startswith("#"))
    return {row[2]: row[0] for row in rows if len(row) >= 3}


def e164_or_none(raw, tz, countries):
    """E.164 form of a number stored by hand (`0412 399 002` in Brisbane), or None when it is no
    valid phone number. A number without its + is read in the country of the org's time zone."""
    text = (raw or "").strip()
    if not text:
        return None
    region = (countries.get((tz or "").strip()) or "").strip().upper() or None
    if region not in phonenumbers.SUPPORTED_REGIONS:
        region = None
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def apply(conn):
    countries = zone_countries()
    with conn.cursor() as cur:
        cur.execute(NOT_E164)
        for row_id, org_id, phone, tz in cur.fetchall():
            e164 = e164_or_none(phone, tz, countries)
            if e164 is None:
                continue
            params = {"id": row_id, "org": org_id, "e164": e164}
            cur.execute(DROP_DUPLICATE, params)
            if cur.rowcount == 0:
                cur.execute(REWRITE, params)


steps = [step(apply)]
