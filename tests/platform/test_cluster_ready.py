"""cluster_ready through the real Kubernetes client against the session's real API server
(tests/harness/kube.py). Its nodes here are KWOK nodes named after an inventory of their own
(`rc-*`), so these tests need no fake Pi and never meet the fake Pis' own nodes."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.assets import InventoryFile, cluster_ready
from platform_assets.steps import rewrite_kubeconfig, write_private
from resources.kubernetes import KubernetesResource
from tests.harness.kube import wait_until
from tests.harness.kwok_stages import K3S_STATE_ANNOTATION, KWOK_NODE_ANNOTATION

ROOT = Path(__file__).resolve().parents[2]
NODES = ("rc-server", "rc-agent-1", "rc-agent-2", "rc-agent-3")
MANAGER = "piclusterops-tests"


def kubeconfig_text(url: str, token: str = "not-a-real-token", ca: Path | None = None) -> str:
    authority = f"\n    certificate-authority: {ca}" if ca else ""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: default
  cluster:
    server: {url}{authority}
contexts:
- name: default
  context: {{cluster: default, user: default}}
current-context: default
users:
- name: default
  user: {{token: {token}}}
"""


@pytest.fixture
def inventory(tmp_path) -> Path:
    """inventory.example.yaml with its four nodes renamed rc-*."""
    plan = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())
    for node, name in zip(plan["nodes"], NODES, strict=True):
        node["name"] = name
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return path


def set_nodes(kube: KubernetesResource, states: dict[str, str]) -> None:
    """Each named node registered and its k3s `running` or `stopped`; others deleted."""
    key, value = KWOK_NODE_ANNOTATION
    for name in NODES:
        if name not in states:
            kube.delete("v1", "Node", name)
            continue
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/os": "linux", "piclusterops.dev/test-pool": "rc"},
                "annotations": {key: value, K3S_STATE_ANNOTATION: states[name]},
            },
            # Unschedulable: the other tests' workloads never land here.
            "spec": {"unschedulable": True},
        }
        kube.apply(node, field_manager=MANAGER, force=True)

    def settled() -> bool:
        ready = {s.name: s.ready for s in kube.node_statuses()}
        return all(ready.get(n) == (states[n] == "running") for n in states)

    wait_until(settled, 30, f"nodes settled as {states}")


def run_check(inventory: Path, kubeconfig: Path) -> dg.AssetCheckEvaluation:
    result = dg.materialize(
        [dg.AssetSpec("kubeconfig"), cluster_ready],
        selection=dg.AssetSelection.checks(cluster_ready),
        resources={
            "inventory_file": InventoryFile(path=str(inventory)),
            "kubernetes": KubernetesResource(kubeconfig_path=str(kubeconfig)),
        },
    )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


@pytest.mark.service
def test_all_nodes_ready(kube_control_plane, inventory):
    set_nodes(kube_control_plane.resource(), dict.fromkeys(NODES, "running"))
    evaluation = run_check(inventory, kube_control_plane.admin_kubeconfig)
    assert evaluation.passed
    assert evaluation.metadata["ready"].value == 4


@pytest.mark.service
def test_not_ready_and_missing_nodes_are_named(kube_control_plane, inventory):
    states = {"rc-server": "running", "rc-agent-1": "running", "rc-agent-2": "stopped"}
    set_nodes(kube_control_plane.resource(), states)
    evaluation = run_check(inventory, kube_control_plane.admin_kubeconfig)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.description == "not Ready: rc-agent-2, rc-agent-3"
    table = evaluation.metadata["nodes"].value
    assert "| rc-agent-2 | NotReady: KubeletNotReady |" in table
    assert "| rc-agent-3 | not registered |" in table


def test_api_that_does_not_answer_names_the_server(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_text("https://127.0.0.1:9"))  # discard port: nothing listens
    statuses_error = None
    try:
        KubernetesResource(kubeconfig_path=str(path), request_timeout_s=2).node_statuses()
    except Exception as exc:  # noqa: BLE001
        statuses_error = exc
    assert type(statuses_error).__name__ == "ClusterUnreachable"
    assert "https://127.0.0.1:9" in str(statuses_error)


def test_fetched_kubeconfig_points_at_the_server_and_is_private(tmp_path):
    k3s_yaml = kubeconfig_text("https://127.0.0.1:6443")
    target = tmp_path / "home" / "kubeconfig"
    write_private(target, rewrite_kubeconfig(k3s_yaml, "https://192.168.0.120:6443"))
    assert target.stat().st_mode & 0o777 == 0o600
    assert "server: https://192.168.0.120:6443" in target.read_text()
    assert "127.0.0.1" not in target.read_text()


def test_a_malformed_kubeconfig_is_refused_without_quoting_its_credentials():
    key = "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tclient-key"
    broken = kubeconfig_text("https://127.0.0.1:6443") + f"  client-key-data: {key}: x\n"
    with pytest.raises(ValueError, match="not valid YAML at line") as refused:
        rewrite_kubeconfig(broken, "https://192.168.0.120:6443")
    assert key not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


@pytest.mark.service
def test_refused_credentials_fail_the_check_naming_the_server_not_the_token(
    kube_control_plane, inventory, tmp_path
):
    # A token the API server never issued (as after the cluster's credentials were rotated).
    path = tmp_path / "kubeconfig"
    path.write_text(
        kubeconfig_text(
            kube_control_plane.server, "rotated-away-token-4f2a", kube_control_plane.ca_cert
        )
    )
    evaluation = run_check(inventory, path)
    assert not evaluation.passed
    assert kube_control_plane.server in evaluation.description
    assert "401" in evaluation.description and "kubeconfig" in evaluation.description
    assert "rotated-away-token-4f2a" not in evaluation.description
