"""Data shown to operators is data (issue 16, item 7): a client's full_name, an org's name, a
schedule label, a reason or a phone that anyone with a login wrote is shown as text, in the
terminal (`run`, `results`, `backfill`, `audit`, `doctor`) and in the Prefect UI's artifacts:
no rich markup, no terminal control sequence, no markdown or HTML is acted on."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
import unicodedata
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
from hypothesis import given, settings, strategies as st
from markdown_it import MarkdownIt
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId
from rich.console import Console
from typer.testing import CliRunner

from booking_cron.reporting.artifacts import results_table, summary_markdown
from booking_cron.reporting.backfill_report import Totals, day_row, summary_markdown as backfill_markdown
from booking_cron.ops.cli import app
from booking_cron.reporting.operator_text import markdown_text, printable, terminal_text
from booking_cron.reporting.report import console_table, print_summary
from booking_cron.domain.results import StepResult, summarize, text_step
from booking_cron.domain.texts.phones import mask_phone
from tests import factories as f
from tests.factories import T

RUN = "5e0e38e1-8d4c-49c8-9b27-24c48e8d7566"
BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
# A client's own full_name, as the app lets them write it: rich markup, an OSC 8 hyperlink, an
# OSC 0 window title, a clear screen, a bidi override, an emoji code, markdown and HTML.
HOSTILE = ("[link=https://evil.example/]Ava[/link] [bold red]N[/] "
           "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ "
           "\x1b]0;pwned\x07\x1b[2J\x1b[H \u202eevil\u202c :smile: "
           "[click](javascript:alert(1)) <img src=x onerror=alert(1)> | pipes | **b** https://evil.example")
ACTED_ON = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI}]")
PHONE = "12\x1b\x07"  # too short to be a number: masked, it keeps its last two characters
SGR = re.compile(r"\x1b\[[0-9;]*m")  # rich's own colours and bold, when colour is forced


def acted_on(text: str) -> list[str]:
    """Characters a terminal or a browser would act on, left after rich's own SGR styling and line ends."""
    return [ch for ch in ACTED_ON.findall(SGR.sub("", text)) if ch != "\n"]


def render_markdown(text: str) -> str:
    """As a CommonMark renderer with GFM tables and strikethrough shows it (the Prefect UI uses marked)."""
    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(text)


def html_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# --- the rule, as pure functions -------------------------------------------------------------

def test_printable_makes_every_control_and_bidi_character_visible():
    assert printable("\x1b]8;;https://e/\x1b\\x\x1b]8;;\x1b\\") == "\\x1b]8;;https://e/\\x1b\\x\\x1b]8;;\\x1b\\"
    assert printable("\x1b]0;pwned\x07") == "\\x1b]0;pwned\\x07"
    assert printable("\x1b[2J\x1b[H") == "\\x1b[2J\\x1b[H"
    assert printable("\x9b2J \x85 \x7f \x00") == "\\x9b2J \\x85 \\x7f \\x00"  # C1 CSI, NEL, DEL, NUL
    assert printable("a\nb\tc\rd\u2028e\u2029") == "a\\nb\\tc\\rd\\u2028e\\u2029"
    assert printable("\u202eevil\u202c \u2066x\u2069 \u200f\u061c") == "\\u202eevil\\u202c \\u2066x\\u2069 \\u200f\\u061c"
    assert printable("\ud800") == "\\ud800"  # a lone surrogate no terminal can print
    assert printable(None) == "" and printable(7) == "7"


def test_printable_leaves_names_as_they_are():
    for name in ("Ava Nguyen", "Zoë O'Brien-Smith", "José Álvarez", "李小龙", "محمد", "Ava 👩‍👩‍👧 (mum)",
                 "[not markup]", "back\\slash", "\u00a0nbsp", "soft\u00adhyphen", "zero\u200bwidth"):
        assert printable(name) == name


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text())
def test_printable_output_has_nothing_a_terminal_acts_on(text):
    shown = printable(text)
    assert not ACTED_ON.search(shown)
    assert not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in shown)
    if not ACTED_ON.search(text) and not any(unicodedata.category(ch) == "Cs" for ch in text):
        assert shown == text


