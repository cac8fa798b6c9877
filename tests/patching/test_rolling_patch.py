"""The rolling patch on the FAKE Pi cluster behind the real Kubernetes control plane.

K3s is applied to the four fake Pis once (their Nodes register and go Ready through KWOK);
then `node_patches` runs as the `patch_nodes` job would (`apply: true`), over real SSH, with
real cordons, evictions, PodDisruptionBudgets and Node readiness from the API server. The fake
Pis' stand-ins (tests/fake_pi/standin.py) play apt, the kernel and vcgencmd: a kernel upgrade
leaves a new /lib/modules entry, and `uname -r` names it after the reboot. A thread watches the
API throughout and records every moment's cordoned nodes.

Trino and the object store are the local profile's DuckDB file and folder store here (the gate
asks whichever `warehouse` and `object_store` the deployment has); the gate's release_ready
part finds no applied release on these nodes, so it is not exercised here
(tests/releases cover the verdict).
"""

import json
import threading
import time
from datetime import UTC, datetime

import dagster as dg
import pytest

from platform_assets.assets import PLATFORM_ASSETS, apply_run_config
from platform_assets.inventory import load_inventory
from platform_assets.patching.assets import node_patches, patch_run_config
from platform_assets.patching.gates import PatchGate
from platform_assets.resources import InventoryFile, K3sToken, ssh_resource
from resources.kubernetes import KubernetesResource
from resources.object_store import LocalObjectStore
from resources.warehouse import DuckDBWarehouse
from tests.fake_pi.cluster import FakeCluster
from tests.harness.kube import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

TOKEN = "K10fake-patch-join-token-5c1e"  # a test value, never a real secret
ORDER = ["pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3"]  # pi-agent-3 hosts Dagster
NEW_KERNEL = "6.12.47+rpt-rpi-2712"


@pytest.fixture(scope="module")
def k3s_cluster(fake_cluster: FakeCluster, tmp_path_factory):
    """Freshly imaged fake Pis with K3s applied: four Ready nodes."""
    for node in fake_cluster.nodes:
        fake_cluster.stop_node(node.name)
    fake_cluster.restart_all()
    home = tmp_path_factory.mktemp("patching")
    res = resources(fake_cluster, home)
    dg.materialize(
        PLATFORM_ASSETS,
        resources={k: res[k] for k in ("inventory_file", "ssh", "k3s_token", "kubernetes")},
        run_config=apply_run_config(),
    )
    kube = res["kubernetes"]
    # At least the four: other tests of the session register KWOK nodes of their own.
    wait_until(lambda: set(ORDER) <= ready(kube), 60, "all four fake Pis Ready")
    (home / "dagster").mkdir()
    return fake_cluster, home, dg.DagsterInstance.local_temp(str(home / "dagster"))


def resources(cluster: FakeCluster, home) -> dict:
    inv = load_inventory(cluster.inventory_path)
    store = home / "object-store"
    store.mkdir(exist_ok=True)
    return {
        "inventory_file": InventoryFile(path=str(cluster.inventory_path)),
        "ssh": ssh_resource(inv),
        "k3s_token": K3sToken(token=TOKEN),
        "kubernetes": KubernetesResource(kubeconfig_path=str(home / "kubeconfig")),
        "patch_gate": PatchGate(),
        "warehouse": DuckDBWarehouse(
            path=str(home / "warehouse.duckdb"), object_store_root=str(store)
        ),
        "object_store": LocalObjectStore(root=str(store)),
    }


def ready(kube: KubernetesResource) -> set[str]:
    return {s.name for s in kube.node_statuses() if s.ready}


class CordonWatch:
    """Polls the API every 50 ms: the cordoned nodes at every moment it saw. It asks the control
    plane directly: the run's kubeconfig goes through the server node, down while it reboots."""

    def __init__(self, kube: KubernetesResource):
        self.kube, self.seen, self.stop = kube, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            try:
                nodes = self.kube.list("v1", "Node")
            except Exception as exc:  # noqa: BLE001 - recorded: the assertions then fail
                self.seen.append([f"unreadable: {exc}"])
                continue
            cordoned = sorted(
                n["metadata"]["name"]
                for n in nodes
                if n["spec"].get("unschedulable") and n["metadata"]["name"] in ORDER
            )
            if not self.seen or self.seen[-1] != cordoned:
                self.seen.append(cordoned)
            time.sleep(0.05)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

    @property
    def cordon_order(self) -> list[str]:
        return [c[0] for c in self.seen if c]


