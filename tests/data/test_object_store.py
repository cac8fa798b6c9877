"""Both object store backends behave the same: the S3 one against a real SeaweedFS."""

import os
from pathlib import Path

import pytest

from resources.object_store import ObjectNotFound


def test_put_get_stat_delete_round_trip(store):
    info = store.put("landing/env-01/a.jsonl", b"hello")
    assert info.size == 5
    assert store.get("landing/env-01/a.jsonl") == b"hello"
    stat = store.stat("landing/env-01/a.jsonl")
    assert stat.etag == info.etag and stat.size == 5
    store.delete("landing/env-01/a.jsonl")
    assert store.stat("landing/env-01/a.jsonl") is None
    with pytest.raises(ObjectNotFound, match="landing/env-01/a.jsonl"):
        store.get("landing/env-01/a.jsonl")
    store.delete("landing/env-01/a.jsonl")  # deleting twice is fine


def test_same_bytes_same_etag_new_bytes_new_etag(store):
    first = store.put("landing/a.csv", b"one")
    again = store.put("landing/a.csv", b"one")
    changed = store.put("landing/a.csv", b"two")
    assert first.etag == again.etag != changed.etag


def test_list_resumes_after_any_listed_key(store):
    # S3 lists in byte order; SeaweedFS in its filer's directory order ('a/b' before 'a-b').
    # Either way every key comes once and `start_after` resumes right after the given key.
    keys = ["landing/b/2.jsonl", "landing/a-b.jsonl", "landing/a/b.jsonl", "landing/b/1.jsonl"]
    for key in keys:
        store.put(key, b"x")
    store.put("quarantine/x.jsonl", b"x")
    listed = [i.key for i in store.list("landing/")]
    assert sorted(listed) == sorted(keys)
    for position, key in enumerate(listed):
        assert [i.key for i in store.list("landing/", start_after=key)] == listed[position + 1 :]


def test_folder_lists_in_s3_byte_order(local_store):
    keys = ["landing/b/2.jsonl", "landing/a-b.jsonl", "landing/a/b.jsonl", "landing/b/1.jsonl"]
    for key in keys:
        local_store.put(key, b"x")
    assert [i.key for i in local_store.list("landing/")] == sorted(keys)


def test_folder_listing_never_opens_folders_before_start_after(local_store, monkeypatch):
    keys = [
        "landing/2026-11-24/09/a.jsonl",
        "landing/2026-11-24/10/a.jsonl",
        "landing/2026-11-24/10/b.jsonl",
        "landing/2026-11-24/10-late.jsonl",
        "landing/2026-11-24/11/a.jsonl",
        "landing/2026-11-25/00/a.jsonl",
        "landing/z.jsonl",
    ]
    for key in keys:
        local_store.put(key, b"x")
    # A folder that shares the prefix's text, not its bucket (made by hand: no bucket is named so).
    (Path(local_store.root) / "landing-other").mkdir()
    (Path(local_store.root) / "landing-other" / "x.jsonl").write_bytes(b"x")
    for position, after in enumerate(sorted(keys)):
        listed = [i.key for i in local_store.list("landing/", start_after=after)]
        assert listed == sorted(keys)[position + 1 :]
    scanned: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda path: scanned.append(str(path)) or scandir(path))
    listed = [i.key for i in local_store.list("landing/", start_after=keys[4])]
    assert listed == ["landing/2026-11-25/00/a.jsonl", "landing/z.jsonl"]
    root = local_store.root
    # The hours before the one start_after names are not even opened.
    assert scanned == [
        f"{root}/landing",
        f"{root}/landing/2026-11-24",
        f"{root}/landing/2026-11-24/11",
        f"{root}/landing/2026-11-25",
        f"{root}/landing/2026-11-25/00",
    ]
    assert [i.key for i in local_store.list("landing/2026-11-24/1")] == sorted(keys)[1:5]


def test_table_location_names_the_prefix(store):
    location = store.table_location("warehouse/sensor_readings/")
    assert location.endswith("warehouse/sensor_readings/")
    assert location.startswith(("s3://", "/"))


