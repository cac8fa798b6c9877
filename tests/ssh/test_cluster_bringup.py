"""Cluster bring-up over real SSH on the FAKE Pi cluster (issue 4, point 7).

The platform assets run exactly as in the UI (`dg.materialize`, plan mode by default, `apply`
through the launch config) against four real OpenSSH servers on 127.0.0.11-14 whose nodes are
fake Raspberry Pis (tests/fake_pi). What changes on a node is read back from the fake node's
own state and its log of the commands it was asked to run. The fake Pis are the nodes of the
session's real Kubernetes control plane (tests/harness/kube.py): once their k3s runs, the
`cluster_ready` check asks that API server, through the kubeconfig the asset fetched.
"""

import json
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.assets import BRINGUP_STEPS, PLATFORM_ASSETS, apply_run_config, cluster_ready
from platform_assets.inventory import load_inventory
from platform_assets.resources import InventoryFile, K3sToken, ssh_resource
from resources.kubernetes import KubernetesResource
from resources.ssh import CommandFailed
from tests.fake_pi.cluster import DEFAULT_NODES, NO_SUDO_USER, FakeCluster, FakeNodeSpec
from tests.fake_pi.fixtures import targets_for
from tests.harness.kube import wait_until

pytestmark = [pytest.mark.service, pytest.mark.slow]

TOKEN = "K10fake-cluster-join-token-7f3a9c"  # a test value, never a real secret
OTHER_TOKEN = "K10another-fake-join-token-41d2"  # a test value: what a drifted variable holds
NODES = ("pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3")
# Stand-ins that change a node (reads such as `systemctl is-active` are not in this list).
CHANGING = {"apt-get", "reboot", "hostnamectl", "swapoff", "dphys-swapfile", "sysctl", "curl"}
CHANGING_SYSTEMCTL = {"enable", "disable", "restart", "start", "stop", "daemon-reload"}


