"""Retention: exactly seven verified nights kept, older ones pruned only after the newest is
verified; the whole nightly selection run over nine nights against the real PostgreSQL."""

import os
from datetime import date, timedelta

import dagster as dg
import pytest

from platform_assets.backups.layout import MIRROR_BLOB_PREFIX, mirror_index_key
from platform_assets.backups.mirror import index_days, load_index, write_index
from platform_assets.backups.retention import (
    etcd_days,
    plan_retention,
    postgres_days,
    prune_mirror,
)
from platform_assets.backups.sealing import BackupKey
from resources.object_store import LocalObjectStore
from tests.backups.conftest import (
    BACKUPS,
    LAKE_NIGHTLY,
    failed_checks,
    folder_stores,
    platform_postgres,
    resources_for,
)


def nights(n: int, start: str = "2026-03-01") -> list[str]:
    first = date.fromisoformat(start)
    return [(first + timedelta(days=i)).isoformat() for i in range(n)]


N = nights(12)


@pytest.mark.parametrize(
    ("days", "verified", "keep", "prune"),
    [
        # fewer than seven verified: nothing goes, however old
        (N[:9], N[:6], N[:6], []),
        # exactly seven verified: nothing older exists yet
        (N[:7], N[:7], N[:7], []),
        # nine verified: the two oldest go
        (N[:9], N[:9], N[2:9], N[:2]),
        # an unverified night among the kept ones stays; one older than the seventh goes
        (N[:10], [d for d in N[:10] if d not in (N[1], N[7])], [*N[2:7], *N[8:10]], N[:2]),
        (N[:12], [d for d in N[:12] if d not in (N[1], N[9])], [*N[4:9], *N[10:12]], N[:4]),
        # unverified nights newer than the seventh verified are kept as evidence
        (N[:10], N[:7], N[:7], []),
    ],
)
def test_plan_retention(days, verified, keep, prune):
    plan = plan_retention(days, verified)
    assert plan.prune == prune
    assert sorted(plan.keep) == keep


def test_a_blob_written_after_the_newest_index_is_never_pruned(tmp_path, backup_key_env):
    """A mirror run still in flight has written blobs no index names yet; retention running at
    the same time must leave them."""
    key = BackupKey(backup_key_env)
    mirror = LocalObjectStore(root=str(tmp_path / "nas"), buckets=["mirror"])
    for night in N[:8]:
        write_index(mirror, key, night, {})
        mirror.put(f"mirror/verified/{night}.json", b'{"verified_at": "2026-03-09T02:00:00+00:00"}')
    old_orphan, in_flight = MIRROR_BLOB_PREFIX + "old", MIRROR_BLOB_PREFIX + "in-flight"
    mirror.put(old_orphan, b"x")
    newest = tmp_path / "nas" / mirror_index_key(N[7])
    os.utime(tmp_path / "nas" / old_orphan, (newest.stat().st_mtime - 60,) * 2)
    mirror.put(in_flight, b"y")
    os.utime(tmp_path / "nas" / in_flight, (newest.stat().st_mtime + 60,) * 2)
    result = prune_mirror(mirror, key)
    assert result.plan.prune == [N[0]]
    assert mirror.stat(old_orphan) is None
    assert mirror.stat(in_flight) is not None
    assert index_days(mirror) == N[1:8]


