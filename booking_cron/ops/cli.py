"""`booking-cron`: the command line of the contract (db upgrade, seed, run, results, audit, doctor, demo, deploy, serve,
webhooks, prefect)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, Optional, cast, overload

import click
import httpx
import psycopg
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from booking_cron import config
from booking_cron.storage import database, schema
from booking_cron.ops import prefect_api, wiring
from booking_cron.reporting.operator_text import terminal_text

if TYPE_CHECKING:
    # typer vendors click: its commands are invoked with its own copy's Context, not click's
    from prefect.states import State
    from typer._click import Context as TyperContext

DATABASE_REFUSED = 1  # the exit status when the database refuses (see BookingCron.invoke)
PREFECT_REFUSED = 1  # the exit status when the Prefect API does not answer
DEBUG_ENV = "BOOKING_CRON_DEBUG"


def _plain(text: object) -> str:
    """One line of plain text: whitespace runs become one space, other control characters are escaped
    (database messages quote names that anyone with a login may have chosen)."""
    text = " ".join(str(text).split())
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def refusal_lines(error: BaseException) -> list[str]:
    """What to print for a database refusal: what failed, naming the database (host, port, database
    and user, never the password), then what to do."""
    debug = f"(--debug or {DEBUG_ENV}=1 shows the traceback)"
    if isinstance(error, database.DatabaseRefused):
        return [f"booking-cron: {_plain(error)}", f"  {_plain(error.hint or 'check DATABASE_URL')} {debug}"]
    url = database.current_url()
    where = f"the bookings database at {database.safe_url(url)}" if url else "the bookings database"
    diag = getattr(error, "diag", None)
    message = (diag.message_primary if diag is not None else None) or (str(error).strip().splitlines() or [""])[0]
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(error, psycopg.errors.InsufficientPrivilege):
        first = f"{where} refused: {message}"
        hint = "connect as a role that has it (the database owner, who owns booking-cron's objects), or grant it"
    elif isinstance(error, psycopg.OperationalError):
        first = f"{where} failed: {message}"
        hint = "check that the server is up and try again"
    else:
        first = f"{where} answered with an error: {message}" + (f" ({sqlstate})" if sqlstate else "")
        hint = "the server's log has the statement"
    return [f"booking-cron: {_plain(first)}", f"  {hint} {debug}"]


def prefect_refusal_lines(error: BaseException) -> list[str]:
    """What to print when the Prefect API does not answer: its URL and what failed, then what to do."""
    if not isinstance(error, prefect_api.PrefectUnreachable):
        error = prefect_api.unreachable(prefect_api.explicit_api_url() or "(unknown)", error)
    return [f"booking-cron: {_plain(error)}", f"  {error.hint} (--debug or {DEBUG_ENV}=1 shows the traceback)"]


class BookingCron(TyperGroup):
    """The command group: database refusals become one or two lines, not a traceback."""

    def invoke(self, ctx: TyperContext):
        """Run the command. When the database refuses (unreachable, no such database or role, a
        failed login, a missing privilege, or any other error PostgreSQL or psycopg raise), print
        what failed, naming the database without its password, and what to do, on stderr; exit 1.
        With --debug or BOOKING_CRON_DEBUG=1 the exception propagates with its traceback instead.
        Usage errors keep typer's exit 2; other exceptions keep their traceback."""
        try:
            return super().invoke(ctx)
        except (database.DatabaseRefused, psycopg.Error) as error:
            if ctx.params.get("debug"):
                raise
            for line in refusal_lines(error):
                click.echo(line, err=True)
            raise typer.Exit(DATABASE_REFUSED) from None
        except (prefect_api.PrefectUnreachable, httpx.ConnectError, httpx.ConnectTimeout) as error:
            if ctx.params.get("debug"):
                raise
            for line in prefect_refusal_lines(error):
                click.echo(line, err=True)
            raise typer.Exit(PREFECT_REFUSED) from None


