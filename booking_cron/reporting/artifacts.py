"""What an operator reads of a tick: per-booking rows in words and the markdown summary. Pure.

The same rows feed the `tick-results` table artifact, `booking-cron results` and the table
`booking-cron run` prints, so the three read alike: what happened and why first, raw ids last,
session times in the org's own time zone, phone numbers masked, no microseconds, no NaN.
Text that came from the database stays raw in these rows; each output escapes it where it meets
it (booking_cron.reporting.operator_text): the artifacts here as markdown, the terminal in report.py.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pandas as pd

from booking_cron.reporting.attention import (ATTENTION, ATTENTION_MARK, WHAT_TO_DO, attention_items, headline,
                                    needs_attention, rank)
from booking_cron.domain.due import ALL, Shard
from booking_cron.reporting.operator_text import markdown_text
from booking_cron.domain.results import step_label
from booking_cron.domain.texts.quiet_hours import load_zone

# Columns of a presented row, in reading order; raw ids last.
COLUMNS = ("outcome", "reason", "step", "client", "phone", "session start", "schedule", "org", "booking status",
           "tick", "booking id", "flow run id")
# The artifact's first column marks the rows that need attention, which otherwise read like routine ones.
ARTIFACT_COLUMNS = ("attention", "outcome", "reason", "step", "client", "session start", "schedule", "org",
                    "booking id")
# Cells booking-cron formats itself (a time, a uuid): every other cell may hold database text.
OWN_CELLS = ("session start", "tick", "booking id", "flow run id")
# mask_phone's own form: "+", digits and one run of stars, which markdown cannot pair into emphasis.
_MASKED_PHONE = re.compile(r"\+?[0-9]*\**[0-9]*")


def blank(value) -> bool:
    """None, NaN and NaT: what pandas puts in a cell that has nothing."""
    return value is None or (not isinstance(value, (list, dict)) and bool(pd.isna(value)))


def words(code) -> str:
    """'not_deducted' -> 'not deducted'; nothing -> ''."""
    return "" if blank(code) else str(code).replace("_", " ")


def local_time(when, tz) -> str:
    """'24 Nov 19:30 AEST' in the org's zone (UTC when the zone is unknown); '' for no time.
    No year: a tick's sessions are days old at most, and the table must fit a laptop screen."""
    if blank(when):
        return ""
    when = pd.Timestamp(when).to_pydatetime()
    try:
        zone = load_zone(tz) if not blank(tz) else timezone.utc
    except ValueError:
        zone = timezone.utc
    return when.astimezone(zone).strftime("%d %b %H:%M %Z").lstrip("0")


def utc_time(when) -> str:
    """'2026-11-24 09:10 UTC' from a datetime or an ISO string; '' for nothing."""
    if blank(when):
        return ""
    when = datetime.fromisoformat(when) if isinstance(when, str) else pd.Timestamp(when).to_pydatetime()
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def attention_mark(record: dict) -> str:
    """ATTENTION_MARK for a per-booking result (a row of report.results_frame) that needs attention, else ''."""
    reason = None if blank(record.get("reason")) else record["reason"]
    return ATTENTION_MARK if rank(record["outcome"], reason) == ATTENTION else ""


def artifact_row(row: dict, attention: str) -> dict:
    """A presented row for the table artifact, `attention` in its first cell: the client cell carries
    the (masked) phone. The UI renders string cells as markdown, so database text is escaped as markdown."""
    cells = {"attention": attention}
    cells |= {c: row[c] if c in OWN_CELLS else markdown_text(row[c]) for c in ARTIFACT_COLUMNS[1:]}
    phone = row["phone"]
    if phone:
        phone = phone if _MASKED_PHONE.fullmatch(phone) else markdown_text(phone)
        cells["client"] = f"{cells['client']} ({phone})"
    return cells


def present(record: dict) -> dict:
    """One per-booking result (a row of report.results_frame) as people read it."""
    return {
        "outcome": words(record.get("outcome")),
        "reason": words(record.get("reason")),
        "step": step_label(record.get("step") or ""),
        "client": "" if blank(record.get("client")) else record["client"],
        "phone": "" if blank(record.get("phone")) else record["phone"],
        "session start": local_time(record.get("start_time"), record.get("timezone")),
        "schedule": "" if blank(record.get("schedule")) else record["schedule"],
        "org": "" if blank(record.get("org")) else record["org"],
        "booking status": words(record.get("booking_status")),
        "tick": utc_time(record.get("tick_at")),
        "booking id": record.get("booking_id") or "",
        "flow run id": record.get("flow_run_id") or "",
    }


def present_frame(results: pd.DataFrame) -> list[dict]:
    """Every row presented, in the frame's order (the query puts failures first)."""
    return [present(record) for record in results.to_dict("records")]


def artifact_key(base: str, shard: Shard = ALL) -> str:
    """`tick-results`, or `tick-results-shard-2-of-4` for a shard's run: each shard's artifacts are
    versioned under their own key, so the UI lists one shard's ticks together."""
    return base if shard.count == 1 else f"{base}-shard-{shard.index + 1}-of-{shard.count}"


def results_table(results: pd.DataFrame, limit: int) -> list[dict]:
    """Rows for the `tick-results` table artifact: the first `limit`, artifact columns only."""
    return [artifact_row(present(record), attention_mark(record)) for record in results.head(limit).to_dict("records")]


