"""Retention: exactly the seven newest verified daily backups are kept, of the dumps, the etcd
snapshots and the mirror alike; a day older than the seventh verified one goes, verified or not.
Nothing is pruned while fewer than seven are verified, and only after the newest one is (the
assets ask for that).

Days newer than the seventh verified one stay even when unverified: a failed night is evidence
until a week of good nights has passed it.
"""

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from platform_assets.backups.layout import (
    ETCD_PREFIX,
    MIRROR_BLOB_PREFIX,
    POSTGRES_PREFIX,
    etcd_verified_key,
    is_day,
    mirror_index_key,
    mirror_verified_key,
    postgres_verified_key,
)
from platform_assets.backups.mirror import index_days, load_index
from platform_assets.backups.sealing import BackupKey
from resources.object_store import ObjectNotFound, ObjectStore

KEEP = 7


@dataclass(frozen=True)
class RetentionPlan:
    keep: list[str]  # verified days kept, newest first
    prune: list[str]  # days to delete, oldest first


def plan_retention(days: Iterable[str], verified: Iterable[str], keep: int = KEEP) -> RetentionPlan:
    """Which days to prune, given every day present and the verified ones among them."""
    verified_days = sorted(set(verified) & set(days), reverse=True)
    if len(verified_days) < keep:
        return RetentionPlan(verified_days, [])
    oldest_kept = verified_days[keep - 1]
    return RetentionPlan(verified_days[:keep], sorted(d for d in set(days) if d < oldest_kept))


@dataclass
class PruneResult:
    plan: RetentionPlan
    deleted_objects: list[str] = field(default_factory=list)


def prefix_days(store: ObjectStore, prefix: str, marker) -> tuple[set[str], set[str]]:
    """(every day with objects under `prefix`, the days whose `marker(day)` object exists)."""
    days, verified = set(), set()
    for info in store.list(prefix):
        day, _, rest = info.key[len(prefix) :].partition("/")
        if is_day(day):
            days.add(day)
            if info.key == marker(day):
                verified.add(day)
    return days, verified


def postgres_days(store: ObjectStore) -> tuple[set[str], set[str]]:
    """(every day with dump objects, the days whose restore check passed)."""
    return prefix_days(store, POSTGRES_PREFIX, postgres_verified_key)


def etcd_days(store: ObjectStore) -> tuple[set[str], set[str]]:
    """(every day with an etcd snapshot, the days whose integrity check passed)."""
    return prefix_days(store, ETCD_PREFIX, etcd_verified_key)


def verified_at(store: ObjectStore, marker_key: str) -> datetime | None:
    try:
        return datetime.fromisoformat(json.loads(store.get(marker_key))["verified_at"])
    except ObjectNotFound:
        return None


def prune_days(store: ObjectStore, prefix: str, marker, keep: int = KEEP) -> PruneResult:
    days, verified = prefix_days(store, prefix, marker)
    result = PruneResult(plan_retention(days, verified, keep))
    for day in result.plan.prune:
        # The verified marker goes first: a half-pruned day is never taken for a good one.
        keys = [i.key for i in store.list(f"{prefix}{day}/")]
        for k in sorted(keys, key=lambda k: k != marker(day)):
            store.delete(k)
            result.deleted_objects.append(k)
    return result


def prune_postgres(store: ObjectStore, keep: int = KEEP) -> PruneResult:
    return prune_days(store, POSTGRES_PREFIX, postgres_verified_key, keep)


def prune_etcd(store: ObjectStore, keep: int = KEEP) -> PruneResult:
    return prune_days(store, ETCD_PREFIX, etcd_verified_key, keep)


def mirror_verified_days(mirror: ObjectStore) -> set[str]:
    return {d for d in index_days(mirror) if mirror.stat(mirror_verified_key(d)) is not None}


def prune_mirror(mirror: ObjectStore, key: BackupKey, keep: int = KEEP) -> PruneResult:
    """Drops the indexes of days past retention, then every blob no kept index names. A blob
    written after the newest index (a mirror run still in flight) is never a candidate."""
    days = index_days(mirror)
    result = PruneResult(plan_retention(days, mirror_verified_days(mirror), keep))
    if not result.plan.prune:
        return result
    for day in result.plan.prune:
        for k in (mirror_verified_key(day), mirror_index_key(day)):
            mirror.delete(k)
            result.deleted_objects.append(k)
    kept_days = [d for d in days if d not in result.plan.prune]
    referenced = set()
    for day in kept_days:
        referenced.update(e.blob for e in load_index(mirror, key, day).values())
    newest = mirror.stat(mirror_index_key(kept_days[-1]))
    assert newest is not None
    for info in list(mirror.list(MIRROR_BLOB_PREFIX)):
        name = info.key[len(MIRROR_BLOB_PREFIX) :]
        if name not in referenced and info.last_modified <= newest.last_modified:
            mirror.delete(info.key)
            result.deleted_objects.append(info.key)
    return result