def test_terminal_text_is_not_markup():
    out = io.StringIO()
    Console(file=out, width=300, force_terminal=True, color_system="truecolor").print(terminal_text(HOSTILE, "red"))
    shown = out.getvalue()
    assert not acted_on(shown) and "\x1b]" not in shown  # no OSC at all: no link, no title
    assert "[link=https://evil.example/]Ava[/link] [bold red]N[/]" in SGR.sub("", shown)
    assert ":smile:" in shown and "😄" not in shown
    assert "\\x1b]0;pwned\\x07\\x1b[2J\\x1b[H \\u202eevil\\u202c" in SGR.sub("", shown)


def test_markdown_text_renders_as_exactly_the_text():
    for text in (HOSTILE, "[click](javascript:alert(1))", "![x](https://tracker.example/p.gif)",
                 "<img src=x onerror=alert(1)>", "<script>alert(1)</script>", "| a | b |", "# heading",
                 "- item", "1. item", "> quote", "`code`", "***", "&lt;b&gt; &amp;", "~~del~~", "__b__",
                 "www.evil.example", "a@evil.example", "https://evil.example", "<https://evil.example>",
                 "line\nbreak", "back\\slash\\*"):
        html = render_markdown(markdown_text(text))
        assert html == f"<p>{html_text(printable(text))}</p>\n", text
    escaped = markdown_text("www.evil.example https://evil.example a@evil.example")
    # marked (the Prefect UI) also links bare www., http(s):// and e-mail addresses (GFM autolinks)
    assert "www." not in escaped and "://" not in escaped and re.search(r"[^\\]@", escaped) is None


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1).filter(
    lambda s: s == s.strip() and not s[0].isspace()))
def test_any_text_escaped_as_markdown_renders_as_that_text(text):
    html = render_markdown(markdown_text(text))
    if printable(text).strip():
        expected = html_text(printable(text)).strip(" ")
        assert html == f"<p>{expected}</p>\n"


# --- where database text meets an output ------------------------------------------------------

def hostile_frame() -> pd.DataFrame:
    step = text_step("feedback_request", "s1")
    return pd.DataFrame([{
        "flow_run_id": RUN, "tick_at": pd.Timestamp("2026-11-24 09:10", tz="UTC"), "booking_id": "b1",
        "org": "<b>Org</b> [x](javascript:1)", "client": HOSTILE, "start_time": pd.Timestamp("2026-11-24 08:00", tz="UTC"),
        "booking_status": "completed", "step": step, "outcome": "failed", "reason": "provider_[x](http://e)\x1b[2J",
        "to": None, "phone": "**\x1b\x07", "timezone": "Australia/Brisbane", "schedule": "| 1 h | \u202ebefore",
    }, {
        "flow_run_id": RUN, "tick_at": pd.NaT, "booking_id": "b2", "org": "Peak Form PT", "client": "Ava Nguyen",
        "start_time": pd.NaT, "booking_status": "completed", "step": "deduct", "outcome": "deducted", "reason": None,
        "to": None, "phone": "+6141*****678", "timezone": None, "schedule": None,
    }])


def test_the_terminal_tables_show_database_text_as_text():
    frame = hostile_frame()
    for wide in (False, True):
        out = io.StringIO()
        Console(file=out, width=1000, force_terminal=True, color_system="truecolor").print(console_table(frame, wide))
        shown = out.getvalue()
        assert not acted_on(shown) and "\x1b]" not in shown
        plain = SGR.sub("", shown)
        assert printable(HOSTILE) in plain
        assert "provider [x](http://e)\\x1b[2J" in plain
        if wide:
            assert "<b>Org</b> [x](javascript:1)" in plain and "| 1 h | \\u202ebefore" in plain and "**\\x1b\\x07" in plain