def set_state(cluster: FakeCluster, node: str, **values) -> None:
    path = cluster.node_dir(node) / "control" / "state.json"
    state = json.loads(path.read_text())
    state.update(values)
    path.write_text(json.dumps(state, indent=1))


def upgrades_asked(cluster: FakeCluster, node: str) -> int:
    return sum(
        1 for argv in cluster.commands(node) if argv[0] == "apt-get" and argv[-1] == "upgrade"
    )


def patch(cluster, home, instance, **config) -> dg.ExecuteInProcessResult:
    run_config = patch_run_config()
    run_config["ops"]["node_patches"]["config"].update({"poll_s": 0.5, **config})
    return dg.materialize(
        [node_patches, dg.AssetSpec("kubeconfig"), dg.AssetSpec("node_health")],
        selection=[node_patches],
        resources=resources(cluster, home),
        run_config=run_config,
        instance=instance,
        raise_on_error=False,
    )


def observations(result) -> list[dict]:
    return [
        {k: v.value for k, v in e.asset_observation_data.asset_observation.metadata.items()}
        for e in result.get_asset_observation_events()
    ]


def test_all_four_nodes_patched_one_at_a_time(k3s_cluster, kube_control_plane):
    cluster, home, instance = k3s_cluster
    kube = kube_control_plane.resource()
    reboots = {n: cluster.state(n)["reboots"] for n in ORDER}
    with CordonWatch(kube) as watch:
        result = patch(cluster, home, instance)
    assert result.success, result.get_step_failure_events()
    # At most one node cordoned at any moment, in the patch order, none left cordoned.
    assert max(len(c) for c in watch.seen) == 1
    assert watch.cordon_order == ORDER
    assert watch.seen[-1] == []
    plan, *per_node = observations(result)
    assert plan["order"] == ", ".join(ORDER)
    assert (
        "| 1 | pi-server | 3 | 6.12.34+rpt-rpi-2712 | newer (kernel package upgraded) | yes |"
        in (plan["plan"])
    )
    assert [o["node"] for o in per_node] == ORDER
    for observed in per_node:
        history = observed["history"]
        assert history["result"] == "patched"
        assert history["kernel_before"] == "6.12.34+rpt-rpi-2712"
        assert history["kernel_after"] == NEW_KERNEL
        assert history["rebooted"] is True
        assert "openssh-server 1:9.2p1-2+deb12u7 -> 1:9.2p1-2+deb12u8" in history["packages"]
        assert history["phases"]["upgrade"] > 0 and history["phases"]["reboot"] > 0
    for node in ORDER:
        state = cluster.state(node)
        assert state["upgrades"] == {} and state["reboots"] == reboots[node] + 1, node
    (materialization,) = result.get_asset_materialization_events()
    metadata = materialization.step_materialization_data.materialization.metadata
    assert metadata["patched"].value == ", ".join(ORDER)
    assert f"6.12.34+rpt-rpi-2712 -> {NEW_KERNEL}" in metadata["history"].value
    # Kubernetes sees the new kernel too (the kubelet reports it).
    nodes = {n["metadata"]["name"]: n for n in kube.list("v1", "Node")}
    assert {nodes[n]["status"]["nodeInfo"]["kernelVersion"] for n in ORDER} == {NEW_KERNEL}

    # A second run plans nothing and touches no node.
    again = patch(cluster, home, instance)
    assert again.success
    assert all(upgrades_asked(cluster, n) == 1 for n in ORDER)


