"""
Rewrite stored sms_suppression numbers in E.164 (`0412 399 002` -> `+61412399002`, with the
org's country from its time zone), so that a suppression matches the number texts go to.
Python, not SQL: normalising a phone number needs the phonenumbers library.
"""

from yoyo import step

from booking_cron.sms.suppression import normalise_suppressions


def apply(conn):
    with conn.cursor() as cur:
        normalise_suppressions(cur)


steps = [step(apply)]
