"""Per-booking results of a tick and the counts an operator reads first."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from typing import Iterable

# Steps a result can belong to; texts use "text:<kind>:<schedule id or ->".
COMPLETE = "complete"
DEDUCT = "deduct"
REINSTATE = "reinstate"  # a cancelled booking's session given back (outcome "reinstated")
TEXT_PREFIX = "text:"
FAILED_TEXT_OUTCOMES = {"failed", "unknown", "error"}
RECONCILED_PREFIX = "reconciled_"  # a text of unknown fate whose fate this tick settled (sms/sender.py)


@dataclass(frozen=True, slots=True)
class StepResult:
    booking_id: str
    step: str
    outcome: str
    reason: str | None = None
    detail: dict | None = None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TickSummary:
    flow_run_id: str
    tick_at: str
    dry_run: bool = False
    completed: int = 0
    deducted: int = 0
    reinstated: int = 0
    not_deducted: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    texts: dict[str, int] = field(default_factory=dict)
    # texts that did not simply go out, by outcome then reason: {"skipped": {"opted_out": 3}}
    text_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    receipts: dict[str, int] = field(default_factory=dict)  # texts sent in the 48 h to T, by receipt
    reconciled: int = 0  # texts of unknown fate settled this tick: found at the provider, or never went
    bookings: int = 0
    results: int = 0  # per-booking result rows (a booking has one per step)

    def as_dict(self) -> dict:
        return asdict(self)

    def add(self, summary: dict) -> None:
        """Add another tick's counts to these (a backfill's totals over its slots). Its identity
        and `receipts`, a window of 48 h rather than the tick's own work, are not added."""
        for name in COUNTS:
            other = summary.get(name)
            if not other:
                continue
            mine = getattr(self, name)
            if isinstance(mine, int):
                setattr(self, name, mine + other)
            elif name == "text_reasons":
                for outcome, reasons in other.items():
                    _add_counts(mine.setdefault(outcome, {}), reasons)
            else:
                _add_counts(mine, other)


# What TickSummary.add adds up.
COUNTS = tuple(f.name for f in fields(TickSummary) if f.name not in ("flow_run_id", "tick_at", "dry_run", "receipts"))


def _add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def text_step(kind: str, schedule_id: str | None) -> str:
    return f"{TEXT_PREFIX}{kind}:{schedule_id or '-'}"


def text_kind(step: str) -> str:
    return step.split(":")[1]


def text_schedule(step: str) -> str | None:
    """The schedule id of a text step; None for texts without one (unconfirmed reminders)."""
    schedule = step.split(":")[2] if step.startswith(TEXT_PREFIX) and step.count(":") >= 2 else "-"
    return None if schedule == "-" else schedule


def step_label(step: str) -> str:
    """How people read a step: 'feedback request', not 'text:feedback_request:<schedule id>'."""
    return text_kind(step).replace("_", " ") if step.startswith(TEXT_PREFIX) else step


class Outcomes:
    """Per-booking results passed between tasks as one opaque object: Prefect walks a returned
    list item by item (it looks for futures and states), which costs seconds at 100k bookings."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[StepResult] = ()):
        self.items = list(items)


# (step, outcome, reason, queued by this tick) -> how many
CountKey = tuple[str, str, str | None, bool]


def not_completed(results: Iterable[StepResult]) -> set[str]:
    """The bookings a complete step was given and did not complete."""
    return {r.booking_id for r in results if r.step == COMPLETE and r.outcome != "completed"}


def summarize(flow_run_id: str, tick_at: str, results: Iterable[StepResult], dry_run: bool = False) -> TickSummary:
    """Counts by step and outcome from per-booking results (a dry run's, held in memory)."""
    results = list(results)
    counted = Counter((r.step, r.outcome, r.reason, bool((r.detail or {}).get("queued"))) for r in results)
    return summarize_counts(flow_run_id, tick_at, counted.items(), len({r.booking_id for r in results}), dry_run)


def summarize_counts(flow_run_id: str, tick_at: str, counts: Iterable[tuple[CountKey, int]], bookings: int,
                     dry_run: bool = False) -> TickSummary:
    """Counts by step and outcome, from (step, outcome, reason, queued) counts."""
    summary = TickSummary(flow_run_id=flow_run_id, tick_at=tick_at, dry_run=dry_run, bookings=bookings)
    not_deducted: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    by_text: dict[str, Counter[str]] = {"queued": Counter(), "sent": Counter(), "failed": Counter()}
    texts: Counter[str] = Counter()
    text_reasons: dict[str, Counter[str]] = {}
    for (step, outcome, reason, queued), n in counts:
        summary.results += n
        if step == COMPLETE:
            if outcome == "completed":
                summary.completed += n
            elif outcome == "rejected":
                rejected[reason or "unknown"] += n
            else:
                skipped[reason or outcome] += n
        elif step == DEDUCT:
            if outcome == "deducted":
                summary.deducted += n
            else:
                not_deducted[reason or "unknown"] += n
        elif step == REINSTATE:
            summary.reinstated += n
        elif step.startswith(TEXT_PREFIX):
            kind = text_kind(step)
            texts[outcome] += n
            if (reason or "").startswith(RECONCILED_PREFIX):
                summary.reconciled += n
            if outcome != "sent" and (reason or outcome != "queued"):
                text_reasons.setdefault(outcome, Counter())[reason or "unspecified"] += n
            if queued:
                by_text["queued"][kind] += n
            if outcome == "sent":
                by_text["sent"][kind] += n
            elif outcome in FAILED_TEXT_OUTCOMES:
                by_text["failed"][kind] += n
    summary.not_deducted = dict(not_deducted)
    summary.skipped = dict(skipped)
    summary.rejected = dict(rejected)
    summary.queued = dict(by_text["queued"])
    summary.sent = dict(by_text["sent"])
    summary.failed = dict(by_text["failed"])
    summary.texts = dict(texts)
    summary.text_reasons = {outcome: dict(c) for outcome, c in text_reasons.items()}
    return summary
