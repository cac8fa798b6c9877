"""cluster_ready through the real Kubernetes client, against a FAKE API (fake_kube_api.py)."""

from pathlib import Path

import dagster as dg
import pytest

from platform_assets.assets import InventoryFile, cluster_ready
from platform_assets.kubeconfig.fetch import rewrite_kubeconfig, write_private
from resources.kubernetes import KubernetesResource
from tests.platform.fake_kube_api import fake_kube_api, kubeconfig_for, node

ROOT = Path(__file__).resolve().parents[2]
NODES = [
    ("pi-server", "192.168.0.120"),
    ("pi-agent-1", "192.168.0.121"),
    ("pi-agent-2", "192.168.0.122"),
    ("pi-agent-3", "192.168.0.123"),
]


def run_check(
    tmp_path: Path, nodes: list[dict], bearer_token: str | None = None
) -> dg.AssetCheckEvaluation:
    path = tmp_path / "kubeconfig"
    with fake_kube_api(nodes, bearer_token) as url:
        path.write_text(kubeconfig_for(url))
        result = dg.materialize(
            [dg.AssetSpec("kubeconfig"), cluster_ready],
            selection=dg.AssetSelection.checks(cluster_ready),
            resources={
                "inventory_file": InventoryFile(path=str(ROOT / "inventory.example.yaml")),
                "kubernetes": KubernetesResource(kubeconfig_path=str(path)),
            },
        )
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_all_nodes_ready(tmp_path):
    evaluation = run_check(tmp_path, [node(n, a, True) for n, a in NODES])
    assert evaluation.passed
    assert evaluation.metadata["ready"].value == 4


def test_not_ready_and_missing_nodes_are_named(tmp_path):
    nodes = [node(n, a, n != "pi-agent-2") for n, a in NODES[:3]]
    evaluation = run_check(tmp_path, nodes)
    assert not evaluation.passed
    assert evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.description == "not Ready: pi-agent-2, pi-agent-3"
    table = evaluation.metadata["nodes"].value
    assert "| pi-agent-2 | NotReady: KubeletNotReady |" in table
    assert "| pi-agent-3 | not registered |" in table


def test_api_that_does_not_answer_names_the_server(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(kubeconfig_for("http://127.0.0.1:9"))  # discard port: nothing listens
    statuses_error = None
    try:
        KubernetesResource(kubeconfig_path=str(path), request_timeout_s=2).node_statuses()
    except Exception as exc:  # noqa: BLE001
        statuses_error = exc
    assert type(statuses_error).__name__ == "ClusterUnreachable"
    assert "http://127.0.0.1:9" in str(statuses_error)


def test_fetched_kubeconfig_points_at_the_server_and_is_private(tmp_path):
    k3s_yaml = kubeconfig_for("https://127.0.0.1:6443")
    target = tmp_path / "home" / "kubeconfig"
    write_private(target, rewrite_kubeconfig(k3s_yaml, "https://192.168.0.120:6443"))
    assert target.stat().st_mode & 0o777 == 0o600
    assert "server: https://192.168.0.120:6443" in target.read_text()
    assert "127.0.0.1" not in target.read_text()


def test_a_malformed_kubeconfig_is_refused_without_quoting_its_credentials():
    key = "LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tclient-key"
    broken = kubeconfig_for("https://127.0.0.1:6443") + f"  client-key-data: {key}: x\n"
    with pytest.raises(ValueError, match="not valid YAML at line") as refused:
        rewrite_kubeconfig(broken, "https://192.168.0.120:6443")
    assert key not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__


def test_refused_credentials_fail_the_check_naming_the_server_not_the_token(tmp_path):
    # The kubeconfig holds `fake-token-for-the-fake-api`; the API wants another (rotated) one.
    evaluation = run_check(tmp_path, [node(n, a, True) for n, a in NODES], "rotated-token")
    assert not evaluation.passed
    assert "http://127.0.0.1:" in evaluation.description
    assert "401" in evaluation.description and "kubeconfig" in evaluation.description
    assert "fake-token-for-the-fake-api" not in evaluation.description