def summary_markdown(summary: dict, total_rows: int, shown_rows: int, run_id: str) -> str:
    """The `tick-summary` artifact: what needs attention, then texts by reason, then all counts."""
    attention = needs_attention(summary)
    kind = "Dry-run tick" if summary.get("dry_run") else "Tick"
    verdict = f"{attention} {'needs' if attention == 1 else 'need'} attention" if attention else "all clear"
    lines = [f"# {kind} {utc_time(summary['tick_at'])}: {verdict}", "",
             f"{headline(summary)}; {summary.get('bookings', 0)} bookings touched.", ""]
    lines += _attention_section(summary)
    lines += _texts_section(summary)
    lines += _counts_section(summary)
    capped = " (failures first)" if shown_rows < total_rows else ""
    lines += [f"The `tick-results` table shows {shown_rows} of {total_rows} per-booking results{capped}. "
              f"All of them: `booking-cron results --run {run_id}` (add `--csv` or `--json` to export).", ""]
    return "\n".join(lines)


def _attention_section(summary: dict) -> list[str]:
    items = attention_items(summary)
    if not items:
        return ["## Needs attention", "", "Nothing: every due booking was completed and deducted as expected, "
                "and no text failed.", ""]
    lines = ["## Needs attention", "", "| what | count | what to do |", "|---|---:|---|"]
    lines += [f"| {label} | {n} | {WHAT_TO_DO.get(label, '')} |" for label, n, _ in items]
    rejected = summary.get("rejected", {})
    if rejected:
        lines += ["", "Rejected bookings by reason: "
                  + ", ".join(f"{_md(r)} {n}" for r, n in sorted(rejected.items(), key=lambda i: -i[1])) + "."]
    return lines + [""]


def _texts_section(summary: dict) -> list[str]:
    reasons = summary.get("text_reasons", {})
    sent, queued, receipts = summary.get("sent", {}), summary.get("queued", {}), summary.get("receipts", {})
    if not (reasons or sent or queued or any(receipts.values())):
        return []
    lines = ["## Texts", "", "| text | sent | queued this tick |", "|---|---:|---:|"]
    lines += [f"| {_md(kind)} | {sent.get(kind, 0)} | {queued.get(kind, 0)} |"
              for kind in sorted(set(sent) | set(queued))]
    rows = [(outcome, reason, n) for outcome, by_reason in reasons.items() for reason, n in by_reason.items()]
    if rows:
        lines += ["", "Texts that did not go out, by reason:", "", "| outcome | reason | count |", "|---|---|---:|"]
        lines += [f"| {_md(o)} | {_md(r)} | {n} |" for o, r, n in sorted(rows, key=lambda x: (x[0], -x[2], x[1]))]
    if summary.get("reconciled"):
        lines += ["", f"Texts of unknown fate reconciled this tick (found at the provider, or never went): "
                      f"{summary['reconciled']}."]
    if off := receipts_off(summary):
        lines += ["", off]
    elif any(receipts.values()):
        lines += ["", "Receipts of texts sent in the 48 hours before this tick:", "", "| receipt | texts |", "|---|---:|"]
        lines += [f"| {_md(k)} | {n} |" for k, n in receipts.items()]
    return lines + [""]


def receipts_off(summary: dict) -> str | None:
    """What to say when the tick's sends asked Twilio for no delivery receipts (BOOKING_CRON_PUBLIC_URL
    unset) and texts went out: their receipts are not late, they are off. None otherwise."""
    receipts = summary.get("receipts") or {}
    if summary.get("receipts_requested", True) or not any(receipts.values()):
        return None
    sent = sum(receipts.values())
    return (f"Receipts are off: BOOKING_CRON_PUBLIC_URL is unset, so sends ask Twilio for no delivery receipts "
            f"(of the {sent} text{'' if sent == 1 else 's'} sent in the 48 hours before this tick, those sent so "
            "stay \"sent\"). "
            "To turn them on, run `booking-cron webhooks` where Twilio can reach it and set "
            "BOOKING_CRON_PUBLIC_URL to its public URL wherever ticks run (README: Twilio webhooks).")


def count_rows(summary: dict) -> list[tuple[str, str, str | None, int]]:
    """(step, outcome, reason, count) of everything a tick did, texts by outcome and reason."""
    rows: list[tuple[str, str, str | None, int]] = [("complete", "completed", None, summary["completed"])]
    rows += [("complete", "rejected", k, v) for k, v in sorted(summary.get("rejected", {}).items())]
    rows += [("complete", "skipped", k, v) for k, v in sorted(summary.get("skipped", {}).items())]
    rows += [("deduct", "deducted", None, summary["deducted"])]
    rows += [("deduct", "not_deducted", k, v) for k, v in sorted(summary.get("not_deducted", {}).items())]
    reasons = summary.get("text_reasons", {})
    for outcome, n in sorted(summary.get("texts", {}).items()):
        by_reason = reasons.get(outcome, {})
        rows += [("texts", outcome, r, v) for r, v in sorted(by_reason.items(), key=lambda i: (-i[1], i[0]))]
        if n > sum(by_reason.values()):
            rows.append(("texts", outcome, None, n - sum(by_reason.values())))
    return rows


def _counts_section(summary: dict) -> list[str]:
    lines = ["## Completions and deductions", "", "| step | outcome | reason | count |", "|---|---|---|---:|"]
    lines += [f"| {step} | {_md(o)} | {_md(r)} | {n} |" for step, o, r, n in count_rows(summary) if step != "texts"]
    return lines + [""]


def _md(code) -> str:
    """A code the tick recorded (a reason, an outcome, a kind of text) in words, as markdown text:
    some come from the database or from the SMS provider's answer."""
    return markdown_text(words(code))