@overload
def wire(machine: bool = False, prefect: bool = False, db: Literal[True] = True, say: bool = True) -> wiring.Source: ...
@overload
def wire(machine: bool = False, prefect: bool = False, *, db: Literal[False], say: bool = True) -> None: ...
def wire(machine: bool = False, prefect: bool = False, db: bool = True, say: bool = True) -> wiring.Source | None:
    """The bookings database (db) and the Prefect API (prefect) by the one rule (booking_cron/ops/wiring.py),
    each checked to answer, then named in the command's first lines: on stdout, or on stderr when the
    output is machine-readable (machine). Without DATABASE_URL the saved block is looked up on the
    Prefect API (the local server only if it exists). A database taken from the block becomes this
    process's DATABASE_URL, so the flow run here uses the database this line named."""
    if db and (explicit := config.database_url_from_env()):
        database.probe(explicit)  # a refused database fails at once, before any Prefect server is asked
    api = None
    if prefect:
        api = prefect_api.api()
    elif db and not wiring.explicit_database():
        api = prefect_api.api(start_local=False)
    if api is not None:
        prefect_api.check_reachable(api)
    source = wiring.database_source(api) if db else None
    if source is not None:
        if source.origin != "DATABASE_URL":
            database.probe(source.url)
        if source.origin != "DATABASE_URL" and not source.origin.startswith("embedded"):
            os.environ["DATABASE_URL"] = source.url
    for line in wiring.first_lines(source, api) if say else []:
        (errors if machine else console).print(line, markup=False, highlight=False, soft_wrap=True)
    return source


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, cls=BookingCron,
                  pretty_exceptions_show_locals=False)  # locals would show DATABASE_URL's password
db_app = typer.Typer(no_args_is_help=True, help="Schema commands.")
app.add_typer(db_app, name="db")
blocks_app = typer.Typer(no_args_is_help=True, help="Prefect blocks for the database and Twilio.")
app.add_typer(blocks_app, name="blocks")
console = Console(stderr=False)
errors = Console(stderr=True)


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", envvar=DEBUG_ENV,
                               help="show the traceback when the database refuses (default: one or two lines)"),
) -> None:
    pass


@overload
def parse_time(value: str) -> datetime: ...
@overload
def parse_time(value: Optional[str]) -> Optional[datetime]: ...
def parse_time(value: Optional[str]) -> Optional[datetime]:
    """ISO 8601 with an offset, as the contract says; a naive time is refused, not guessed."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not ISO 8601 (e.g. 2026-11-24T09:00:00+00:00)")
    if when.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no UTC offset (e.g. 2026-11-24T09:00:00+00:00)")
    return when


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema; safe to repeat."""
    applied = schema.upgrade(wire().url)
    console.print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@db_app.command("schema")
def db_schema() -> None:
    """Print booking-cron's schema in the database as SQL (booking_cron/schema.sql is it for an empty one; `make schema`)."""
    from booking_cron.storage.schema_text import schema_text

    with database.connection(wire(machine=True).url) as conn:
        typer.echo(schema_text(conn), nl=False)


@app.command("seed")
def seed_command(
    orgs: int = typer.Option(3, help="number of orgs"),
    clients: int = typer.Option(40, help="number of clients (all orgs)"),
    bookings: int = typer.Option(200, help="number of bookings (all orgs)"),
    seed: int = typer.Option(7, help="random seed"),
    at: Optional[str] = typer.Option(None, help="the time T the data is centred on (ISO 8601, default now)"),
) -> None:
    """Realistic synthetic data around T (applies pending migrations first)."""
    from booking_cron.ops.seed import seed as load_seed

    url = wire().url
    schema.upgrade(url, "seed (db upgrade first)")
    with database.connection(url) as conn:
        counts = load_seed(conn, orgs=orgs, clients=clients, bookings=bookings, seed=seed,
                           at=parse_time(at) or datetime.now(timezone.utc))
    console.print(f"seeded {counts.orgs} orgs, {counts.clients} clients, {counts.packs} packs, {counts.bookings} bookings")


