"""object_store_mirror between two real SeaweedFS servers (the cluster's buckets and a NAS
stand-in): sealed copies of the landing, warehouse, quarantine and backups buckets, incremental
nights, a delete on the cluster kept on the mirror, the re-read check catching a flipped byte, a
cut and a missing blob by name, and the way back, bucket by bucket."""

import os

import dagster as dg
import pytest

from platform_assets.backups.layout import (
    MIRROR_BLOB_PREFIX,
    MIRRORED_BUCKETS,
    mirror_index_key,
    mirror_verified_key,
)
from platform_assets.backups.mirror import load_index, restore_from_mirror
from platform_assets.backups.sealing import BackupKey
from sensors.backups import FRESHNESS_CHECKS
from tests.backups.conftest import (
    BACKUPS,
    check_evaluations,
    failed_checks,
    resources_for,
    s3_store,
)

pytestmark = [pytest.mark.service]

MIRROR = dg.AssetSelection.assets("object_store_mirror") - FRESHNESS_CHECKS
NIGHT_1, NIGHT_2 = "2026-03-03", "2026-03-04"
SECRET_TEXT = b"plaintext-that-must-not-reach-the-nas-"


def cluster_objects() -> dict[str, bytes]:
    return {
        "landing/2026-03-03/10/dev-01.jsonl": SECRET_TEXT + b"landing" * 100,
        "landing/2026-03-03/10/dev 02 ünïcode.csv": b"device_id,ts\n" * 50,
        "warehouse/sensor_readings/dt=2026-03-03/b1.parquet": os.urandom(3 << 20),
        "quarantine/sensor_readings/dt=2026-03-03/b1.jsonl": SECRET_TEXT + b"rejected",
        "backups/postgres/2026-03-03/ledger.dump": b"PGDMP" + os.urandom(5000),
        "warehouse/empty-marker": b"",
        "compute-logs/run-1/compute.log": b"Dagster's own run logs: not mirrored",
    }


# The release's buckets, compute-logs included: a bucket the mirror is not asked for stays.
CLUSTER_BUCKETS = (*MIRRORED_BUCKETS, "compute-logs")


@pytest.fixture
def cluster(s3):
    store = s3_store(s3, "cluster", CLUSTER_BUCKETS)
    for key, data in cluster_objects().items():
        store.put(key, data)
    return store


@pytest.fixture
def mirror(nas):
    return s3_store(nas, "mirror", ("mirror",))


@pytest.fixture
def key(backup_key_env) -> BackupKey:
    return BackupKey(backup_key_env)


def run_mirror(cluster, mirror, night: str) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        BACKUPS,
        selection=MIRROR,
        partition_key=night,
        resources=resources_for(cluster, nas=mirror),
        raise_on_error=False,
    )


def run_verified_check(cluster, mirror) -> dg.ExecuteInProcessResult:
    check = dg.AssetCheckKey(dg.AssetKey("object_store_mirror"), "object_store_mirror_verified")
    return dg.materialize(
        BACKUPS,
        selection=dg.AssetSelection.checks(check),
        resources=resources_for(cluster, nas=mirror),
        raise_on_error=False,
    )


def mirrored_keys() -> set[str]:
    return {k for k in cluster_objects() if k.split("/")[0] in MIRRORED_BUCKETS}


def test_mirror_to_a_second_server_and_back(cluster, mirror, key, s3):
    result = run_mirror(cluster, mirror, NIGHT_1)
    assert result.success and failed_checks(result) == {}
    assert mirror.stat(mirror_verified_key(NIGHT_1)) is not None
    index = load_index(mirror, key, NIGHT_1)
    assert set(index) == mirrored_keys()
    # Nothing on the mirror shows the data or the key names: every blob and the index are
    # sealed, and blob names are keyed hashes.
    for info in mirror.list("mirror/"):
        raw = mirror.get(info.key)
        assert SECRET_TEXT not in raw, info.key
        assert b"landing/" not in raw and b"dev-01" not in raw, info.key
        assert "dev-01" not in info.key and "landing" not in info.key
    # And back, into empty buckets on the cluster's server: identical bytes, each in its bucket.
    restored = s3_store(s3, "restored", CLUSTER_BUCKETS)
    assert set(restore_from_mirror(mirror, key, NIGHT_1, restored)) == mirrored_keys()
    for k in mirrored_keys():
        assert restored.get(k) == cluster.get(k), k
    bucket, name = restored.buckets["warehouse"], "sensor_readings/dt=2026-03-03/b1.parquet"
    assert s3.client().stat_object(bucket, name).size == 3 << 20
    assert restored.stat("compute-logs/run-1/compute.log") is None
    materialized = result.asset_materializations_for_node("object_store_mirror")[0]
    assert materialized.metadata["copied"].value == len(mirrored_keys())


