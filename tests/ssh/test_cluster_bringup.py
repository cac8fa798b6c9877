"""Cluster bring-up over real SSH on the FAKE Pi cluster (issue 4, point 7).

The platform assets run exactly as in the UI (`dg.materialize`, plan mode by default, `apply`
through the launch config) against four real OpenSSH servers on 127.0.0.11-14 whose nodes are
fake Raspberry Pis (tests/fake_pi). What changes on a node is read back from the fake node's
own state and its log of the commands it was asked to run. The fake Pis are the nodes of the
session's real Kubernetes control plane (tests/harness/kube.py): once their k3s runs, the
`cluster_ready` check asks that API server, through the kubeconfig the asset fetched.
"""

from pathlib import Path

import dagster as dg
import pytest

from platform_assets.assets import (
    PLATFORM_ASSETS,
    InventoryFile,
    K3sToken,
    apply_run_config,
    cluster_ready,
)
from platform_assets.inventory import load_inventory
from resources.kubernetes import KubernetesResource
from resources.ssh import SshResource
from tests.fake_pi.cluster import DEFAULT_NODES, NO_SUDO_USER, FakeCluster, FakeNodeSpec
from tests.fake_pi.fixtures import targets_for
from tests.harness.kube import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

TOKEN = "K10fake-cluster-join-token-7f3a9c"  # a test value, never a real secret
NODES = ("pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3")
# Stand-ins that change a node (reads such as `systemctl is-active` are not in this list).
CHANGING = {"apt-get", "reboot", "hostnamectl", "swapoff", "dphys-swapfile", "sysctl", "curl"}
CHANGING_SYSTEMCTL = {"enable", "disable", "restart", "start", "stop", "daemon-reload"}


def resources(inventory_path: Path, tmp_path: Path, token: str = TOKEN) -> dict:
    inv = load_inventory(inventory_path)
    return {
        "inventory_file": InventoryFile(path=str(inventory_path)),
        "ssh": SshResource(
            known_hosts_path=inv.ssh.known_hosts_path,
            private_key_path=inv.ssh.private_key_path,
            connect_timeout_s=inv.ssh.connect_timeout_s,
            command_timeout_s=inv.ssh.command_timeout_s,
            max_parallel=inv.ssh.max_parallel,
        ),
        "k3s_token": K3sToken(token=token),
        "kubernetes": KubernetesResource(kubeconfig_path=str(tmp_path / "kubeconfig")),
    }


def changes_asked(cluster: FakeCluster, node: str, since: int = 0) -> list[list[str]]:
    def changing(argv: list[str]) -> bool:
        if argv[0] == "systemctl":
            return len(argv) > 1 and argv[1] in CHANGING_SYSTEMCTL
        if argv[0] == "sysctl":
            return "--system" in argv
        return argv[0] in CHANGING

    return [argv for argv in cluster.commands(node)[since:] if changing(argv)]


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (event,) = result.asset_materializations_for_node(key)
    return {k: v.value for k, v in event.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in result.get_asset_check_evaluations()
    }


