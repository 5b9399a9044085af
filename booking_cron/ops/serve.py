"""`booking-cron serve`: the tick on a cron schedule from this process, without a work pool.

Its deployment is named apart from the worker's (`booking-cron-tick`): serving under that name
would take the deployed tick away from its work pool. Ctrl-C (or SIGTERM) stops it and pauses the
deployment, so no Late runs pile up with nothing to run them; the next `serve` resumes it.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron

from booking_cron.ops.schedules import remove_replaced, schedule_slug

SERVE_NAME = "booking-cron-serve"


class ServeError(RuntimeError):
    """Why serving cannot start; one line for the operator."""


def check_name_is_free(name: str) -> None:
    """Refuse a name that belongs to a deployment run by a work pool."""
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(f"tick/{name}")
        except ObjectNotFound:
            return
    if deployment.work_pool_name:
        raise ServeError(f"tick/{name} is deployed to the work pool {deployment.work_pool_name!r}; "
                         f"serve under another --name (default {SERVE_NAME})")


def serve(cron: str, name: str = SERVE_NAME) -> None:
    """Blocks until stopped. One tick at a time: a tick due while one runs is cancelled (the next
    one does its work), as the deployment's CANCEL_NEW limit does."""
    from flows.tick import tick

    check_name_is_free(name)
    slug = remove_other_schedules(name, cron)
    try:
        tick.serve(name=name, schedules=[Cron(cron, timezone="UTC", slug=slug)], pause_on_shutdown=True, limit=1,
                   global_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW))
    finally:
        pause(name)


def pause(name: str) -> None:
    """Pause the served deployment. Prefect's runner does so on shutdown only once it has started
    polling; a Ctrl-C while it starts would leave the schedule creating runs nobody takes."""
    with get_client(sync_client=True) as client:
        try:
            client.pause_deployment(client.read_deployment_by_name(f"tick/{name}").id)
        except ObjectNotFound:
            pass


def remove_other_schedules(name: str, cron: str) -> str:
    """The schedule's slug (`cron */10 * * * * UTC`); an earlier serve's schedule on another cron is
    removed first, so the deployment runs on this cron only. Served runs need this process, so
    nothing runs on the old schedule meanwhile."""
    slug = schedule_slug({"cron": cron, "timezone": "UTC"})
    with get_client(sync_client=True) as client:
        remove_replaced(client, name, [slug])
    return slug
