"""Result tables for people: per-booking results as a pandas DataFrame, and rich tables of them.

Every cell and every line built from database text reaches rich as a `Text` of printable text
(booking_cron.reporting.operator_text): rich reads no markup in it and the terminal gets no control sequence."""

from __future__ import annotations

import pandas as pd
import psycopg
from rich import box
from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from booking_cron.reporting.artifacts import COLUMNS, blank, count_rows, present_frame, receipts_off, utc_time, words
from booking_cron.reporting.attention import (ATTENTION, NOTABLE, FAILURES_FIRST_PARAMS, attention_items, attention_line,
                                    failures_first_sql, headline, rank)
from booking_cron.reporting.operator_text import terminal_text
from booking_cron.storage.store import loadable_time
from booking_cron.domain.texts.phones import mask_phone

# Times are cut to the second: nobody reads microseconds. Columns are only ever added here
# (the --json and --csv exports have this shape).
RESULTS_QUERY = """
select r.flow_run_id::text as flow_run_id, date_trunc('second', t.tick_at) as tick_at,
       r.booking_id::text as booking_id, o.name as org, c.full_name as client, {start} as start_time,
       b.status as booking_status, r.step, r.outcome, r.reason, r.detail->>'to' as to,
       date_trunc('second', r.recorded_at) as recorded_at, c.phone as phone, bs.timezone as timezone,
       nullif(s.label, '') as schedule
from (
  -- the rows to show, cut first: the other joins then run for those rows only
  select r.flow_run_id, r.booking_id, r.step, r.outcome, r.reason, r.detail, r.recorded_at
  from public.tick_results r
  left join public.bookings b on b.id = r.booking_id
  where (%(run)s::uuid is null or r.flow_run_id = %(run)s::uuid)
    and (%(booking)s::uuid is null or r.booking_id = %(booking)s::uuid)
  order by {order}
  limit %(limit)s
) r
left join public.tick_runs t on t.flow_run_id = r.flow_run_id
left join public.bookings b on b.id = r.booking_id
left join public.clients c on c.id = b.client_id
left join public.orgs o on o.id = b.org_id
left join public.booking_settings bs on bs.org_id = b.org_id
left join public.sms_schedules s on r.step like 'text:%%' and s.id::text = split_part(r.step, ':', 3)
order by {order}
"""
CHRONOLOGICAL = "r.recorded_at, r.booking_id, r.step"
FAILURES_FIRST = failures_first_sql("r.outcome", "r.reason") + ", r.reason, b.start_time, r.booking_id, r.step"

# What `booking-cron results` and `run` show in a 100-column terminal; --wide shows every column.
NARROW = ("outcome", "reason", "step", "client", "session start")
STYLE = {ATTENTION: "bold red", NOTABLE: "yellow"}


def results_frame(conn: psycopg.Connection, run_id: str | None = None, booking_id: str | None = None,
                  limit: int | None = None, failures_first: bool = False) -> pd.DataFrame:
    """Per-booking results; with `limit`, only that many rows (the database does the cutting).
    Client phones come back masked."""
    query = RESULTS_QUERY.format(order=FAILURES_FIRST if failures_first else CHRONOLOGICAL,
                                 start=loadable_time("b.start_time"))
    with conn.transaction(), conn.cursor() as cur:
        if run_id and not booking_id:
            # Right after a tick wrote its rows, tick_results' statistics are stale (autovacuum
            # analyses it later): expecting a few hundred rows, the planner would look up each of
            # a big tick's bookings by index (1 s at 100k); joined by hash it takes 0.2 s.
            cur.execute("set local enable_nestloop = off")
        cur.execute(query, {"run": run_id, "booking": booking_id, "limit": limit, **FAILURES_FIRST_PARAMS})
        assert cur.description is not None  # a select: it has columns
        columns = [d.name for d in cur.description]
        frame = pd.DataFrame(cur.fetchall(), columns=columns)
    frame["phone"] = frame["phone"].map(lambda p: mask_phone(p) if isinstance(p, str) and p.strip() else None)
    return frame


def console_table(results: pd.DataFrame, wide: bool = False, title: str | None = None) -> Table:
    """A rich table of per-booking results in the frame's order, what needs attention in red."""
    columns = COLUMNS if wide else NARROW
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in ("outcome", "session start", "booking id",
                                                                      "flow run id", "tick"))
    for record, row in zip(results.to_dict("records"), present_frame(results)):
        style = STYLE.get(rank(record["outcome"], None if blank(record["reason"]) else record["reason"]))
        table.add_row(*(terminal_text(row[c]) for c in columns), style=style)
    return table


def print_results(console: Console, results: pd.DataFrame, wide: bool = False) -> None:
    """`booking-cron results`: narrow enough for a 100-column terminal, or every column with --wide."""
    table = console_table(results, wide, title=f"{len(results)} per-booking results")
    if wide:  # as wide as the table needs: a pager (less -S) or a wide terminal shows it whole
        needed = Measurement.get(console, console.options.update_width(10_000), table).maximum
        Console(width=max(console.width, needed), file=console.file, force_terminal=console.is_terminal).print(table)
    else:
        console.print(table)
        console.print("--wide adds phone, schedule, org and ids; --csv and --json export everything", style="dim")


def print_summary(console: Console, summary: dict, results: pd.DataFrame, results_command: str = "booking-cron results"
                  ) -> None:
    """`booking-cron run`: what the tick did, what needs attention, counts, then the first results, then
    `results_command` for all of them (the demo's names its database: it is not the shell's)."""
    kind = "Dry run of the tick" if summary.get("dry_run") else "Tick"
    console.print(Text(f"{kind} at {utc_time(summary['tick_at'])}: {headline(summary)}", style="bold"))
    items = attention_items(summary)
    console.print(attention_line(items) if items else "nothing needs attention", style=STYLE[ATTENTION] if items else None)
    console.print()
    counts = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    columns: tuple[tuple[str, JustifyMethod], ...] = (("step", "left"), ("outcome", "left"), ("count", "right"))
    for column, justify in columns:
        counts.add_column(column, justify=justify)
    for step, outcome, reason, n in count_rows(summary):
        counts.add_row(step, terminal_text(f"{words(outcome)}: {words(reason)}" if reason else words(outcome)),
                       str(n), style=STYLE.get(rank(outcome, reason)))
    console.print(counts)
    console.print()
    receipts = summary.get("receipts") or {}
    if receipts_off(summary):
        console.print(receipts_off(summary), style="yellow", highlight=False)
        console.print()
    elif any(receipts.values()):
        console.print("Receipts of texts sent in the 48 hours before this tick: "
                      + ", ".join(f"{n} {words(k)}" for k, n in receipts.items()), highlight=False)
        console.print()
    if not results.empty:
        console.print(console_table(results, title=f"First {len(results)} of {summary['results']} per-booking "
                                                   "results, failures first"))
    if not summary.get("dry_run"):
        console.print(f"All of them: {results_command} --run {summary['flow_run_id']}", soft_wrap=True, highlight=False)