def test_the_first_night_from_the_ui_is_fresh_in_the_run_that_verified_it(cluster, mirror, key):
    """Materializing the mirror as the UI does (the asset with every check of it) on a mirror
    that never had a verified night: the re-read check writes the marker before the freshness
    check reads it, so freshness passes in the same run instead of "no verified backup"."""
    result = dg.materialize(
        BACKUPS,
        selection=dg.AssetSelection.assets("object_store_mirror"),
        partition_key=NIGHT_1,
        resources=resources_for(cluster, nas=mirror),
        raise_on_error=False,
    )
    checks = check_evaluations(result)
    assert set(checks) == {"object_store_mirror_verified", "object_store_mirror_fresh"}
    assert checks["object_store_mirror_verified"].passed
    assert checks["object_store_mirror_fresh"].passed, checks["object_store_mirror_fresh"]
    assert f"({NIGHT_1}) is 0.0 hours old" in checks["object_store_mirror_fresh"].description


def test_the_next_night_copies_only_what_changed_and_keeps_what_was_deleted(
    cluster, mirror, key, s3
):
    assert run_mirror(cluster, mirror, NIGHT_1).success
    first = load_index(mirror, key, NIGHT_1)
    changed, added = "landing/2026-03-03/10/dev-01.jsonl", "landing/2026-03-04/00/dev-09.jsonl"
    deleted = "quarantine/sensor_readings/dt=2026-03-03/b1.jsonl"
    cluster.put(changed, b"a re-upload with other content")
    cluster.put(added, b"a new upload")
    cluster.delete(deleted)

    result = run_mirror(cluster, mirror, NIGHT_2)
    assert result.success and failed_checks(result) == {}
    metadata = result.asset_materializations_for_node("object_store_mirror")[0].metadata
    assert metadata["copied"].value == 2
    assert metadata["unchanged"].value == len(mirrored_keys()) - 2
    assert metadata["deleted_on_cluster"].value == 1
    second = load_index(mirror, key, NIGHT_2)
    assert deleted not in second and added in second
    assert second[changed].blob != first[changed].blob
    unchanged = mirrored_keys() - {changed, deleted}
    assert all(second[k] == first[k] for k in unchanged)  # carried, not copied again
    # The deleted object's copy is still on the mirror, and night 1 restores it.
    assert mirror.stat(MIRROR_BLOB_PREFIX + first[deleted].blob) is not None
    back = s3_store(s3, "night1")
    restored = restore_from_mirror(mirror, key, NIGHT_1, back, buckets=["quarantine"])
    assert restored == [deleted]
    assert back.get(deleted) == cluster_objects()[deleted]
    assert back.stat(changed) is None  # only the bucket asked for


def test_a_restore_into_a_store_without_the_bucket_writes_nothing(cluster, mirror, key, s3):
    assert run_mirror(cluster, mirror, NIGHT_1).success
    partial = s3_store(s3, "partial", ("landing", "warehouse"))
    with pytest.raises(ValueError, match="quarantine") as raised:
        restore_from_mirror(mirror, key, NIGHT_1, partial)
    assert "landing, warehouse" in str(raised.value)
    assert list(partial.list("landing/")) == [] and list(partial.list("warehouse/")) == []


@pytest.mark.parametrize("how", ["flipped", "truncated", "missing"])
def test_a_damaged_mirror_copy_fails_the_check_naming_it(cluster, mirror, key, how):
    assert run_mirror(cluster, mirror, NIGHT_1).success
    victim = "warehouse/sensor_readings/dt=2026-03-03/b1.parquet"
    blob_key = MIRROR_BLOB_PREFIX + load_index(mirror, key, NIGHT_1)[victim].blob
    data = bytearray(mirror.get(blob_key))
    if how == "flipped":
        data[len(data) // 2] ^= 0x01
        mirror.put(blob_key, bytes(data))
    elif how == "truncated":
        mirror.put(blob_key, bytes(data[: len(data) - 100]))
    else:
        mirror.delete(blob_key)
    mirror.delete(mirror_verified_key(NIGHT_1))
    result = run_verified_check(cluster, mirror)
    failures = failed_checks(result)
    assert set(failures) == {"object_store_mirror_verified"}
    text = failures["object_store_mirror_verified"]
    assert blob_key in text and victim in text
    assert ("missing" if how == "missing" else "failed authentication") in text
    assert mirror.stat(mirror_verified_key(NIGHT_1)) is None


def test_another_key_cannot_open_the_mirror(cluster, mirror, monkeypatch):
    from platform_assets.backups.sealing import generate_key
    from tests.backups.conftest import KEY_VAR

    monkeypatch.setenv(KEY_VAR, generate_key())
    assert run_mirror(cluster, mirror, NIGHT_1).success
    monkeypatch.setenv(KEY_VAR, generate_key())
    result = run_verified_check(cluster, mirror)
    text = failed_checks(result)["object_store_mirror_verified"]
    assert mirror_index_key(NIGHT_1) in text and "sealed with another backup key" in text
