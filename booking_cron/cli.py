"""`booking-cron`: the command line of the contract (db upgrade, seed, run, results, audit, doctor, demo, deploy, serve, webhooks)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Optional

import typer
from rich.console import Console

from booking_cron import database, schema

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Schema commands.")
app.add_typer(db_app, name="db")
blocks_app = typer.Typer(no_args_is_help=True, help="Prefect blocks for the database and Twilio.")
app.add_typer(blocks_app, name="blocks")
console = Console(stderr=False)
errors = Console(stderr=True)


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
    applied = schema.upgrade(database.resolve_url())
    console.print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))


@app.command("seed")
def seed_command(
    orgs: int = typer.Option(3, help="number of orgs"),
    clients: int = typer.Option(40, help="number of clients (all orgs)"),
    bookings: int = typer.Option(200, help="number of bookings (all orgs)"),
    seed: int = typer.Option(7, help="random seed"),
    at: Optional[str] = typer.Option(None, help="the time T the data is centred on (ISO 8601, default now)"),
) -> None:
    """Realistic synthetic data around T (applies pending migrations first)."""
    from booking_cron.seed import seed as load_seed

    url = database.resolve_url()
    schema.upgrade(url)
    with database.connection(url) as conn:
        counts = load_seed(conn, orgs=orgs, clients=clients, bookings=bookings, seed=seed,
                           at=parse_time(at) or datetime.now(timezone.utc))
    console.print(f"seeded {counts.orgs} orgs, {counts.clients} clients, {counts.packs} packs, {counts.bookings} bookings")


SUMMARY_ROWS = 12


def run_tick(at: Optional[datetime], dry_run: bool, as_json: bool, trigger: str = "run",
             shard: Optional[str] = None) -> int:
    from flows.tick import tick
    from booking_cron.report import print_summary, results_frame

    state = tick(tick_at=at, dry_run=dry_run, trigger=trigger, shard=shard, return_state=True)
    if not state.is_completed():
        message = state.message or state.name
        if as_json:
            print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "state": state.name, "error": message}))
        errors.print(f"[red]tick failed[/]: {message}")
        return 1
    summary = state.result()
    if as_json:
        print(json.dumps(summary))
        return 0
    with database.connection() as conn:
        # a dry run recorded nothing: its table is empty
        results = results_frame(conn, run_id=summary["flow_run_id"], limit=SUMMARY_ROWS, failures_first=True)
    print_summary(console, summary, results)
    return 0


@app.command("run")
def run_command(
    at: Optional[str] = typer.Option(None, help="tick time T (ISO 8601 with offset; default now)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="report what the tick would do; write nothing"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object"),
    shard: Optional[str] = typer.Option(None, help="only the orgs of shard i of N, e.g. 2/4"),
) -> None:
    """One tick at T as a Prefect flow run."""
    from booking_cron.due import Shard

    try:
        Shard.parse(shard)
    except ValueError as error:
        raise typer.BadParameter(str(error))
    raise typer.Exit(run_tick(parse_time(at), dry_run, as_json, shard=shard))


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
    from booking_cron.backfill_report import Totals
    from booking_cron.due import Shard
    from booking_cron.slots import parse_every
    from flows.backfill import backfill

    first, last = parse_time(start), parse_time(end)
    try:
        parse_every(every)
        Shard.parse(shard)
        if last <= first:
            raise ValueError("--end must be after --start")
    except ValueError as error:
        raise typer.BadParameter(str(error))
    state = backfill(start=first, end=last, every=every, dry_run=dry_run, force=force, shard=shard,
                     return_state=True)
    totals = state.result(raise_on_failure=False)
    if not isinstance(totals, dict):
        errors.print(f"[red]backfill failed[/]: {state.message}")
        raise typer.Exit(1)
    if as_json:
        print(json.dumps({"flow_run_id": str(state.state_details.flow_run_id), "state": state.name, **totals}))
    else:
        for line in Totals(**totals).lines():
            console.print(line, highlight=False)
    raise typer.Exit(0 if state.is_completed() else 1)


@app.command("serve")
def serve_command(
    cron: str = typer.Option("*/10 * * * *", help="tick schedule (UTC)"),
    name: str = typer.Option("booking-cron-serve", help="deployment name (not a work pool's deployment)"),
) -> None:
    """Run the tick on a cron schedule from this machine, without a work pool (Ctrl-C stops)."""
    from booking_cron.operations.serve import ServeError, serve

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
) -> None:
    """Set up the Prefect server: work pool, blocks, both deployments, automations (idempotent)."""
    from booking_cron.operations.setup import SetupError, deploy
    from booking_cron.slots import parse_every

    try:
        window = parse_every(alert_window)
    except ValueError:
        raise typer.BadParameter(f"--alert-window must look like 30m, 1h or 90s, got {alert_window!r}")
    try:
        worker_command = deploy(alert_block=alert_block, alert_window=window,
                                echo=lambda line: console.print(line, soft_wrap=True, highlight=False))
    except SetupError as error:
        errors.print(f"[red]deploy failed[/]: {error}", soft_wrap=True)
        raise typer.Exit(1)
    console.print(f"start a worker with:\n  {worker_command}", soft_wrap=True, highlight=False)


@blocks_app.command("register")
def blocks_register() -> None:
    """Save DATABASE_URL and TWILIO_* from the environment as Prefect blocks."""
    from blocks import register_blocks_from_environment

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
    from booking_cron.report import print_results, results_frame

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
    from booking_cron.audit import CHECKS, audit

    with database.connection() as conn:
        violations = audit(conn)
    if as_json:
        print(json.dumps({"ok": not violations, "checks": [name for name, _ in CHECKS],
                          "violations": [v.as_dict() for v in violations]}))
    elif violations:
        for v in violations:
            console.print(f"[red]VIOLATION[/] {v.invariant}: {v.subject}: {v.detail}")
    else:
        console.print(f"audit: all {len(CHECKS)} invariants hold")
    raise typer.Exit(1 if violations else 0)


@app.command("doctor")
def doctor_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """Hazards of running beside the app (open doors, the app's jobs still on, ledger gaps); exit 1 if any."""
    from booking_cron.doctor import diagnose

    with database.connection() as conn:
        hazards = diagnose(conn)
    if as_json:
        print(json.dumps({"ok": not hazards, "hazards": [h.as_dict() for h in hazards]}))
    elif hazards:
        for h in hazards:
            console.print(f"[red]HAZARD[/] {h.hazard}: {h.subject}: {h.detail}\n  fix: {h.fix}")
    else:
        console.print("doctor: no hazards found")
    raise typer.Exit(1 if hazards else 0)


@app.command("demo")
def demo_command() -> None:
    """Everything on embedded defaults: a fresh demo database, seed, two ticks, audit."""
    from booking_cron.demo import run_demo

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
    import os

    from booking_cron import config
    from booking_cron.webhooks.app import WebhookSettings, serve

    public_url, token = config.public_url(), os.environ.get("TWILIO_AUTH_TOKEN")
    if not public_url or not token:
        errors.print("booking-cron webhooks needs BOOKING_CRON_PUBLIC_URL (the URL Twilio calls, which its "
                     "signatures cover) and TWILIO_AUTH_TOKEN (to check them)")
        raise typer.Exit(2)
    database.resolve_url()  # fail now, not at the first callback, when there is no database
    console.print(f"webhooks for {public_url}/twilio/status and /twilio/inbound on http://{host}:{port}")
    serve(WebhookSettings(public_url, token), host, port)