@app.command("run")
def run_command(
    at: Optional[str] = typer.Option(None, help="tick time T (ISO 8601 with offset; default now)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="report what the tick would do; write nothing"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    shard: Optional[str] = typer.Option(None, help="only the orgs of shard i of N, e.g. 2/4"),
) -> None:
    """One tick at T as a Prefect flow run."""
    from booking_cron.domain.due import Shard

    try:
        Shard.parse(shard)
    except ValueError as error:
        raise typer.BadParameter(str(error))
    try:
        wire(machine=as_json, prefect=True)
    except (database.DatabaseUnavailable, prefect_api.PrefectUnreachable) as error:
        if as_json:  # no flow run was started
            print(json.dumps({"flow_run_id": None, "state": "Failed", "error": str(error)}))
        raise
    from booking_cron.ops.tick_command import run_tick

    raise typer.Exit(run_tick(console, errors, parse_time(at), dry_run, as_json, shard=shard))


@app.command("backfill")
def backfill_command(
    start: str = typer.Option(..., help="first slot (ISO 8601 with offset)"),
    end: str = typer.Option(..., help="end of the range, exclusive"),
    every: str = typer.Option("10m", help="slot length: 10m, 1h, 1d"),
    dry_run: bool = typer.Option(False, "--dry-run", help="report what each slot would do; write nothing"),
    force: bool = typer.Option(False, "--force", help="tick slots that already had a finished tick, too"),
    shard: Optional[str] = typer.Option(None, help="only the orgs of shard i of N, e.g. 2/4"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
) -> None:
    """The outcome of one tick per slot in [start, end), oldest first, in one flow run; resumable."""
    from booking_cron.reporting.backfill_report import Totals
    from booking_cron.domain.due import Shard
    from booking_cron.domain.slots import parse_every

    first, last = parse_time(start), parse_time(end)
    try:
        parse_every(every)
        Shard.parse(shard)
        if last <= first:
            raise ValueError("--end must be after --start")
    except ValueError as error:
        raise typer.BadParameter(str(error))
    wire(machine=as_json, prefect=True)
    database.pool()  # fail now, naming the cause, when the database refuses: the flow's tasks would retry it
    from flows.backfill import backfill  # Prefect's import: after the checks, so usage errors come at once

    state = cast("State[Any]", backfill(start=first, end=last, every=every, dry_run=dry_run, force=force, shard=shard,
                                        return_state=True))  # a sync flow's call returns its State, as in run_tick
    totals = state.result(raise_on_failure=False)
    if not isinstance(totals, dict):
        errors.print(Text.assemble(("backfill failed", "red"), ": ", terminal_text(state.message)))
        raise typer.Exit(1)
    if as_json:
        print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "state": state.name, **totals}))
    else:
        for line in Totals.from_dict(totals).lines():
            console.print(terminal_text(line), highlight=False)
    raise typer.Exit(0 if state.is_completed() else 1)


@app.command("serve")
def serve_command(
    cron: str = typer.Option("*/10 * * * *", help="tick schedule (UTC)"),
    name: str = typer.Option("booking-cron-serve", help="deployment name (not a work pool's deployment)"),
) -> None:
    """Run the tick on a cron schedule from this machine, without a work pool (Ctrl-C stops and pauses it)."""
    from booking_cron.ops.serve import ServeError, serve

    wire(prefect=True)
    try:
        serve(cron, name)
    except ServeError as error:
        errors.print(f"[red]cannot serve[/]: {error}", soft_wrap=True)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        pass
    console.print("serve stopped")


