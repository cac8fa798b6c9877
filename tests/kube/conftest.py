"""Nodes for the KubernetesResource tests: two KWOK-managed nodes of their own (not the fake Pis,
so these tests need no sshd), labelled into a pool the tests' workloads select."""

import pytest

from tests.harness.kube import wait_until
from tests.harness.kwok_stages import K3S_STATE_ANNOTATION, KWOK_NODE_ANNOTATION

POOL_LABEL = "piclusterops.dev/test-pool"
POOL = "resource-tests"
NODES = ("kube-test-a", "kube-test-b")


def kwok_node(name: str, labels: dict[str, str] | None = None) -> dict:
    key, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "arm64",
                POOL_LABEL: POOL,
                **(labels or {}),
            },
            "annotations": {key: value, K3S_STATE_ANNOTATION: "running"},
        },
    }


def ready(kube, name: str) -> bool:
    return any(s.name == name and s.ready for s in kube.node_statuses())


@pytest.fixture(scope="session")
def kube(kube_control_plane):
    """The admin's KubernetesResource, with the two test nodes Ready."""
    resource = kube_control_plane.resource()
    for name in NODES:
        resource.apply(kwok_node(name), field_manager="piclusterops-tests")
    for name in NODES:
        wait_until(lambda n=name: ready(resource, n), 30, f"test node {name} Ready")
    return resource


_counter = iter(range(10_000))


@pytest.fixture
def namespace(kube):
    """A fresh namespace per test, deleted after it."""
    name = f"t{next(_counter)}-{__import__('secrets').token_hex(3)}"
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
        field_manager="piclusterops-tests",
    )
    wait_until(lambda: kube.get("v1", "ServiceAccount", "default", name), 30, f"{name}/default SA")
    yield name
    for node in NODES:
        kube.uncordon(node)
    kube.delete("v1", "Namespace", name)
    # Gone before the next test: its pods must not be on the test nodes any more.
    wait_until(lambda: kube.get("v1", "Namespace", name) is None, 60, f"namespace {name} gone")
