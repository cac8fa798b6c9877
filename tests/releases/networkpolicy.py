"""A small evaluator of Kubernetes NetworkPolicy semantics (networking.k8s.io/v1), written from
the API reference, independent of how platform_assets.releases.zones renders its policies.

Semantics kept: a pod is isolated for a direction when any policy selecting it lists that
direction in policyTypes; an isolated pod allows a connection when any rule of any selecting
policy matches it (rules are additive, never subtract). A connection needs both the source's
egress and the destination's ingress. A peer with only podSelector means pods of the policy's
namespace; with namespaceSelector (and optionally podSelector) pods of the selected namespaces;
ipBlock matches addresses (cidr minus except) and, as in the reference, is meant for traffic
outside the pod network, so it never matches a pod here. A rule without `from`/`to` matches
every peer, without `ports` every port; a port without protocol is TCP. Not modelled: named
ports and endPort (the zones use neither), and what CNIs add (node-local traffic is always
allowed by the implementations).
"""

import ipaddress
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Pod:
    namespace: str
    labels: dict = field(default_factory=dict, hash=False)

    def __hash__(self):
        return hash((self.namespace, tuple(sorted(self.labels.items()))))


@dataclass(frozen=True)
class Host:
    """An address outside the pod network (a LAN machine, a node, the internet)."""

    address: str


def _expression_matches(expr: dict, labels: dict) -> bool:
    key, op, values = expr["key"], expr["operator"], expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    raise ValueError(f"unknown selector operator {op}")


def selector_matches(selector: dict | None, labels: dict) -> bool:
    """A label selector; {} matches everything (a missing selector is the caller's business)."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions") or [])


class Cluster:
    def __init__(self, policies: list[dict], namespace_labels: dict[str, dict]):
        self.policies = policies
        # What the API server sets on every namespace, plus whatever labels it was given.
        self.namespace_labels = {
            ns: {"kubernetes.io/metadata.name": ns, **labels}
            for ns, labels in namespace_labels.items()
        }

    def _selecting(self, pod: Pod, direction: str) -> list[dict]:
        return [
            p
            for p in self.policies
            if p["metadata"]["namespace"] == pod.namespace
            and direction in p["spec"].get("policyTypes", ["Ingress"])
            and selector_matches(p["spec"].get("podSelector"), pod.labels)
        ]

    def _peer_matches(self, peer: dict, policy_namespace: str, other) -> bool:
        if "ipBlock" in peer:
            if not isinstance(other, Host):
                return False
            address = ipaddress.ip_address(other.address)
            block = peer["ipBlock"]
            if address not in ipaddress.ip_network(block["cidr"]):
                return False
            return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
        if not isinstance(other, Pod):
            return False
        if "namespaceSelector" in peer:
            labels = self.namespace_labels.get(other.namespace)
            if labels is None or not selector_matches(peer["namespaceSelector"], labels):
                return False
        elif other.namespace != policy_namespace:
            return False
        return "podSelector" not in peer or selector_matches(peer["podSelector"], other.labels)

    @staticmethod
    def _port_matches(rule: dict, port: int, protocol: str) -> bool:
        ports = rule.get("ports")
        if not ports:
            return True
        return any(
            p.get("protocol", "TCP") == protocol and ("port" not in p or p["port"] == port)
            for p in ports
        )

    def _allows(self, pod: Pod, direction: str, other, port: int, protocol: str) -> bool:
        policies = self._selecting(pod, direction)
        if not policies:
            return True  # not isolated in this direction
        key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
        for policy in policies:
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if peers and not any(
                    self._peer_matches(p, policy["metadata"]["namespace"], other) for p in peers
                ):
                    continue
                if self._port_matches(rule, port, protocol):
                    return True
        return False

    def allowed(self, source, destination, port: int, protocol: str = "TCP") -> bool:
        """Whether a connection from `source` to `destination:port` gets through."""
        if isinstance(source, Pod) and not self._allows(
            source, "Egress", destination, port, protocol
        ):
            return False
        return not isinstance(destination, Pod) or self._allows(
            destination, "Ingress", source, port, protocol
        )
