"""Manifests the resource tests deploy onto their KWOK test nodes (tests/kube/conftest.py)."""

from tests.kube.conftest import POOL, POOL_LABEL


def _pod_template(app: str, node: str | None = None) -> dict:
    selector = {POOL_LABEL: POOL}
    if node:
        selector["kubernetes.io/hostname"] = node
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {
            "nodeSelector": selector,
            "containers": [{"name": "main", "image": "registry.invalid/never-pulled:1"}],
            "terminationGracePeriodSeconds": 0,
        },
    }


def deployment(namespace: str, app: str, replicas: int, node: str | None = None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": app}},
            "template": _pod_template(app, node),
        },
    }


def spread_deployment(namespace: str, app: str, replicas: int) -> dict:
    """One replica per test node (a hard anti-affinity on the hostname)."""
    manifest = deployment(namespace, app, replicas)
    manifest["spec"]["template"]["spec"]["affinity"] = {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": {"app": app}},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }
    return manifest


def statefulset(namespace: str, app: str, replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "serviceName": app,
            "selector": {"matchLabels": {"app": app}},
            "template": _pod_template(app),
        },
    }


def daemonset(namespace: str, app: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {"selector": {"matchLabels": {"app": app}}, "template": _pod_template(app)},
    }


def pdb(namespace: str, app: str, min_available: int) -> dict:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {"minAvailable": min_available, "selector": {"matchLabels": {"app": app}}},
    }
