"""The network zones as tables: the NetworkPolicies rendered from the zones table, evaluated
with Kubernetes' NetworkPolicy semantics (tests/releases/networkpolicy.py), allow exactly the
flows the table lists, and nothing else, between every pair of endpoints on every port."""

import itertools
from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import zones
from platform_assets.releases.zones import APP_LABEL, NAMESPACE_ZONES
from tests.releases.networkpolicy import Cluster, Host, Pod

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())


def inventory(nifi: bool):
    return parse_inventory({**EXAMPLE, "nifi": nifi}, "inventory.yaml")


INV = inventory(nifi=True)
LAN_HOST = Host("192.168.0.50")
SERVER = Host("192.168.0.120")  # also on the LAN
AGENT = Host("192.168.0.121")
INTERNET = Host("203.0.113.10")
HOSTS = (LAN_HOST, SERVER, AGENT, INTERNET)
KUBE_DNS = Pod("kube-system", {"k8s-app": "kube-dns"})
SYSTEM_PODS = (KUBE_DNS, Pod("kube-system", {}), Pod("cnpg-system", {APP_LABEL: "cloudnative-pg"}))
TCP_PORTS = sorted({p for f in zones.FLOWS for p in f.ports} | {53, 9083, 9999})


def pods(inv) -> list[Pod]:
    apps: dict[str, set[str]] = {ns: {"other"} for ns in zones.namespaces(inv)}
    for f in zones.flows(inv):
        for end in (f.source, f.destination):
            if end.namespace in apps and end.app:
                apps[end.namespace].add(end.app)
    return [Pod(ns, {APP_LABEL: app}) for ns in apps for app in sorted(apps[ns])]


def cluster(inv) -> Cluster:
    policies = zones.network_policies(inv)
    namespaces = {ns: {} for ns in (*NAMESPACE_ZONES, "kube-system", "cnpg-system")}
    return Cluster(policies, namespaces)


def _matches(end: zones.Endpoint, thing) -> bool:
    import ipaddress

    if end.namespace == zones.LAN:
        return isinstance(thing, Host) and thing.address.startswith("192.168.0.")
    if end.namespace == zones.KUBE_API:
        return thing == SERVER
    if end.namespace == zones.INTERNET:
        ours = ("192.168.0.0/24", "10.42.0.0/16", "10.43.0.0/16")
        return isinstance(thing, Host) and not any(
            ipaddress.ip_address(thing.address) in ipaddress.ip_network(n) for n in ours
        )
    return (
        isinstance(thing, Pod)
        and thing.namespace == end.namespace
        and (not end.app or thing.labels.get(APP_LABEL) == end.app)
    )


def listed(inv, source, destination, port: int, protocol: str) -> bool:
    """What the table says: a listed flow (TCP on its ports; every port and protocol when it
    lists none), a namespace's pods among themselves, or DNS."""
    if (
        isinstance(source, Pod)
        and isinstance(destination, Pod)
        and source.namespace == destination.namespace
    ):
        return True
    if destination == KUBE_DNS and port == 53:
        return True
    return any(
        _matches(f.source, source)
        and _matches(f.destination, destination)
        and (not f.ports or (protocol == "TCP" and port in f.ports))
        for f in zones.flows(inv)
    )


@pytest.mark.parametrize("nifi", [True, False], ids=["nifi-on", "nifi-off"])
def test_the_policies_allow_exactly_the_listed_flows_between_every_pair_on_every_port(nifi):
    inv = inventory(nifi)
    c = cluster(inv)
    policed = set(zones.namespaces(inv))
    ends = [*pods(inv), *SYSTEM_PODS, *HOSTS]
    wrong = []
    for source, destination in itertools.product(ends, ends):
        if source == destination:
            continue
        touches_zone = any(
            isinstance(e, Pod) and e.namespace in policed for e in (source, destination)
        )
        if not touches_zone:
            continue
        for port, protocol in [*((p, "TCP") for p in TCP_PORTS), (53, "UDP")]:
            want = listed(inv, source, destination, port, protocol)
            if c.allowed(source, destination, port, protocol) != want:
                wrong.append((source, destination, port, protocol, want))
    assert wrong == [], wrong[:20]


def _sources_reaching(c: Cluster, destination: Pod) -> set[str]:
    names = set()
    for source in [*pods(INV), *SYSTEM_PODS, *HOSTS]:
        if source == destination or getattr(source, "namespace", None) == destination.namespace:
            continue
        if any(c.allowed(source, destination, port) for port in TCP_PORTS):
            if isinstance(source, Host):
                names.add(source.address)
            else:
                names.add(f"{source.namespace}/{source.labels.get(APP_LABEL, '')}")
    return names


# Written out by hand (not derived from the table): who may reach the restricted zone.
RESTRICTED = [
    (
        Pod("databases", {APP_LABEL: "pg-main"}),
        {
            "query/metastore",
            "dagster/dagster",
            "dagster/other",
            "cnpg-system/cloudnative-pg",
            "monitoring/prometheus",
        },
    ),
    (
        Pod("secrets", {APP_LABEL: "openbao"}),
        {"gateway/oauth2-proxy", "monitoring/prometheus"},
    ),
    (Pod("secrets", {APP_LABEL: "openbao-agent-injector"}), {"192.168.0.120"}),
    (Pod("databases", {APP_LABEL: "other"}), set()),
]


