"""The SQL behind Twilio's callbacks: each request is one transaction on one pooled connection.

Receipts lock the text's row, so two callbacks for one message apply in turn and the ordering
rule (`rules.status_after`) sees what the other wrote. Replies are keyed by MessageSid: a
replayed reply finds its row and changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from booking_cron.storage import database
from booking_cron.storage.phone_sql import phone_digits_sql
from booking_cron.sms.suppression import SUPPRESS
from booking_cron.sms.twilio_codes import suppression_reason
from booking_cron.webhooks import rules

STATEMENT_TIMEOUT = "5s"  # Twilio gives up after 15 s; a request waits for no lock longer than this

TEXT_BY_SID = """
select m.id::text, m.status, m.org_id::text, m.to_phone from public.sms_messages m
where m.provider_message_id = %s
for update
"""

# A receipt whose MessageSid no text holds, for the text its callback URL names: a text whose
# send was never answered (`unknown`) went after all, as this MessageSid. Only an `unknown` text
# without a sid takes it, and only a sid no other text holds (a receipt never moves a settled text).
SENT_AFTER_ALL = """
update public.sms_messages m
set status = 'sent', provider_message_id = %(sid)s, error_code = null, error_message = null,
    sent_at = coalesce(m.sent_at, m.attempted_at, now()), updated_at = now()
where m.id = %(id)s and m.status = 'unknown' and m.provider_message_id is null
  and not exists (select from public.sms_messages o where o.provider_message_id = %(sid)s)
returning m.id::text, m.status, m.org_id::text, m.to_phone
"""

SETTLE_RECEIPT = """
update public.sms_messages
set status = %(status)s, error_code = coalesce(%(code)s, error_code),
    error_message = case when %(status)s = 'failed' then 'undelivered' else error_message end, updated_at = now()
where id = %(id)s
"""

# The orgs the platform assigned the number a reply was sent to, or its messaging service
# (booking_cron.senders, migration 0049): an org's own sms_settings only claim a sender, and a
# claim routes nothing. A reply to a sender assigned to no org is recorded and acts on nothing.
ORGS_OF_SENDER = """
select distinct s.org_id from booking_cron.senders s
where (s.kind = 'phone' and s.sender = """ + phone_digits_sql("%(to)s") + """)
   or (s.kind = 'messaging_service' and %(service)s <> '' and s.sender = %(service)s)
