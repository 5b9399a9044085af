"""What people read of a backfill: its totals, a line per day, the progress bar and the summary.

Pure formatting over the per-slot tick summaries (booking_cron.results.TickSummary as dicts).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from booking_cron.attention import attention_items, attention_line

COUNTED = ("not_deducted", "rejected", "queued", "sent", "failed")


@dataclass
class Totals:
    slots: int
    skipped: int
    dry_run: bool = False
    ticked: int = 0
    slots_with_work: int = 0
    failed_slots: list[str] = field(default_factory=list)
    completed: int = 0
    deducted: int = 0
    reinstated: int = 0
    not_deducted: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    queued: dict[str, int] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)

    def add_day(self, summaries: dict[datetime, dict]) -> None:
        for summary in summaries.values():
            self.ticked += 1
            self.slots_with_work += bool(summary.get("results"))
            self.completed += summary.get("completed", 0)
            self.deducted += summary.get("deducted", 0)
            self.reinstated += summary.get("reinstated", 0)
            for key in COUNTED:
                _merge(getattr(self, key), summary.get(key, {}))

    def attention(self) -> dict[str, int]:
        """What needs an operator, judged as a tick judges it (booking_cron.attention)."""
        return {label: n for label, n, _ in attention_items(self.as_dict())}

    def headline(self) -> str:
        """One line, for the flow run's state message and the command's first line."""
        verb = "would tick" if self.dry_run else "ticked"
        done = f"{self.ticked} slots {verb}" + (f", {self.skipped} already done" if self.skipped else "")
        work = f"{self.completed} completed, {self.deducted} deducted, {sum(self.sent.values())} texts sent"
        items = attention_items(self.as_dict())
        if items:
            work += f"; {attention_line(items)}"
        return f"{done}: {work}"

    def lines(self) -> list[str]:
        """The command's human summary."""
        out = [self.headline()]
        out.append(f"  slots: {self.slots} in range, {self.ticked} {'dry-run' if self.dry_run else 'ticked'}, "
                   f"{self.slots_with_work} with work, {self.skipped} skipped (already ticked)"
                   + (f", {len(self.failed_slots)} failed" if self.failed_slots else ""))
        if self.not_deducted:
            out.append("  not deducted: " + _counts(self.not_deducted))
        if self.reinstated:
            out.append(f"  sessions given back (cancelled after deduction): {self.reinstated}")
        if self.rejected:
            out.append("  rejected: " + _counts(self.rejected))
        for label in ("queued", "sent", "failed"):
            if getattr(self, label):
                out.append(f"  texts {label}: " + _counts(getattr(self, label)))
        if self.failed_slots:
            out.append(f"  failed from {self.failed_slots[0]}: run the same command again to retry")
        return out

    def as_dict(self) -> dict:
        return asdict(self)


def day_row(day: list[datetime], summaries: dict[datetime, dict] | None) -> dict:
    """One row of the `backfill-days` table artifact (JSON-safe)."""
    row = {"day": f"{day[0]:%Y-%m-%d}", "from": f"{day[0]:%H:%M}", "to": f"{day[-1]:%H:%M} UTC",
           "slots": len(day)}
    if summaries is None:
        return {**row, "state": "failed: re-run to retry"}
    totals = Totals(slots=len(day), skipped=0)
    totals.add_day(summaries)
    busiest = max(summaries.items(), key=lambda kv: kv[1].get("results", 0))
    return {**row, "state": "ticked", "slots with work": totals.slots_with_work, "completed": totals.completed,
            "deducted": totals.deducted, "not deducted": _counts(totals.not_deducted),
            "texts queued": sum(totals.queued.values()), "texts sent": sum(totals.sent.values()),
            "needs attention": _counts(totals.attention()),
            "busiest slot": f"{busiest[0]:%H:%M} (run {busiest[1]['flow_run_id'][:8]})"}


def summary_markdown(totals: Totals, title: str) -> str:
    lines = [f"# {title[0].upper()}{title[1:]}", "", totals.headline(), ""]
    attention = totals.attention()
    if attention:
        lines += ["## Needs attention", "", "| what | count |", "|---|---:|"]
        lines += [f"| {what} | {n} |" for what, n in sorted(attention.items())] + [""]
    lines += ["## Totals", "", "| | |", "|---|---:|", f"| slots in range | {totals.slots} |",
              f"| slots ticked | {totals.ticked} |", f"| slots with work | {totals.slots_with_work} |",
              f"| skipped (already ticked) | {totals.skipped} |", f"| completed | {totals.completed} |",
              f"| deducted | {totals.deducted} |", f"| sessions given back | {totals.reinstated} |"]
    lines += [f"| not deducted: {k} | {v} |" for k, v in sorted(totals.not_deducted.items())]
    for label in ("queued", "sent", "failed"):
        lines += [f"| texts {label}: {k} | {v} |" for k, v in sorted(getattr(totals, label).items())]
    lines += ["", "Each slot has its own record: the `backfill-days` table names each day's busiest slot; "
              "`booking-cron results --booking <id>` shows a booking's results with its slot's time."]
    return "\n".join(lines)


@contextmanager
def progress_bar(todo: int, total: int) -> Iterator[Callable[[int, str], None]]:
    """A rich progress bar on stderr over the slots to tick; says so when there is nothing to do."""
    console = Console(stderr=True)
    if not todo:
        console.print(f"backfill: nothing to do, all {total} slots already ticked (--force ticks them again)")
        yield lambda n, description: None
        return
    with Progress(TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TextColumn("slots"),
                  TimeRemainingColumn(), TextColumn("{task.description}"), console=console) as bar:
        task = bar.add_task("", total=todo)
        yield lambda n, description: bar.update(task, advance=n, description=description)


def _merge(into: dict[str, int], counts: dict[str, int]) -> None:
    for key, n in counts.items():
        into[key] = into.get(key, 0) + n


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