def test_a_failure_on_the_second_node_halts_with_the_rest_untouched(
    k3s_cluster, kube_control_plane
):
    cluster, home, instance = k3s_cluster
    kube = kube_control_plane.resource()
    week = {"sudo": "1.9.13p3-1+deb12u4"}  # no kernel this week: no reboot
    for node in ORDER:
        set_state(cluster, node, upgrades=week)
    set_state(cluster, "pi-agent-1", apt_upgrade_fails="E: fake injected dpkg failure")
    before = {n: upgrades_asked(cluster, n) for n in ORDER}
    with CordonWatch(kube) as watch:
        result = patch(cluster, home, instance)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    text = failure.step_failure_data.error.message
    assert "patch halted at pi-agent-1 (upgrade)" in text
    assert "Not touched: pi-agent-2, pi-agent-3" in text
    assert max(len(c) for c in watch.seen) == 1
    assert watch.cordon_order == ["pi-server", "pi-agent-1"]
    # The failed node stays cordoned; the server was patched; the others never saw a command.
    assert watch.seen[-1] == ["pi-agent-1"]
    assert cluster.state("pi-server")["upgrades"] == {}
    for node in ("pi-agent-2", "pi-agent-3"):
        assert upgrades_asked(cluster, node) == before[node]
        assert cluster.state(node)["upgrades"] == week
    set_state(cluster, "pi-agent-1", apt_upgrade_fails="")
    kube.uncordon("pi-agent-1")


def test_a_pdb_that_blocks_the_drain_halts_without_forcing(k3s_cluster, kube_control_plane):
    cluster, home, instance = k3s_cluster
    kube = kube_control_plane.resource()
    for node in ORDER:
        set_state(cluster, node, upgrades={"sudo": "1.9.13p3-1+deb12u5"})
    manager = "piclusterops-tests"
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "pdb-test"}},
        field_manager=manager,
    )
    wait_until(lambda: kube.get("v1", "ServiceAccount", "default", "pdb-test"), 30, "default SA")
    pod = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "single", "namespace": "pdb-test"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "single"}},
            "template": {
                "metadata": {"labels": {"app": "single"}},
                "spec": {
                    "nodeSelector": {"kubernetes.io/hostname": "pi-server"},
                    "containers": [{"name": "main", "image": "registry.invalid/never-pulled:1"}],
                },
            },
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": "single", "namespace": "pdb-test"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "single"}}},
    }
    kube.apply(pod, field_manager=manager)
    kube.apply(budget, field_manager=manager)
    wait_until(lambda: kube.rollout_status("Deployment", "single", "pdb-test").ready, 60, "pod up")
    (victim,) = kube.list("v1", "Pod", "pdb-test")
    try:
        result = patch(cluster, home, instance, drain_timeout_s=60)
        assert not result.success
        (failure,) = result.get_step_failure_events()
        text = failure.step_failure_data.error.message
        assert "patch halted at pi-server (drain)" in text
        assert "PodDisruptionBudget pdb-test/single" in text
        assert "Not touched: pi-agent-1, pi-agent-2, pi-agent-3" in text
        # Never forced: the pod is still there, the same one, on the cordoned server.
        (still,) = kube.list("v1", "Pod", "pdb-test")
        assert still["metadata"]["uid"] == victim["metadata"]["uid"]
        assert kube.get("v1", "Node", "pi-server")["spec"].get("unschedulable") is True
        assert all(cluster.state(n)["upgrades"] for n in ORDER)
    finally:
        kube.delete("v1", "Namespace", "pdb-test")
        kube.uncordon("pi-server")
        # Gone before the next test drains the server: a terminating namespace's pods refuse
        # eviction (403), which would halt that test's patch for a reason not its own.
        wait_until(lambda: kube.get("v1", "Namespace", "pdb-test") is None, 120, "pdb-test deleted")


