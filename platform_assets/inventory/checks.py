"""Checks of the plan as a whole that types alone cannot see: nodes, the LAN, the MetalLB pool,
pod and service networks, DNS, trusted networks, SSH and K3s settings. Each yields (field path,
reason)."""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from platform_assets.inventory.models import (
    HOSTNAME_RE,
    UNIX_USER_RE,
    Inventory,
    Network,
    label_problem,
)

# K3s gives every node a /24 out of the pod network (kube-controller-manager node-cidr-mask-size).
NODE_POD_PREFIX = 24
# Kubernetes refuses a service network with more than 20 host bits.
MIN_SERVICE_PREFIX = 12
K3S_DISABLE_COMPONENTS = ("coredns", "servicelb", "traefik", "local-storage", "metrics-server")
# Networks a pod, service or LAN range must never sit on.
RESERVED_NETWORKS = {
    "loopback (127.0.0.0/8)": ipaddress.IPv4Network("127.0.0.0/8"),
    "link-local (169.254.0.0/16)": ipaddress.IPv4Network("169.254.0.0/16"),
    "multicast (224.0.0.0/4)": ipaddress.IPv4Network("224.0.0.0/4"),
    "'this network' (0.0.0.0/8)": ipaddress.IPv4Network("0.0.0.0/8"),
}


# The kubelet refuses to start with --node-labels in these namespaces, except the ones it
# manages itself (k8s.io/kubernetes pkg/kubelet/apis: KubeletLabels, KubeletLabelNamespaces);
# node-role.kubernetes.io/* is the one people try.
_KUBELET_RESERVED_SUFFIXES = ("kubernetes.io", "k8s.io")
_KUBELET_ALLOWED_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


_KUBELET_ALLOWED_LABELS = frozenset(
    {
        "kubernetes.io/hostname",
        "kubernetes.io/os",
        "kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/zone",
        "failure-domain.beta.kubernetes.io/region",
        "topology.kubernetes.io/zone",
        "topology.kubernetes.io/region",
    }
)


@dataclass(frozen=True)
class _Ranges:
    subnet: ipaddress.IPv4Network
    pods: ipaddress.IPv4Network
    services: ipaddress.IPv4Network


def check_plan(inv: Inventory) -> Iterable[tuple[str, str]]:
    """Everything the types alone cannot see; yields (field path, reason)."""
    net = inv.network
    subnet = ipaddress.IPv4Network(net.subnet)
    pods = ipaddress.IPv4Network(net.pod_cidr)
    services = ipaddress.IPv4Network(net.service_cidr)
    gateway = ipaddress.IPv4Address(net.gateway)
    pool_start = ipaddress.IPv4Address(net.metallb_pool.start)
    pool_end = ipaddress.IPv4Address(net.metallb_pool.end)

    yield from _check_nodes(inv, subnet, gateway)

    # The LAN itself.
    if subnet.prefixlen > 30:
        yield (
            "network.subnet",
            f"{subnet} is too small to hold {len(inv.nodes)} nodes and a gateway",
        )
    if gateway not in subnet:
        yield "network.gateway", f"{gateway} is outside network.subnet {subnet}"
    elif gateway in (subnet.network_address, subnet.broadcast_address):
        yield "network.gateway", f"{gateway} is the network or broadcast address of {subnet}"

    # The MetalLB pool: LAN addresses nobody else uses.
    if pool_start > pool_end:
        yield ("network.metallb_pool", f"start {pool_start} is after end {pool_end}; swap them")
    for key, addr in (("start", pool_start), ("end", pool_end)):
        if addr not in subnet:
            yield (
                f"network.metallb_pool.{key}",
                f"{addr} is outside network.subnet {subnet}; MetalLB (L2) answers ARP only "
                "for addresses on the nodes' LAN",
            )
        elif addr in (subnet.network_address, subnet.broadcast_address):
            yield (
                f"network.metallb_pool.{key}",
                f"{addr} is the network or broadcast address of {subnet}",
            )
    if pool_start <= pool_end:
        for i, node in enumerate(inv.nodes):
            if pool_start <= ipaddress.IPv4Address(node.address) <= pool_end:
                yield (
                    f"nodes[{i}].address",
                    f"{node.address} ({node.name}) lies inside network.metallb_pool "
                    f"{pool_start}-{pool_end}; MetalLB would hand it to a service",
                )
        if pool_start <= gateway <= pool_end:
            yield (
                "network.metallb_pool",
                f"{pool_start}-{pool_end} contains the gateway {gateway}",
            )
        for j, dns in enumerate(net.dns):
            if pool_start <= ipaddress.IPv4Address(dns) <= pool_end:
                yield (
                    f"network.dns[{j}]",
                    f"{dns} lies inside network.metallb_pool {pool_start}-{pool_end}",
                )
        if "servicelb" not in inv.k3s.disable:
            yield (
                "k3s.disable",
                "must contain 'servicelb': MetalLB hands out network.metallb_pool, and K3s's "
                "own ServiceLB would answer the same LoadBalancer services",
            )

    # Pod and service networks: not on the LAN, not on each other, big enough.
    ranges = _Ranges(subnet, pods, services)
    yield from _check_overlaps(ranges, net)
    if pods.prefixlen > NODE_POD_PREFIX:
        yield (
            "network.pod_cidr",
            f"{pods} is smaller than the /{NODE_POD_PREFIX} K3s gives each node; "
            f"use at least a /{NODE_POD_PREFIX - (len(inv.nodes) - 1).bit_length()}, "
            "e.g. 10.42.0.0/16",
        )
    else:
        per_node = 2 ** (NODE_POD_PREFIX - pods.prefixlen)
        if per_node < len(inv.nodes):
            yield (
                "network.pod_cidr",
                f"{pods} holds {per_node} node /{NODE_POD_PREFIX} networks but the inventory "
                f"has {len(inv.nodes)} nodes; use a larger one, e.g. 10.42.0.0/16",
            )
    if services.prefixlen < MIN_SERVICE_PREFIX:
        yield (
            "network.service_cidr",
            f"{services} is larger than Kubernetes allows (at most /{MIN_SERVICE_PREFIX})",
        )
    elif services.num_addresses < 16:
        yield (
            "network.service_cidr",
            f"{services} is too small: cluster DNS takes its 10th address",
        )
    for j, dns in enumerate(net.dns):
        addr = ipaddress.IPv4Address(dns)
        if addr in pods or addr in services:
            yield (
                f"network.dns[{j}]",
                f"{dns} lies inside the pod or service network; nodes could not reach it",
            )

    yield from _check_dns(inv, subnet)
    yield from _check_trusted(inv)
    yield from _check_ssh(inv)
    yield from _check_k3s(inv)


