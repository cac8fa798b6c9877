"""Rollout waits, cordon and drain through the Eviction API, against the real API server: the
scheduler places the pods, KWOK makes them Running, the disruption controller computes each
PodDisruptionBudget and the API server itself refuses evictions a budget forbids."""

import pytest

from resources.kubernetes import ApiRefused, DrainBlocked, DrainTimedOut
from tests.harness.kube import wait_until
from tests.kube import workloads as W
from tests.kube.conftest import NODES

pytestmark = pytest.mark.service

MANAGER = "piclusterops-tests"
NODE_A, NODE_B = NODES


def pods(kube, namespace: str, app: str) -> list[dict]:
    return kube.list("v1", "Pod", namespace=namespace, label_selector=f"app={app}")


def budget_computed(kube, namespace: str, name: str, expected_healthy: int) -> bool:
    pdb = kube.get("policy/v1", "PodDisruptionBudget", name, namespace) or {}
    status = pdb.get("status", {})
    return (
        status.get("observedGeneration") == pdb["metadata"]["generation"]
        and status.get("currentHealthy") == expected_healthy
    )


def test_rollouts_of_each_kind_are_waited_for(kube, namespace):
    kube.apply(W.deployment(namespace, "web", 2), field_manager=MANAGER)
    kube.apply(W.statefulset(namespace, "db", 2), field_manager=MANAGER)
    kube.apply(W.daemonset(namespace, "agent"), field_manager=MANAGER)
    for kind, name in (("Deployment", "web"), ("StatefulSet", "db"), ("DaemonSet", "agent")):
        status = kube.wait_for_rollout(kind, name, namespace, timeout_s=60)
        assert status.ready, status.reason
    assert kube.rollout_status("DaemonSet", "agent", namespace).reason.endswith(
        "2 of 2 pods available"
    )


def test_a_rollout_that_cannot_finish_times_out_saying_what_is_missing(kube, namespace):
    stuck = W.deployment(namespace, "stuck", 1, node="no-such-node")
    kube.apply(stuck, field_manager=MANAGER)
    status = kube.wait_for_rollout("Deployment", "stuck", namespace, timeout_s=3, poll_s=0.2)
    assert not status.ready
    assert status.reason.startswith("timed out after 3s: ")
    assert f"Deployment/{namespace}/stuck" in status.reason
    (pod,) = pods(kube, namespace, "stuck")
    assert pod["status"]["phase"] == "Pending"  # the scheduler found no node


def test_cordon_taints_the_node_and_uncordon_lifts_it(kube, namespace):
    def taints() -> set[str]:
        node = kube.get("v1", "Node", NODE_A)
        return {t["key"] for t in node["spec"].get("taints", [])}

    kube.cordon(NODE_A)
    assert kube.get("v1", "Node", NODE_A)["spec"]["unschedulable"] is True
    wait_until(lambda: "node.kubernetes.io/unschedulable" in taints(), 30, "unschedulable taint")
    kube.apply(W.deployment(namespace, "web", 2), field_manager=MANAGER)
    assert kube.wait_for_rollout("Deployment", "web", namespace, timeout_s=60).ready
    assert {p["spec"]["nodeName"] for p in pods(kube, namespace, "web")} == {NODE_B}
    kube.uncordon(NODE_A)
    assert "unschedulable" not in kube.get("v1", "Node", NODE_A)["spec"]
    wait_until(lambda: "node.kubernetes.io/unschedulable" not in taints(), 30, "taint lifted")


def test_drain_evicts_honours_a_budget_and_skips_daemonset_pods(kube, namespace):
    kube.apply(W.spread_deployment(namespace, "guarded", 2), field_manager=MANAGER)
    kube.apply(W.pdb(namespace, "guarded", 1), field_manager=MANAGER)
    kube.apply(W.deployment(namespace, "free", 1, node=NODE_A), field_manager=MANAGER)
    kube.apply(W.daemonset(namespace, "agent"), field_manager=MANAGER)
    for kind, name in (("Deployment", "guarded"), ("Deployment", "free"), ("DaemonSet", "agent")):
        assert kube.wait_for_rollout(kind, name, namespace, timeout_s=60).ready
    wait_until(lambda: budget_computed(kube, namespace, "guarded", 2), 30, "PDB computed")
    on_a = {
        f"{namespace}/{p['metadata']['name']}"
        for p in kube.list(
            "v1", "Pod", namespace=namespace, field_selector=f"spec.nodeName={NODE_A}"
        )
    }

    report = kube.drain(NODE_A, timeout_s=60, retry_interval_s=0.5)

    agent = {p for p in on_a if "/agent-" in p}
    assert len(agent) == 1 and agent <= set(report.skipped_daemonset)
    assert sorted(report.evicted) == sorted(on_a - agent)
    left = kube.list("v1", "Pod", namespace=namespace, field_selector=f"spec.nodeName={NODE_A}")
    assert {f"{namespace}/{p['metadata']['name']}" for p in left} == agent
    # The evicted guarded replica cannot come back: one per node, and A is cordoned.
    guarded = pods(kube, namespace, "guarded")
    assert sorted(p["status"]["phase"] for p in guarded) == ["Pending", "Running"]


def test_a_budget_that_allows_no_disruption_blocks_the_drain_and_nothing_is_deleted(
    kube, namespace
):
    kube.apply(W.deployment(namespace, "db", 2, node=NODE_A), field_manager=MANAGER)
    kube.apply(W.pdb(namespace, "db", 2), field_manager=MANAGER)
    assert kube.wait_for_rollout("Deployment", "db", namespace, timeout_s=60).ready
    wait_until(lambda: budget_computed(kube, namespace, "db", 2), 30, "PDB computed")
    pdb = kube.get("policy/v1", "PodDisruptionBudget", "db", namespace)
    assert pdb["status"]["disruptionsAllowed"] == 0  # the disruption controller's verdict
    before = {p["metadata"]["uid"] for p in pods(kube, namespace, "db")}

    with pytest.raises(DrainBlocked) as blocked:
        kube.drain(NODE_A, timeout_s=60, max_retries_per_pod=2, retry_interval_s=0.2)

    assert blocked.value.budgets == [f"{namespace}/db"]
    assert blocked.value.pod.startswith(f"{namespace}/db-")
    message = str(blocked.value)
    assert blocked.value.pod in message and f"PodDisruptionBudget {namespace}/db" in message
    assert "refused 3 times" in message
    assert {p["metadata"]["uid"] for p in pods(kube, namespace, "db")} == before
    assert all(not p["metadata"].get("deletionTimestamp") for p in pods(kube, namespace, "db"))


def test_a_drain_that_outlasts_its_timeout_names_the_pods_left(kube, namespace):
    kube.apply(W.deployment(namespace, "db", 1, node=NODE_A), field_manager=MANAGER)
    kube.apply(W.pdb(namespace, "db", 1), field_manager=MANAGER)
    assert kube.wait_for_rollout("Deployment", "db", namespace, timeout_s=60).ready
    wait_until(lambda: budget_computed(kube, namespace, "db", 1), 30, "PDB computed")
    with pytest.raises(
        DrainTimedOut, match=rf"timed out after 2s; not yet evicted: {namespace}/db-"
    ):
        kube.drain(NODE_A, timeout_s=2, max_retries_per_pod=1000, retry_interval_s=0.2)


def test_pod_logs_of_a_pod_that_does_not_exist_name_it(kube, namespace):
    with pytest.raises(ApiRefused, match=rf"Pod/{namespace}/nobody: 404"):
        kube.pod_logs("nobody", namespace)