def test_the_run_summary_shows_reasons_as_text():
    step = text_step("feedback_request", "s1")
    summary = summarize(RUN, "2026-11-24T09:10:00+00:00", [
        StepResult("a", step, "failed", "provider_[link=https://e]x[/link]\x1b]0;t\x07"),
        StepResult("b", "deduct", "not_deducted", "no_pack")]).as_dict()
    out = io.StringIO()
    print_summary(Console(file=out, width=300, force_terminal=True, color_system="truecolor"), summary,
                  hostile_frame())
    shown = out.getvalue()
    assert not acted_on(shown) and "\x1b]" not in shown
    assert "failed: provider [link=https://e]x[/link]\\x1b]0;t\\x07" in SGR.sub("", shown)


def test_the_table_artifact_cells_render_as_their_text():
    """The Prefect UI renders a table artifact's string cells as markdown."""
    rows = results_table(hostile_frame(), 10)
    hostile = rows[0]
    for column, text in (("org", "<b>Org</b> [x](javascript:1)"), ("reason", "provider [x](http://e)\x1b[2J"),
                         ("schedule", "| 1 h | \u202ebefore"), ("client", f"{HOSTILE} (**\x1b\x07)")):
        assert render_markdown(hostile[column]) == f"<p>{html_text(printable(text))}</p>\n", column
    assert not any(acted_on(str(v)) for v in hostile.values())
    # what booking-cron formats itself reads as before: the masked phone, the time, the id
    assert rows[1]["client"] == "Ava Nguyen (+6141*****678)" and rows[1]["booking id"] == "b2"
    assert render_markdown(rows[1]["client"]) == "<p>Ava Nguyen (+6141*****678)</p>\n"
    assert hostile["session start"] == "24 Nov 18:00 AEST" and hostile["booking id"] == "b1"


def test_the_summary_markdown_shows_reasons_and_kinds_as_text():
    bad_reason = "provider_[x](javascript:alert(1)) | <img src=x onerror=alert(1)> \x1b]0;t\x07"
    bad_kind = "evil_<script>|kind"
    summary = summarize(RUN, "2026-11-24T09:10:00+00:00", [
        StepResult("a", text_step(bad_kind, "s1"), "failed", bad_reason),
        StepResult("b", text_step(bad_kind, "s1"), "sent"),
        StepResult("c", "complete", "rejected", "bad_[x](y)"),
        StepResult("d", "deduct", "not_deducted", "<b>x</b>")]).as_dict()
    markdown = summary_markdown(summary, total_rows=4, shown_rows=4, run_id=RUN)
    html = render_markdown(markdown)
    assert "<a" not in html and "<img" not in html and "<script" not in html and "<b>" not in html
    assert not acted_on(markdown)
    # every row has its table's columns: no pipe from the database splits a cell
    for table in re.findall(r"<table>(.*?)</table>", html, re.S):
        widths = {len(re.findall(r"<t[dh]", row)) for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)}
        assert len(widths) == 1, table
    assert html_text(printable("provider [x](javascript:alert(1)) | <img src=x onerror=alert(1)> \x1b]0;t\x07")) in html
    assert html_text("evil <script>|kind") in html
    assert "| failed | provider \\[x\\]" in markdown


def test_the_backfill_artifacts_show_reasons_as_text():
    totals = Totals(slots=2, skipped=0)
    summary = {"flow_run_id": RUN, "results": 1, "completed": 1, "deducted": 0,
               "not_deducted": {"[x](javascript:1)|<b>": 1}, "sent": {"kind_<i>": 1}}
    totals.add_day({datetime(2026, 11, 24, 9, tzinfo=timezone.utc): summary})
    html = render_markdown(backfill_markdown(totals, "backfill 2026-11-24"))
    assert "<a" not in html and "<b>" not in html and "<i>" not in html
    assert html_text("[x](javascript:1)|<b>") in html and html_text("kind_<i>") in html
    row = day_row([datetime(2026, 11, 24, 9, tzinfo=timezone.utc)], {datetime(2026, 11, 24, 9, tzinfo=timezone.utc): summary})
    assert render_markdown(row["not deducted"]) == f"<p>{html_text('1 [x](javascript:1)|<b>')}</p>\n"


