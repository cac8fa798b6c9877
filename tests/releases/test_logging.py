"""The logging release as rendered: Loki and Fluent Bit as our own manifests, validated against
the Kubernetes schema; 30 days kept; every node and pod; a selector per release. Loki and Fluent
Bit themselves do not run here (no container engine): their configuration is checked as data.
"""

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from platform_assets.inventory import load_inventory, parse_inventory
from platform_assets.releases import catalogue, logs
from platform_assets.releases.spec import helmcharts
from tests.releases.test_rendering import K8S_SCHEMA, own_manifests

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(ROOT / "inventory.example.yaml")
# NiFi is off by default (it then deploys nothing); its log selector is the switched-on one's.
INV_NIFI_ON = parse_inventory(
    {**yaml.safe_load((ROOT / "inventory.example.yaml").read_text()), "nifi": True},
    "inventory.yaml",
)
RELEASE = next(r for r in catalogue.releases(INV) if r.name == "logging")
(CHART,) = helmcharts(RELEASE)
MANIFESTS = own_manifests(CHART)


def by_kind(kind: str) -> dict:
    (m,) = [m for m in MANIFESTS if m["kind"] == kind]
    return m


def test_one_chart_of_our_manifests_never_reinstalled():
    assert CHART["spec"]["targetNamespace"] == "logging"
    assert CHART["spec"]["failurePolicy"] == "abort"  # 30 days of logs on Loki's volume
    assert [m["kind"] for m in MANIFESTS] == [
        "ConfigMap",
        "StatefulSet",
        "Service",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
    ]
    assert "{{" not in yaml.safe_dump_all(MANIFESTS)


@pytest.mark.parametrize(
    "manifest", MANIFESTS, ids=lambda m: f"{m['kind']}/{m['metadata']['name']}"
)
def test_every_manifest_passes_the_kubernetes_schema(manifest):
    kubernetes_validate.validate(manifest, K8S_SCHEMA, strict=True)


def test_loki_keeps_30_days_and_deletes_what_is_older():
    (config,) = [m for m in MANIFESTS if m["metadata"]["name"] == "loki-config"]
    loki = yaml.safe_load(config["data"]["loki.yaml"])
    assert loki["limits_config"]["retention_period"] == "720h"
    # Without the compactor's retention, retention_period deletes nothing.
    assert loki["compactor"]["retention_enabled"] is True
    assert loki["schema_config"]["configs"][0]["store"] == "tsdb"
    volume = by_kind("StatefulSet")["spec"]["volumeClaimTemplates"][0]["spec"]
    assert volume["resources"]["requests"]["storage"] == "20Gi"
    assert by_kind("StatefulSet")["spec"]["template"]["spec"]["nodeSelector"] == {
        "picluster.io/logging": "true"
    }


def test_fluent_bit_reads_every_pod_and_the_journal_of_every_node():
    pod = by_kind("DaemonSet")["spec"]["template"]["spec"]
    assert "nodeSelector" not in pod and pod["tolerations"] == [{"operator": "Exists"}]
    conf = logs.fluent_bit_config()
    assert "Path /var/log/containers/*.log" in conf
    assert "Name systemd" in conf
    # Both streams go to Loki with the labels a search selects by.
    assert conf.count("Name loki") == 2
    for label in ("namespace=", "pod=", "container=", "app=", "instance=", "node="):
        assert label in logs.POD_LABELS
    mounts = {
        m["mountPath"]: m.get("readOnly", False) for m in pod["containers"][0]["volumeMounts"]
    }
    assert mounts["/var/log"] is True and mounts["/var/fluent-bit/state"] is False
    rules = by_kind("ClusterRole")["rules"]
    assert rules == [
        {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]}
    ]


# (release, its LogQL selector): Trino's and NiFi's logs at least, as the issue asks.
SELECTORS = [
    ("trino", '{job="pods", namespace="query", pod=~"(trino-coordinator|trino-worker)-.*"}'),
    ("nifi", '{job="pods", namespace="nifi", pod=~"(nifi)-.*"}'),
]


@pytest.mark.parametrize(("name", "selector"), SELECTORS)
def test_each_release_has_a_log_selector_from_its_workloads(name, selector):
    (release,) = [r for r in catalogue.releases(INV_NIFI_ON) if r.name == name]
    assert logs.log_selector(release) == selector
