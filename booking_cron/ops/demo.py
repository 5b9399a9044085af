"""`demo`: the README's first command, end to end on embedded defaults.

A fresh database on the embedded server (never the user's DATABASE_URL), seeded around now,
the Twilio sandbox standing in for Twilio (with 100 ms of latency) and calling the webhooks endpoint
back with delivery receipts, then two ticks (the second must deduct and send nothing new), the texts
the sandbox received with the outbox status their receipts left, and the audit.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from booking_cron import config
from booking_cron.storage import database, schema
from booking_cron.ops.audit import audit
from booking_cron.reporting.operator_text import terminal_text
from booking_cron.sandbox import TwilioSandbox
from booking_cron.ops.seed import QUIET_HOURS, TIMEZONES, seed
from booking_cron.domain.texts.phones import mask_phone
from booking_cron.domain.texts.quiet_hours import in_quiet_hours
from booking_cron.webhooks.app import BackgroundServer

DEMO_DATABASE = "booking_cron_demo"


def run_demo(console: Console) -> int:
    with TwilioSandbox(latency=0.1) as sandbox, \
            BackgroundServer(sandbox.auth_token, account_sid=sandbox.account_sid) as webhooks:
        os.environ.update(TWILIO_ACCOUNT_SID=sandbox.account_sid, TWILIO_AUTH_TOKEN=sandbox.auth_token,
                          TWILIO_API_URL=sandbox.url, BOOKING_CRON_PUBLIC_URL=webhooks.url)
        status = _ticks_and_audit(console)
        _wait_for_receipts(sandbox)
        with database.connection() as conn:  # what the endpoint recorded, not what the sandbox said
            outbox = dict(conn.execute("select provider_message_id, status from public.sms_messages "
                                       "where provider_message_id is not null").fetchall())
        _print_texts(console, sandbox.messages, outbox)
    return status


def _wait_for_receipts(sandbox: TwilioSandbox, timeout: float = 10.0) -> None:
    """Each accepted text gets two callbacks (sent, then delivered or undelivered)."""
    deadline = time.monotonic() + timeout
    while len(sandbox.callbacks) < 2 * len(sandbox.messages) and time.monotonic() < deadline:
        time.sleep(0.05)


def _print_texts(console: Console, messages: list[dict], outbox: dict[str, str], rows: int = 10) -> None:
    table = Table(title=f"Texts the Twilio sandbox received ({min(rows, len(messages))} of {len(messages)})")
    table.add_column("to")
    table.add_column("outbox status")
    table.add_column("body")
    for m in messages[:rows]:
        table.add_row(mask_phone(m["to"]), outbox.get(m["sid"], "-"), terminal_text(m["body"]))
    console.print(table)
    counts = {s: list(outbox.values()).count(s) for s in sorted(set(outbox.values()))}
    console.print("outbox after the sandbox's receipts reached `booking-cron webhooks`: "
                  + (", ".join(f"{n} {s}" for s, n in counts.items()) or "no texts"))


def daytime_zones(now: datetime, zones: Sequence[str], count: int) -> list[str]:
    """`count` of `zones`, those with the most daytime left before their quiet hours first (the
    sender checks quiet hours on the wall clock, so a demo run at night elsewhere sends nothing)."""
    start, end = QUIET_HOURS

    def daytime_left(zone: str) -> float:
        local = now.astimezone(ZoneInfo(zone))
        hour = local.hour + local.minute / 60
        return -1.0 if in_quiet_hours(now, zone, start, end) else (start - hour) % 24

    return sorted(zones, key=daytime_left, reverse=True)[:count]


def results_command(shell_database_url: str | None) -> str:
    """`booking-cron results` as the user types it after the demo: the demo's database, on the embedded
    server (which stops with the demo; the next command starts it again, so no URL of it would last)."""
    unset = "DATABASE_URL= " if shell_database_url else ""  # the shell's own database is not the demo's
    return f"{unset}BOOKING_CRON_EMBEDDED_DATABASE={DEMO_DATABASE} {this_program()} results"


def this_program() -> str:
    """How the user's shell reaches this booking-cron: `booking-cron` when that is it on PATH, else
    the path it was started by (`make demo` runs .venv/bin/booking-cron, the venv not activated)."""
    started = Path(sys.argv[0])
    if started.name != "booking-cron":  # python -m booking_cron: nothing better to say
        return "booking-cron"
    on_path = shutil.which("booking-cron")
    if on_path and Path(on_path).resolve() == started.resolve():
        return "booking-cron"
    return shlex.quote(str(started))


def _ticks_and_audit(console: Console) -> int:
    from booking_cron.ops.tick_command import run_tick

    console.rule("booking-cron demo")
    server = database.embedded_url()
    url = database.create_database(server, DEMO_DATABASE, replace=True)
    hint = results_command(config.database_url_from_env())
    os.environ["DATABASE_URL"] = url
    schema.upgrade(url)
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    zones = daytime_zones(now, TIMEZONES, 3)
    with database.connection(url) as conn:
        counts = seed(conn, orgs=3, clients=40, bookings=200, seed=7, at=now, timezones=zones)
    console.print(f"embedded PostgreSQL under {config.data_dir()}/pg18, database {DEMO_DATABASE}")
    console.print(f"seeded {counts.orgs} orgs, {counts.clients} clients, {counts.packs} packs, "
                  f"{counts.bookings} bookings around {now.isoformat()}")
    console.print(f"the orgs are in {', '.join(zones)}: where it is daytime now, so that texts go out "
                  f"(no texts from {QUIET_HOURS[0]}:00 to {QUIET_HOURS[1]:02d}:00 local)")

    console.rule("first tick")
    if run_tick(console, Console(stderr=True), now, dry_run=False, as_json=False, trigger="demo", results_command=hint):
        return 1
    console.rule("second tick, same time: nothing new to complete or deduct")
    if run_tick(console, Console(stderr=True), now, dry_run=False, as_json=False, trigger="demo", results_command=hint):
        return 1

    with database.connection(url) as conn:
        violations = audit(conn)
    for v in violations:
        console.print(Text.assemble(("VIOLATION", "red"), " ", terminal_text(f"{v.invariant}: {v.subject}: {v.detail}")))
    console.print("audit: " + ("all invariants hold" if not violations else f"{len(violations)} violation(s)"))
    return 1 if violations else 0
