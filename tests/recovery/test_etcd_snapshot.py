"""`etcd_snapshot` over real SSH on the FAKE Pi cluster, whose server's k3s (a stand-in, see
tests/fake_pi/standin.py) takes a REAL snapshot of the test control plane's etcd: a ConfigMap
written through the API is in the sealed snapshot, the integrity check passes, and a flipped
byte in the stored snapshot fails it naming the object. K3s is installed on the server by its
(fake) installer over SSH, not by the bring-up, to keep the fake-cluster time short."""

import json
import uuid

import dagster as dg
import pytest

from platform_assets.backups.etcd_file import read_snapshot
from platform_assets.backups.etcd_snapshot import ETCD_ASSETS, ETCD_CHECKS
from platform_assets.backups.layout import etcd_manifest_key, etcd_snapshot_key, etcd_token_key
from platform_assets.backups.sealing import BackupKey, unseal
from platform_assets.backups.streams import open_stream
from platform_assets.inventory import load_inventory
from platform_assets.resources import InventoryFile, ssh_resource
from resources.object_store import LocalObjectStore
from tests.backups.conftest import check_evaluations, key_resource
from tests.integration.test_secrets_stay_secret import assert_absent, recorded

pytestmark = [pytest.mark.service, pytest.mark.slow]

NIGHT = "2026-03-04"
INSTALL = "curl -sfL https://get.k3s.io | sudo -n sh -"


def install_k3s_server(cluster) -> None:
    from tests.fake_pi.fixtures import ssh_resource_for, targets_for

    server = targets_for(cluster)[0]
    with ssh_resource_for(cluster).open([server]) as sessions:
        sessions.run(server.name, INSTALL)


@pytest.fixture(scope="module")
def server_with_k3s(fake_cluster):
    install_k3s_server(fake_cluster)
    return fake_cluster


def resources(cluster, lake) -> dict:
    inv = load_inventory(cluster.inventory_path)
    return {
        "inventory_file": InventoryFile(path=str(cluster.inventory_path)),
        "ssh": ssh_resource(inv),
        "object_store": lake,
        "backup_key": key_resource(),
    }


def snapshot_night(cluster, lake, instance=None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [*ETCD_ASSETS, *ETCD_CHECKS],
        selection=dg.AssetSelection.assets("etcd_snapshot")
        - dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey("etcd_snapshot"), "etcd_snapshot_fresh")
        ),
        partition_key=NIGHT,
        resources=resources(cluster, lake),
        instance=instance,
        raise_on_error=False,
    )


def test_the_snapshot_holds_what_the_api_wrote(
    server_with_k3s, kube_control_plane, tmp_path, backup_key_env
):
    kube = kube_control_plane.resource()
    name = f"dr-marker-{uuid.uuid4().hex[:6]}"
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"},
            "data": {"written": "before the snapshot"},
        },
        field_manager="piclusterops-tests",
    )
    lake = LocalObjectStore(root=str(tmp_path / "lake"))
    home = tmp_path / "home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        result = snapshot_night(server_with_k3s, lake, instance)
        records = recorded(instance, result.run_id, home)
    assert result.success, result.get_step_failure_events()
    (check,) = result.get_asset_check_evaluations()
    assert check.passed, check.description
    manifest = json.loads(lake.get(etcd_manifest_key(NIGHT)))
    assert manifest["node"] == "pi-server" and manifest["revision"] > 0
    key = BackupKey(backup_key_env)
    local = tmp_path / "snapshot.db"
    with open_stream(lake, etcd_snapshot_key(NIGHT)) as pieces, local.open("wb") as f:
        for piece in unseal(pieces, key, "snapshot"):
            f.write(piece)
    keys: dict[bytes, bytes] = {}
    status = read_snapshot(local, "snapshot", keys)
    assert status.revision == manifest["revision"]
    assert f"/registry/configmaps/default/{name}".encode() in keys
    # Sealed at rest: no Kubernetes key or the token in clear in the stored objects.
    sealed = (tmp_path / "lake" / etcd_snapshot_key(NIGHT)).read_bytes()
    assert b"/registry/" not in sealed
    token = b"".join(unseal([lake.get(etcd_token_key(NIGHT))], key, "token"))
    assert token and token not in (tmp_path / "lake" / etcd_token_key(NIGHT)).read_bytes()
    assert token.decode() not in json.dumps(manifest)
    passphrase = token.decode().split("::server:")[-1]
    assert_absent(records, {"the K3s token": passphrase}, "the run's records")
    # The on-demand snapshot does not pile up on the node: it was deleted after the copy.
    asked = server_with_k3s.commands("pi-server")
    assert [
        "k3s-binary",
        "v1.34.4+k3s1",
        "etcd-snapshot",
        "save",
        "--name",
        f"piclusterops-{NIGHT}",
    ] in [a[:6] for a in asked] or any(a[2:4] == ["etcd-snapshot", "save"] for a in asked)


def test_a_flipped_byte_fails_the_check_naming_the_object(
    server_with_k3s, tmp_path, backup_key_env
):
    lake = LocalObjectStore(root=str(tmp_path / "lake"))
    assert snapshot_night(server_with_k3s, lake).success
    path = tmp_path / "lake" / etcd_snapshot_key(NIGHT)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    result = dg.materialize(
        [*ETCD_ASSETS, *ETCD_CHECKS],
        selection=dg.AssetSelection.checks(
            dg.AssetCheckKey(dg.AssetKey("etcd_snapshot"), "etcd_snapshot_intact")
        ),
        resources=resources(server_with_k3s, lake),
        raise_on_error=False,
    )
    check = check_evaluations(result)["etcd_snapshot_intact"]
    assert not check.passed
    assert etcd_snapshot_key(NIGHT) in check.description
