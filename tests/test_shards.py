"""Shard planning (booking_cron/ops/shards.py), pure: the deployments and overdue alerts
`booking-cron deploy --shards N` makes, and which ones a change of N removes. The end-to-end proof
on a real server, with workers, is tests/test_scale_out.py."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from booking_cron.domain.due import Shard
from booking_cron.storage.shard_sql import org_shard_sql
from booking_cron.ops import setup, shards


def test_one_shard_is_the_plain_tick_deployment():
    (only,) = shards.plan(1)
    assert (only.name, only.shard, only.overdue_alert) == ("booking-cron-tick", None, "booking-cron tick overdue")
    assert only.parameters() == {}


def test_n_shards_are_n_deployments_each_with_its_shard_and_its_alert():
    planned = shards.plan(4)
    assert [p.name for p in planned] == [f"booking-cron-tick-{i}-of-4" for i in range(1, 5)]
    assert [p.parameters() for p in planned] == [{"shard": f"{i}/4"} for i in range(1, 5)]
    assert [Shard.parse(p.shard) for p in planned] == [Shard(i, 4) for i in range(4)]
    assert len({p.overdue_alert for p in planned}) == 4


@pytest.mark.parametrize("count", [0, 65])
def test_a_shard_count_out_of_range_is_refused(count):
    with pytest.raises(ValueError, match="--shards must be between 1 and 64"):
        shards.plan(count)


@pytest.mark.parametrize("old, new", [(4, 2), (2, 1), (1, 4), (4, 4)])
def test_changing_the_count_removes_every_tick_deployment_and_alert_of_the_old_one(old, new):
    existing = [p.name for p in shards.plan(old)] + ["booking-cron-serve", "booking-cron-backfill", "my-own-tick"]
    planned = shards.plan(new)
    stale = shards.stale_deployments(existing, planned)
    kept = [name for name in existing if name not in stale]
    assert sorted(n for n in kept if shards.is_tick_deployment(n)) == sorted(
        {p.name for p in planned} & set(existing))
    assert {"booking-cron-serve", "booking-cron-backfill", "my-own-tick"} <= set(kept)
    alerts = [p.overdue_alert for p in shards.plan(old)] + ["booking-cron tick failed"]
    assert set(alerts) - set(shards.stale_alerts(alerts, planned)) == (
        {p.overdue_alert for p in planned} & set(alerts)) | {"booking-cron tick failed"}


def test_the_shard_deployments_are_prefect_yamls_tick_with_their_parameter():
    project = setup.project_spec()
    sharded = shards.project_with_shards(project, shards.plan(2))
    names = [d["name"] for d in sharded["deployments"]]
    assert names == ["booking-cron-tick-1-of-2", "booking-cron-tick-2-of-2", "booking-cron-backfill"]
    tick = next(d for d in project["deployments"] if d["name"] == "booking-cron-tick")
    for deployment, shard in zip(sharded["deployments"][:2], ("1/2", "2/2")):
        assert deployment["parameters"] == {"shard": shard}
        for key in ("entrypoint", "work_pool", "concurrency_limit", "schedules"):
            assert deployment[key] == tick[key]


def test_each_shard_has_an_overdue_alert_watching_its_own_deployment():
    planned = shards.plan(3)
    overdue = [a for a in setup.automation_specs(None, None, planned) if shards.is_overdue_alert(a.name)]
    assert [a.name for a in overdue] == [p.overdue_alert for p in planned]
    for automation, deployment in zip(overdue, planned):
        assert automation.trigger.model_dump(mode="json")["match_related"] == {
            "prefect.resource.role": "deployment", "prefect.resource.name": deployment.name}
    assert [a.name for a in setup.automation_specs(None, None, planned) if not shards.is_overdue_alert(a.name)] == [
        "booking-cron tick failed", "booking-cron tick crashed without heartbeat"]


def test_every_org_is_in_exactly_one_shard_of_any_count(database_url):
    orgs = [str(uuid.uuid4()) for _ in range(200)]
    with psycopg.connect(database_url) as conn:
        for count in (1, 2, 4):
            (per_org,) = conn.execute(f"select array_agg({org_shard_sql('o', '%(n)s')} order by o) "
                                      "from unnest(%(orgs)s::uuid[]) o", {"orgs": orgs, "n": count}).fetchone()
            assert len(per_org) == len(orgs) and set(per_org) <= set(range(count))
            if count > 1:
                assert len(set(per_org)) == count  # 200 orgs fill every shard