@app.command("deploy")
def deploy_command(
    alert_block: Optional[str] = typer.Option(
        None, help="notification block for alerts, TYPE-SLUG/NAME (e.g. slack-webhook/ops); "
                   "default: a webhook block from BOOKING_CRON_ALERT_WEBHOOK_URL"),
    alert_window: str = typer.Option("30m", help="time without a completed tick before the overdue alert: 30m, 1h"),
    shard_count: int = typer.Option(1, "--shards", min=1, max=64,
                                    help="tick as N shard runs, each its own deployment, spread over the pool's "
                                         "workers (changing N replaces the old shards' deployments and alerts)"),
) -> None:
    """Set up the Prefect server: work pool, blocks, the tick's deployments (one per shard) and the
    backfill's, automations (idempotent)."""
    from booking_cron.ops.setup import SetupError, deploy
    from booking_cron.domain.slots import parse_every

    try:
        window = parse_every(alert_window)
    except ValueError:
        raise typer.BadParameter(f"--alert-window must look like 30m, 1h or 90s, got {alert_window!r}")
    api = prefect_api.api()
    wire(prefect=True, db=False)
    try:
        worker_command = deploy(alert_block=alert_block, alert_window=window, shard_count=shard_count,
                                echo=lambda line: console.print(line, soft_wrap=True, highlight=False))
    except SetupError as error:
        errors.print(f"[red]deploy failed[/]: {error}", soft_wrap=True)
        raise typer.Exit(1)
    if api.origin != "PREFECT_API_URL":  # the worker must talk to the same (local) server
        worker_command = f"PREFECT_API_URL={api.url} {worker_command}"
    where = f"start workers (up to {shard_count}, one shard run each at a time) with" if shard_count > 1 else \
        "start a worker with"
    console.print(f"{where}:\n  {worker_command}", soft_wrap=True, highlight=False)


@blocks_app.command("register")
def blocks_register() -> None:
    """Save DATABASE_URL and TWILIO_* from the environment as Prefect blocks."""
    from blocks import register_blocks_from_environment

    wire(prefect=True, db=False)
    saved = register_blocks_from_environment()
    console.print(f"saved block(s): {', '.join(saved)}" if saved else
                  "nothing to save: set DATABASE_URL and/or TWILIO_ACCOUNT_SID + TWILIO_AUTH_TOKEN")


@app.command("results")
def results_command(
    run: Optional[str] = typer.Option(None, "--run", help="flow run id"),
    booking: Optional[str] = typer.Option(None, "--booking", help="booking id"),
    as_json: bool = typer.Option(False, "--json"),
    as_csv: bool = typer.Option(False, "--csv"),
    wide: bool = typer.Option(False, "--wide", help="every column, ids included (wider than a terminal)"),
) -> None:
    """Per-booking results from the database, failures first."""
    from booking_cron.reporting.report import print_results, results_frame

    wire(machine=as_json or as_csv)
    with database.connection() as conn:
        # a run's results failures first; one booking's history (or an export) in the order it happened
        failures_first = booking is None and not (as_json or as_csv)
        frame = results_frame(conn, run_id=run, booking_id=booking, failures_first=failures_first)
    if as_json:
        print(frame.to_json(orient="records", date_format="iso", date_unit="s"))
    elif as_csv:
        print(frame.to_csv(index=False), end="")
    elif frame.empty:
        console.print("no results")
    else:
        print_results(console, frame, wide)


@app.command("audit")
def audit_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """Check the invariants; exit 1 listing each violation."""
    from booking_cron.ops.audit import CHECKS, audit, notices

    wire(machine=as_json)
    with database.connection() as conn:
        violations, noticed = audit(conn), notices(conn)
    if as_json:
        print(json.dumps({"ok": not violations, "checks": [name for name, _ in CHECKS],
                          "violations": [v.as_dict() for v in violations],
                          "notices": [n.as_dict() for n in noticed]}))
    else:
        for v in violations:
            console.print(Text.assemble(("VIOLATION", "red"), " ",
                                        terminal_text(f"{v.invariant}: {v.subject}: {v.detail}")))
        for n in noticed:  # the app's data, not booking-cron's doing: never fails the audit
            console.print(Text.assemble(("NOTICE", "yellow"), " ",
                                        terminal_text(f"{n.invariant}: {n.subject}: {n.detail}")))
        if not violations:
            console.print(f"audit: all {len(CHECKS)} invariants hold"
                          + (f" ({len(noticed)} notice(s) about the app's own data)" if noticed else ""))
    raise typer.Exit(1 if violations else 0)


@app.command("doctor")
def doctor_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """Hazards of running beside the app (open doors, the app's jobs still on, ledger gaps); exit 1 if any."""
    from booking_cron.ops.doctor import diagnose

    wire(machine=as_json)
    with database.connection() as conn:
        hazards = diagnose(conn)
    if as_json:
        print(json.dumps({"ok": not hazards, "hazards": [h.as_dict() for h in hazards]}))
    elif hazards:
        for h in hazards:
            console.print(Text.assemble(("HAZARD", "red"), " ", terminal_text(f"{h.hazard}: {h.subject}: {h.detail}"),
                                        "\n  fix: ", terminal_text(h.fix)))
    else:
        console.print("doctor: no hazards found")
    raise typer.Exit(1 if hazards else 0)