"""

RECORD_REPLY = """
insert into public.sms_inbound (message_sid, from_phone, to_phone, org_ids, body, action)
values (%(sid)s, %(from)s, %(to)s, %(orgs)s, %(body)s, %(action)s)
on conflict (message_sid) do nothing
returning id
"""

SET_OUTCOME = "update public.sms_inbound set outcome = %(outcome)s where id = %(id)s"

OPT_IN = """
delete from public.sms_suppression where org_id = any(%(orgs)s) and phone = %(from)s and reason = 'opt_out'
"""

# The client's next upcoming booking still awaiting their confirmation, as the app's reply handler
# chose it; the client is matched by E.164 or by the national form stored by hand.
CONFIRM_NEXT = """
update public.bookings b set client_confirmed = true, updated_at = now()
where b.id = (
  select b2.id from public.bookings b2 join public.clients c on c.id = b2.client_id
  where b2.org_id = any(%(orgs)s) and b2.status = 'confirmed' and not coalesce(b2.client_confirmed, false)
    and b2.confirmation_sent_at is not null and b2.start_time > now()
    and """ + phone_digits_sql("c.phone") + """ in (%(from)s, %(national)s)
  order by b2.start_time, b2.id
  limit 1
  for update of b2
)
returning b.id::text, b.start_time, b.org_id::text
"""


@dataclass(frozen=True)
class Receipt:
    outcome: str  # applied | unchanged | unknown_message | sent_after_all
    status: str | None = None
    suppressed: str | None = None


@dataclass(frozen=True)
class Reply:
    action: str
    outcome: str  # recorded | replayed | suppressed | unsuppressed | confirmed | nothing_to_confirm | no_org
    orgs: int = 0


# A callback can overtake the sender: the provider may call back before the sender's transaction,
# which records the MessageSid once the provider accepted the text, has committed. While a text
# is mid-send, a receipt for an unknown MessageSid waits for it this long (Twilio waits 15 s).
OVERTAKEN_WAIT = 3.0

SENDING_NOW = "select exists (select from public.sms_messages where status = 'sending')"


def apply_receipt(sid: str, reported: str, error_code: str | None, url: str | None = None,
                  wait: float = OVERTAKEN_WAIT, text_id: str | None = None) -> Receipt:
    """`text_id`: the text the callback URL names (the sender puts it there), for a text whose
    send was never answered."""
    deadline = time.monotonic() + wait
    while True:
        receipt = _apply_receipt(sid, reported, error_code, url, text_id)
        if receipt.outcome != "unknown_message" or time.monotonic() >= deadline or not _sending_now(url):
            return receipt
        time.sleep(0.1)


def _sending_now(url: str | None) -> bool:
    with database.connection(url) as conn:
        row = conn.execute(SENDING_NOW).fetchone()
        assert row is not None  # a select without from: one row
        return row[0]


def _apply_receipt(sid: str, reported: str, error_code: str | None, url: str | None,
                   text_id: str | None = None) -> Receipt:
    with database.transaction(url, statement_timeout=STATEMENT_TIMEOUT) as cur:
        row = cur.execute(TEXT_BY_SID, (sid,)).fetchone()
        sent_after_all = row is None and text_id is not None
        if sent_after_all:
            row = cur.execute(SENT_AFTER_ALL, {"id": text_id, "sid": sid}).fetchone()
        if row is None:
            return Receipt("unknown_message")
        text_id, current, org_id, to_phone = row
        target = rules.status_after(current, reported)
        if target is None:
            return Receipt("sent_after_all" if sent_after_all else "unchanged", current)
        code = (error_code or "").strip()[:20] or None
        cur.execute(SETTLE_RECEIPT, {"status": target, "code": code if target == "failed" else None, "id": text_id})
        reason = suppression_reason(code) if target == "failed" else None
        if reason:
            cur.execute(SUPPRESS, (org_id, to_phone, reason))
        return Receipt("applied", target, reason)


def handle_reply(sid: str, from_phone: str, to_phone: str, service_sid: str, body: str,
                 url: str | None = None) -> Reply:
    action = rules.reply_action(body)
    with database.transaction(url, statement_timeout=STATEMENT_TIMEOUT) as cur:
        orgs = [org for (org,) in cur.execute(ORGS_OF_SENDER, {"to": to_phone, "service": service_sid})]
        inserted = cur.execute(RECORD_REPLY, {"sid": sid, "from": from_phone, "to": to_phone, "orgs": orgs,
                                              "body": body, "action": action}).fetchone()
        if inserted is None:
            return Reply(action, "replayed", len(orgs))
        outcome = _act(cur, action, orgs, from_phone)
        cur.execute(SET_OUTCOME, {"outcome": outcome, "id": inserted[0]})
        return Reply(action, outcome, len(orgs))


def _act(cur, action: str, orgs: list, from_phone: str) -> str:
    if action == rules.OTHER:
        return "recorded"
    if not orgs:
        return "no_org"
    if action == rules.OPT_OUT:
        cur.executemany(SUPPRESS, [(org, from_phone, "opt_out") for org in orgs])
        return "suppressed"
    if action == rules.OPT_IN:
        cur.execute(OPT_IN, {"orgs": orgs, "from": from_phone})
        return "unsuppressed"
    row = cur.execute(CONFIRM_NEXT, {"orgs": orgs, "from": from_phone,
                                     "national": rules.national_digits(from_phone)}).fetchone()
    return "confirmed" if row else "nothing_to_confirm"