def resources(inventory_path: Path, tmp_path: Path, token: str = TOKEN) -> dict:
    inv = load_inventory(inventory_path)
    return {
        "inventory_file": InventoryFile(path=str(inventory_path)),
        "ssh": ssh_resource(inv),
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


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    """The step's one record in the run: its materialization (applied) or its observation."""
    records = [
        e.step_materialization_data.materialization
        for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(key)
    ] + [
        e.asset_observation_data.asset_observation
        for e in result.get_asset_observation_events()
        if e.asset_key == dg.AssetKey(key)
    ]
    (record,) = records
    return {k: v.value for k, v in record.metadata.items()}


def step_only(key: str) -> dict:
    return {"selection": [key]}


def checks(result: dg.ExecuteInProcessResult) -> dict[tuple[str, str], bool]:
    return {
        (c.asset_key.to_user_string(), c.check_name): c.passed
        for c in result.get_asset_check_evaluations()
    }


def run_log_text(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
    """Everything the run recorded: each event and each log line, as stored."""
    return "\n".join(dg.serialize_value(entry) for entry in instance.all_logs(result.run_id))


def connections_accepted(cluster: FakeCluster, node: str) -> int:
    """SSH logins the node's sshd accepted so far (it logs each at LogLevel VERBOSE)."""
    log = cluster.node_dir(node) / "sshd.log"
    return log.read_text(errors="replace").count("Accepted publickey")


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


def test_plan_then_apply_on_four_nodes_then_a_second_apply_changes_nothing(
    fresh_cluster: FakeCluster, tmp_path
):
    cluster = fresh_cluster
    res = resources(cluster.inventory_path, tmp_path)
    cmdline_before = cluster.state("pi-server")

    # 1. Plan (the default): every node's diff, nothing changes anywhere, nothing materialized.
    plan = dg.materialize(PLATFORM_ASSETS, resources=res)
    assert plan.success
    assert materialized(plan) == {"inventory"}
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
    instance = dg.DagsterInstance.ephemeral()
    applied = dg.materialize(
        PLATFORM_ASSETS, resources=res, run_config=apply_run_config(), instance=instance
    )
    assert applied.success
    assert materialized(applied) == {"inventory", *BRINGUP_STEPS}
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
    # The join token went to the nodes on stdin only: never in a log line, an event, metadata
    # or a command line. The run did log what it ran (so the search below searched something).
    logged = run_log_text(instance, applied)
    assert "[pi-server] $ sudo -n -- install -D -m 0600" in logged
    assert TOKEN not in logged
    # Reads are logged as one line per node and step, not command by command and line by line
    # (each log line is an event the run stores: the CLI apply spent most of its time there).
    assert "[pi-agent-1] read " in logged and "[pi-agent-1] Raspberry Pi 5" not in logged
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

    # 3. A second apply finds nothing to do and asks no node to change anything, over one SSH
    # connection per node for the whole run.
    marks = {node: len(cluster.commands(node)) for node in NODES}
    logins = {node: connections_accepted(cluster, node) for node in NODES}
    again = dg.materialize(PLATFORM_ASSETS, resources=res, run_config=apply_run_config())
    assert again.success
    for node in NODES:
        assert connections_accepted(cluster, node) - logins[node] == 1, node
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
            PLATFORM_ASSETS,
            **step_only("node_prep"),
            resources=res,
            run_config=apply_run_config(),
            raise_on_error=False,
        )
        assert not result.success
        # Failed on one node: what happened is observed, and nothing is materialized.
        assert materialized(result) == set()
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
            PLATFORM_ASSETS,
            **step_only("node_prep"),
            resources=resources(cluster.inventory_path, tmp_path),
            run_config=apply_run_config(),
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
        PLATFORM_ASSETS,
        **step_only("node_prep"),
        resources=resources(inventory, tmp_path),
        run_config=apply_run_config(),
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
    selection = ["inventory", "node_preflight", "node_prep", "node_reboot"]
    with res["ssh"].open(targets_for(cluster)) as sessions:
        for node in NODES:  # a fresh trixie Pi swaps on zram, and has no dphys-swapfile
            assert "/dev/zram0" in sessions.run(node, ["cat", "/proc/swaps"]).stdout
            missing = sessions.run(node, ["dphys-swapfile"], sudo=True, check=False)
            assert "dphys-swapfile: command not found" in missing.stderr
    applied = dg.materialize(
        PLATFORM_ASSETS, selection=selection, resources=res, run_config=apply_run_config()
    )
    assert applied.success
    assert metadata(applied, "node_reboot")["rebooted"] == 4
    assert checks(applied)[("node_prep", "converged")]
    again = dg.materialize(
        PLATFORM_ASSETS, selection=selection, resources=res, run_config=apply_run_config()
    )
    assert again.success
    assert metadata(again, "node_prep")["changes"] == 0, metadata(again, "node_prep")["plan"]
    with res["ssh"].open(targets_for(cluster)) as sessions:
        for node in NODES:
            # After the reboot rpi-swap set up no zram: `Mechanism=none` held.
            swaps = sessions.run(node, ["cat", "/proc/swaps"]).stdout
            assert swaps.count("\n") == 1, f"{node} has swap after reboot:\n{swaps}"
            assert "trixie" in sessions.run(node, ["cat", "/etc/os-release"]).stdout


def command_times(cluster: FakeCluster, node: str) -> list[tuple[float, list[str]]]:
    log = cluster.node_dir(node) / "control" / "commands.log"
    entries = [json.loads(line) for line in log.read_text().splitlines() if line]
    return [(e["time"], e["argv"]) for e in entries]


def needs_reboot_again(res: dict, cluster: FakeCluster, nodes: list[str]) -> None:
    """As after a kernel update that lost the memory controller: the flags are in cmdline.txt
    but the running kernel has no memory controller, so node_reboot must reboot the node."""
    with res["ssh"].open(targets_for(cluster)) as sessions:
        for node in nodes:
            sessions.run(
                node,
                ["sh", "-c", "echo cpuset cpu io pids > /sys/fs/cgroup/cgroup.controllers"],
                sudo=True,
            )


def test_on_a_running_cluster_nodes_reboot_one_at_a_time_and_ready_gates_the_next(
    fresh_cluster: FakeCluster, tmp_path
):
    cluster = fresh_cluster
    res = resources(cluster.inventory_path, tmp_path)
    # A fresh bring-up (no K3s anywhere yet): all four reboot together, in one wave.
    applied = dg.materialize(PLATFORM_ASSETS, resources=res, run_config=apply_run_config())
    assert applied.success
    rows = metadata(applied, "node_reboot")["nodes"]
    assert rows.count("| yes (wave 1) |") == 4, rows

    # K3s runs now: the server first, then the agent, the agent only once the server is back.
    needs_reboot_again(res, cluster, ["pi-agent-2", "pi-server"])
    res["kubernetes"] = KubernetesResource(kubeconfig_path=str(tmp_path / "no-kubeconfig"))
    again = dg.materialize(
        PLATFORM_ASSETS, selection=["node_reboot"], resources=res, run_config=apply_run_config()
    )
    assert again.success
    rows = metadata(again, "node_reboot")["nodes"]
    assert "| pi-server | yes (wave 1) |" in rows and "| pi-agent-2 | yes (wave 2) |" in rows
    (server_reboot,) = [t for t, argv in command_times(cluster, "pi-server") if argv == ["reboot"]][
        1:
    ]
    (agent_reboot,) = [t for t, argv in command_times(cluster, "pi-agent-2") if argv == ["reboot"]][
        1:
    ]
    server_back = [t for t, _ in command_times(cluster, "pi-server") if t > server_reboot]
    assert server_back and server_back[0] < agent_reboot  # it answered again before the next
    assert cluster.state("pi-agent-1")["reboots"] == 1  # not due, not rebooted

    # Where a kubeconfig exists, back over SSH is not enough: the server must be Ready. This
    # one names an API that does not answer, so the server never becomes Ready and the agent
    # is not taken down.
    needs_reboot_again(res, cluster, ["pi-server", "pi-agent-2"])
    unreachable = tmp_path / "kubeconfig-nowhere"
    unreachable.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\n"
        "users: [{name: u, user: {token: not-a-secret}}]\n"
    )
    res["kubernetes"] = KubernetesResource(kubeconfig_path=str(unreachable), request_timeout_s=1)
    config = apply_run_config()
    config["ops"]["cluster_bringup"]["config"]["reboot_timeout_s"] = 8.0
    gated = dg.materialize(
        PLATFORM_ASSETS,
        selection=["node_reboot"],
        resources=res,
        run_config=config,
        raise_on_error=False,
    )
    assert not gated.success
    assert materialized(gated) == set()
    failure = gated.get_step_failure_events()[0].step_failure_data.error.message
    assert "pi-server: back over SSH but not Ready in Kubernetes within" in failure
    assert "pi-agent-2: not rebooted: pi-server did not come back Ready" in failure
    assert cluster.state("pi-server")["reboots"] == 3
    assert cluster.state("pi-agent-2")["reboots"] == 2


