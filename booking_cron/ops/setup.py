"""`booking-cron deploy`: everything a Prefect server needs to run the tick on its schedule.

Each step is idempotent (objects are looked up by name and updated in place), so running it
again after changing prefect.yaml, automations.yaml or the environment brings the server in
line without duplicates. The deployments themselves are Prefect's own `prefect deploy` over
deployments/prefect.yaml, so the README's Prefect-native steps and this command never differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Callable, cast
from uuid import UUID

import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.schedules import CronSchedule
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName, FlowFilter, FlowFilterName
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from blocks import register_blocks_from_environment
from booking_cron import config
from booking_cron.ops.schedules import remove_replaced, schedule_slug, with_slugs
from booking_cron.ops import shards

ROOT = Path(__file__).resolve().parents[2]
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
AUTOMATIONS_FILE = ROOT / "deployments" / "automations.yaml"
ALERT_BLOCK = "booking-cron-alerts"
# The custom-webhook payload: Slack-style `text` plus the parts, for any JSON endpoint.
ALERT_PAYLOAD = {"text": "{{subject}}\n{{body}}", "subject": "{{subject}}", "body": "{{body}}"}


class SetupError(RuntimeError):
    """A step that cannot go on; the message says what to fix."""


def project_spec() -> dict:
    return yaml.safe_load(PREFECT_FILE.read_text())


def ensure_work_pool(client: SyncPrefectClient, name: str) -> str:
    try:
        pool = client.read_work_pool(name)
        return f"work pool {name} ({pool.type}): exists"
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        return f"work pool {name} (process): created"


def deploy_flows(spec: dict) -> None:
    """`prefect deploy --all` over deployments/prefect.yaml, from the project root (the README's
    Prefect-native step, so both ways deploy the same thing), each schedule slugged after itself."""
    env = {**os.environ, "BOOKING_CRON_HOME": str(ROOT)}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="prefect-") as slugged:
        yaml.safe_dump(with_slugs(spec), slugged, sort_keys=False)
        slugged.flush()
        done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file",
                               slugged.name, "--all"], cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SetupError(f"prefect deploy failed:\n{done.stdout}{done.stderr}")


def remove_replaced_schedules(client: SyncPrefectClient, spec: dict) -> list[str]:
    """Each deployment that prefect.yaml gives schedules keeps exactly those: the schedule a changed
    cron replaced is removed (a deployment with `schedules: []` keeps what the UI gave it)."""
    removed = []
    for deployment in spec["deployments"]:
        if keep := [schedule_slug(s) for s in deployment.get("schedules") or []]:
            removed += remove_replaced(client, deployment["name"], keep)
    return removed


def remove_stale_ticks(client: SyncPrefectClient, planned: list[shards.ShardDeployment]) -> list[str]:
    """Delete the tick deployments of another shard count (with their scheduled runs: Prefect
    deletes those with the deployment) before the plan's are made, so no org is ticked by both."""
    existing = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=["tick"])))
    by_name = {d.name: d for d in existing}
    done = []
    for name in shards.stale_deployments(by_name, planned):
        client.delete_deployment(by_name[name].id)
        done.append(f"deployment {name}: deleted (another shard count)")
    return done


def describe_deployment(client: SyncPrefectClient, name: str) -> str:
    found = client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])))
    if not found:
        raise SetupError(f"deployment {name} is missing after prefect deploy")
    crons = [(f"{s.schedule.cron} {s.schedule.timezone}" if isinstance(s.schedule, CronSchedule) else str(s.schedule))
             + ("" if s.active else f" (paused: schedule {s.id})") for s in found[0].schedules]
    return (f"deployment {name} ({found[0].id}): "
            + (f"schedule {', '.join(crons)}" if crons else "no schedule (run it from the UI)"))


def alert_block_id(client: SyncPrefectClient, alert_block: str | None) -> tuple[UUID | None, str]:
    """The notification block's id: the one named by --alert-block (`type-slug/name`, made in the
    UI: Slack, email, PagerDuty...), else a custom-webhook block from BOOKING_CRON_ALERT_WEBHOOK_URL."""
    if alert_block:
        slug, _, name = alert_block.partition("/")
        try:
            document = client.read_block_document_by_name(name, slug)
        except ObjectNotFound:
            raise SetupError(f"no block {alert_block!r}: create it in the UI (Blocks) or with "
                             f"`prefect block create {slug}`, then name it as TYPE-SLUG/NAME")
        return document.id, f"alerts go to block {alert_block}: exists"
    if url := config.alert_webhook_url():
        # called from sync code: Prefect's async_dispatch returns the id (typed as the id or a coroutine)
        block_id = cast(UUID, CustomWebhookNotificationBlock(name=ALERT_BLOCK, url=url, json_data=ALERT_PAYLOAD).save(
            ALERT_BLOCK, overwrite=True))
        return block_id, f"alerts go to block custom-webhook/{ALERT_BLOCK}: saved from {config.ALERT_WEBHOOK_ENV}"
    return None, (f"alerts: no destination (set {config.ALERT_WEBHOOK_ENV} or --alert-block); the automations "
                  "still fire and show in the UI (Automations, Events)")


def duration_words(window: timedelta) -> str:
    """`2 minutes`, `1 hour`, `1 hour 30 minutes`, `90 seconds`: the alert window as people say it."""
    seconds, parts = int(window.total_seconds()), []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    return " ".join(parts) or "0 seconds"