senders_app = typer.Typer(no_args_is_help=True,
                          help="Which org may send from which Twilio number or messaging service.")
app.add_typer(senders_app, name="senders")
PHONE_OPTION = typer.Option(None, "--phone", help="a Twilio number, E.164 (+61280000001)")
SERVICE_OPTION = typer.Option(None, "--messaging-service", help="a Twilio messaging service sid (MG...)")


def _senders_say(line: str, to: Console = console) -> None:
    to.print(_plain(line), markup=False, highlight=False, soft_wrap=True)  # org names are anyone's text


@senders_app.command("list")
def senders_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every assignment, then the orgs that text from a sender not assigned to them (their texts wait)."""
    from booking_cron.sms import senders

    url = wire(say=False).url  # its first line names the database
    with database.connection(url) as conn:
        assigned, waiting = senders.assignments(conn), senders.unassigned_claims(conn)
    if as_json:
        print(json.dumps({"database": database.safe_url(url), "assigned": [a.as_dict() for a in assigned],
                          "not_assigned": [c.as_dict() for c in waiting]}))
        return
    _senders_say(f"senders on {database.safe_url(url)}: {len(assigned)} assigned, "
                 f"{len(waiting)} org(s) texting from a sender not assigned to them")
    for a in assigned:
        _senders_say(f"  {a.sender}  org {a.org_id} ({a.org_name})  since {a.assigned_at:%Y-%m-%d %H:%M}, "
                     f"{a.assigned_by}")
    for c in waiting:
        holder = f"assigned to org {c.assigned_to}" if c.assigned_to else "assigned to no org"
        _senders_say(f"  NOT ASSIGNED {senders.shown(c.kind, c.sender)}  named by org {c.org_id} ({c.org_name}), "
                     f"{holder}; {c.claimed_by} org(s) that text name it: their texts wait")


def _sender_command(phone: Optional[str], service: Optional[str]) -> tuple[str, str, str]:
    """The database (its first line named) and the sender that `senders assign|unassign` act on."""
    from booking_cron.sms import senders

    url = wire(say=False).url  # its first line names the database
    try:
        kind, sender = senders.parse_sender(phone, service)
    except senders.SenderError as error:
        raise typer.BadParameter(str(error))
    _senders_say(f"senders on {database.safe_url(url)}")
    return url, kind, sender


@senders_app.command("assign")
def senders_assign(org: str = typer.Option(..., "--org", help="the org's id"),
                   phone: Optional[str] = PHONE_OPTION, service: Optional[str] = SERVICE_OPTION) -> None:
    """Let the org send from this sender and receive the replies to it (one org per sender)."""
    from booking_cron.sms import senders

    url, kind, sender = _sender_command(phone, service)
    with database.connection(url) as conn:
        try:
            done = senders.assign(conn, org, kind, sender)
        except senders.SenderError as error:
            _senders_say(f"booking-cron: not assigned: {error}", errors)
            raise typer.Exit(1)
    _senders_say(f"{sender} {'is now' if done == 'assigned' else 'was already'} assigned to org {org}: "
                 "its texts from it go out at the next tick")


@senders_app.command("unassign")
def senders_unassign(phone: Optional[str] = PHONE_OPTION, service: Optional[str] = SERVICE_OPTION) -> None:
    """Take the sender from its org: texts from it wait, replies to it reach no org."""
    from booking_cron.sms import senders

    url, kind, sender = _sender_command(phone, service)
    with database.connection(url) as conn:
        org = senders.unassign(conn, kind, sender)
    if org is None:
        _senders_say(f"booking-cron: {sender} was not assigned to any org", errors)
        raise typer.Exit(1)
    _senders_say(f"{sender} is no longer assigned to org {org}")


@app.command("demo")
def demo_command() -> None:
    """Everything on embedded defaults: a fresh demo database, seed, two ticks, audit."""
    from booking_cron.ops.demo import run_demo

    wire(prefect=True, db=False)  # the demo's database is its own, on the embedded server
    raise typer.Exit(run_demo(console))


@app.command("sandbox")
def sandbox_command(
    port: int = typer.Option(8765, help="port to listen on (0: any free port)"),
    latency: float = typer.Option(0.0, help="seconds added to every request"),
    rate: Optional[float] = typer.Option(None, help="messages per second it accepts (429 beyond)"),
    fault_rate: float = typer.Option(0.0, help="share of sends that hit a random fault"),
) -> None:
    """Run the local Twilio-compatible sandbox; point TWILIO_API_URL at it."""
    from booking_cron.sandbox import serve_forever

    serve_forever(port=port, latency=latency, rate_limit=rate, fault_rate=fault_rate)


@app.command("webhooks")
def webhooks_command(
    host: str = typer.Option("127.0.0.1", help="address to bind (the TLS proxy in front forwards to it)"),
    port: int = typer.Option(8080, help="port to listen on"),
) -> None:
    """Serve Twilio's status callbacks and replies under BOOKING_CRON_PUBLIC_URL (Ctrl-C stops)."""
    from booking_cron.webhooks.app import WebhookSettings, serve

    if not (config.twilio_account_sid() and config.twilio_auth_token()) and \
            prefect_api.api(start_local=False) is not None:
        from blocks import load_blocks_into_environment

        load_blocks_into_environment()  # the one rule: the environment's Twilio settings, else the saved block
    public_url, token = config.public_url(), config.twilio_auth_token()
    if not public_url or not token:
        errors.print("booking-cron webhooks needs BOOKING_CRON_PUBLIC_URL (the URL Twilio calls, which its "
                     "signatures cover) and TWILIO_AUTH_TOKEN (to check them)")
        raise typer.Exit(2)
    wire()  # fail now, not at the first callback, when there is no database
    console.print(f"webhooks for {public_url}/twilio/status and /twilio/inbound on http://{host}:{port}")
    account_sid = config.twilio_account_sid()  # requests must name it
    serve(WebhookSettings(public_url, token, account_sid=account_sid), host, port)


