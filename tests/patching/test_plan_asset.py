"""`node_patches` planning on the local profile (nothing contacted, nothing materialized), and
finding the node a run's pod is on through the real API server."""

from pathlib import Path

import dagster as dg
import pytest

from platform_assets.patching.assets import node_patches, patch_run_config, pod_node
from platform_assets.patching.gates import PatchGate
from platform_assets.resources import InventoryFile, K3sToken
from resources.kubernetes import KubernetesResource
from resources.object_store import LocalObjectStore
from resources.ssh import SshResource
from resources.warehouse import DuckDBWarehouse
from tests.harness.kube import wait_until

ROOT = Path(__file__).resolve().parents[2]


def test_a_plan_on_the_example_inventory_contacts_nothing_and_changes_nothing(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    result = dg.materialize(
        [node_patches, dg.AssetSpec("kubeconfig"), dg.AssetSpec("node_health")],
        selection=[node_patches],
        resources={
            "inventory_file": InventoryFile(path=str(ROOT / "inventory.example.yaml")),
            "ssh": SshResource(known_hosts_path="/nonexistent", private_key_path="/nonexistent"),
            "kubernetes": KubernetesResource(kubeconfig_path=str(tmp_path / "no-kubeconfig")),
            "k3s_token": K3sToken(),
            "patch_gate": PatchGate(),
            "warehouse": DuckDBWarehouse(path=str(tmp_path / "w.db"), object_store_root=str(store)),
            "object_store": LocalObjectStore(root=str(store)),
        },
        run_config=patch_run_config(apply=False),
    )
    assert result.get_asset_materialization_events() == []
    (observation,) = result.get_asset_observation_events()
    metadata = observation.asset_observation_data.asset_observation.metadata
    # The Dagster node of the example (pi-agent-3) last; every node planned, none contacted.
    assert metadata["order"].value == "pi-server, pi-agent-1, pi-agent-2, pi-agent-3"
    assert metadata["plan"].value.count("not contacted (local profile)") == 4


def test_an_unknown_mode_is_refused_naming_it(tmp_path):
    with pytest.raises(dg.Failure, match="mode must be 'os' or 'k3s', not 'kernel'"):
        dg.materialize(
            [node_patches, dg.AssetSpec("kubeconfig"), dg.AssetSpec("node_health")],
            selection=[node_patches],
            resources={
                "inventory_file": InventoryFile(path=str(ROOT / "inventory.example.yaml")),
                "ssh": SshResource(known_hosts_path="/x", private_key_path="/x"),
                "kubernetes": KubernetesResource(),
                "k3s_token": K3sToken(),
                "patch_gate": PatchGate(),
                "warehouse": DuckDBWarehouse(path=str(tmp_path / "w"), object_store_root="/x"),
                "object_store": LocalObjectStore(root=str(tmp_path)),
            },
            run_config={"ops": {"node_patches": {"config": {"mode": "kernel"}}}},
        )


@pytest.mark.service
def test_the_node_a_run_pod_is_on(kube_control_plane):
    kube = kube_control_plane.resource()
    namespace = "patch-run-node"
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        field_manager="piclusterops-tests",
    )
    wait_until(lambda: kube.get("v1", "ServiceAccount", "default", namespace), 30, "default SA")
    try:
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": "dagster-run-abc", "namespace": namespace},
                "spec": {
                    # Bound by hand, as the scheduler binds a run's pod (no kubelet needed).
                    "nodeName": "pi-agent-3",
                    "containers": [{"name": "run", "image": "registry.invalid/never-pulled:1"}],
                },
            },
            field_manager="piclusterops-tests",
        )
        assert pod_node(kube, "dagster-run-abc", namespace) == "pi-agent-3"
        assert pod_node(kube, "no-such-pod", namespace) is None
    finally:
        kube.delete("v1", "Namespace", namespace)
