"""Schedules named after what they do, so the server holds exactly the schedules prefect.yaml (or
`serve --cron`) asks for.

A schedule's slug is its rhythm (`cron */10 * * * * UTC`): the UI's "Created By" of every run says
which schedule made it, a changed cron is a new schedule rather than an old name on a new rhythm,
and the schedule it replaced (any other slug on the deployment) is removed once the new one exists.
"""

from __future__ import annotations

import copy

from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

# The keys of a prefect.yaml schedule that say when it fires, in the order they are named.
_RHYTHMS = ("cron", "interval", "rrule")


def schedule_slug(schedule: dict) -> str:
    """'cron */10 * * * * UTC' for {cron: '*/10 * * * *', timezone: UTC}; likewise `interval 600 UTC`."""
    kind = next(k for k in _RHYTHMS if schedule.get(k) is not None)
    return f"{kind} {schedule[kind]} {schedule.get('timezone') or 'UTC'}"


def with_slugs(spec: dict) -> dict:
    """prefect.yaml's content with every deployment's schedules slugged by schedule_slug."""
    spec = copy.deepcopy(spec)
    for deployment in spec.get("deployments", []):
        deployment["schedules"] = [{**s, "slug": schedule_slug(s)} for s in deployment.get("schedules") or []]
    return spec


def remove_replaced(client: SyncPrefectClient, deployment_name: str, keep: list[str]) -> list[str]:
    """Delete the schedules of the deployment whose slug is not in `keep` (the ones a changed
    prefect.yaml or `serve --cron` replaced); one line per schedule removed."""
    named = DeploymentFilter(name=DeploymentFilterName(any_=[deployment_name]))
    found = client.read_deployments(deployment_filter=named)
    removed = []
    for deployment, schedule in ((d, s) for d in found for s in d.schedules):
        if schedule.slug not in keep:
            client.delete_deployment_schedule(deployment.id, schedule.id)
            removed.append(f"deployment {deployment.name}: removed the schedule it replaced "
                           f"({schedule.slug or 'unnamed'}, {schedule.id})")
    return removed
