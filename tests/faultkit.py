"""Shared helpers of the fault suite (crash, overlap, provider, database, bad data, properties,
least privilege) and of `python -m tests.soak`.

- `T`: a fixed time in the future, so the sender's clock (which follows a future tick_at) makes
  quiet hours and expiry the same whenever the suite runs. 11:00 in Brisbane.
- fixtures: `sandbox` (a Twilio sandbox with its own auth token, wired into the environment) and
  `fault_counts` (autouse: the counts table printed at the end of the pytest session).
- `world(...)`: a small data set of bookings on packs, off packs and texts due at T, with what a
  correct system must end up with; `violations(...)`: every broken invariant, lost deduction and
  duplicate text, counted in the table.
- `cli_tick(...)`: `python -m booking_cron run --at T --json` in a subprocess.

Import the fixtures in each fault module:
`from tests.faultkit import fault_counts, sandbox, sandbox_server  # noqa: F401`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from booking_cron.ops.audit import audit
from booking_cron.sandbox import TwilioSandbox
from tests import factories as f

ROOT = Path(__file__).resolve().parents[1]
T = datetime(2030, 3, 12, 1, 0, tzinfo=timezone.utc)  # 11:00 Brisbane (UTC+10, no DST)
REMINDER = "Hi {{client_name}}, see you at {{session_datetime}} with {{coach_name}} ({{location}})."
FEEDBACK = "Thanks {{client_name}}! {{feedback_link}} {{session_summary}}"
TABLES = ["tick_results", "tick_runs", "tick_completions", "session_usage", "sms_messages", "sms_suppression",
          "sms_schedules", "sms_settings", "bookings", "client_purchases", "clients", "booking_settings", "orgs"]

# ---------------------------------------------------------------------------------------------
# The counts table
# ---------------------------------------------------------------------------------------------

COUNT_LABELS = {
    "crash_points": "crash points tried (subprocess killed by SIGKILL)",
    "overlapping_ticks": "overlapping ticks",
    "faults_injected": "provider faults injected",
    "db_faults": "database connections terminated",
    "bad_data_kinds": "bad-data kinds",
    "property_examples": "property-based examples",
    "ticks": "ticks run (all kinds)",
    "violations": "violations found (must be 0)",
    "known_defects": "known defects reproduced (strict xfail)",
}
FAULT_MODULES = ("test_crash.py", "test_overlap.py", "test_provider_faults.py", "test_db_faults.py",
                 "test_bad_data.py", "test_properties.py", "test_least_privilege.py")
COUNTS: Counter = Counter()
_lock = threading.Lock()


def count(key: str, n: int = 1) -> None:
    with _lock:
        COUNTS[key] += n


def counts_table(counts: Counter | dict | None = None, title: str = "fault suite") -> str:
    counts = COUNTS if counts is None else counts
    width = max(len(v) for v in COUNT_LABELS.values())
    lines = [f"{title}: counts", "-" * (width + 10)]
    lines += [f"{label:<{width}}  {counts.get(key, 0):>7}" for key, label in COUNT_LABELS.items()]
    extra = sorted(set(counts) - set(COUNT_LABELS))
    lines += [f"{key:<{width}}  {counts[key]:>7}" for key in extra]
    return "\n".join(lines)


class _CountsReporter:
    """A plugin registered by the first fault test: prints the table in pytest's terminal summary."""

    def pytest_runtest_logreport(self, report):
        if report.when == "call" and getattr(report, "wasxfail", None) is not None and report.skipped \
                and report.nodeid.split("::")[0].endswith(FAULT_MODULES):
            count("known_defects")

    def pytest_terminal_summary(self, terminalreporter, exitstatus, config):  # noqa: ARG002
        terminalreporter.section("fault suite counts")
        for line in counts_table().splitlines()[2:]:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session", autouse=True)
def fault_counts(request):
    manager = request.config.pluginmanager
    if not manager.has_plugin("booking-cron-fault-counts"):
        manager.register(_CountsReporter(), "booking-cron-fault-counts")
    return COUNTS


# ---------------------------------------------------------------------------------------------
# The Twilio sandbox
# ---------------------------------------------------------------------------------------------

SANDBOX_TOKEN = "tok-" + uuid.uuid4().hex  # distinctive, so a leak of it can be searched for


@pytest.fixture(scope="session")
def sandbox_server():
    with TwilioSandbox(auth_token=SANDBOX_TOKEN) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server, monkeypatch, prefect_api):
    sandbox_server.reset()
    sandbox_server.configure(latency=0.0, rate_limit=None, stall_seconds=30)
    sandbox_server.on_accept = None
    for key, value in sandbox_env(sandbox_server).items():
        monkeypatch.setenv(key, value)
    return sandbox_server