def cluster_ready_check(res: dict) -> dg.AssetCheckEvaluation:
    result = dg.materialize(
        [dg.AssetSpec("kubeconfig"), cluster_ready],
        selection=dg.AssetSelection.checks(cluster_ready),
        resources={k: res[k] for k in ("inventory_file", "kubernetes")},
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def ready_nodes(kube: KubernetesResource) -> set[str]:
    return {s.name for s in kube.node_statuses() if s.ready and s.name in NODES}


def all_log_text(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        str(e.message) + str(getattr(e, "event_specific_data", "")) for e in result.all_events
    )


def test_plan_then_apply_on_four_nodes_then_a_second_apply_changes_nothing(
    fresh_cluster: FakeCluster, tmp_path
):
    cluster = fresh_cluster
    res = resources(cluster.inventory_path, tmp_path)
    cmdline_before = cluster.state("pi-server")

    # 1. Plan (the default): every node's diff, nothing changes anywhere.
    plan = dg.materialize(PLATFORM_ASSETS, resources=res)
    assert plan.success
    prep = metadata(plan, "node_prep")
    assert prep["mode"] == "plan"
    for node in NODES:
        assert f"### {node}: " in prep["plan"] and "changes planned" in prep["plan"]
        assert changes_asked(cluster, node) == [], f"plan mode changed {node}"
    assert "sudo -n -- hostnamectl set-hostname pi-agent-2" in prep["plan"]
    assert cluster.state("pi-server") == cmdline_before
    assert metadata(plan, "node_reboot")["rebooted"] == 0
    assert not (tmp_path / "kubeconfig").exists()

    # 2. Apply: node prep, reboots where needed, K3s server and agents, kubeconfig.
    marks = {node: len(cluster.commands(node)) for node in NODES}
    applied = dg.materialize(PLATFORM_ASSETS, resources=res, run_config=apply_run_config())
    assert applied.success
    assert metadata(applied, "node_prep")["nodes_changed"] == 4
    assert metadata(applied, "node_reboot")["rebooted"] == 4
    passed = checks(applied)
    for key in ("node_prep", "k3s_server", "k3s_agents"):
        assert passed[(key, "converged")], f"{key} did not converge"
    assert passed[("node_preflight", "preflight_passed")]
    for node in NODES:
        state = cluster.state(node)
        assert state["hostname"] == node
        assert {"nftables", "fio", "curl", "ca-certificates"} <= set(state["installed"])
        assert state["units"]["dphys-swapfile.service"][0] == "disabled"
        assert state["reboots"] == 1
        service = "k3s.service" if node == "pi-server" else "k3s-agent.service"
        assert state["units"][service] == ["enabled", "active"]
        asked = changes_asked(cluster, node, marks[node])
        assert ["reboot"] in asked
    kubeconfig = tmp_path / "kubeconfig"
    assert kubeconfig.stat().st_mode & 0o777 == 0o600
    assert "server: https://127.0.0.11:6443" in kubeconfig.read_text()
    # The join token went to the nodes on stdin only: never in a log, metadata or command.
    assert TOKEN not in all_log_text(applied)
    for node in NODES:
        assert all(TOKEN not in " ".join(argv) for argv in cluster.commands(node))

    # The fake Pis are Ready nodes of the real API server, reached as the platform reaches it:
    # the fetched kubeconfig, https://<server node>:6443.
    kube = res["kubernetes"]
    wait_until(lambda: ready_nodes(kube) == set(NODES), 30, "all four fake Pis Ready")
    evaluation = cluster_ready_check(res)
    assert evaluation.passed, evaluation.description
    assert evaluation.metadata["ready"].value == 4
    inv = load_inventory(cluster.inventory_path)
    for node in inv.nodes:
        registered = kube.get("v1", "Node", node.name)
        labels = registered["metadata"]["labels"]
        assert labels["kubernetes.io/arch"] == "arm64" and labels["kubernetes.io/os"] == "linux"
        assert node.labels.items() <= labels.items()
        info = registered["status"]["nodeInfo"]
        assert info["kubeletVersion"] == inv.k3s.version
        addresses = {a["type"]: a["address"] for a in registered["status"]["addresses"]}
        assert addresses["InternalIP"] == node.address
    server_roles = kube.get("v1", "Node", "pi-server")["metadata"]["labels"]
    assert server_roles["node-role.kubernetes.io/control-plane"] == "true"

    # 3. A second apply finds nothing to do and asks no node to change anything.
    marks = {node: len(cluster.commands(node)) for node in NODES}
    again = dg.materialize(PLATFORM_ASSETS, resources=res, run_config=apply_run_config())
    assert again.success
    for key in ("node_prep", "k3s_server", "k3s_agents"):
        assert metadata(again, key)["changes"] == 0, metadata(again, key)["plan"]
        assert checks(again)[(key, "converged")]
    assert metadata(again, "node_reboot")["rebooted"] == 0
    for node in NODES:
        assert changes_asked(cluster, node, marks[node]) == []
        assert cluster.state(node)["reboots"] == 1

    # 4. A reboot takes a node's k3s down and back: NotReady, then Ready again.
    with res["ssh"].open(targets_for(cluster)) as sessions:
        sessions.run("pi-agent-1", ["reboot"], sudo=True, check=False)
    seen = set()

    def back_after_not_ready() -> bool:
        ready = "pi-agent-1" in ready_nodes(kube)
        seen.add(ready)
        return ready and False in seen

    wait_until(back_after_not_ready, 30, "pi-agent-1 NotReady during its reboot, then Ready", 0.05)

    # 5. A node powered off stays NotReady; the check names it.
    cluster.stop_node("pi-agent-3")
    wait_until(lambda: "pi-agent-3" not in ready_nodes(kube), 30, "pi-agent-3 NotReady")
    evaluation = cluster_ready_check(res)
    assert not evaluation.passed
    assert evaluation.description == "not Ready: pi-agent-3"
    assert "| pi-agent-3 | NotReady: KubeletNotReady |" in evaluation.metadata["nodes"].value
    cluster.restart_all()


def test_a_node_that_is_down_fails_alone_and_is_named(fresh_cluster: FakeCluster, tmp_path):
    cluster = fresh_cluster
    cluster.stop_node("pi-agent-2")
    try:
        res = resources(cluster.inventory_path, tmp_path)
        result = dg.materialize(
            [a for a in PLATFORM_ASSETS if a.key.to_user_string() == "node_prep"],
            resources=res,
            run_config=apply_run_config(steps=["node_prep"]),
            raise_on_error=False,
        )
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "pi-agent-2" in failure and "(the other nodes finished)" in failure
        assert "127.0.0.13" in failure
        prep = metadata(result, "node_prep")
        assert prep["nodes_failed"] == 1 and prep["nodes_changed"] == 3
        for node in ("pi-server", "pi-agent-1", "pi-agent-3"):
            assert cluster.state(node)["hostname"] == node  # finished despite pi-agent-2
        assert checks(result)[("node_prep", "converged")] is False
    finally:
        cluster.restart_all()


def test_a_changed_host_key_is_refused(fresh_cluster: FakeCluster, tmp_path):
    cluster = fresh_cluster
    port = cluster.port
    imposter = cluster.host_public_key("pi-agent-3").split()[:2]
    known_hosts = Path(load_inventory(cluster.inventory_path).ssh.known_hosts_path)
    original = known_hosts.read_text()
    known_hosts.write_text(
        "".join(
            f"[127.0.0.11]:{port} {imposter[0]} {imposter[1]}\n"
            if line.startswith(f"[127.0.0.11]:{port} ")
            else line
            for line in original.splitlines(keepends=True)
        )
    )
    try:
        before = len(cluster.commands("pi-server"))
        result = dg.materialize(
            [a for a in PLATFORM_ASSETS if a.key.to_user_string() == "node_prep"],
            resources=resources(cluster.inventory_path, tmp_path),
            run_config=apply_run_config(steps=["node_prep"]),
            raise_on_error=False,
        )
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "pi-server: host key for [127.0.0.11]:" in failure and "CHANGED" in failure
        assert len(cluster.commands("pi-server")) == before  # nothing ran on it
        assert cluster.state("pi-agent-1")["hostname"] == "pi-agent-1"
    finally:
        known_hosts.write_text(original)


def test_a_user_without_passwordless_sudo_gets_a_clear_error(fresh_cluster: FakeCluster, tmp_path):
    cluster = fresh_cluster
    inventory = cluster.write_inventory(ssh_user=NO_SUDO_USER, path=tmp_path / "inv.yaml")
    result = dg.materialize(
        [a for a in PLATFORM_ASSETS if a.key.to_user_string() == "node_prep"],
        resources=resources(inventory, tmp_path),
        run_config=apply_run_config(steps=["node_prep"]),
        raise_on_error=False,
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error.message
    for node in NODES:
        assert f"{node}: `sudo -n` needs a password for {NO_SUDO_USER}" in failure
    for node in NODES:
        assert changes_asked(cluster, node) == []


@pytest.fixture
def trixie_cluster(tmp_path_factory: pytest.TempPathFactory):
    """Four fake Pis on Raspberry Pi OS trixie (rpi-swap with zram instead of dphys-swapfile)."""
    nodes = tuple(FakeNodeSpec(n.name, n.address, n.role, os="trixie") for n in DEFAULT_NODES)
    cluster = FakeCluster(
        tmp_path_factory.mktemp("trixie-cluster"),
        port=None,
        nodes=nodes,
        reboot_delay_s=0.5,
        die_with_parent=True,
    )
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.down()


def test_trixie_nodes_are_prepared_and_stay_without_swap(trixie_cluster: FakeCluster, tmp_path):
    cluster = trixie_cluster
    res = resources(cluster.inventory_path, tmp_path)
    steps = ["node_preflight", "node_prep", "node_reboot"]
    selection = [a for a in PLATFORM_ASSETS if a.key.to_user_string() in ("inventory", *steps)]
    with res["ssh"].open(targets_for(cluster)) as sessions:
        for node in NODES:  # a fresh trixie Pi swaps on zram, and has no dphys-swapfile
            assert "/dev/zram0" in sessions.run(node, ["cat", "/proc/swaps"]).stdout
            missing = sessions.run(node, ["dphys-swapfile"], sudo=True, check=False)
            assert "dphys-swapfile: command not found" in missing.stderr
    applied = dg.materialize(selection, resources=res, run_config=apply_run_config(steps=steps))
    assert applied.success
    assert metadata(applied, "node_reboot")["rebooted"] == 4
    assert checks(applied)[("node_prep", "converged")]
    again = dg.materialize(selection, resources=res, run_config=apply_run_config(steps=steps))
    assert again.success
    assert metadata(again, "node_prep")["changes"] == 0, metadata(again, "node_prep")["plan"]
    with res["ssh"].open(targets_for(cluster)) as sessions:
        for node in NODES:
            # After the reboot rpi-swap set up no zram: `Mechanism=none` held.
            swaps = sessions.run(node, ["cat", "/proc/swaps"]).stdout
            assert swaps.count("\n") == 1, f"{node} has swap after reboot:\n{swaps}"
            assert "trixie" in sessions.run(node, ["cat", "/etc/os-release"]).stdout
