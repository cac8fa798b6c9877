"""The `weekly_patches` schedule: Sunday 03:00 in the inventory's time zone, two runs of
`patch_nodes` for that week, one at a time (the infrastructure tag's queue limit of 1):

1. every node but the ones hosting Dagster, placed ON a Dagster node (it may land anywhere but
   the nodes it patches), and
2. the Dagster nodes, placed off them.

So no run ever drains or reboots the node it runs on, and Dagster's own node goes last. A week
is named by that Sunday's date in the zone, and it is the run keys' stem, so a re-delivered
tick never starts a second patch. Running by default where the cluster's Dagster owns the
schedules, stopped on the local profile. `node_health_readings` reads every Pi's health into
`node_health` hourly, owned the same way.
"""

from datetime import UTC

import dagster as dg

from platform_assets.inventory import Inventory
from platform_assets.inventory.models import iana_zone
from platform_assets.patching.assets import patch_nodes, patch_run_config
from platform_assets.releases.dagster import DAGSTER_NODE
from platform_assets.run_placement import run_tags

WEEKLY_CRON = "0 3 * * 0"  # Sunday 03:00


def dagster_nodes(inv: Inventory) -> list[str]:
    return [n.name for n in inv.nodes if all(n.labels.get(k) == v for k, v in DAGSTER_NODE.items())]


def weekly_runs(inv: Inventory, week: str) -> list[dg.RunRequest]:
    """The week's run requests, in the order they run."""
    hosts = dagster_nodes(inv)
    rest = [n.name for n in inv.nodes if n.name not in hosts]
    parts = (
        [("nodes", rest), ("dagster-nodes", hosts)] if hosts and rest else [("all", rest or hosts)]
    )
    return [
        dg.RunRequest(
            run_key=f"weekly_patches-{week}-{part}",
            run_config=patch_run_config(nodes=tuple(nodes)),
            tags={**run_tags(touches=nodes), "piclusterops/week": week},
        )
        for part, nodes in parts
    ]


def weekly_patches_schedule(inv: Inventory, running: bool = False) -> dg.ScheduleDefinition:
    """The schedule in the inventory's time zone, RUNNING by default if `running`."""
    tz = iana_zone(inv.timezone)

    @dg.schedule(
        name="weekly_patches",
        cron_schedule=WEEKLY_CRON,
        execution_timezone=inv.timezone,
        job=patch_nodes,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
        ),
        description=f"The weekly rolling patch, Sunday 03:00 {inv.timezone}.",
    )
    def weekly_patches(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        week = context.scheduled_execution_time.astimezone(tz).date().isoformat()
        return weekly_runs(inv, week)

    return weekly_patches


HEALTH_CRON = "7 * * * *"
node_health_job = dg.define_asset_job(
    "node_health_readings",
    selection=["node_health"],
    description="Reads every Pi's SoC temperature, throttling flags and disk use into the "
    "warehouse (node_health).",
)


def node_health_schedule(running: bool = False) -> dg.ScheduleDefinition:
    """Every hour, one reading of every node into the UTC day's partition."""

    @dg.schedule(
        name="node_health_readings",
        cron_schedule=HEALTH_CRON,
        job=node_health_job,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
        ),
        description="Hourly: each Pi's temperature, throttling and disk use (node_health).",
    )
    def node_health_readings(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        when = context.scheduled_execution_time.astimezone(UTC)
        return dg.RunRequest(
            run_key=f"node_health-{when:%Y-%m-%dT%H}", partition_key=when.date().isoformat()
        )

    return node_health_readings
