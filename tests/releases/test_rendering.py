"""Rendering: inventory -> HelmCharts, as tables. Pure: nothing is contacted.

A chart's own templates are not rendered here (charts cannot be fetched in tests): what is
checked is the HelmChart we send, our own manifests (validated against the Kubernetes schema of
the cluster's minor) and that every container gets requests and limits.
"""

import base64
import gzip
import io
import json
import tarfile
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue
from platform_assets.releases.spec import helmcharts, values_hash

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(ROOT / "inventory.example.yaml")
RELEASES = {r.name: r for r in catalogue.releases(INV)}
CHARTS = {m["metadata"]["name"]: m for r in RELEASES.values() for m in helmcharts(r)}
# The Kubernetes minor the tests' control plane and the K3s pin share.
K8S_SCHEMA = "1.33"


def own_manifests(helmchart: dict) -> list[dict]:
    raw = gzip.decompress(base64.b64decode(helmchart["spec"]["chartContent"]))
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return [
            yaml.safe_load(tar.extractfile(m).read())
            for m in tar.getmembers()
            if "/templates/" in m.name
        ]


def test_the_catalogue_is_the_issues_releases_in_dependency_order():
    assert list(RELEASES) == [
        # The zones first: no pod ever starts in a namespace without its default-deny.
        "network_zones",
        "access_roles",
        "metallb",
        "cert_manager",
        "postgres_operator",
        "postgres",
        "object_store",
        "metastore",
        "trino",
        "dagster",
        "secrets",
        "gateway",
        "notebooks",
        "nifi",
        "monitoring",
        "logging",
    ]
    seen = set()
    for release in RELEASES.values():
        assert set(release.needs) <= seen, release.name
        seen.add(release.name)


# (HelmChart, target namespace, repo, chart, version, failurePolicy)
UPSTREAM = [
    (
        "metallb",
        "metallb-system",
        "https://metallb.github.io/metallb",
        "metallb",
        "0.15.3",
        "abort",
    ),
    (
        "cert-manager",
        "cert-manager",
        "https://charts.jetstack.io",
        "cert-manager",
        "v1.21.1",
        "abort",
    ),
    (
        "cloudnative-pg",
        "cnpg-system",
        "https://cloudnative-pg.github.io/charts",
        "cloudnative-pg",
        "0.29.0",
        "abort",
    ),
    ("trino", "query", "https://trinodb.github.io/charts", "trino", "1.42.2", "reinstall"),
]


@pytest.mark.parametrize(("name", "namespace", "repo", "chart", "version", "policy"), UPSTREAM)
def test_upstream_charts_are_pinned_helmcharts_in_kube_system(
    name, namespace, repo, chart, version, policy
):
    hc = CHARTS[name]
    assert hc["apiVersion"] == "helm.cattle.io/v1" and hc["kind"] == "HelmChart"
    assert hc["metadata"]["namespace"] == "kube-system"
    spec = hc["spec"]
    assert (spec["targetNamespace"], spec["repo"], spec["chart"], spec["version"]) == (
        namespace,
        repo,
        chart,
        version,
    )
    assert spec["failurePolicy"] == policy
    assert "chartContent" not in spec and "valuesContent" not in spec


# (HelmChart, target namespace, failurePolicy, kinds it holds)
OWN = [
    ("metallb-pool", "metallb-system", "reinstall", ["IPAddressPool", "L2Advertisement"]),
    ("lan-ca", "cert-manager", "abort", ["ClusterIssuer", "Certificate", "ClusterIssuer"]),
    ("postgres", "databases", "abort", ["Cluster", "Database", "Database"]),
    ("seaweedfs", "storage", "abort", ["StatefulSet", "Service", "Service", "Job"]),
    ("metastore", "query", "reinstall", ["ConfigMap", "Deployment", "Service"]),
    ("trino-tls", "query", "reinstall", ["Certificate"]),
]