def sandbox_env(server: TwilioSandbox) -> dict[str, str]:
    return {"TWILIO_ACCOUNT_SID": server.account_sid, "TWILIO_AUTH_TOKEN": server.auth_token,
            "TWILIO_API_URL": server.url, "BOOKING_CRON_SMS_BACKOFF": "0.02", "BOOKING_CRON_SMS_RATE": "500",
            "BOOKING_CRON_SMS_TIMEOUT": "2"}


def excess_texts(conn, server: TwilioSandbox) -> list[tuple[str, str, int]]:
    """(to, body, extra) where the provider has more messages than the outbox has texts that may
    have gone (sent, delivered, unknown): a resend. Unlike `duplicate_texts`, two texts that
    happen to share a number and a body (two sessions at one time) are not counted."""
    owed = Counter((to, body) for to, body in conn.execute(
        "select to_phone, body from sms_messages where status in ('sent', 'delivered', 'unknown')"))
    seen = Counter((m["to"], m["body"]) for m in server.messages)
    return [(to, body, n - owed[(to, body)]) for (to, body), n in seen.items() if n > owed[(to, body)]]


def duplicate_texts(server: TwilioSandbox) -> list[tuple[str, str, int]]:
    """(to, body, times) of every message the provider accepted more than once."""
    seen = Counter((m["to"], m["body"]) for m in server.messages)
    return [(to, body, n) for (to, body), n in seen.items() if n > 1]


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def empty(conn: psycopg.Connection) -> None:
    existing = [t for (t,) in conn.execute(
        "select tablename from pg_tables where schemaname = 'public' and tablename = any(%s)", (TABLES,))]
    conn.execute("truncate " + ", ".join(f"public.{t}" for t in existing) + " cascade")


def texting_org(conn, name: str = "Harbour Strength", quiet=(21, 8), tz: str = "Australia/Brisbane",
                reminder: str = REMINDER, feedback: str | None = FEEDBACK, reminder_offset: int = 60,
                feedback_offset: int = 30, **settings) -> str:
    settings.setdefault("max_sms_per_client_per_day", 50)
    settings.setdefault("max_sms_per_hour", 1000)
    org_id = f.org(conn, name=name, tz=tz, sms=True, quiet_hours_start=quiet[0], quiet_hours_end=quiet[1], **settings)
    conn.execute("insert into sms_schedules (org_id, type, mins_offset, body) values (%s, 'pre_session', %s, %s)",
                 (org_id, reminder_offset, reminder))
    if feedback is not None:
        conn.execute("insert into sms_schedules (org_id, type, mins_offset, body) values (%s, 'post_session', %s, %s)",
                     (org_id, feedback_offset, feedback))
    return org_id


_phone_seq = iter(range(10_000_000))


def phone() -> str:
    """A fresh, valid Australian mobile number (unique within the process)."""
    return f"+6141{next(_phone_seq) + 2_000_000:07d}"


@dataclass
class World:
    """What a correct system must end with after the ticks at T (and later) have run."""
    due_on_pack: list[str] = field(default_factory=list)     # completed and deducted exactly once
    due_no_pack: list[str] = field(default_factory=list)     # completed, never deducted
    untouched: dict[str, str] = field(default_factory=dict)  # booking -> its status, unchanged
    packs: dict[str, int] = field(default_factory=dict)      # pack -> sessions_used expected at the end
    texts: int = 0                                            # texts that must be sent exactly once

    @property
    def due(self) -> list[str]:
        return self.due_on_pack + self.due_no_pack


def world(conn, at: datetime = T, on_pack: int = 6, no_pack: int = 2, reminders: int = 4,
          packs: int = 3, orgs: int = 2, prior_used: int = 2) -> World:
    """A handful of due bookings on packs (each a feedback request), some without, upcoming
    sessions owing reminders at `at`, and bookings a tick must leave alone."""
    w = World()
    org_ids = [texting_org(conn, name=f"Org {i}") for i in range(orgs)]
    members = []
    for i, org in enumerate(org_ids):
        client = f.client(conn, org, f"Client{i} Smith", phone())
        members.append((org, client, [f.pack(conn, org, client, total=50, used=prior_used) for _ in range(packs)]))
    for i in range(on_pack):
        org, client, pks = members[i % len(members)]
        pk = pks[i % len(pks)]
        w.due_on_pack.append(f.booking(conn, org, client, pk, start=at - timedelta(hours=2, minutes=i)))
        w.packs[pk] = w.packs.get(pk, prior_used) + 1
    for pk in (p for m in members for p in m[2]):
        w.packs.setdefault(pk, prior_used)
    for i in range(no_pack):
        org, client, _ = members[i % len(members)]
        w.due_no_pack.append(f.booking(conn, org, client, None, start=at - timedelta(hours=3, minutes=i)))
    # each completed booking owes one feedback request (due end + 30 min = at - 30 min or earlier);
    # the same client gets one per booking, each with its own body (the summary counts differ or not:
    # we count texts by booking, not body)
    w.texts += on_pack + no_pack
    for i in range(reminders):
        org = org_ids[i % len(org_ids)]
        client = f.client(conn, org, f"Upcoming{i} Jones", phone())
        b = f.booking(conn, org, client, None, start=at + timedelta(minutes=40 + i))  # reminder due at-20m
        w.untouched[b] = "confirmed"
        w.texts += 1
    org, client, pks = members[0]
    w.untouched[f.booking(conn, org, client, pks[0], status="cancelled", start=at - timedelta(hours=5))] = "cancelled"
    w.untouched[f.booking(conn, org, client, pks[0], start=at + timedelta(days=3))] = "confirmed"
    return w


