"""What people read of a backfill: its totals, a line per day, the progress bar and the summary.

Pure formatting over the per-slot tick summaries (booking_cron.domain.results.TickSummary as dicts).
Their reasons and kinds of text may come from the database or the SMS provider: the artifacts
escape them as markdown (booking_cron.reporting.operator_text); `backfill` prints `Totals.lines()` as text.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from booking_cron.reporting.attention import attention_items, attention_line, plural
from booking_cron.reporting.operator_text import markdown_text
from booking_cron.domain.results import COUNTS, TickSummary

@dataclass
class Totals:
    """A backfill's slots, and the work of the ticks it ran: one TickSummary added up over them."""
    slots: int
    skipped: int
    dry_run: bool = False
    ticked: int = 0
    slots_with_work: int = 0
    failed_slots: list[str] = field(default_factory=list)
    stale: int = 0  # texts the sending expired as stale (a dry run: those it would)
    work: TickSummary = field(default_factory=lambda: TickSummary(flow_run_id="", tick_at=""))

    def add_day(self, summaries: dict[datetime, dict], worked: set[datetime] | None = None, stale: int = 0) -> None:
        """`worked`: the slots whose tick had something to do, the same in a dry run and a real one (the
        day's sends, recorded under its last slot, are not that slot's work); None: those with results."""
        self.stale += stale
        for slot, summary in summaries.items():
            self.ticked += 1
            self.slots_with_work += (slot in worked) if worked is not None else bool(summary.get("results"))
            self.work.add(summary)

    @classmethod
    def from_dict(cls, totals: dict) -> "Totals":
        """Totals from `as_dict()` (the backfill flow's result)."""
        work = TickSummary(flow_run_id="", tick_at="", **{k: v for k, v in totals.items() if k in COUNTS and k not in _OWN})
        return cls(**{k: v for k, v in totals.items() if k in _OWN}, work=work)

    def attention(self) -> dict[str, int]:
        """What needs an operator, judged as a tick judges it (booking_cron.reporting.attention)."""
        return {label: n for label, n, _ in attention_items(self.as_dict())}

    def headline(self) -> str:
        """One line, for the flow run's state message and the command's first line."""
        verb = "would tick" if self.dry_run else "ticked"
        done = f"{plural(self.ticked, 'slot', 'slots')} {verb}" + (f", {self.skipped} already done" if self.skipped else "")
        work = (f"{self.work.completed} completed, {self.work.deducted} deducted, "
                f"{plural(sum(self.work.sent.values()), 'text', 'texts')} sent")
        if self.stale:
            work += f", {self.stale} {'would expire' if self.dry_run else 'expired'} as stale"
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
        if self.work.not_deducted:
            out.append("  not deducted: " + _counts(self.work.not_deducted))
        if self.work.reinstated:
            out.append(f"  sessions given back (cancelled after deduction): {self.work.reinstated}")
        if self.work.rejected:
            out.append("  rejected: " + _counts(self.work.rejected))
        for label in ("queued", "sent", "failed"):
            if getattr(self.work, label):
                out.append(f"  texts {label}: " + _counts(getattr(self.work, label)))
        if self.stale:
            out.append("  " + self.stale_line())
        if self.failed_slots:
            out.append(f"  failed from {self.failed_slots[0]}: run the same command again to retry")
        return out

    def stale_line(self) -> str:
        """Texts are sent by the real clock: those too late now expire instead of going out."""
        verb = "would expire" if self.dry_run else "expired"
        return (f"{plural(self.stale, 'text', 'texts')} {verb} as stale instead of being sent: too late now "
                "(a reminder after its session started, a feedback request 48 h after it ended)")

    def as_dict(self) -> dict:
        """The slots' fields and the work's counts, side by side (as a tick's summary has them)."""
        work = {name: value for name, value in self.work.as_dict().items() if name in COUNTS and name not in _OWN}
        return {**work, **{name: getattr(self, name) for name in _OWN}}


# A tick's `skipped` (bookings, by reason) is not a backfill's (slots already ticked): the slots' win.
_OWN = ("slots", "skipped", "dry_run", "ticked", "slots_with_work", "failed_slots", "stale")


def day_row(day: list[datetime], summaries: dict[datetime, dict] | None, worked: set[datetime] | None = None,
            stale: int = 0) -> dict:
    """One row of the `backfill-days` table artifact (JSON-safe)."""
    row = {"day": f"{day[0]:%Y-%m-%d}", "from": f"{day[0]:%H:%M}", "to": f"{day[-1]:%H:%M} UTC",
           "slots": len(day)}
    if summaries is None:
        return {**row, "state": "failed: re-run to retry"}
    totals = Totals(slots=len(day), skipped=0)
    totals.add_day(summaries, worked, stale)
    busiest = max(summaries.items(), key=lambda kv: kv[1].get("results", 0))
    return {**row, "state": "ticked", "slots with work": totals.slots_with_work, "completed": totals.work.completed,
            "deducted": totals.work.deducted, "not deducted": markdown_text(_counts(totals.work.not_deducted)),
            "texts queued": sum(totals.work.queued.values()), "texts sent": sum(totals.work.sent.values()),
            "texts expired stale": totals.stale,
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
              f"| skipped (already ticked) | {totals.skipped} |", f"| completed | {totals.work.completed} |",
              f"| deducted | {totals.work.deducted} |", f"| sessions given back | {totals.work.reinstated} |"]
    lines += [f"| not deducted: {markdown_text(k)} | {v} |" for k, v in sorted(totals.work.not_deducted.items())]
    for label in ("queued", "sent", "failed"):
        lines += [f"| texts {label}: {markdown_text(k)} | {v} |" for k, v in sorted(getattr(totals.work, label).items())]
    lines += [f"| texts {'that would expire' if totals.dry_run else 'expired'} as stale | {totals.stale} |"]
    if totals.stale:
        lines += ["", totals.stale_line() + "."]
    lines += ["", "Each slot has its own record: the `backfill-days` table names each day's busiest slot; "
              "`booking-cron results --booking <id>` shows a booking's results with its slot's time."]
    return "\n".join(lines)


@contextmanager
def progress_bar(todo: int, total: int) -> Iterator[Callable[[int, str], None]]:
    """A rich progress bar on stderr over the slots to tick; says so when there is nothing to do."""
    console = Console(stderr=True)
    if not todo:
        console.print(f"backfill: nothing to do, {'the 1 slot' if total == 1 else f'all {total} slots'} already "
                      "ticked (--force ticks them again)")
        yield lambda n, description: None
        return
    with Progress(TextColumn("backfill"), BarColumn(), MofNCompleteColumn(), TextColumn("slots"),
                  TimeRemainingColumn(), TextColumn("{task.description}"), console=console) as bar:
        task = bar.add_task("", total=todo)
        yield lambda n, description: bar.update(task, advance=n, description=description)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
