"""Shard planning for `booking-cron deploy --shards N`: which tick deployments and overdue alerts a
server should hold, and which of the ones it holds are stale. Pure: no Prefect, no I/O.

One shard (the default) is the deployment `booking-cron-tick` of deployments/prefect.yaml, ticking
every org. N shards are N deployments `booking-cron-tick-<i>-of-<N>`, each with the parameter
`shard: "i/N"`, its own one-at-a-time limit and its own overdue alert; the orgs of shard i of N
are those whose id hashes to i (booking_cron.domain.due.Shard), so N shards cover every org exactly once.
Changing N replaces every tick deployment of the old count: the stale ones are deleted first
(Prefect deletes their scheduled runs with them), then the new ones are made, whose first runs
are at the schedule's next time. So no slot is ticked by two shard counts, and a slot between the
two (at most one, while deploy runs) is done by the next tick, which does everything due by then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from booking_cron.domain.due import Shard

TICK_DEPLOYMENT = "booking-cron-tick"
OVERDUE_AUTOMATION = "booking-cron tick overdue"
MAX_SHARDS = 64
_SHARD_NAME = re.compile(rf"^{re.escape(TICK_DEPLOYMENT)}-(\d+)-of-(\d+)$")


@dataclass(frozen=True)
class ShardDeployment:
    name: str  # the deployment's name (flow `tick`)
    shard: str | None  # its `shard` parameter; None ticks every org
    overdue_alert: str  # the name of the automation that says when it stops completing

    def parameters(self) -> dict:
        return {"shard": self.shard} if self.shard else {}


def plan(count: int) -> list[ShardDeployment]:
    """The tick deployments for `count` shards, shard 1 first."""
    if not 1 <= count <= MAX_SHARDS:
        raise ValueError(f"--shards must be between 1 and {MAX_SHARDS}, got {count}")
    if count == 1:
        return [ShardDeployment(TICK_DEPLOYMENT, None, OVERDUE_AUTOMATION)]
    return [ShardDeployment(f"{TICK_DEPLOYMENT}-{i}-of-{count}", str(Shard(i - 1, count)),
                            f"{OVERDUE_AUTOMATION} (shard {i}/{count})") for i in range(1, count + 1)]


def is_tick_deployment(name: str) -> bool:
    """A name `deploy` gives a tick deployment, for any shard count."""
    return name == TICK_DEPLOYMENT or _SHARD_NAME.match(name) is not None


def is_overdue_alert(name: str) -> bool:
    return name == OVERDUE_AUTOMATION or name.startswith(f"{OVERDUE_AUTOMATION} (shard ")


def stale_deployments(existing: Iterable[str], planned: list[ShardDeployment]) -> list[str]:
    """Tick deployments on the server that the plan does not keep (other names are left alone:
    `booking-cron serve`'s, the backfill's, an operator's own)."""
    keep = {p.name for p in planned}
    return sorted(n for n in existing if is_tick_deployment(n) and n not in keep)


def stale_alerts(existing: Iterable[str], planned: list[ShardDeployment]) -> list[str]:
    keep = {p.overdue_alert for p in planned}
    return sorted(n for n in existing if is_overdue_alert(n) and n not in keep)


def shard_spec(tick_spec: dict, deployment: ShardDeployment) -> dict:
    """prefect.yaml's tick deployment as the deployment for one shard: its name, its `shard`
    parameter, the same entrypoint, pool, schedule and one-at-a-time limit."""
    spec = {**tick_spec, "name": deployment.name, "parameters": {**(tick_spec.get("parameters") or {}),
                                                                  **deployment.parameters()}}
    if deployment.shard:
        spec["description"] = f"{tick_spec.get('description', '')} Shard {deployment.shard}: its orgs only.".strip()
        spec["tags"] = [*tick_spec.get("tags", []), f"shard-{deployment.shard.replace('/', '-of-')}"]
    return spec


def project_with_shards(project: dict, planned: list[ShardDeployment]) -> dict:
    """deployments/prefect.yaml's content with its tick deployment replaced by the plan's."""
    tick = next(d for d in project["deployments"] if d["name"] == TICK_DEPLOYMENT)
    others = [d for d in project["deployments"] if d["name"] != TICK_DEPLOYMENT]
    return {**project, "deployments": [shard_spec(tick, p) for p in planned] + others}