# ---------------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------------

LOST_DEDUCTIONS = """
select b.id::text
from public.bookings b
join public.client_purchases cp on cp.id = b.purchase_id
where b.status = 'completed'
  and cp.payment_status = 'succeeded' and cp.sessions_total > 0
  and cp.client_id = b.client_id and cp.org_id = b.org_id
  and (cp.expires_at is null or cp.expires_at >= b.end_time)
  and coalesce(cp.sessions_used, 0) < cp.sessions_total
  and not exists (select 1 from public.session_usage su where su.booking_id = b.id)
"""


def lost_deductions(conn) -> list[str]:
    """Completed bookings on a valid pack with room left but no ledger row."""
    rows = [r for (r,) in conn.execute(LOST_DEDUCTIONS)]
    conn.rollback() if not conn.autocommit else None
    return rows


def violations(conn, server: TwilioSandbox | None = None, *, count_them: bool = True) -> list[str]:
    """Every broken invariant (audit), lost deduction and duplicate text; each one is counted."""
    found = [f"{v.invariant}: {v.subject}: {v.detail}" for v in audit(conn)]
    found += [f"lost_deduction: {b}" for b in lost_deductions(conn)]
    if server is not None:
        found += [f"duplicate_text: {to} x{n}: {body[:40]}" for to, body, n in duplicate_texts(server)]
    if count_them:
        count("violations", len(found))
    return found


def assert_world(conn, w: World, server: TwilioSandbox | None = None) -> None:
    """The end state `w` promises: all due work done once, nothing else touched, texts once."""
    status = dict(conn.execute("select id::text, status from bookings").fetchall())
    ledger = Counter(b for (b,) in conn.execute(
        "select booking_id::text from session_usage where booking_id is not null"))
    assert [b for b in w.due if status[b] != "completed"] == []
    assert [b for b in w.due_on_pack if ledger[b] != 1] == []
    assert [b for b in w.due_no_pack if ledger[b] != 0] == []
    assert {b: status[b] for b in w.untouched} == w.untouched
    used = dict(conn.execute("select id::text, sessions_used from client_purchases").fetchall())
    assert {p: used[p] for p in w.packs} == w.packs
    if server is not None:
        assert duplicate_texts(server) == []
        sent = conn.execute("select count(*) from sms_messages where status = 'sent'").fetchone()[0]
        assert (sent, len(server.messages)) == (w.texts, w.texts)


# ---------------------------------------------------------------------------------------------
# Subprocess ticks
# ---------------------------------------------------------------------------------------------


def cli_env(prefect_api: str, server: TwilioSandbox | None = None, database_url: str | None = None,
            **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "BOOKING_CRON_", "PYTEST_"))}
    env.update(PREFECT_API_URL=prefect_api, PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_LEVEL=env.get("PREFECT_LOGGING_LEVEL", "WARNING"), PYTHONUNBUFFERED="1")
    env["DATABASE_URL"] = database_url or os.environ["DATABASE_URL"]
    if server is not None:
        env.update(sandbox_env(server))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cli(args: list[str], env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    count("ticks") if args[:1] == ["run"] else None
    return subprocess.run([sys.executable, "-m", "booking_cron", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


RETRIED_TASKS = ("plan_batches", "complete_batch", "deduct_batch", "dry_run_steps", "queue_texts",
                 "record_tick_start", "summarize_tick", "read_results_table")


def fast_retries(monkeypatch, delay: float = 0.1) -> None:
    """In-process ticks retry their tasks after `delay` seconds instead of 2, 5 and 15 (the delays
    are read when flows.tick is imported; BOOKING_CRON_RETRY_DELAYS does this for a subprocess)."""
    import flows.tick as flow_module

    for name in RETRIED_TASKS:
        monkeypatch.setattr(flow_module, name, getattr(flow_module, name).with_options(retry_delay_seconds=delay))


def run_tick(at: datetime, **kwargs):
    """An in-process tick (flows.tick.tick), counted."""
    from flows.tick import tick

    count("ticks")
    return tick(tick_at=at, **kwargs)


def cli_tick(at: datetime, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return cli(["run", "--at", at.isoformat(), "--json"], env, timeout)


def summary_of(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON on stdout (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return json.loads(lines[-1])
