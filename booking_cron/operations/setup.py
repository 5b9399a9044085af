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
from datetime import timedelta
from pathlib import Path
from typing import Callable

import yaml
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.events.schemas.automations import AutomationCore
from prefect.exceptions import ObjectNotFound
from prefect.settings import PREFECT_API_URL

from blocks import register_blocks_from_environment

ROOT = Path(__file__).resolve().parents[2]
PREFECT_FILE = ROOT / "deployments" / "prefect.yaml"
AUTOMATIONS_FILE = ROOT / "deployments" / "automations.yaml"
ALERT_BLOCK = "booking-cron-alerts"
ALERT_WEBHOOK_ENV = "BOOKING_CRON_ALERT_WEBHOOK_URL"
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


def deploy_flows() -> None:
    """`prefect deploy --all` over deployments/prefect.yaml, from the project root (the README's
    Prefect-native step, so both ways deploy the same thing)."""
    env = {**os.environ, "BOOKING_CRON_HOME": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file",
                           str(PREFECT_FILE.relative_to(ROOT)), "--all"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SetupError(f"prefect deploy failed:\n{done.stdout}{done.stderr}")


def describe_deployment(client: SyncPrefectClient, name: str) -> str:
    found = client.read_deployments(deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[name])))
    if not found:
        raise SetupError(f"deployment {name} is missing after prefect deploy")
    crons = [f"{s.schedule.cron} {s.schedule.timezone}" for s in found[0].schedules if s.active]
    return (f"deployment {name} ({found[0].id}): "
            + (f"schedule {', '.join(crons)}" if crons else "no schedule (run it from the UI)"))


def alert_block_id(client: SyncPrefectClient, alert_block: str | None) -> tuple[str | None, str]:
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
    if url := os.environ.get(ALERT_WEBHOOK_ENV):
        block_id = CustomWebhookNotificationBlock(name=ALERT_BLOCK, url=url, json_data=ALERT_PAYLOAD).save(
            ALERT_BLOCK, overwrite=True)
        return block_id, f"alerts go to block custom-webhook/{ALERT_BLOCK}: saved from {ALERT_WEBHOOK_ENV}"
    return None, (f"alerts: no destination (set {ALERT_WEBHOOK_ENV} or --alert-block); the automations "
                  "still fire and show in the UI (Automations, Events)")


def automation_specs(block_id, alert_window: timedelta | None) -> list[AutomationCore]:
    """automations.yaml with the server's ids filled in."""
    specs = yaml.safe_load(AUTOMATIONS_FILE.read_text())["automations"]
    automations = []
    for spec in specs:
        trigger = spec["trigger"]
        if alert_window is not None and trigger.get("posture") == "Proactive":
            trigger["within"] = alert_window.total_seconds()
        actions = [{**a, "block_document_id": str(block_id)} for a in spec["actions"]
                   if a["type"] != "send-notification" or block_id]
        automations.append(AutomationCore.model_validate({**spec, "actions": actions or [{"type": "do-nothing"}]}))
    return automations


def apply_automations(client: SyncPrefectClient, automations: list[AutomationCore]) -> list[str]:
    """Create or update each automation by name; extra copies of the same name are deleted."""
    done = []
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
           echo: Callable[[str], None] = print) -> str:
    """Work pool, blocks, both deployments, automations; `echo` hears one line per object as it
    is done. Returns the command that starts a worker."""
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
        deploy_flows()
        for deployment in spec["deployments"]:
            echo(describe_deployment(client, deployment["name"]))
        for line in apply_automations(client, automation_specs(block_id, alert_window)):
            echo(line)
    return f"BOOKING_CRON_HOME={ROOT} prefect worker start --pool {pool}"
