"""The `nightly_backups` schedule: at 02:00 in the inventory's time zone, one run of the
`backups` group for that night.

A night is named by its date in that zone (the run at 02:00 on 3 March is the backup of
2026-03-03), and the run key is the night, so a re-delivered tick never starts a second run.
It runs by default on the cluster, whose Dagster owns the backups; on the local profile it is
stopped, so a laptop never backs up on its own.
"""

import dagster as dg

from platform_assets.inventory.models import iana_zone
from platform_assets.run_placement import infrastructure_job_tags

NIGHTLY_CRON = "0 2 * * *"
HOURLY_CRON = "17 * * * *"

# The freshness checks say whether a night was missed, so they run on their own every hour:
# inside the night's run they would only ever see the backup that run just verified.
FRESHNESS_CHECKS = dg.AssetSelection.checks(
    dg.AssetCheckKey(dg.AssetKey("postgres_dump"), "postgres_dump_fresh"),
    dg.AssetCheckKey(dg.AssetKey("object_store_mirror"), "object_store_mirror_fresh"),
    dg.AssetCheckKey(dg.AssetKey("etcd_snapshot"), "etcd_snapshot_fresh"),
)
NIGHTLY = dg.AssetSelection.groups("backups") - FRESHNESS_CHECKS

nightly_backups_job = dg.define_asset_job(
    "nightly_backups",
    selection=NIGHTLY,
    description="Dumps the platform databases, proves each dump restores, mirrors the object "
    "store's buckets off the cluster, re-reads a sample of the mirror, then prunes to seven "
    "verified nights.",
    # One backup run at a time where the instance limits this key (deploy/dagster/values.yaml):
    # two runs of one night would overwrite each other's dumps.
    # Infrastructure too: never beside a drain or a reboot of the database's node, and never
    # retried by itself (a second dump of the night is for a person to start).
    tags={"dagster/concurrency_key": "backups", **infrastructure_job_tags()},
)


backup_freshness_job = dg.define_asset_job(
    "backup_freshness",
    selection=FRESHNESS_CHECKS,
    description="Fails when the newest verified dump or mirror night is older than 26 hours.",
)


def nightly_backups_schedule(timezone: str = "UTC", running: bool = False) -> dg.ScheduleDefinition:
    """The schedule in `timezone` (the inventory's `timezone`), RUNNING by default if `running`."""
    tz = iana_zone(timezone)

    @dg.schedule(
        name="nightly_backups",
        cron_schedule=NIGHTLY_CRON,
        execution_timezone=timezone,
        job=nightly_backups_job,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
        ),
        description=f"The nightly backups at 02:00 {timezone}.",
    )
    def nightly_backups(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        night = context.scheduled_execution_time.astimezone(tz).date().isoformat()
        return dg.RunRequest(
            run_key=f"nightly_backups-{night}",
            partition_key=night,
            tags={"piclusterops/night": night},
        )

    return nightly_backups


def backup_freshness_schedule(running: bool = False) -> dg.ScheduleDefinition:
    """Every hour, the freshness checks alone; RUNNING by default if `running`."""
    return dg.ScheduleDefinition(
        name="backup_freshness",
        cron_schedule=HOURLY_CRON,
        job=backup_freshness_job,
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
        ),
        description="Hourly: is the newest verified backup at most 26 hours old?",
    )
