"""The nightly backups: PostgreSQL dumps with restore checks, the object store mirrored off the
cluster, sealed, verified and kept for seven nights. See docs/backups.md.

`build_defs(settings, timezone)` registers the assets, their checks, the `nightly_backups` and
`backup_freshness` jobs and schedules, and the resources `backup_key`, `backup_mirror` and
`platform_postgres`. The assets also use the platform's `object_store`, registered by
`data_assets`.
"""

import dagster as dg

from resources.settings import Settings


def build_defs(settings: Settings, timezone: str = "UTC") -> dg.Definitions:
    from platform_assets.backups.assets import BACKUP_ASSETS, BACKUP_CHECKS
    from platform_assets.backups.etcd_snapshot import ETCD_ASSETS, ETCD_CHECKS
    from platform_assets.backups.resources import backup_resources
    from platform_assets.backups.settings import load_backup_settings
    from platform_assets.recovery.disaster import disaster_recovery
    from platform_assets.recovery.object_store import restore_object_store
    from platform_assets.recovery.postgres import restore_postgres
    from sensors.backups import (
        backup_freshness_job,
        backup_freshness_schedule,
        nightly_backups_job,
        nightly_backups_schedule,
    )
    from sensors.ownership import owns_automation, with_owner

    runs_here = settings.is_cluster and owns_automation()
    return dg.Definitions(
        assets=[*BACKUP_ASSETS, *ETCD_ASSETS],
        asset_checks=[*BACKUP_CHECKS, *ETCD_CHECKS],
        jobs=[
            nightly_backups_job,
            backup_freshness_job,
            restore_postgres,
            restore_object_store,
            disaster_recovery,
        ],
        # Only the cluster backs up, and only the Dagster owning the schedules (one owner:
        # a laptop on the cluster profile after the hand-over must not dump a second time).
        schedules=with_owner(
            [
                nightly_backups_schedule(timezone, running=runs_here),
                backup_freshness_schedule(running=runs_here),
            ]
        ),
        resources=backup_resources(load_backup_settings(settings)),
    )
