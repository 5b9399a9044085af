"""One tick as a Prefect flow run, with its summary printed: `booking-cron run` and the demo's ticks."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Optional, cast

from rich.console import Console
from rich.text import Text

from booking_cron.storage import database
from booking_cron.reporting.operator_text import terminal_text

if TYPE_CHECKING:
    from prefect.states import State

SUMMARY_ROWS = 12


def run_tick(console: Console, errors: Console, at: Optional[datetime], dry_run: bool, as_json: bool,
             trigger: str = "run", shard: Optional[str] = None, results_command: str = "booking-cron results") -> int:
    from flows.tick import tick
    from booking_cron.reporting.report import print_summary, results_frame

    database.pool()  # fail now, naming the cause, when the database refuses: the flow's tasks would retry it
    # a sync flow's call returns its State (Prefect's overloads read an unannotated flow as maybe async)
    state = cast("State[Any]", tick(tick_at=at, dry_run=dry_run, trigger=trigger, shard=shard, return_state=True))
    if not state.is_completed():
        message = state.message or state.name
        if as_json:
            print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "state": state.name, "error": message}))
        errors.print(Text.assemble(("tick failed", "red"), ": ", terminal_text(message)))
        return 1
    summary = state.result()
    if as_json:
        print(json.dumps(summary))
        return 0
    with database.connection() as conn:
        # a dry run recorded nothing: its table is empty
        results = results_frame(conn, run_id=summary["flow_run_id"], limit=SUMMARY_ROWS, failures_first=True)
    print_summary(console, summary, results, results_command)
    return 0
