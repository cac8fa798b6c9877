"""The snapshot reader against real etcd snapshots of the test control plane (v3.6.4, the etcd
Kubernetes v1.34 runs on), compared with a real `etcdutl snapshot status` of the same file; a
flipped byte and a truncated file fail naming the file. Needs only `kube_control_plane` (no
fake cluster, no lock)."""

import shutil

import pytest

from platform_assets.backups.etcd_file import SnapshotDamaged, read_snapshot
from tests.recovery.etcd import build_etcdutl, etcdutl, etcdutl_status, take_snapshot

pytestmark = [pytest.mark.service]


@pytest.fixture(scope="module")
def real_etcdutl():
    if etcdutl() is None:
        if shutil.which("go") is None:
            pytest.skip("etcdutl is not cached and there is no Go toolchain to build it")
        build_etcdutl()
    return etcdutl()


@pytest.fixture
def snapshot(kube_control_plane, tmp_path):
    return take_snapshot(kube_control_plane.etcd_url, tmp_path / "snapshot.db")


def test_the_reader_agrees_with_etcdutl(snapshot, real_etcdutl):
    keys: dict[bytes, bytes] = {}
    status = read_snapshot(snapshot, "snapshot.db", keys)
    theirs = etcdutl_status(snapshot)
    assert status.revision == theirs["revision"] > 0
    assert status.live_keys == theirs["totalKey"] == len(keys) > 0
    assert status.storage_version == theirs["version"]
    assert status.db_size == theirs["totalSize"] == status.size - 32
    # The API server's own objects are in it, as a restore would bring them back.
    assert b"/registry/namespaces/kube-system" in keys


@pytest.mark.parametrize("damage", ["flip", "truncate", "truncate-page"])
def test_a_damaged_snapshot_fails_naming_the_file(snapshot, damage):
    """(`etcdutl snapshot status` reads only the database: it passes a file cut by 1,000 bytes;
    its `snapshot restore` is what checks the trailer, as this reader does.)"""
    data = bytearray(snapshot.read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 1000]
    else:  # cut at a page boundary and keep a correct-looking trailer length
        data = data[: 4096 * 3 + 32]
    snapshot.write_bytes(bytes(data))
    with pytest.raises(SnapshotDamaged, match=r"^backups/etcd/x/snapshot\.sealed: "):
        read_snapshot(snapshot, "backups/etcd/x/snapshot.sealed")


def test_a_structure_damaged_behind_a_correct_trailer_is_found(snapshot):
    """A file whose trailer was recomputed over a damaged database (no accident does that, but
    the walk must not trust the trailer alone): a meta page's checksum no longer matches."""
    import hashlib

    data = bytearray(snapshot.read_bytes()[:-32])
    for meta in (0, 1):
        data[meta * 4096 + 16 + 8] ^= 0xFF  # both meta pages' page-size field
    snapshot.write_bytes(bytes(data) + hashlib.sha256(bytes(data)).digest())
    with pytest.raises(SnapshotDamaged, match="neither bbolt meta page is valid"):
        read_snapshot(snapshot, "snapshot.db")
