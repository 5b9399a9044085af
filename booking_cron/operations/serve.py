"""`booking-cron serve`: the tick on a cron schedule from this process, without a work pool.

Its deployment is named apart from the worker's (`booking-cron-tick`): serving under that name
would take the deployed tick away from its work pool. Ctrl-C (or SIGTERM) stops it; the schedule
stays active so the next `serve` picks up where this one left off.
"""

from __future__ import annotations

from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.exceptions import ObjectNotFound
from prefect.schedules import Cron

SERVE_NAME = "booking-cron-serve"
SCHEDULE_SLUG = "serve"


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
    tick.serve(name=name, schedules=[Cron(cron, timezone="UTC", slug=SCHEDULE_SLUG)], pause_on_shutdown=False,
               limit=1, global_limit=ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW))
