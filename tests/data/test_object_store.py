"""Both object store backends behave the same: the S3 one against a real SeaweedFS."""

import os

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
    local_store.put("landing-other/x.jsonl", b"x")  # shares the prefix's text, not its folder
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