prefect_app = typer.Typer(no_args_is_help=True,
                          help="booking-cron's local Prefect server (used when PREFECT_API_URL is unset).")
app.add_typer(prefect_app, name="prefect")


def _explicit_note() -> None:
    if url := prefect_api.explicit_api_url():
        console.print(f"(PREFECT_API_URL is set: commands in this shell use {url}, not the local server)",
                      highlight=False, soft_wrap=True)


@prefect_app.command("status")
def prefect_status() -> None:
    """Whether the local Prefect server runs, its API and UI; exit 1 if it does not run."""
    server, folder = prefect_api.running(), prefect_api.local_folder()
    if server:
        console.print(f"local Prefect server: running (pid {server.pid}), API {server.api_url}, UI {server.ui_url}, "
                      f"state in {folder}", highlight=False, soft_wrap=True)
    else:
        console.print(f"local Prefect server: not running (state in {folder}); any command that needs Prefect "
                      "starts it, or: booking-cron prefect start", highlight=False, soft_wrap=True)
    _explicit_note()
    raise typer.Exit(0 if server else 1)


@prefect_app.command("start")
def prefect_start() -> None:
    """Start the local Prefect server in the background (kept running until `prefect stop`)."""
    server, started = prefect_api.start()
    console.print(f"local Prefect server: {'started' if started else 'already running'} (pid {server.pid}), "
                  f"API {server.api_url}, UI {server.ui_url}", highlight=False, soft_wrap=True)
    _explicit_note()


@prefect_app.command("stop")
def prefect_stop() -> None:
    """Stop the local Prefect server (its state stays: the next start finds the same runs and blocks)."""
    server = prefect_api.stop()
    console.print(f"local Prefect server: stopped (pid {server.pid}, port {server.port})" if server else
                  "local Prefect server: was not running", highlight=False, soft_wrap=True)