@pytest.mark.service
def test_nine_nights_keep_exactly_seven(postgres, tmp_path, backup_key_env):
    """The whole nightly selection (dump, restore check, mirror, re-read check, retention) on
    nine nights. After each, at most seven verified nights remain of the dumps and of the
    mirror, the newest seven; an object deleted from the lake after night 1 stays on the
    mirror while night 1's index is kept and goes with it."""
    from tests.backups.conftest import fill_database

    database = "bk_nights_" + os.urandom(3).hex()
    fill_database(postgres, database, 50)
    pg = platform_postgres(postgres, [database])
    lake, nas = folder_stores(tmp_path)
    key = BackupKey(backup_key_env)
    gone = "landing/2026-03-01/00/dev-gone.jsonl"
    lake.put(gone, b"deleted after the first night")
    lake.put("landing/2026-03-01/00/dev-kept.jsonl", b"kept")
    nine = nights(9)
    gone_blob = None
    for i, night in enumerate(nine, start=1):
        result = dg.materialize(
            BACKUPS,
            selection=LAKE_NIGHTLY,
            partition_key=night,
            resources=resources_for(lake, pg, nas),
            raise_on_error=False,
        )
        assert result.success, (night, failed_checks(result))
        assert failed_checks(result) == {}
        if i == 1:
            gone_blob = MIRROR_BLOB_PREFIX + load_index(nas, key, night)[gone].blob
            lake.delete(gone)
        days, verified = postgres_days(lake)
        expected = nine[max(0, i - 7) : i]
        assert sorted(days) == expected and sorted(verified) == expected, night
        assert index_days(nas) == expected, night
        # Night 1's index names the deleted object until night 8 prunes night 1.
        assert (nas.stat(gone_blob) is not None) == (i < 8), night
    # Every blob left is named by a kept index: nothing leaks, nothing kept is lost.
    named = set()
    for night in index_days(nas):
        named |= {MIRROR_BLOB_PREFIX + e.blob for e in load_index(nas, key, night).values()}
    assert {i.key for i in nas.list(MIRROR_BLOB_PREFIX)} == named


def test_retention_refuses_while_the_night_is_unverified(tmp_path, backup_key_env):
    lake, nas = folder_stores(tmp_path)
    for night in N[:9]:
        lake.put(f"backups/postgres/{night}/verified.json", b'{"verified_at": "x"}')
    lake.put(f"backups/postgres/{N[9]}/manifest.json", b"{}")  # tonight, not verified
    result = dg.materialize(
        BACKUPS,
        selection=dg.AssetSelection.assets("backup_retention"),
        partition_key=N[9],
        resources=resources_for(lake, nas=nas),
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert f"not pruning: the dump and mirror of {N[9]} is not verified" in error
    assert sorted(postgres_days(lake)[1]) == N[:9]  # nothing pruned


def test_etcd_snapshots_keep_seven_and_only_after_tonights_verified(tmp_path, backup_key_env):
    """Nine nights of snapshots, all verified: the nightly retention keeps the newest seven. A
    night whose own snapshot is not verified prunes no snapshot (dumps and mirror still go)."""
    lake, nas = folder_stores(tmp_path)
    for night in N[:9]:
        lake.put(f"backups/etcd/{night}/snapshot.sealed", b"sealed")
        lake.put(f"backups/etcd/{night}/verified.json", b'{"verified_at": "x"}')
        lake.put(f"backups/postgres/{night}/verified.json", b'{"verified_at": "x"}')
        nas.put(f"mirror/verified/{night}.json", b'{"verified_at": "x"}')
    lake.put(f"backups/etcd/{N[9]}/snapshot.sealed", b"sealed")  # tonight: not verified
    lake.put(f"backups/postgres/{N[9]}/verified.json", b'{"verified_at": "x"}')
    nas.put(f"mirror/verified/{N[9]}.json", b'{"verified_at": "x"}')
    write_index(nas, BackupKey(backup_key_env), N[9], {})

    def retention(night):
        return dg.materialize(
            BACKUPS,
            selection=dg.AssetSelection.assets("backup_retention"),
            partition_key=night,
            resources=resources_for(lake, nas=nas),
            raise_on_error=False,
        )

    assert retention(N[9]).success
    assert sorted(etcd_days(lake)[0]) == N[:10]  # tonight's snapshot unverified: none pruned
    assert retention(N[8]).success  # a verified night prunes to seven verified
    assert sorted(etcd_days(lake)[1]) == N[2:9]
    assert sorted(etcd_days(lake)[0]) == N[2:10]