def test_keys_that_escape_the_store_are_refused(local_store):
    for bad in ("../etc/passwd", "/abs", "a//b", "a/./b"):
        with pytest.raises(ValueError, match="not valid"):
            local_store.put(bad, b"x")


def test_each_bucket_is_its_own_bucket_on_the_server(s3):
    """The key's first segment picks the bucket: on SeaweedFS the object is in the bucket of
    that role, under the rest of the key; a listing of one bucket never shows another's."""
    from tests.data.conftest import s3_store

    store = s3_store(s3)
    store.put("landing/2026-11-24/10/env-01.jsonl", b"upload")
    store.put("quarantine/sensor_readings/dt=2026-11-24/b.jsonl", b"rejects")
    client = s3.client()
    landing, quarantine = store.buckets["landing"], store.buckets["quarantine"]
    assert [o.object_name for o in client.list_objects(landing, recursive=True)] == [
        "2026-11-24/10/env-01.jsonl"
    ]
    assert client.get_object(quarantine, "sensor_readings/dt=2026-11-24/b.jsonl").read() == (
        b"rejects"
    )
    assert [i.key for i in store.list("landing/")] == ["landing/2026-11-24/10/env-01.jsonl"]
    assert store.table_location("quarantine/sensor_readings/") == (
        f"s3://{quarantine}/sensor_readings/"
    )


def test_start_after_in_another_bucket_lists_all_or_nothing(store):
    store.put("landing/a.jsonl", b"x")
    assert [i.key for i in store.list("landing/", start_after="backups/z")] == ["landing/a.jsonl"]
    assert list(store.list("landing/", start_after="quarantine/a")) == []


@pytest.mark.parametrize("key", ["lake/landing/a.jsonl", "simulator/x.json", "a.jsonl"])
def test_a_key_naming_no_bucket_is_refused_naming_the_buckets(store, key):
    from resources.object_store import UnknownBucket

    for action in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.stat(key)):
        with pytest.raises(UnknownBucket, match="landing/, warehouse/, quarantine/, backups/"):
            action()
    with pytest.raises(UnknownBucket, match=key.split("/")[0]):
        list(store.list(key.split("/")[0] + "/"))


def test_copy_inside_a_bucket_and_not_across(store):
    staged = "warehouse/_staging/sensor_readings/dt=2026-11-24/b.parquet"
    original = store.put(staged, b"audited bytes")
    copied = store.copy(staged, "warehouse/sensor_readings/dt=2026-11-24/b.parquet")
    assert copied.key == "warehouse/sensor_readings/dt=2026-11-24/b.parquet"
    assert copied.etag == original.etag and copied.size == original.size
    assert store.get(copied.key) == b"audited bytes"
    with pytest.raises(ObjectNotFound, match="_staging/nothing"):
        store.copy("warehouse/_staging/nothing", "warehouse/x")
    with pytest.raises(ValueError, match="one bucket"):
        store.copy(staged, "quarantine/x")


def test_the_backups_bucket_signs_with_its_own_key_pair(s3):
    """With `backups_access_key` set, the backups bucket (and only it) is reached as that
    identity: a wrong backups secret fails there, naming its variables, and nowhere else."""
    from resources.object_store import ObjectStoreError, S3ObjectStore

    store = S3ObjectStore(
        endpoint=s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        buckets=s3.make_buckets(f"t-keys-{os.urandom(4).hex()}"),
        secure=False,
        region=s3.region,
        backups_access_key=s3.access_key,
        backups_secret_key="not-the-backups-secret",
    )
    store.put("landing/a.jsonl", b"x")
    with pytest.raises(ObjectStoreError, match="PICLUSTER_S3_BACKUPS_ACCESS_KEY") as raised:
        store.put("backups/postgres/2026-03-03/ledger.dump", b"PGDMP")
    assert store.buckets["backups"] in str(raised.value)
    assert "not-the-backups-secret" not in str(raised.value)