@pytest.mark.parametrize(("name", "namespace", "policy", "kinds"), OWN)
def test_own_manifests_travel_as_a_reproducible_chart(name, namespace, policy, kinds):
    hc = CHARTS[name]
    assert hc["spec"]["targetNamespace"] == namespace
    assert hc["spec"]["failurePolicy"] == policy
    assert [m["kind"] for m in own_manifests(hc)] == kinds
    # Rendering twice gives the same bytes: a second apply changes nothing.
    again = {m["metadata"]["name"]: m for r in catalogue.releases(INV) for m in helmcharts(r)}
    assert again[name]["spec"]["chartContent"] == hc["spec"]["chartContent"]


@pytest.mark.parametrize("name", [n for n, *_ in OWN])
def test_own_manifests_hold_no_helm_template_syntax(name):
    # Helm renders templates/*.yaml as Go templates: a `{{` in a value would be executed.
    for manifest in own_manifests(CHARTS[name]):
        assert "{{" not in json.dumps(manifest)


CORE_KINDS = {"StatefulSet", "Service", "Job", "ConfigMap", "Deployment"}


@pytest.mark.parametrize(
    "manifest",
    [m for n, *_ in OWN for m in own_manifests(CHARTS[n]) if m["kind"] in CORE_KINDS],
    ids=lambda m: f"{m['kind']}/{m['metadata']['name']}",
)
def test_own_core_manifests_pass_the_kubernetes_schema(manifest):
    kubernetes_validate.validate(manifest, K8S_SCHEMA, strict=True)


def _containers(obj):
    """Every container-like dict with a name and an image, anywhere in a manifest."""
    if isinstance(obj, dict):
        for key in ("containers", "initContainers"):
            yield from obj.get(key) or []
        for value in obj.values():
            yield from _containers(value)
    elif isinstance(obj, list):
        for value in obj:
            yield from _containers(value)


def _memory_limits(obj) -> list[str]:
    """Every `resources` block with a memory limit, anywhere (chart values or manifests)."""
    out = []
    if isinstance(obj, dict):
        res = obj.get("resources")
        if isinstance(res, dict) and "memory" in (res.get("limits") or {}):
            assert "memory" in res.get("requests", {}), res
            assert "cpu" in res.get("requests", {}) and "cpu" in res["limits"], res
            out.append(res["limits"]["memory"])
        for value in obj.values():
            out += _memory_limits(value)
    elif isinstance(obj, list):
        for value in obj:
            out += _memory_limits(value)
    return out


@pytest.mark.parametrize("name", [n for n, *_ in OWN])
def test_every_container_of_our_manifests_has_requests_and_limits(name):
    containers = list(_containers(own_manifests(CHARTS[name])))
    for c in containers:
        assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"], c
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["cpu"], c


@pytest.mark.parametrize("release", list(RELEASES.values()), ids=lambda r: r.name)
def test_the_capacity_plan_counts_exactly_the_resources_the_values_carry(release):
    # One source of truth: the memory limits found anywhere in what is sent (values and our
    # manifests) are exactly the declared workloads' containers, init containers included.
    sent = []
    for hc in helmcharts(release):
        sent += _memory_limits(hc["spec"].get("values", {}))
        if "chartContent" in hc["spec"]:
            sent += _memory_limits(own_manifests(hc))
    # A container two workloads share is one resources block in the values (the Dagster
    # chart renders its read-only webserver from dagsterWebserver's values).
    declared = [
        f"{c.memory_limit_mib}Mi"
        for c in dict.fromkeys(
            c for w in release.workloads for c in (*w.containers, *w.init_containers)
        )
    ]
    assert sorted(sent) == sorted(declared)