def _reworded(value, old: str, new: str):
    """`value` (the spec's strings, lists and mappings) with the words `old` replaced by `new`."""
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, list):
        return [_reworded(v, old, new) for v in value]
    if isinstance(value, dict):
        return {k: _reworded(v, old, new) for k, v in value.items()}
    return value


def overdue_window(alert_window: timedelta | None) -> timedelta:
    """The overdue alert's window: --alert-window, else the one automations.yaml sets."""
    if alert_window is not None:
        return alert_window
    specs = yaml.safe_load(AUTOMATIONS_FILE.read_text())["automations"]
    return next(timedelta(seconds=s["trigger"]["within"]) for s in specs if s["name"] == shards.OVERDUE_AUTOMATION)


def per_shard(specs: list[dict], planned: list[shards.ShardDeployment]) -> list[dict]:
    """The overdue alert once per tick deployment of the plan, each watching its own deployment."""
    out = []
    for spec in specs:
        if spec["name"] != shards.OVERDUE_AUTOMATION:
            out.append(spec)
            continue
        for deployment in planned:
            out.append({**_reworded(spec, shards.TICK_DEPLOYMENT, deployment.name), "name": deployment.overdue_alert})
    return out


def automation_specs(block_id, alert_window: timedelta | None,
                     planned: list[shards.ShardDeployment] | None = None) -> list[AutomationCore]:
    """automations.yaml with the server's ids filled in, the overdue alert once per tick deployment
    of the plan (default: one, unsharded), and its window (its `within`, and the same window in
    words in its description, subject and body) set to `alert_window`."""
    specs = per_shard(yaml.safe_load(AUTOMATIONS_FILE.read_text())["automations"], planned or shards.plan(1))
    automations = []
    for spec in specs:
        trigger = spec["trigger"]
        if alert_window is not None and shards.is_overdue_alert(spec["name"]):
            written = duration_words(timedelta(seconds=trigger["within"]))
            spec = _reworded(spec, written, duration_words(alert_window))
            trigger = spec["trigger"]
            trigger["within"] = alert_window.total_seconds()
        actions = [{**a, "block_document_id": str(block_id)} for a in spec["actions"]
                   if a["type"] != "send-notification" or block_id]
        automations.append(AutomationCore.model_validate({**spec, "actions": actions or [{"type": "do-nothing"}]}))
    return automations


def apply_automations(client: SyncPrefectClient, automations: list[AutomationCore],
                      planned: list[shards.ShardDeployment] | None = None) -> list[str]:
    """Create or update each automation by name; extra copies of the same name, and the overdue
    alerts of another shard count, are deleted."""
    done = []
    for stale in shards.stale_alerts([a.name for a in client.read_automations()], planned or shards.plan(1)):
        for old in client.read_automations_by_name(stale):
            client.delete_automation(old.id)
        done.append(f"automation {stale!r}: deleted (another shard count)")
    for automation in automations:
        existing = client.read_automations_by_name(automation.name)
        if existing:
            client.update_automation(existing[0].id, automation)
            for duplicate in existing[1:]:
                client.delete_automation(duplicate.id)
            done.append(f"automation {automation.name!r} ({existing[0].id}): updated")
        else:
            created = client.create_automation(automation)
            done.append(f"automation {automation.name!r} ({created}): created")
    return done


def deploy(alert_block: str | None = None, alert_window: timedelta | None = None,
           echo: Callable[[str], None] = print, shard_count: int = 1) -> str:
    """Work pool, blocks, the tick's deployments (one per shard) and the backfill's, automations;
    `echo` hears one line per object as it is done. Returns the command that starts a worker."""
    try:
        planned = shards.plan(shard_count)
    except ValueError as error:
        raise SetupError(str(error))
    if not PREFECT_API_URL.value():
        raise SetupError("PREFECT_API_URL is not set: point it at your Prefect server "
                         "(e.g. http://127.0.0.1:4200/api) or log in to Prefect Cloud")
    spec = project_spec()
    pool = spec["definitions"]["work_pool"]["name"]
    with get_client(sync_client=True) as client:
        echo(ensure_work_pool(client, pool))
        saved = register_blocks_from_environment()
        echo(f"blocks saved from the environment: {', '.join(saved)}" if saved else
             "blocks: none saved (DATABASE_URL, TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN unset); runs read "
             "the worker's environment")
        block_id, line = alert_block_id(client, alert_block)
        echo(line)
        for line in remove_stale_ticks(client, planned):
            echo(line)
        project = shards.project_with_shards(spec, planned)
        deploy_flows(project)
        for line in remove_replaced_schedules(client, project):
            echo(line)
        for deployment in project["deployments"]:
            echo(describe_deployment(client, deployment["name"]))
        for line in apply_automations(client, automation_specs(block_id, alert_window, planned), planned):
            echo(line)
        echo(f"overdue alert: after {duration_words(overdue_window(alert_window))} without a completed tick"
             + (f" of any of the {shard_count} shards" if shard_count > 1 else "")
             + ("" if alert_window is not None else " (--alert-window sets it)"))
    # heartbeats every 30 s: the 'crashed without heartbeat' automation frees a dead run's slot
    command = f"PREFECT_FLOWS_HEARTBEAT_FREQUENCY=30 BOOKING_CRON_HOME={ROOT} prefect worker start --pool {pool}"
    if shard_count > 1:  # a worker takes one shard run at a time, so the shards spread over the workers
        command += " --limit 1"
    return command
