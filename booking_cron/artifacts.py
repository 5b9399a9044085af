"""What an operator sees of a tick in the Prefect UI: a per-booking table and a markdown summary.

The table is capped (the UI is built for modest tables) and says where the rest is; failures
come first in both. Cells are plain JSON values; phone numbers appear only masked.
"""

from __future__ import annotations

import pandas as pd

# Outcomes an operator should look at first, most urgent first.
ATTENTION = ("rejected", "error", "unknown", "failed", "not_deducted", "expired", "cancelled", "skipped", "deferred")


def attention_rank(outcome: str) -> int:
    return ATTENTION.index(outcome) if outcome in ATTENTION else len(ATTENTION)


def results_table(results: pd.DataFrame, limit: int) -> list[dict]:
    """Per-booking rows for a table artifact, failures first, JSON-safe."""
    if results.empty:
        return []
    ordered = results.assign(_rank=results["outcome"].map(attention_rank)).sort_values(
        ["_rank", "booking_id", "step"], kind="stable").head(limit)
    columns = ["booking_id", "org", "client", "start_time", "step", "outcome", "reason", "to"]
    rows = []
    for record in ordered.to_dict("records"):
        row = {c: record.get(c) for c in columns}
        row["start_time"] = row["start_time"].isoformat() if pd.notna(row["start_time"]) else None
        rows.append({k: (None if isinstance(v, float) and pd.isna(v) else v) for k, v in row.items()})
    return rows


def summary_markdown(summary: dict, total_rows: int, shown_rows: int, run_id: str) -> str:
    lines = [f"# Tick at {summary['tick_at']}", ""]
    problems = {**{f"rejected: {k}": v for k, v in summary.get("rejected", {}).items()},
                **{f"text {k} failed": v for k, v in summary.get("failed", {}).items()}}
    if problems:
        lines += ["## Needs attention", "", "| what | count |", "|---|---:|"]
        lines += [f"| {what} | {n} |" for what, n in sorted(problems.items())] + [""]
    lines += ["## Counts", "", "| step | outcome | count |", "|---|---|---:|",
              f"| complete | completed | {summary['completed']} |"]
    lines += [f"| complete | skipped: {k} | {v} |" for k, v in sorted(summary.get("skipped", {}).items())]
    lines += [f"| deduct | deducted | {summary['deducted']} |"]
    lines += [f"| deduct | not deducted: {k} | {v} |" for k, v in sorted(summary.get("not_deducted", {}).items())]
    lines += [f"| texts | {k} | {v} |" for k, v in sorted(summary.get("texts", {}).items())]
    lines += [f"| receipts (sent in the last 48 h) | {k.replace('_', ' ')} | {v} |"
              for k, v in summary.get("receipts", {}).items()]
    lines += ["", f"{total_rows} per-booking results; the table artifact shows {shown_rows}"
              + (" (failures first)." if shown_rows < total_rows else ".")]
    lines += ["", f"All of them: `booking-cron results --run {run_id}` (or `--csv`, `--json`)."]
    return "\n".join(lines)