def test_a_drifted_token_on_a_running_server_is_refused_naming_the_rotation(
    fresh_cluster: FakeCluster, tmp_path
):
    cluster = fresh_cluster
    res = resources(cluster.inventory_path, tmp_path)
    steps = ["inventory", "node_preflight", "node_prep", "node_reboot", "k3s_server"]
    up = dg.materialize(
        PLATFORM_ASSETS, selection=steps, resources=res, run_config=apply_run_config()
    )
    assert up.success
    server = [t for t in targets_for(cluster) if t.name == "pi-server"]
    token_file = ["cat", "/etc/rancher/k3s/cluster-token"]

    def write_token(sessions, token: str) -> None:
        sessions.run(
            "pi-server",
            ["install", "-m", "0600", "/dev/stdin", "/etc/rancher/k3s/cluster-token"],
            sudo=True,
            stdin=f"{token}\n".encode(),
        )

    # The stand-in is as strict as K3s: its datastore exists, so another token stops it.
    with res["ssh"].open(server) as sessions:
        write_token(sessions, OTHER_TOKEN)
        with pytest.raises(CommandFailed) as refused:
            sessions.run("pi-server", ["systemctl", "restart", "k3s.service"], sudo=True)
        assert "bootstrap data already found and encrypted with different token" in str(
            refused.value
        )
        write_token(sessions, TOKEN)
        sessions.run("pi-server", ["systemctl", "restart", "k3s.service"], sudo=True)

    # So a changed token is not "fixed" by rewriting the file and restarting: plan and apply
    # both refuse, name the rotation, and the node keeps the cluster's token.
    res["k3s_token"] = K3sToken(token=OTHER_TOKEN)
    for apply in (False, True):
        result = dg.materialize(
            PLATFORM_ASSETS,
            selection=["k3s_server"],
            resources=res,
            run_config=apply_run_config(apply=apply),
            raise_on_error=False,
        )
        assert not result.success
        failure = result.get_step_failure_events()[0].step_failure_data.error.message
        assert "pi-server: the join token in PICLUSTER_K3S_TOKEN is not the token" in failure
        assert "k3s token rotate" in failure
        assert materialized(result) == set()
    with res["ssh"].open(server) as sessions:
        assert sessions.run("pi-server", token_file, sudo=True).stdout == f"{TOKEN}\n"
        assert sessions.run("pi-server", ["systemctl", "is-active", "k3s.service"]).stdout == (
            "active\n"
        )
