"""Result tables for people: per-booking results as a pandas DataFrame, and the tick summary in rich."""

from __future__ import annotations

import pandas as pd
import psycopg
from rich.console import Console
from rich.table import Table

from booking_cron.artifacts import ATTENTION, results_table
from booking_cron.store import loadable_time

RESULTS_QUERY = """
select r.flow_run_id::text as flow_run_id, t.tick_at, r.booking_id::text as booking_id, o.name as org,
       c.full_name as client, {start} as start_time, b.status as booking_status, r.step, r.outcome, r.reason,
       r.detail->>'to' as to, r.recorded_at
from public.tick_results r
left join public.tick_runs t on t.flow_run_id = r.flow_run_id
left join public.bookings b on b.id = r.booking_id
left join public.clients c on c.id = b.client_id
left join public.orgs o on o.id = b.org_id
where (%(run)s::uuid is null or r.flow_run_id = %(run)s::uuid)
  and (%(booking)s::uuid is null or r.booking_id = %(booking)s::uuid)
order by {order}
limit %(limit)s
"""
CHRONOLOGICAL = "r.recorded_at, r.booking_id, r.step"
FAILURES_FIRST = "array_position(%(attention)s::text[], r.outcome), r.booking_id, r.step"


def results_frame(conn: psycopg.Connection, run_id: str | None = None, booking_id: str | None = None,
                  limit: int | None = None, failures_first: bool = False) -> pd.DataFrame:
    """Per-booking results; with `limit`, only that many rows (the database does the cutting)."""
    query = RESULTS_QUERY.format(order=FAILURES_FIRST if failures_first else CHRONOLOGICAL,
                                 start=loadable_time("b.start_time"))
    with conn.cursor() as cur:
        cur.execute(query, {"run": run_id, "booking": booking_id, "limit": limit, "attention": list(ATTENTION)})
        columns = [d.name for d in cur.description]
        return pd.DataFrame(cur.fetchall(), columns=columns)


def print_summary(console: Console, summary: dict, results: pd.DataFrame, rows: int = 12) -> None:
    """Counts, then the first `rows` per-booking results (failures first) of summary['results']."""
    title = f"{'Dry run of tick' if summary.get('dry_run') else 'Tick'} at {summary['tick_at']}"
    counts = Table(title=title, show_header=True)
    counts.add_column("step")
    counts.add_column("outcome")
    counts.add_column("count", justify="right")
    counts.add_row("complete", "completed", str(summary["completed"]))
    for reason, n in sorted(summary.get("skipped", {}).items()):
        counts.add_row("complete", f"skipped: {reason}", str(n))
    for reason, n in sorted(summary.get("rejected", {}).items()):
        counts.add_row("complete", f"[red]rejected: {reason}[/]", str(n))
    counts.add_row("deduct", "deducted", str(summary["deducted"]))
    for reason, n in sorted(summary.get("not_deducted", {}).items()):
        counts.add_row("deduct", f"not deducted: {reason}", str(n))
    for label in ("queued", "sent", "failed"):
        for kind, n in sorted(summary.get(label, {}).items()):
            counts.add_row(f"text: {kind}", label, str(n))
    console.print(counts)
    shown = results_table(results, rows)
    if not shown:
        return
    table = Table(title=f"Per-booking results ({len(shown)} of {summary['results']} rows, failures first)")
    for col in ("booking", "client", "session start", "step", "outcome", "reason"):
        table.add_column(col)
    for r in shown:
        table.add_row(r["booking_id"][:8], r["client"] or "", (r["start_time"] or "")[:16].replace("T", " "),
                      r["step"], r["outcome"], r["reason"] or "")
    console.print(table)