def test_audit_and_doctor_print_subjects_and_details_as_text(db, monkeypatch):
    from booking_cron.ops import audit, doctor

    monkeypatch.setattr(audit, "audit", lambda conn: [audit.Violation("ledger_matches_sessions_used", HOSTILE, HOSTILE)])
    monkeypatch.setattr(doctor, "diagnose", lambda conn: [doctor.Hazard("ledger_disagrees", HOSTILE, HOSTILE, HOSTILE)])
    for command, word in (("audit", "VIOLATION"), ("doctor", "HAZARD")):
        done = CliRunner().invoke(app, [command], catch_exceptions=False, env={"COLUMNS": "1000"})
        assert done.exit_code == 1
        assert not acted_on(done.stdout), command
        named, said = done.stdout.split("\n", 1)  # the first line names the database it read
        assert named.startswith("database ") and said.startswith(f"{word} ") and printable(HOSTILE) in said


# --- end to end: a hostile client through the real command ----------------------------------

def terminal_env(prefect_api: str, database_url: str, colour: bool) -> dict[str, str]:
    """A terminal 1000 columns wide (nothing folds), with rich's colours forced or off."""
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "TERM")}
    env.update(DATABASE_URL=database_url, PREFECT_API_URL=prefect_api, COLUMNS="1000", PYTHONUNBUFFERED="1")
    env.update({"FORCE_COLOR": "1", "TERM": "xterm-256color"} if colour else {"NO_COLOR": "1", "TERM": "dumb"})
    return env


def booking_cron(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "booking_cron", *args], capture_output=True, text=True, env=env,
                          timeout=180)


def flow_run_artifacts(flow_run_id: str) -> dict:
    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[uuid.UUID(flow_run_id)])))
    return {a.key: a for a in asyncio.run(read()) if a.key}


def test_a_hostile_name_is_shown_as_text_by_run_results_and_the_ui(db, database_url, prefect_api):
    org = f.org(db, name="[link=https://evil.example/]Org[/link] \x1b]0;org\x07")
    ava = f.client(db, org, HOSTILE, phone=PHONE)
    f.booking(db, org, ava, f.pack(db, org, ava, expires_at=T - timedelta(days=1)))  # shown: needs attention
    f.booking(db, org, ava, f.pack(db, org, ava))

    run = booking_cron("run", "--at", T.isoformat(), env=terminal_env(prefect_api, database_url, colour=True))
    assert run.returncode == 0, run.stderr
    assert "\x1b[" in run.stdout  # rich did style it: colour was forced as in a terminal
    assert not acted_on(run.stdout) and "\x1b]" not in run.stdout  # no OSC 8 link, no OSC 0 title
    plain = SGR.sub("", run.stdout)
    assert printable(HOSTILE) in plain  # the name, markup and escapes as literal text
    assert "[link=https://evil.example/]Ava[/link]" in plain and "\\x1b]0;pwned\\x07\\x1b[2J" in plain
    run_id = re.search(r"booking-cron results --run ([0-9a-f-]{36})", plain).group(1)

    for wide in ((), ("--wide",)):
        results = booking_cron("results", "--run", run_id, *wide,
                               env=terminal_env(prefect_api, database_url, colour=False))
        assert results.returncode == 0, results.stderr
        assert not acted_on(results.stdout) and "\x1b" not in results.stdout
        assert printable(HOSTILE) in results.stdout
    assert "[link=https://evil.example/]Org[/link] \\x1b]0;org\\x07" in results.stdout
    assert printable(mask_phone(PHONE)) in results.stdout  # "**\x1b\x07", escaped

    artifacts = flow_run_artifacts(run_id)
    table = artifacts["tick-results"].data
    table = json.loads(table) if isinstance(table, str) else table
    client_cells = {row["client"] for row in table}
    assert client_cells == {f"{markdown_text(HOSTILE)} ({markdown_text(mask_phone(PHONE))})"}
    for row in table:
        for value in row.values():
            assert not acted_on(str(value))
            html = render_markdown(str(value))
            assert "<a" not in html and "<img" not in html
    assert render_markdown(table[0]["org"]) == f"<p>{html_text(printable(org_name(db, org)))}</p>\n"
    markdown = artifacts["tick-summary"].data
    assert not acted_on(markdown) and "<a" not in render_markdown(markdown)


def org_name(db, org: str) -> str:
    return db.execute("select name from orgs where id = %s", (org,)).fetchone()[0]
