"""`restore_object_store`: the buckets as the mirror had them on a chosen night, written back
into the cluster's object store, each object verified against the night's index before it is
visible.

`restore_mirrored` is the one adapter between this job (and the disaster recovery) and the
mirror's own `restore_from_mirror`: an area is a mirrored bucket (`landing`) or a key prefix
inside one (`backups/etcd/<night>/`).
"""

from collections.abc import Sequence

import dagster as dg

from platform_assets.backups.layout import MIRRORED_BUCKETS, is_day
from platform_assets.backups.mirror import index_days, restore_from_mirror
from platform_assets.backups.resources import BackupKeyResource
from platform_assets.backups.sealing import BackupKey, SealError
from resources.object_store import ObjectNotFound, ObjectStore

CONFIRM_FIELD = "ops.restore_object_store.config.confirm"
# What goes back by default: the data buckets. `backups` comes back only when asked for (the
# disaster recovery does): on a living cluster its dumps are newer than the mirror's.
DATA_BUCKETS = tuple(b for b in MIRRORED_BUCKETS if b != "backups")


def restore_mirrored(
    mirror: ObjectStore, key: BackupKey, day: str, target: ObjectStore, areas: Sequence[str]
) -> list[str]:
    """Writes the night's mirrored objects of `areas` (buckets, or key prefixes inside one) back
    into `target`; returns their keys."""
    if day not in index_days(mirror):
        raise dg.Failure(f"the mirror {mirror.describe()} has no night {day}")
    buckets = list(dict.fromkeys(a.strip("/").partition("/")[0] for a in areas))
    under = [a if "/" in a.strip("/") else f"{a.strip('/')}/" for a in areas]
    try:
        return restore_from_mirror(mirror, key, day, target, buckets, under=under)
    except ValueError as exc:
        raise dg.Failure(f"restore of {day} refused: {exc}") from None
    except (SealError, ObjectNotFound) as exc:
        raise dg.Failure(f"restore of {day} from {mirror.describe()} stopped: {exc}") from None


class RestoreObjectStoreConfig(dg.Config):
    day: str
    """The mirror's night to restore, YYYY-MM-DD."""
    areas: list[str] = list(DATA_BUCKETS)
    """The buckets to restore; add `backups` to restore the dumps too."""
    confirm: str = ""
    """Must be the night restored: the go-ahead to overwrite these areas' objects of that
    name."""


@dg.op(
    description="Writes a night of the mirror back into the cluster's object store (objects of "
    "the same key are replaced; others are left). Refuses without `confirm` naming the night.",
    tags={"dagster/max_retries": "0"},
)
def restore_object_store_op(
    context: dg.OpExecutionContext,
    config: RestoreObjectStoreConfig,
    object_store: ObjectStore,
    backup_mirror: ObjectStore,
    backup_key: BackupKeyResource,
) -> dg.Output[None]:
    if not is_day(config.day):
        raise dg.Failure(f"day {config.day!r} is not a night (YYYY-MM-DD)")
    if config.confirm != config.day:
        raise dg.Failure(
            f"restore_object_store refused: it overwrites objects of {', '.join(config.areas)} "
            f"in {object_store.describe()}; set {CONFIRM_FIELD} to {config.day!r} in the run "
            "config to go ahead"
        )
    restored = restore_mirrored(
        backup_mirror, backup_key.backup_key(), config.day, object_store, config.areas
    )
    context.log.info(f"restored {len(restored)} objects of {config.day} from the mirror")
    return dg.Output(
        None,
        metadata={
            "dagster/row_count": len(restored),
            "night": config.day,
            "areas": dg.MetadataValue.json(list(config.areas)),
        },
    )


@dg.job(
    name="restore_object_store",
    description="The buckets as the mirror had them on a chosen night, written back and verified "
    "object by object. Needs `confirm` (the night).",
    tags={"dagster/max_retries": "0"},
)
def restore_object_store():
    restore_object_store_op.alias("restore_object_store")()
