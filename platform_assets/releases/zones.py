"""Network zones: which namespace sits in which zone, and every flow the platform needs, as one
table from which the `network_zones` release renders its NetworkPolicies.

| zone | namespaces | reachable from |
| --- | --- | --- |
| dmz | gateway | the LAN, on the gateway's TLS port only |
| internal | storage, query, dagster, notebooks, nifi, monitoring, logging | the flows listed |
| restricted | databases, secrets | only the named internal services in FLOWS |

Every namespace of a zone gets a default-deny policy (ingress and egress), an allow for its own
pods among themselves (the parts of one release talk to each other), DNS, and then exactly the
flows of FLOWS that start or end there. The system namespaces (kube-system, metallb-system,
cert-manager, cnpg-system) are in no zone: their operators reach every namespace's API objects,
not its pods, except where a flow below names them.

Namespaces are selected by `kubernetes.io/metadata.name`, the label the API server sets on every
namespace itself, so zone membership lives only here and no label can be forged onto a namespace
by whoever may edit it. The chart also creates the zones' namespaces (kept on uninstall), so the
default-deny is in place before any release's pod starts.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from platform_assets.inventory import Inventory
from platform_assets.releases.spec import Chart, Release

NAME_LABEL = "kubernetes.io/metadata.name"
APP_LABEL = "app.kubernetes.io/name"
ZONE_LABEL = "picluster.io/network-zone"

DMZ, INTERNAL, RESTRICTED = "dmz", "internal", "restricted"
NAMESPACE_ZONES = {
    "gateway": DMZ,
    "storage": INTERNAL,
    "query": INTERNAL,
    "dagster": INTERNAL,
    "notebooks": INTERNAL,
    "nifi": INTERNAL,
    "monitoring": INTERNAL,
    "logging": INTERNAL,
    "databases": RESTRICTED,
    "secrets": RESTRICTED,
}
# Endpoints outside the pod network (ipBlocks, rendered from the inventory).
LAN = "lan"  # the inventory's network.subnet: people, sensors, the NAS, the nodes
KUBE_API = "kube-api"  # the K3s server's address, port 6443 (what 10.43.0.1:443 resolves to)
INTERNET = "internet"  # anything outside the cluster's own ranges (the OIDC provider)
OUTSIDE = (LAN, KUBE_API, INTERNET)
# Namespaces in no zone that a flow names (their pods are not isolated by these policies).
SYSTEM = ("cnpg-system",)
DNS_PORTS = ((53, "UDP"), (53, "TCP"))

TCP = "TCP"


@dataclass(frozen=True)
class Endpoint:
    """A namespace (all its pods when `app` is empty) or one of OUTSIDE."""

    namespace: str
    app: str = ""

    @property
    def outside(self) -> bool:
        return self.namespace in OUTSIDE

    @property
    def policed(self) -> bool:
        return self.namespace in NAMESPACE_ZONES

    def __str__(self) -> str:
        return f"{self.namespace}/{self.app}" if self.app else self.namespace


@dataclass(frozen=True)
class Flow:
    source: Endpoint
    destination: Endpoint
    ports: tuple[int, ...]  # TCP; empty: every port
    why: str
    only_with_nifi: bool = False


def _e(text: str) -> Endpoint:
    namespace, _, app = text.partition("/")
    return Endpoint(namespace, app)


def _f(source: str, destination: str, ports: Iterable[int], why: str, nifi=False) -> Flow:
    return Flow(_e(source), _e(destination), tuple(ports), why, nifi)


# Service names and ports as the releases render them (catalogue.py, dagster.py, the access
# releases); a port a chart chooses itself is the chart's default, see docs/zones.md.
FLOWS = (
    # The LAN: people through the gateway; sensors and the laptop to the S3 endpoint.
    _f(LAN, "gateway/oauth2-proxy", [4443], "people reach every UI only through the gateway"),
    _f(LAN, "storage/seaweedfs", [8333], "sensor uploads to landing/ and the laptop's Dagster"),
    # The gateway's upstreams and its identity provider.
    _f("gateway/oauth2-proxy", INTERNET, [443], "the OIDC provider (discovery, tokens)"),
    _f("gateway/oauth2-proxy", LAN, [443], "the OIDC provider, when it is on the LAN"),
    _f("gateway/oauth2-proxy", "monitoring/grafana", [3000], "dashboards (HTTPS)"),
    # The Dagster chart labels both webservers (and its daemon, which listens on nothing)
    # app.kubernetes.io/name=dagster and tells them apart by `component` only.
    _f("gateway/oauth2-proxy", "dagster/dagster", [443], "Dagster, both webservers (HTTPS)"),
    _f("gateway/oauth2-proxy", "notebooks/jupyterlab", [8888], "JupyterLab (HTTPS)"),
    _f("gateway/oauth2-proxy", "query/trino", [8443], "Trino's web UI (HTTPS)"),
    _f("gateway/oauth2-proxy", "nifi/nifi", [8443], "NiFi's UI", nifi=True),
    _f("gateway/oauth2-proxy", "secrets/openbao", [8200], "the agent fetches the OIDC secret"),
    # Queries.
    _f("notebooks/jupyterlab", "query/trino", [8080], "notebooks query the warehouse"),
    _f("dagster", "query/trino", [8080], "the warehouse resource"),
    _f("nifi/nifi", "query/trino", [8080], "flows write to the warehouse", nifi=True),
    _f("nifi/nifi", "storage/seaweedfs", [8333], "flows land files", nifi=True),
    _f("query", "storage/seaweedfs", [8333], "Trino and the metastore read and write tables"),
    _f("dagster", "storage/seaweedfs", [8333], "landing, curation, compute logs, backups"),
    _f("dagster", "monitoring/pushgateway", [9091], "asset-check results for the alerts"),
    _f("monitoring/grafana", "logging/loki", [3100], "logs in the dashboards"),
    _f("monitoring/grafana", INTERNET, [443], "the OIDC provider's keys (jwk_set_url)"),
    _f("monitoring/grafana", LAN, [443], "the OIDC provider's keys, when it is on the LAN"),
    # The restricted zone: each client named.
    _f("query/metastore", "databases/pg-main", [5432], "the metastore's database"),
    _f("dagster", "databases/pg-main", [5432], "Dagster's storage, the ledger, the dumps"),
    _f("cnpg-system", "databases/pg-main", [8000, 5432], "the CloudNativePG operator"),
    # The Kubernetes API, for what watches or changes the cluster.
    _f("dagster", KUBE_API, [6443], "run launcher, releases, drains"),
    _f("databases/pg-main", KUBE_API, [6443], "CloudNativePG's instance manager"),
    _f("secrets/openbao", KUBE_API, [6443], "TokenReview for the kubernetes auth method"),
    _f(KUBE_API, "secrets/openbao-agent-injector", [8080], "the injector's admission webhook"),
    _f("secrets/openbao", INTERNET, [443], "the OIDC provider, for people logging in"),
    _f("secrets/openbao", LAN, [443], "the OIDC provider, when it is on the LAN"),
    _f("monitoring", KUBE_API, [6443], "service discovery, kube-state-metrics"),
    _f(
        "monitoring/prometheus",
        LAN,
        [2381, 9100, 10250],
        "the servers' etcd metrics, node_exporter, kubelets (host network)",
    ),
    _f("logging", KUBE_API, [6443], "the log agent's pod metadata"),
    # The alert receiver (alert_receiver.py): a webhook, or SMTP (465 TLS, 587 STARTTLS; 25
    # and plain HTTP only to a relay or a bridge on the LAN).
    _f("monitoring/alertmanager", INTERNET, [443, 465, 587], "alerts to the webhook or mail"),
    _f("monitoring/alertmanager", LAN, [25, 80, 443, 465, 587], "alerts to a LAN hook or relay"),
    # Dagster manages the nodes and mirrors backups off the cluster.
    _f("dagster", LAN, [22, 443], "SSH to the nodes; the backup mirror (a NAS on 443)"),
    # Metrics: Prometheus scrapes every zone; in the restricted one only the metrics ports.
    _f("monitoring/prometheus", "databases/pg-main", [9187], "PostgreSQL metrics"),
    _f("monitoring/prometheus", "secrets/openbao", [8200], "OpenBao's /v1/sys/metrics"),
    *(
        _f("monitoring/prometheus", namespace, [], "metrics scrape", nifi=namespace == "nifi")
        for namespace, zone in NAMESPACE_ZONES.items()
        if zone != RESTRICTED and namespace != "monitoring"
    ),
)


def namespaces(inv: Inventory) -> list[str]:
    """The policed namespaces for this inventory (nifi's only when it is switched on)."""
    return [ns for ns in NAMESPACE_ZONES if ns != "nifi" or inv.nifi]


def flows(inv: Inventory) -> list[Flow]:
    return [f for f in FLOWS if inv.nifi or not f.only_with_nifi]


# --- rendering ---------------------------------------------------------------------------------


def _pod_selector(app: str) -> dict:
    return {"matchLabels": {APP_LABEL: app}} if app else {}


def _peer(end: Endpoint, inv: Inventory) -> dict:
    if end.namespace == LAN:
        return {"ipBlock": {"cidr": inv.network.subnet}}
    if end.namespace == KUBE_API:
        return {"ipBlock": {"cidr": f"{inv.server.address}/32"}}
    if end.namespace == INTERNET:
        return {
            "ipBlock": {
                "cidr": "0.0.0.0/0",
                "except": [inv.network.subnet, inv.network.pod_cidr, inv.network.service_cidr],
            }
        }
    peer: dict = {"namespaceSelector": {"matchLabels": {NAME_LABEL: end.namespace}}}
    if end.app:
        peer["podSelector"] = _pod_selector(end.app)
    return peer


def _ports(ports: Iterable[int]) -> list[dict]:
    return [{"protocol": TCP, "port": p} for p in ports]


def _rule(peer_key: str, peer: dict, ports: tuple[int, ...]) -> dict:
    rule: dict = {peer_key: [peer]}
    if ports:
        rule["ports"] = _ports(ports)
    return rule


def _policy(name: str, namespace: str, app: str, ingress=None, egress=None) -> dict:
    # An empty rule list is sent as no key: the API server drops empty lists (omitempty), and
    # what is sent must be what is stored. Listed in policyTypes with no rules: deny all.
    spec: dict = {"podSelector": _pod_selector(app), "policyTypes": []}
    if ingress is not None:
        spec["policyTypes"].append("Ingress")
        if ingress:
            spec["ingress"] = ingress
    if egress is not None:
        spec["policyTypes"].append("Egress")
        if egress:
            spec["egress"] = egress
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {ZONE_LABEL: NAMESPACE_ZONES[namespace]},
        },
        "spec": spec,
    }