def _check_dns(inv: Inventory, subnet: ipaddress.IPv4Network):
    seen: dict[str, int] = {}
    loopback_lan = subnet.subnet_of(RESERVED_NETWORKS["loopback (127.0.0.0/8)"])
    for j, dns in enumerate(inv.network.dns):
        where = f"network.dns[{j}]"
        if dns in seen:
            yield where, f"{dns} is already listed as network.dns[{seen[dns]}]"
        seen.setdefault(dns, j)
        addr = ipaddress.IPv4Address(dns)
        if addr in (subnet.network_address, subnet.broadcast_address):
            yield where, f"{dns} is the network or broadcast address of {subnet}"
        elif addr.is_unspecified or addr == ipaddress.IPv4Address("255.255.255.255"):
            yield where, f"{dns} is not the address of a DNS server"
        elif addr.is_multicast or addr in RESERVED_NETWORKS["'this network' (0.0.0.0/8)"]:
            yield where, f"{dns} is not a unicast address"
        elif addr.is_loopback and not loopback_lan:
            # A resolver on the node's own loopback (systemd-resolved's 127.0.0.53) is not
            # reachable from pods: CoreDNS would forward to itself.
            yield (
                where,
                f"{dns} is a loopback address; pods cannot reach the node's own resolver, "
                "give the LAN's DNS server (often the gateway)",
            )


def _check_trusted(inv: Inventory):
    seen: dict[str, int] = {}
    for j, cidr in enumerate(inv.network.trusted_cidrs):
        where = f"network.trusted_cidrs[{j}]"
        if cidr in seen:
            yield where, f"{cidr} is already listed as network.trusted_cidrs[{seen[cidr]}]"
        seen.setdefault(cidr, j)
        net = ipaddress.IPv4Network(cidr)
        for label, reserved in RESERVED_NETWORKS.items():
            if net.overlaps(reserved):
                # 0.0.0.0/0 lands here: it would open SSH and the K3s API to everyone.
                yield (
                    where,
                    f"{cidr} overlaps the {label} range; list only the networks you "
                    "administer from (the firewall lets them reach SSH and the K3s API)",
                )
                break


def _check_ssh(inv: Inventory):
    if inv.ssh.private_key_path == inv.ssh.known_hosts_path:
        yield (
            "ssh.known_hosts_path",
            "is the same file as ssh.private_key_path; known_hosts holds the nodes' public "
            "host keys, the private key is yours",
        )


