"""Per-booking results of a tick and the counts an operator reads first."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Iterable

# Steps a result can belong to; texts use "text:<kind>:<schedule id or ->".
COMPLETE = "complete"
DEDUCT = "deduct"
TEXT_PREFIX = "text:"
FAILED_TEXT_OUTCOMES = {"failed", "unknown", "error"}


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
    not_deducted: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    texts: dict[str, int] = field(default_factory=dict)
    bookings: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def problems(self) -> int:
        """Bookings or texts that need an operator's eye: rejected rows and failed texts."""
        return sum(self.rejected.values()) + sum(self.failed.values())


def text_step(kind: str, schedule_id: str | None) -> str:
    return f"{TEXT_PREFIX}{kind}:{schedule_id or '-'}"


def text_kind(step: str) -> str:
    return step.split(":")[1]


def summarize(flow_run_id: str, tick_at: str, results: Iterable[StepResult], dry_run: bool = False) -> TickSummary:
    """Counts by step and outcome, from per-booking results (the database's, or a dry run's)."""
    summary = TickSummary(flow_run_id=flow_run_id, tick_at=tick_at, dry_run=dry_run)
    not_deducted: Counter[str] = Counter()
    skipped: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    by_text: dict[str, Counter[str]] = {"queued": Counter(), "sent": Counter(), "failed": Counter()}
    texts: Counter[str] = Counter()
    bookings: set[str] = set()
    for r in results:
        bookings.add(r.booking_id)
        if r.step == COMPLETE:
            if r.outcome == "completed":
                summary.completed += 1
            elif r.outcome == "rejected":
                rejected[r.reason or "unknown"] += 1
            else:
                skipped[r.reason or r.outcome] += 1
        elif r.step == DEDUCT:
            if r.outcome == "deducted":
                summary.deducted += 1
            else:
                not_deducted[r.reason or "unknown"] += 1
        elif r.step.startswith(TEXT_PREFIX):
            kind = text_kind(r.step)
            texts[r.outcome] += 1
            if (r.detail or {}).get("queued"):
                by_text["queued"][kind] += 1
            if r.outcome == "sent":
                by_text["sent"][kind] += 1
            elif r.outcome in FAILED_TEXT_OUTCOMES:
                by_text["failed"][kind] += 1
    summary.not_deducted = dict(not_deducted)
    summary.skipped = dict(skipped)
    summary.rejected = dict(rejected)
    summary.queued = dict(by_text["queued"])
    summary.sent = dict(by_text["sent"])
    summary.failed = dict(by_text["failed"])
    summary.texts = dict(texts)
    summary.bookings = len(bookings)
    return summary
