"""What operators read, as pure functions: the state message, presented rows, the summary markdown
(and, against PostgreSQL, that the SQL orders results as the pure ranking does)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import psycopg

from booking_cron.reporting.artifacts import count_rows, local_time, present, results_table, summary_markdown, utc_time
from booking_cron.reporting.attention import (ATTENTION, ATTENTION_MARK, FAILURES_FIRST_PARAMS, FINE, NOTABLE, OUTCOME_ORDER,
                                    failures_first_sql, rank, state_message, state_name)
from booking_cron.domain.results import StepResult, step_label, summarize, text_step

RUN = "5e0e38e1-8d4c-49c8-9b27-24c48e8d7566"


def summary_of(*results: StepResult, dry_run: bool = False) -> dict:
    return summarize(RUN, "2026-11-24T09:10:00.123456+00:00", results, dry_run=dry_run).as_dict()


def deduct(booking: str, reason: str | None) -> StepResult:
    return StepResult(booking, "deduct", "not_deducted" if reason else "deducted", reason)


def test_the_state_message_names_what_needs_attention_biggest_first():
    results = [StepResult(f"c{i}", "complete", "completed") for i in range(62)]
    results += [deduct(f"d{i}", None) for i in range(21)]
    results += [deduct(f"e{i}", "expired") for i in range(7)] + [deduct(f"u{i}", "unpaid") for i in range(4)]
    results += [deduct(f"n{i}", "no_pack") for i in range(30)]  # expected, not a problem
    assert state_message(summary_of(*results)) == (
        "62 completed, 21 deducted; 11 need attention: 7 expired packs, 4 unpaid packs; 0 texts sent")


def test_the_state_message_counts_failed_and_unknown_texts_and_rejected_bookings():
    feedback = text_step("feedback_request", "s1")
    message = state_message(summary_of(
        StepResult("a", "complete", "rejected", "end_before_start"),
        StepResult("b", feedback, "failed", "unknown_placeholder"),
        StepResult("c", feedback, "unknown", "unresolved_2h_lookup_failed"),  # fresh ones are the ticks' job
        StepResult("d", feedback, "sent"),
        StepResult("e", feedback, "skipped", "opted_out"),
        deduct("f", "exhausted"),
    ))
    assert message.startswith("0 completed, 0 deducted; 4 need attention: ")
    assert {"1 rejected booking", "1 failed text", "1 text of unknown fate (unresolved 2 h+)", "1 used-up pack"} == set(
        message.split("attention: ")[1].split("; ")[0].split(", "))
    assert message.endswith("; 1 text sent")


def test_a_quiet_tick_says_so_and_a_dry_run_says_it_is_one():
    assert state_message(summary_of(StepResult("a", "complete", "completed"), deduct("a", None))) == (
        "1 completed, 1 deducted; nothing needs attention; 0 texts sent")
    assert state_message(summary_of(dry_run=True)).startswith("dry run: 0 completed")


def test_texts_waiting_for_a_provider_are_named():
    step = text_step("session_reminder", "s1")
    summary = summary_of(*(StepResult(b, step, "queued", "no_sms_provider", {"queued": True}) for b in "abc"))
    assert state_message(summary).endswith("; 3 texts wait for an SMS provider")


def test_only_problems_rank_first():
    assert rank("rejected", "end_before_start") == ATTENTION
    assert rank("not_deducted", "expired") == ATTENTION
    assert rank("failed", "provider_21211") == ATTENTION
    assert rank("queued", "sender_not_assigned") == ATTENTION  # counted in the summary's "needs attention"
    assert rank("queued", "no_sms_provider") == FINE
    assert rank("not_deducted", "no_pack") == NOTABLE
    assert rank("skipped", "opted_out") == NOTABLE
    assert rank("deducted", None) == rank("sent", None) == rank("completed", None) == FINE


def test_rows_that_need_attention_are_marked_and_routine_ones_are_not():
    """In the UI an expired pack and a routine `no pack` both read 'not deducted' under 'deduct'."""
    def row(outcome, reason, step="deduct"):
        return {"flow_run_id": RUN, "tick_at": pd.NaT, "booking_id": f"{outcome}-{reason}", "org": None,
                "client": None, "start_time": pd.NaT, "booking_status": None, "step": step, "outcome": outcome,
                "reason": reason, "to": None, "phone": None, "timezone": None, "schedule": None}
    frame = pd.DataFrame([row("not_deducted", "expired"), row("rejected", "end_before_start", "complete"),
                          row("failed", "provider_21211", text_step("feedback_request", "s1")),
                          row("not_deducted", "no_pack"),
                          row("skipped", "opted_out", text_step("feedback_request", "s1")),
                          row("deducted", None), row("unknown", "lookup_failed", text_step("feedback_request", "s1")),
                          row("queued", "sender_not_assigned", text_step("session_reminder", "s1"))])
    marks = {r["booking id"]: r["attention"] for r in results_table(frame, 10)}
    assert marks == {"not_deducted-expired": ATTENTION_MARK, "rejected-end_before_start": ATTENTION_MARK,
                     "failed-provider_21211": ATTENTION_MARK, "not_deducted-no_pack": "", "skipped-opted_out": "",
                     "deducted-None": "", "unknown-lookup_failed": "", "queued-sender_not_assigned": ATTENTION_MARK}


def test_the_final_state_is_named_needs_attention_only_when_something_does():
    assert state_name(summary_of(deduct("a", "expired"))) == "Needs attention"
    assert state_name(summary_of(StepResult("a", "complete", "completed"), deduct("a", None),
                                 deduct("b", "no_pack"))) == "Completed"


def test_steps_read_as_words():
    assert step_label(text_step("feedback_request", "0b7c2f9e-1111-4a5b-9c3d-222233334444")) == "feedback request"
    assert step_label(text_step("unconfirmed_reminder", None)) == "unconfirmed reminder"
    assert step_label("deduct") == "deduct"


def test_session_start_is_in_the_org_zone_without_microseconds():
    start = datetime(2026, 11, 24, 9, 30, 12, 345678, tzinfo=timezone.utc)
    assert local_time(start, "Australia/Brisbane") == "24 Nov 19:30 AEST"
    assert local_time(start - timedelta(days=20), "Not/AZone") == "4 Nov 09:30 UTC"
    assert local_time(pd.NaT, "Australia/Brisbane") == ""
    assert utc_time("2026-11-24T09:10:00.123456+00:00") == "2026-11-24 09:10 UTC"


def test_a_presented_row_has_blanks_not_nan_and_ids_last():
    frame = pd.DataFrame([
        {"flow_run_id": RUN, "tick_at": pd.Timestamp("2026-11-24 09:10", tz="UTC"), "booking_id": "b1",
         "org": "Peak Form PT", "client": "Ava Nguyen", "start_time": pd.NaT, "booking_status": "completed",
         "step": "deduct", "outcome": "deducted", "reason": None, "to": None, "phone": "+6141*****678",
         "timezone": "Australia/Brisbane", "schedule": None},
        {"flow_run_id": RUN, "tick_at": pd.NaT, "booking_id": "b2", "org": None, "client": None,
         "start_time": pd.Timestamp("2026-11-24 09:30", tz="UTC"), "booking_status": None,
         "step": text_step("session_reminder", "s1"), "outcome": "skipped", "reason": "missing_phone",
         "to": None, "phone": float("nan"), "timezone": None, "schedule": "1 hour before"},
    ])
    rows = results_table(frame, 10)
    assert list(rows[0])[:6] == ["attention", "outcome", "reason", "step", "client", "session start"]
    assert list(rows[0])[-1] == "booking id"
    assert rows[0]["client"] == "Ava Nguyen (+6141*****678)" and rows[0]["reason"] == ""
    assert rows[1] == {"attention": "", "outcome": "skipped", "reason": "missing phone", "step": "session reminder",
                       "client": "", "session start": "24 Nov 09:30 UTC", "schedule": "1 hour before", "org": "",
                       "booking id": "b2"}
    assert "nan" not in repr(rows).lower() and "NaT" not in repr(rows)
    assert present(frame.to_dict("records")[0])["tick"] == "2026-11-24 09:10 UTC"


def test_the_summary_puts_what_needs_attention_first_and_counts_texts_by_reason():
    feedback = text_step("feedback_request", "s1")
    summary = summary_of(
        StepResult("a", "complete", "completed"), deduct("a", "unpaid"),
        StepResult("b", "complete", "completed"), deduct("b", "expired"),
        StepResult("a", feedback, "skipped", "opted_out"), StepResult("b", feedback, "skipped", "opted_out"),
        StepResult("c", feedback, "failed", "unknown_placeholder"), StepResult("d", feedback, "sent"),
    )
    markdown = summary_markdown(summary, total_rows=8, shown_rows=5, run_id=RUN)
    assert markdown.startswith("# Tick 2026-11-24 09:10 UTC: 3 need attention\n")
    assert markdown.index("## Needs attention") < markdown.index("## Texts") < markdown.index(
        "## Completions and deductions")
    assert "| unpaid pack | 1 |" in markdown and "| expired pack | 1 |" in markdown
    assert "| skipped | opted out | 2 |" in markdown and "| failed | unknown placeholder | 1 |" in markdown
    assert "| feedback request | 1 | 0 |" in markdown
    assert "shows 5 of 8 per-booking results (failures first)" in markdown
    assert f"`booking-cron results --run {RUN}`" in markdown
    assert ".123456" not in markdown
    assert ("texts", "skipped", "opted_out", 2) in count_rows(summary)


def test_without_a_public_url_the_summaries_say_receipts_are_off_and_how_to_turn_them_on():
    import io

    from rich.console import Console

    from booking_cron.reporting.report import print_summary

    summary = summary_of(StepResult("d", text_step("feedback_request", "s1"), "sent"))
    summary["receipts"] = {"delivered": 0, "undelivered": 0, "awaiting_receipt": 3}
    summary["receipts_requested"] = False
    markdown = summary_markdown(summary, total_rows=1, shown_rows=1, run_id=RUN)
    assert "Receipts are off: BOOKING_CRON_PUBLIC_URL is unset" in markdown and "awaiting" not in markdown
    assert "`booking-cron webhooks`" in markdown and "the 3 texts sent" in markdown
    out = io.StringIO()
    print_summary(Console(file=out, width=100), summary, pd.DataFrame())
    terminal = " ".join(out.getvalue().split())
    assert "Receipts are off: BOOKING_CRON_PUBLIC_URL is unset" in terminal
    assert "set BOOKING_CRON_PUBLIC_URL to its public URL" in terminal

    summary["receipts_requested"] = True  # asked for: the counts, awaiting ones included
    assert "| awaiting receipt | 3 |" in summary_markdown(summary, total_rows=1, shown_rows=1, run_id=RUN)
    out = io.StringIO()
    print_summary(Console(file=out, width=100), summary, pd.DataFrame())
    assert "0 delivered, 0 undelivered, 3 awaiting receipt" in " ".join(out.getvalue().split())


def test_the_database_orders_results_as_rank_does(database_url):
    """report.results_frame orders in SQL (failures_first_sql); the same results sorted in Python by
    rank come out in the same order, so a held text is among the first rows of the artifact."""
    results = [("completed", None), ("skipped", "opted_out"), ("queued", "sender_not_assigned"),
               ("not_deducted", "no_pack"), ("queued", "no_sms_provider"), ("unknown", "lookup_failed"),
               ("unknown", "unresolved_2h_lookup_failed"), ("not_deducted", "expired"), ("sent", None)]
    params = {**FAILURES_FIRST_PARAMS, **{f"o{i}": o for i, (o, _) in enumerate(results)},
              **{f"r{i}": r for i, (_, r) in enumerate(results)}}
    values = ", ".join(f"(%(o{i})s::text, %(r{i})s::text)" for i in range(len(results)))
    query = f"select o, r from (values {values}) as t(o, r) order by {failures_first_sql('o', 'r')}, r nulls first"
    with psycopg.connect(database_url) as conn:
        in_sql = conn.execute(query, params).fetchall()
    order = {o: i for i, o in enumerate(OUTCOME_ORDER)}
    in_python = sorted(results, key=lambda x: (rank(*x), order.get(x[0], len(order)), x[1] or ""))
    assert in_sql == in_python
    assert in_sql.index(("queued", "sender_not_assigned")) < in_sql.index(("not_deducted", "no_pack"))
