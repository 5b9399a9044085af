"""Which org may send from which Twilio sender, in PostgreSQL (booking_cron.senders, migration 0049).

An org's sms_settings only *claim* a sender (its messaging service when set, else its number);
the platform *assigns* it: service_role's writes of sms_settings, `db upgrade` for what existing
installs had, or an operator with `booking-cron senders assign`. A text goes out, and a reply is
routed, only on a sender assigned to its org. Here: the operator's reads and writes of the
assignments, and the claims that are not assignments, for `senders list` and `doctor`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg

PHONE, MESSAGING_SERVICE = "phone", "messaging_service"
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")  # as the table's check
SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

ASSIGNMENTS = """
select a.kind, a.sender, a.org_id::text, o.name, a.assigned_at, a.assigned_by
from booking_cron.senders a join public.orgs o on o.id = a.org_id
order by o.name, a.org_id, a.kind, a.sender
"""

# Orgs that text (sms enabled) whose sender is not assigned to them: to another org, or to none.
UNASSIGNED_CLAIMS = """
select s.org_id::text, o.name, c.kind, c.sender, a.org_id::text,
       (select count(distinct s2.org_id)::int from public.sms_settings s2
        cross join lateral booking_cron.claimed_sender(s2.twilio_phone_number, s2.twilio_messaging_service_sid) c2
        where s2.enabled and c2.kind = c.kind and c2.sender = c.sender)
from public.sms_settings s
join public.orgs o on o.id = s.org_id
cross join lateral booking_cron.claimed_sender(s.twilio_phone_number, s.twilio_messaging_service_sid) c
left join booking_cron.senders a on a.kind = c.kind and a.sender = c.sender
where s.enabled and c.kind is not null and a.org_id is distinct from s.org_id
order by c.kind, c.sender, o.name, s.org_id
"""

ASSIGN = """
insert into booking_cron.senders (kind, sender, org_id, assigned_by)
values (%(kind)s, %(sender)s, %(org)s, 'booking-cron senders assign by ' || session_user)
on conflict (kind, sender) do nothing
"""


@dataclass(frozen=True)
class Assignment:
    kind: str
    sender: str
    org_id: str
    org_name: str | None
    assigned_at: datetime
    assigned_by: str

    def as_dict(self) -> dict:
        return {**asdict(self), "assigned_at": self.assigned_at.isoformat()}


@dataclass(frozen=True)
class Claim:
    """An org that texts and names a sender not assigned to it: its texts wait unsent."""
    org_id: str
    org_name: str | None
    kind: str
    sender: str
    assigned_to: str | None  # the org it is assigned to, or None: to no org
    claimed_by: int  # how many orgs that text name this sender

    def as_dict(self) -> dict:
        return asdict(self)


class SenderError(ValueError):
    """An assignment the operator asked for that cannot be made; the message says why and what to do."""


def parse_sender(phone: str | None, service: str | None) -> tuple[str, str]:
    """(kind, sender) from the command line: exactly one of an E.164 number (spaces, dashes and
    brackets allowed) or a messaging service sid."""
    if (phone is None) == (service is None):
        raise SenderError("give exactly one of --phone and --messaging-service")
    if phone is not None:
        number = re.sub(r"[\s().-]", "", phone)
        if not E164.match(number):
            raise SenderError(f"--phone {phone!r} is not an E.164 number (e.g. +61280000001)")
        return PHONE, number
    assert service is not None  # exactly one of the two was given
    if not SERVICE_SID.match(service):
        raise SenderError(f"--messaging-service {service!r} is not a messaging service sid (MG and 32 hex digits)")
    return MESSAGING_SERVICE, service


def assignments(conn: psycopg.Connection) -> list[Assignment]:
    return [Assignment(*row) for row in conn.execute(ASSIGNMENTS)]


def unassigned_claims(conn: psycopg.Connection) -> list[Claim]:
    return [Claim(*row) for row in conn.execute(UNASSIGNED_CLAIMS)]


def assign(conn: psycopg.Connection, org_id: str, kind: str, sender: str) -> str:
    """Assign the sender to the org; 'assigned' or 'already'. SenderError when the org does not exist
    or another org has the sender."""
    with conn.transaction():
        if conn.execute("select 1 from public.orgs where id::text = %s", (org_id,)).fetchone() is None:
            raise SenderError(f"no org with id {org_id!r}")
        if conn.execute(ASSIGN, {"kind": kind, "sender": sender, "org": org_id}).rowcount:
            return "assigned"
        row = conn.execute("select org_id::text from booking_cron.senders where kind = %s and sender = %s",
                           (kind, sender)).fetchone()
        assert row is not None  # the assignment above conflicted with this row
        holder = row[0]
    if holder != org_id:
        raise SenderError(f"{sender} is assigned to org {holder}: `booking-cron senders unassign "
                          f"--{option(kind)} {sender}` first, if it is no longer theirs")
    return "already"


def unassign(conn: psycopg.Connection, kind: str, sender: str) -> str | None:
    """Take the sender from the org it is assigned to; that org's id, or None when it was not assigned."""
    with conn.transaction():
        row = conn.execute("delete from booking_cron.senders where kind = %s and sender = %s returning org_id::text",
                           (kind, sender)).fetchone()
    return row[0] if row else None


def valid(kind: str, sender: str) -> bool:
    """Whether the sender has the form the platform can assign (the table's check)."""
    return bool((E164 if kind == PHONE else SERVICE_SID).match(sender or ""))


def shown(kind: str, sender: str) -> str:
    """The sender for an operator's eyes: as is when well formed; else quoted, cut short, and said so
    (what an org's sms_settings name is anyone's text)."""
    if valid(kind, sender):
        return sender
    return f"{ascii((sender or '')[:40])} (not a {'number' if kind == PHONE else 'messaging service sid'})"


def option(kind: str) -> str:
    """The command-line option that names a sender of this kind."""
    return "phone" if kind == PHONE else "messaging-service"


def assign_command(org_id: str, kind: str, sender: str) -> str:
    return f"booking-cron senders assign --org {org_id} --{option(kind)} {sender}"