def _slug(end: Endpoint) -> str:
    return f"{end.namespace}-{end.app}" if end.app else end.namespace


def network_policies(inv: Inventory) -> list[dict]:
    """Every NetworkPolicy of the zones, in a stable order."""
    out: list[dict] = []
    table = flows(inv)
    for namespace in namespaces(inv):
        out.append(_policy("default-deny", namespace, "", ingress=[], egress=[]))
        same = {"podSelector": {}}  # a peer without namespaceSelector: this namespace's pods
        out.append(
            _policy(
                "same-namespace",
                namespace,
                "",
                ingress=[{"from": [same]}],
                egress=[{"to": [same]}],
            )
        )
        dns = {
            "namespaceSelector": {"matchLabels": {NAME_LABEL: "kube-system"}},
            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
        }
        out.append(
            _policy(
                "dns",
                namespace,
                "",
                egress=[{"to": [dns], "ports": [{"protocol": p, "port": n} for n, p in DNS_PORTS]}],
            )
        )
        for f in table:
            if f.destination.namespace == namespace and f.source.namespace != namespace:
                out.append(
                    _policy(
                        f"from-{_slug(f.source)}-to-{f.destination.app or 'all'}",
                        namespace,
                        f.destination.app,
                        ingress=[_rule("from", _peer(f.source, inv), f.ports)],
                    )
                )
            if f.source.namespace == namespace and f.destination.namespace != namespace:
                out.append(
                    _policy(
                        f"{f.source.app or 'all'}-to-{_slug(f.destination)}",
                        namespace,
                        f.source.app,
                        egress=[_rule("to", _peer(f.destination, inv), f.ports)],
                    )
                )
    names = [(p["metadata"]["namespace"], p["metadata"]["name"]) for p in out]
    assert len(names) == len(set(names)), "two flows render to the same policy name"
    return out


def namespace_manifests(inv: Inventory) -> list[dict]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": namespace,
                "labels": {ZONE_LABEL: NAMESPACE_ZONES[namespace]},
                # Deleting the zones release must never delete a namespace and its data.
                "annotations": {"helm.sh/resource-policy": "keep"},
            },
        }
        for namespace in namespaces(inv)
    ]


def network_zones(inv: Inventory) -> Release:
    return Release(
        name="network_zones",
        namespace="kube-system",
        description="Network zones (dmz, internal, restricted): the zones' namespaces, and in "
        "each a default-deny NetworkPolicy plus exactly the flows of the zones table "
        "(docs/zones.md). Applied first, so no pod ever starts unisolated.",
        charts=(
            Chart(
                name="network-zones",
                manifests=(*namespace_manifests(inv), *network_policies(inv)),
            ),
        ),
        workloads=(),
    )