def test_node_health_is_recorded_and_a_hot_node_holds_the_patch(k3s_cluster, kube_control_plane):
    from platform_assets.node_health.assets import NODE_HEALTH_PREFIX, node_health_asset

    cluster, home, instance = k3s_cluster
    res = resources(cluster, home)
    set_state(cluster, "pi-agent-2", soc_temp_mc=83100, throttled=0x50005)
    day = datetime.now(UTC).date().isoformat()  # a partition that exists today
    result = dg.materialize(
        [node_health_asset, dg.AssetSpec("inventory")],
        selection=[node_health_asset],
        partition_key=day,
        resources={k: res[k] for k in ("inventory_file", "ssh", "object_store", "warehouse")},
        instance=instance,
    )
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["every_node_answered"].passed
    assert not checks["not_throttled_now"].passed
    assert "pi-agent-2 (0x50005 (now: under_voltage, throttled" in (
        checks["not_throttled_now"].description
    )
    assert not checks["soc_temperature_ok"].passed
    assert checks["soc_temperature_ok"].description == "pi-agent-2 (83.1 °C)"
    # The rows are in the warehouse, beside the sensor readings.
    (key,) = [o.key for o in res["object_store"].list(f"{NODE_HEALTH_PREFIX}dt={day}/")]
    rows = (
        res["warehouse"]
        .query(
            "SELECT node, soc_temp_c, under_voltage_now, throttled_since_boot, temp_source "
            "FROM node_health WHERE dt = :day ORDER BY node",
            {"day": day},
        )
        .rows
    )
    assert [r[0] for r in rows] == sorted(ORDER)
    assert tuple(rows[sorted(ORDER).index("pi-agent-2")][1:]) == (83.1, True, True, "vcgencmd")
    assert key.endswith(f"{result.run_id}.parquet")

    # The patch gate reads the same facts: the hot node is not disrupted, and nothing after it.
    for node in ORDER:
        set_state(cluster, node, upgrades={"sudo": "1.9.13p3-1+deb12u6"})
    before = {n: upgrades_asked(cluster, n) for n in ORDER}
    patched = patch(cluster, home, instance)
    assert not patched.success
    (failure,) = patched.get_step_failure_events()
    text = failure.step_failure_data.error.message
    assert "patch halted at pi-agent-2 (gate)" in text
    assert "SoC at 83.1 °C (limit 80 °C)" in text and "under_voltage, throttled now" in text
    assert upgrades_asked(cluster, "pi-agent-2") == before["pi-agent-2"]
    assert upgrades_asked(cluster, "pi-agent-3") == before["pi-agent-3"]
    kube = kube_control_plane.resource()
    assert kube.get("v1", "Node", "pi-agent-2")["spec"].get("unschedulable") is None
    set_state(cluster, "pi-agent-2", soc_temp_mc=47400, throttled=0)


def test_k3s_upgrade_goes_server_first_through_the_same_roll(k3s_cluster, kube_control_plane):
    import yaml

    cluster, home, instance = k3s_cluster
    newer = "v1.34.5+k3s1"
    inventory = yaml.safe_load(cluster.inventory_path.read_text())
    old = inventory["k3s"]["version"]
    inventory["k3s"]["version"] = newer
    bumped = home / "inventory.k3s-upgrade.yaml"
    bumped.write_text(yaml.safe_dump(inventory, sort_keys=False))
    kube = kube_control_plane.resource()
    run_config = patch_run_config(mode="k3s")
    run_config["ops"]["node_patches"]["config"]["poll_s"] = 0.5
    with CordonWatch(kube) as watch:
        result = dg.materialize(
            [node_patches, dg.AssetSpec("kubeconfig"), dg.AssetSpec("node_health")],
            selection=[node_patches],
            resources={
                **resources(cluster, home),
                "inventory_file": InventoryFile(path=str(bumped)),
            },
            run_config=run_config,
            instance=instance,
        )
    assert watch.cordon_order == ORDER and max(len(c) for c in watch.seen) == 1
    per_node = [o["history"] for o in observations(result)[1:]]
    assert [(h["node"], h["k3s_before"], h["k3s_after"]) for h in per_node] == [
        (n, old, newer) for n in ORDER
    ]

    # Only the four fake Pis: other tests of the session leave their own KWOK nodes behind.
    def kubelets() -> set[str]:
        return {
            n["status"]["nodeInfo"]["kubeletVersion"]
            for n in kube.list("v1", "Node")
            if n["metadata"]["name"] in ORDER
        }

    wait_until(lambda: kubelets() == {newer}, 30, f"every kubelet at {newer}")