def _check_nodes(inv: Inventory, subnet: ipaddress.IPv4Network, gateway: ipaddress.IPv4Address):
    names: dict[str, int] = {}
    addresses: dict[str, int] = {}
    for i, node in enumerate(inv.nodes):
        where = f"nodes[{i}]"
        if not HOSTNAME_RE.fullmatch(node.name):
            yield (
                f"{where}.name",
                f"{node.name!r} is not a valid host name (lower-case letters, digits and "
                "'-', at most 63, not starting or ending with '-')",
            )
        elif node.name.isdigit():
            yield (
                f"{where}.name",
                f"{node.name!r} is only digits; tools read such a host name as an address",
            )
        if node.name in names:
            yield f"{where}.name", f"{node.name!r} is already used by nodes[{names[node.name]}]"
        names.setdefault(node.name, i)
        if node.address in addresses:
            yield (
                f"{where}.address",
                f"{node.address} is already used by nodes[{addresses[node.address]}] "
                f"({inv.nodes[addresses[node.address]].name})",
            )
        addresses.setdefault(node.address, i)
        addr = ipaddress.IPv4Address(node.address)
        if addr not in subnet:
            yield f"{where}.address", f"{node.address} is outside network.subnet {subnet}"
        elif addr in (subnet.network_address, subnet.broadcast_address):
            yield (
                f"{where}.address",
                f"{node.address} is the network or broadcast address of {subnet}",
            )
        if addr == gateway:
            yield f"{where}.address", f"{node.address} is the gateway's address"
        if not UNIX_USER_RE.fullmatch(node.ssh_user):
            yield f"{where}.ssh_user", f"{node.ssh_user!r} is not a valid user name"
        elif node.ssh_user == "root":
            yield (
                f"{where}.ssh_user",
                "'root' is refused: log in as a user with passwordless sudo (every step runs "
                "`sudo -n`), and keep root logins over SSH off",
            )
        for key, value in node.labels.items():
            problem = label_problem(key, value) or _kubelet_label_problem(key)
            if problem:
                yield f"{where}.labels.{key}", problem

    servers = [i for i, n in enumerate(inv.nodes) if n.role == "server"]
    if not servers:
        yield "nodes", "no node has role 'server'; exactly one K3s server is needed"
    elif len(servers) > 1:
        listed = ", ".join(f"nodes[{i}] ({inv.nodes[i].name})" for i in servers)
        yield (
            "nodes",
            f"{len(servers)} nodes have role 'server' ({listed}); this platform runs exactly "
            "one K3s server with embedded etcd (two servers halve availability: etcd needs "
            "a majority; three need memory the 8 GB Pis do not spare). Make the others "
            "agents",
        )


def _kubelet_label_problem(key: str) -> str | None:
    prefix = key.rpartition("/")[0]
    reserved = any(prefix == s or prefix.endswith("." + s) for s in _KUBELET_RESERVED_SUFFIXES)
    if not reserved or key in _KUBELET_ALLOWED_LABELS:
        return None
    if any(prefix == n or prefix.endswith("." + n) for n in _KUBELET_ALLOWED_NAMESPACES):
        return None
    return (
        f"{key!r} is in a namespace the kubelet may not set (kubernetes.io, k8s.io): K3s passes "
        "labels as --node-labels and the node would not start; use your own prefix, "
        "e.g. picluster.io/"
    )


def _check_overlaps(r: _Ranges, net: Network):
    named = (
        ("network.subnet", r.subnet),
        ("network.pod_cidr", r.pods),
        ("network.service_cidr", r.services),
    )
    for (a_name, a), (b_name, b) in (
        (named[1], named[0]),
        (named[2], named[0]),
        (named[2], named[1]),
    ):
        if a.overlaps(b):
            yield a_name, f"{a} overlaps {b_name} {b}; they must not share addresses"
    for field, network in named:
        for label, reserved in RESERVED_NETWORKS.items():
            # A loopback "LAN" is how the fake-Pi cluster runs on one machine (127.0.0.11-14);
            # pods and services on loopback would break every node.
            if field == "network.subnet" and label.startswith("loopback"):
                continue
            if network.overlaps(reserved):
                yield field, f"{network} overlaps the {label} range"


def _check_k3s(inv: Inventory):
    if not inv.k3s.cluster_init:
        yield (
            "k3s.cluster_init",
            "must be true: the platform's backups take K3s etcd snapshots, which need "
            "embedded etcd",
        )
    seen: set[str] = set()
    for j, item in enumerate(inv.k3s.disable):
        if item not in K3S_DISABLE_COMPONENTS:
            yield (
                f"k3s.disable[{j}]",
                f"{item!r} is not a K3s packaged component; expected one of "
                f"{', '.join(K3S_DISABLE_COMPONENTS)}",
            )
        if item in seen:
            yield f"k3s.disable[{j}]", f"{item!r} is listed twice"
        seen.add(item)
    if "coredns" in inv.k3s.disable:
        yield (
            "k3s.disable",
            "'coredns' cannot be disabled here: the platform's services find each other "
            "through cluster DNS",
        )