@pytest.mark.parametrize(("destination", "sources"), RESTRICTED, ids=lambda v: str(v)[:40])
def test_the_restricted_zone_is_reachable_only_from_the_named_services(destination, sources):
    assert _sources_reaching(cluster(INV), destination) == sources


def test_from_the_lan_only_the_gateway_and_the_s3_endpoint_answer():
    c = cluster(INV)
    reachable = {
        (f"{p.namespace}/{p.labels[APP_LABEL]}", port)
        for p in pods(INV)
        for port in TCP_PORTS
        if c.allowed(LAN_HOST, p, port)
    }
    assert reachable == {("gateway/oauth2-proxy", 4443), ("storage/seaweedfs", 8333)}
    # The DMZ holds nothing else a LAN machine can reach, on any port.
    assert not c.allowed(LAN_HOST, Pod("gateway", {APP_LABEL: "other"}), 4443)


def test_the_gateway_reaches_each_ui_only_on_the_port_it_serves_https_on():
    # Written out by hand: the pod port behind each gateway upstream (Grafana's Service 443 is
    # its pod's 3000; the Dagster webservers listen on their Service's 443 themselves). Trino's
    # plain 8080 stays open to its query clients, never to the gateway.
    gateway = Pod("gateway", {APP_LABEL: "oauth2-proxy"})
    hops = {
        Pod("monitoring", {APP_LABEL: "grafana"}): 3000,
        Pod("notebooks", {APP_LABEL: "jupyterlab"}): 8888,
        Pod("query", {APP_LABEL: "trino"}): 8443,
        # Both webservers as the Dagster chart labels them (_deployment-webserver.tpl).
        Pod("dagster", {APP_LABEL: "dagster", "component": "dagster-webserver"}): 443,
        Pod("dagster", {APP_LABEL: "dagster", "component": "dagster-webserver-read-only"}): 443,
        Pod("nifi", {APP_LABEL: "nifi"}): 8443,
    }
    c = cluster(INV)
    for backend, port in hops.items():
        assert [p for p in TCP_PORTS if c.allowed(gateway, backend, p)] == [port], backend
    assert c.allowed(
        Pod("notebooks", {APP_LABEL: "jupyterlab"}), Pod("query", {APP_LABEL: "trino"}), 8080
    )


def test_without_nifi_no_policy_names_its_namespace():
    policies = zones.network_policies(inventory(nifi=False))
    assert not [p for p in policies if p["metadata"]["namespace"] == "nifi"]
    assert "nifi" not in yaml.safe_dump(policies)


def test_every_zone_namespace_starts_with_default_deny_both_ways():
    for ns in zones.namespaces(INV):
        deny = [
            p
            for p in zones.network_policies(INV)
            if p["metadata"]["namespace"] == ns and p["metadata"]["name"] == "default-deny"
        ]
        assert [d["spec"] for d in deny] == [
            {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
        ]


# The evaluator itself, on the reference's own cases: it must be able to say no.
def test_the_evaluator_follows_the_reference_semantics():
    allow_web = {
        "metadata": {"name": "web", "namespace": "a"},
        "spec": {
            "podSelector": {"matchLabels": {"app": "web"}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "b"}},
                            "podSelector": {"matchLabels": {"role": "client"}},
                        },
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    ],
                    "ports": [{"port": 80}],
                }
            ],
        },
    }
    c = Cluster([allow_web], {"a": {}, "b": {"team": "b"}, "c": {}})
    web, db = Pod("a", {"app": "web"}), Pod("a", {"app": "db"})
    client_b, client_c = Pod("b", {"role": "client"}), Pod("c", {"role": "client"})
    assert c.allowed(client_b, web, 80)
    assert not c.allowed(client_b, web, 81)
    assert not c.allowed(client_c, web, 80)  # namespace AND pod selector, not OR
    assert not c.allowed(Pod("b", {}), web, 80)
    assert c.allowed(Host("10.2.3.4"), web, 80)
    assert not c.allowed(Host("10.1.3.4"), web, 80)  # except
    assert not c.allowed(client_b, web, 80, "UDP")
    assert c.allowed(client_c, db, 5432)  # db is selected by no policy: not isolated


def test_docs_zones_lists_exactly_the_flows_of_the_table():
    text = (ROOT / "docs" / "zones.md").read_text()
    section = text.split("| from | to | ports | why |", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    documented = [tuple(c.strip() for c in row.strip("|").split("|"))[:3] for row in rows]
    assert documented == [
        (str(f.source), str(f.destination), ", ".join(map(str, f.ports)) or "every port")
        for f in zones.FLOWS
    ]


def test_prometheus_may_reach_the_servers_etcd_metrics_where_the_chart_scrapes_them():
    from platform_assets.releases import monitoring

    values = monitoring.chart_values(INV)["kubeEtcd"]
    assert values["endpoints"] == [SERVER.address]
    port = values["service"]["targetPort"]
    prometheus = Pod("monitoring", {APP_LABEL: "prometheus"})
    assert cluster(INV).allowed(prometheus, SERVER, port)
    assert not cluster(INV).allowed(Pod("monitoring", {APP_LABEL: "grafana"}), SERVER, port)
