"""The etcd snapshot on the local profile: the example inventory's server is on the LAN, which
the local profile never contacts, so the asset fails saying so and writes nothing."""

import dagster as dg

from platform_assets.backups.etcd_snapshot import ETCD_ASSETS, ETCD_CHECKS
from platform_assets.resources import InventoryFile
from tests.backups.conftest import folder_stores, resources_for


def test_the_local_profile_does_not_contact_the_lan(tmp_path, backup_key_env):
    lake, nas = folder_stores(tmp_path)
    resources = {
        **resources_for(lake, nas=nas),
        "inventory_file": InventoryFile(path="inventory.example.yaml", allow_remote_nodes=False),
    }
    result = dg.materialize(
        [*ETCD_ASSETS, *ETCD_CHECKS],
        selection=dg.AssetSelection.assets("etcd_snapshot").without_checks(),
        partition_key="2026-03-04",
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.message
    assert "pi-server (192.168.0.120) is not contacted on the local profile" in error
    assert [i for bucket in lake.bucket_names() for i in lake.list(f"{bucket}/")] == []