# (release, workload, node selector the rendered spec carries, nodes it lands on)
PLACEMENT = [
    ("postgres", "pg-main", {"picluster.io/postgres": "true"}, ["pi-agent-2"]),
    ("object_store", "seaweedfs", {"picluster.io/object-store": "true"}, ["pi-agent-3"]),
    ("metastore", "metastore", {"picluster.io/metastore": "true"}, ["pi-agent-1"]),
    ("trino", "trino-coordinator", {"picluster.io/trino": "coordinator"}, ["pi-agent-1"]),
    ("trino", "trino-worker", {"picluster.io/trino": "worker"}, ["pi-agent-2"]),
    ("cert_manager", "cert-manager", {"picluster.io/operators": "true"}, ["pi-server"]),
    (
        "monitoring",
        "prometheus-kps-prometheus",
        {"picluster.io/monitoring": "true"},
        ["pi-agent-1"],
    ),
    ("monitoring", "grafana", {"picluster.io/dashboards": "true"}, ["pi-agent-2"]),
    ("logging", "loki", {"picluster.io/logging": "true"}, ["pi-agent-2"]),
]


@pytest.mark.parametrize(("release", "workload", "selector", "nodes"), PLACEMENT)
def test_placement_comes_from_the_inventory_labels(release, workload, selector, nodes):
    from platform_assets.releases.capacity import nodes_for

    (w,) = [w for w in RELEASES[release].workloads if w.name == workload]
    assert dict(w.node_selector) == selector
    assert [n.name for n in nodes_for(w, INV)] == nodes
    text = json.dumps(
        [
            own_manifests(hc) if "chartContent" in hc["spec"] else hc["spec"]["values"]
            for hc in helmcharts(RELEASES[release])
        ]
    )
    key, value = next(iter(selector.items()))
    assert json.dumps({key: value})[1:-1] in text


def test_trino_runs_476_with_a_2g_heap_in_3gi_and_the_hive_catalog():
    values = CHARTS["trino"]["spec"]["values"]
    assert values["image"] == {"repository": "trinodb/trino", "tag": "476"}
    for role in ("coordinator", "worker"):
        assert values[role]["jvm"]["maxHeapSize"] == "2G"
        assert values[role]["resources"]["limits"]["memory"] == "3072Mi"
    catalog = dict(line.split("=", 1) for line in values["catalogs"]["hive"].splitlines() if line)
    assert catalog["hive.metastore.uri"] == "thrift://metastore.query.svc:9083"
    assert catalog["s3.endpoint"] == "http://seaweedfs.storage.svc:8333"
    assert catalog["s3.aws-secret-key"] == "${ENV:secret_key}"


def test_metallb_pool_is_the_inventorys():
    pool, l2 = own_manifests(CHARTS["metallb-pool"])
    assert pool["spec"]["addresses"] == ["192.168.0.200-192.168.0.250"]
    assert l2["spec"]["ipAddressPools"] == ["lan"]


def test_postgres_is_one_instance_without_a_pdb_and_three_databases():
    cluster, *databases = own_manifests(CHARTS["postgres"])
    assert cluster["spec"]["instances"] == 1 and cluster["spec"]["enablePDB"] is False
    assert cluster["spec"]["bootstrap"]["initdb"]["secret"] == {"name": "pg-ledger"}
    assert [d["spec"]["name"] for d in databases] == ["metastore", "dagster"]


def test_values_hash_follows_the_spec():
    manifests = helmcharts(RELEASES["trino"])
    before = values_hash(manifests)
    assert values_hash(helmcharts(RELEASES["trino"])) == before
    (trino,) = [m for m in manifests if m["metadata"]["name"] == "trino"]
    trino["spec"]["values"]["server"]["workers"] = 2
    assert values_hash(manifests) != before


def test_metallb_runs_l2_only_without_either_bgp_backend():
    # Either backend adds containers the capacity plan does not count; newer charts enable
    # frr-k8s by default, so both are switched off by name.
    values = CHARTS["metallb"]["spec"]["values"]
    assert values["speaker"]["frr"] == {"enabled": False}
    assert values["frrk8s"] == {"enabled": False}
