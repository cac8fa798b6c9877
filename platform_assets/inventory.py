"""The inventory: the nodes, the network plan, K3s and SSH settings, validated before anything runs.

`load_inventory(path)` parses the YAML file into `Inventory` (pydantic: types, ranges, unknown
keys) and then checks the plan as a whole (addresses inside the subnet, no overlaps between the
LAN, the MetalLB pool, the pod and service networks, one K3s server, memory per node). Every
problem is reported at once as `InventoryError`, one line per problem, each naming the file and
the field path: `inventory.yaml: nodes[2].address: 192.168.0.300 is not an IPv4 address`.

`inventory.schema.json` is generated from these models (`python -m platform_assets.inventory
--schema`), so editors can check the file as it is typed.
"""

import ipaddress
import json
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

# K3s resource profiling (docs.k3s.io/reference/resource-profiling): a server with its own
# workload needs about 1.6 GB, an agent about 0.3 GB. The OS itself keeps some more.
K3S_SERVER_MIB = 1600
K3S_AGENT_MIB = 300
OS_RESERVED_MIB = 512
# What stays free on a node after everything placed there: the Pi has no swap once prepared, so
# the OOM killer is the only thing between a burst and a lost node.
HEADROOM_FRACTION = 0.20
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

# Patterns are used with fullmatch: `$` alone would let a trailing newline through (a YAML
# block scalar `name: |` ends in one), and that newline would reach K3s's config and the URLs.
_HOSTNAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_UNIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_K3S_VERSION = re.compile(r"v\d+\.\d+\.\d+\+k3s\d+")
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# What a join token looks like (K10<hex>::server:<password>, or `openssl rand -hex 32`): such a
# value in token_env is the secret itself, pasted where its variable's name belongs.
_TOKEN_LIKE = re.compile(r"K10[0-9a-fA-F]{16,}.*|.*::.*|[0-9a-fA-F]{24,}", re.DOTALL)
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
_LABEL_PREFIX = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?")
# Dotted quad with a plain prefix length: K3s (Go's net.ParseCIDR) and nft take only this form,
# not Python's netmask form (192.168.0.0/255.255.255.0) nor a zero-padded prefix (/024).
_CIDR_FORM = re.compile(r"[0-9.]+/(0|[1-9][0-9]?)")
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
# A Pi 5 has at most 16 GB; more in a node's or a workload's memory_mib is a typo.
MAX_MEMORY_MIB = 16384
# Where K3s's data (etcd) must not live: tmpfs or kernel file systems lose it at reboot,
# systemd-tmpfiles cleans /var/tmp, and /boot is the firmware's. Only compared, never written.
_DATA_DIR_FORBIDDEN = ("/tmp", "/run", "/proc", "/sys", "/dev", "/boot", "/var/tmp")  # noqa: S108
# An inventory of a few Pis is a few KB; a bigger file (or YAML aliases expanding to more
# values) is a mistake or an attack, and must not hang the code location's load.
MAX_FILE_BYTES = 1 << 20
MAX_VALUES = 100_000


class InventoryError(ValueError):
    """The inventory cannot work. One line per problem: `<file>: <field path>: <reason>`."""

    def __init__(self, source: str, problems: list[tuple[str, str]]):
        self.source = source
        self.problems = problems
        lines = [
            f"{source}: {path}: {reason}" if path else f"{source}: {reason}"
            for path, reason in problems
        ]
        super().__init__("\n".join(lines))


def _shown(value: str) -> str:
    # Quoted only when quotes show something (a space, a newline) the plain text would hide.
    return value if value.isprintable() and value.strip() == value and value else repr(value)


def _check_ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        hint = ""
        if "/" in value:
            hint = "; give the address alone, without a prefix length"
        elif ":" in value and "." in value:
            hint = "; give the address alone, without a port (ssh_port sets that)"
        elif re.fullmatch(r"[0-9.]+", value) and re.search(r"(^|\.)0[0-9]", value):
            hint = "; leading zeros are ambiguous (octal to some tools), write e.g. 192.168.0.120"
        raise ValueError(f"{_shown(value)} is not an IPv4 address{hint}") from None
    return value


IPv4Address = Annotated[str, AfterValidator(_check_ipv4)]


def _check_network(value: str) -> str:
    try:
        ipaddress.IPv4Network(value, strict=True)
    except ipaddress.NetmaskValueError as exc:
        raise ValueError(f"{value} is not an IPv4 network ({exc})") from None
    except ValueError as exc:
        if "has host bits set" in str(exc):
            net = ipaddress.IPv4Network(value, strict=False)
            raise ValueError(f"{value} has host bits set; did you mean {net}?") from None
        raise ValueError(f"{value} is not an IPv4 network in CIDR form (a.b.c.d/n)") from None
    if "/" not in value:
        raise ValueError(f"{value} needs a prefix length, e.g. {value}/24")
    if not _CIDR_FORM.fullmatch(value):
        net = ipaddress.IPv4Network(value)
        raise ValueError(f"{value} must be written as a.b.c.d/n; did you mean {net}?")
    return value


IPv4Network = Annotated[str, AfterValidator(_check_network)]


class _Strict(BaseModel):
    # A typo in a key ("adress") is an error, not a silently ignored field. Strict types: YAML
    # already gives numbers and booleans their types, so "22" or "yes" in quotes is a mistake
    # (and lax mode would read `ssh_port: true` as port 1).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Node(_Strict):
    """One Raspberry Pi."""

    name: str = Field(description="Host name the node gets (RFC 1123 label, lower case).")
    address: str = Field(description="The node's fixed IPv4 address on the LAN.")
    role: Literal["server", "agent"] = Field(description="K3s role.")
    ssh_user: str = Field(description="User SSH logs in as; needs passwordless sudo.")
    ssh_port: int = Field(22, ge=1, le=65535)
    labels: dict[str, str] = Field(
        default_factory=dict, description="Kubernetes node labels; workloads are placed by them."
    )
    memory_mib: int = Field(
        8192, ge=1024, le=MAX_MEMORY_MIB, description="Installed RAM (a Pi 5 8 GB: 8192)."
    )

    @field_validator("address")
    @classmethod
    def _ipv4(cls, value: str) -> str:
        return _check_ipv4(value)


class MetalLbPool(_Strict):
    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _ipv4(cls, value: str) -> str:
        return _check_ipv4(value)


class Network(_Strict):
    """The LAN the nodes sit on and the networks K3s creates on top of it."""

    subnet: str = Field(description="The LAN, e.g. 192.168.0.0/24.")
    gateway: str
    dns: list[IPv4Address] = Field(min_length=1)
    metallb_pool: MetalLbPool = Field(description="LoadBalancer addresses MetalLB hands out.")
    pod_cidr: str = Field("10.42.0.0/16", description="K3s cluster-cidr; a /24 per node.")
    service_cidr: str = Field("10.43.0.0/16", description="K3s service-cidr.")

    trusted_cidrs: list[IPv4Network] = Field(
        default_factory=list,
        description="Networks besides the LAN allowed to reach SSH, the web ports and the K3s "
        "API through the nodes' firewall (e.g. a VPN you administer from).",
    )

    @field_validator("subnet", "pod_cidr", "service_cidr")
    @classmethod
    def _network(cls, value: str) -> str:
        return _check_network(value)

    @field_validator("gateway")
    @classmethod
    def _ipv4(cls, value: str) -> str:
        return _check_ipv4(value)


class K3s(_Strict):
    """K3s settings shared by every node."""

    version: str = Field(description="Pinned K3s release, e.g. v1.34.4+k3s1.")
    cluster_init: bool = Field(True, description="Embedded etcd (needed for etcd snapshots).")
    disable: list[str] = Field(default_factory=lambda: ["traefik", "servicelb"])
    data_dir: str = Field("/var/lib/rancher/k3s")
    token_env: str = Field(description="NAME of the environment variable holding the join token.")

    @field_validator("version")
    @classmethod
    def _version(cls, value: str) -> str:
        if not _K3S_VERSION.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a pinned K3s release; expected the form v1.34.4+k3s1"
            )
        return value

    @field_validator("token_env")
    @classmethod
    def _env(cls, value: str) -> str:
        # The value is never repeated in the message: it may be the token itself.
        if _TOKEN_LIKE.fullmatch(value):
            raise ValueError(
                "looks like a join token (value not shown); put the NAME of the variable "
                "holding it here (e.g. PICLUSTER_K3S_TOKEN), never the token itself; remove "
                "it from the file and rotate the token"
            )
        if not _ENV_NAME.fullmatch(value):
            raise ValueError(
                "is not an environment variable name (upper case, digits, _; value not "
                "shown); put the NAME of the variable here, never the token itself"
            )
        return value

    @field_validator("data_dir")
    @classmethod
    def _abs(cls, value: str) -> str:
        if not value.startswith("/") or not value.isprintable():
            raise ValueError(f"{value!r} is not an absolute path")
        normal = os.path.normpath(value)
        if normal == "/":
            raise ValueError(
                f"{value!r} would put K3s's data (etcd) over the whole root file system"
            )
        if normal != value.rstrip("/") or value.startswith("//"):
            raise ValueError(f"{value!r} is not a plain path; write {normal}")
        for forbidden in _DATA_DIR_FORBIDDEN:
            if normal == forbidden or normal.startswith(forbidden + "/"):
                raise ValueError(
                    f"{value!r} is under {forbidden} (temporary or system file system): "
                    "etcd's data would be lost at reboot or mixed with the OS"
                )
        return value


class Ssh(_Strict):
    """How the platform reaches the nodes."""

    private_key_path: str = Field(
        description="Private key file; relative paths are relative to the inventory file."
    )
    known_hosts_path: str = Field(
        description="known_hosts file; relative paths are relative to the inventory file."
    )
    connect_timeout_s: float = Field(10.0, gt=0, le=300)
    command_timeout_s: float = Field(300.0, gt=0, le=3600)
    max_parallel: int = Field(4, ge=1, le=64)

    @field_validator("private_key_path", "known_hosts_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if "PRIVATE KEY" in value or "\n" in value:
            # A key pasted into the file: never repeat it.
            raise ValueError(
                "holds key material, not a path (value not shown); remove it from the file, "
                "treat the key as exposed, and give the path of the key file"
            )
        if not value.strip() or not value.isprintable():
            raise ValueError(f"{value!r} is not a file path")
        return value


class Workload(_Strict):
    """Memory a release will ask for on the nodes its selector matches (for the capacity plan)."""

    name: str = Field(description="Release name (RFC 1123 label, lower case).")
    memory_mib: int = Field(ge=1, le=MAX_MEMORY_MIB)
    node_selector: dict[str, str] = Field(min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _HOSTNAME.fullmatch(value):
            raise ValueError(
                f"{value!r} is not a valid release name (lower-case letters, digits and '-', "
                "at most 63, not starting or ending with '-')"
            )
        return value


class Inventory(_Strict):
    """The whole plan for the cluster."""

    nodes: list[Node] = Field(min_length=1)
    network: Network
    k3s: K3s
    ssh: Ssh
    workloads: list[Workload] = Field(default_factory=list)

    @property
    def server(self) -> Node:
        return next(n for n in self.nodes if n.role == "server")

    @property
    def agents(self) -> list[Node]:
        return [n for n in self.nodes if n.role == "agent"]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node named {name!r} in the inventory")

    def workloads_on(self, node: Node) -> list[Workload]:
        return [w for w in self.workloads if _matches(w.node_selector, node.labels)]


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# --- loading -----------------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML would keep the last one
    silently, e.g. a node with two `address:` lines). Merge keys (`<<: *defaults`) still work:
    a key written next to them overrides the merged one, as YAML says."""

    def construct_mapping(self, node, deep=False):
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                ) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(exc: yaml.YAMLError, text: str) -> tuple[str, str]:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        where = f"line {mark.line + 1}, column {mark.column + 1}"
    elif isinstance(exc, yaml.reader.ReaderError):
        # The reader reports a character offset only.
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        where = f"line {line}, column {column}"
        char = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return where, f"not valid YAML: character #x{char:04x} is not allowed in YAML text"
    else:
        where = ""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return where, f"not valid YAML: {context + ': ' if context else ''}{problem}"


def _count_values(data: object, limit: int) -> int:
    """Values in the parsed document, aliases counted each time they are used; stops at limit."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def load_inventory(path: str | Path) -> Inventory:
    """Reads, parses and validates the inventory file; raises `InventoryError` on any problem.

    Relative SSH key and known_hosts paths are resolved against the file's folder.
    """
    path = Path(path)
    source = path.name
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InventoryError(
            str(path),
            [
                (
                    "",
                    "file not found; copy inventory.example.yaml and set "
                    "PICLUSTER_INVENTORY to its path",
                )
            ],
        ) from None
    except OSError as exc:
        raise InventoryError(str(path), [("", f"cannot be read: {exc.strerror}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise InventoryError(
            source, [("", f"is larger than {MAX_FILE_BYTES // 1024} KiB; not an inventory")]
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise InventoryError(
            source,
            [
                (
                    f"line {line}",
                    f"is not UTF-8 text (byte 0x{raw[exc.start]:02x}); save it as UTF-8",
                )
            ],
        ) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise InventoryError(source, [_yaml_problem(exc, text)]) from None
    except RecursionError:
        raise InventoryError(source, [("", "not valid YAML: nested too deeply")]) from None
    if _count_values(data, MAX_VALUES) > MAX_VALUES:
        raise InventoryError(
            source,
            [("", f"holds more than {MAX_VALUES} values once YAML aliases are expanded")],
        )
    inventory = parse_inventory(data, source=source)
    return _resolve_paths(inventory, path.parent)


def parse_inventory(data: object, source: str = "inventory.yaml") -> Inventory:
    """Validates an already-parsed mapping (as YAML gives it)."""
    if not isinstance(data, dict):
        raise InventoryError(source, [("", "expected a mapping with nodes, network, k3s, ssh")])
    try:
        inventory = Inventory.model_validate(data)
    except ValidationError as exc:
        raise InventoryError(source, [_pydantic_problem(e) for e in exc.errors()]) from None
    problems = list(check_plan(inventory))
    if problems:
        raise InventoryError(source, problems)
    return inventory


def _resolve_paths(inventory: Inventory, base: Path) -> Inventory:
    ssh = inventory.ssh
    resolved = {
        key: str((base / Path(value).expanduser()).resolve())
        if not Path(value).expanduser().is_absolute()
        else str(Path(value).expanduser())
        for key, value in (
            ("private_key_path", ssh.private_key_path),
            ("known_hosts_path", ssh.known_hosts_path),
        )
    }
    return inventory.model_copy(update={"ssh": ssh.model_copy(update=resolved)})


def _field_path(loc: Iterable[object]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _got(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# Fields whose value may be a secret pasted in the wrong place: never repeated in a message.
_SECRET_FIELDS = ("k3s.token_env", "ssh.private_key_path")


def _pydantic_problem(error: dict) -> tuple[str, str]:
    raw_loc = list(error["loc"])
    kind = error["type"]
    if "[key]" in raw_loc or kind == "invalid_key":
        # A key that is not text, e.g. `1: x` or an unquoted `true:` label key.
        key = raw_loc[raw_loc.index("[key]") - 1] if "[key]" in raw_loc else raw_loc[-1]
        parent = raw_loc[: raw_loc.index("[key]") - 1] if "[key]" in raw_loc else raw_loc[:-1]
        loc = [p for p in parent if not (isinstance(p, str) and "[" in p)]
        return _field_path(loc), f"key {key!r} must be text; put it in quotes"
    # Drop pydantic's internal location parts (e.g. the 'function-after' wrapper names).
    loc = [p for p in raw_loc if not (isinstance(p, str) and "[" in p)]
    path = _field_path(loc)
    value = error.get("input")
    got = "" if path.startswith(_SECRET_FIELDS) else f" (got {_got(value)})"
    if kind == "value_error":
        message = str(error["ctx"]["error"]) if "ctx" in error else error["msg"]
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        # The value is not repeated: a misplaced key may hold a secret (`token: ...`).
        message = "unknown key; check the spelling and the indentation"
    elif kind == "literal_error":
        message = f"{_got(value)} is not allowed; {error['msg'].lower()}"
    elif kind == "string_type" and isinstance(value, bool | int | float) and got:
        message = (
            f"must be text, but YAML read {_got(value)} as "
            f"{'true/false' if isinstance(value, bool) else 'a number'}; put it in quotes"
        )
    elif kind in ("int_type", "float_type", "bool_type") and isinstance(value, str):
        expected = {"int_type": "a number", "float_type": "a number", "bool_type": "true or false"}
        message = f"must be {expected[kind]} without quotes{got}"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = f"expected a mapping (key: value lines){got}"
    elif kind == "list_type":
        message = f"expected a list, e.g. [a, b] or '- ' lines{got}"
    else:
        message = f"{error['msg']}{got}"
    return path, message


# --- the plan as a whole -----------------------------------------------------------------------


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
    yield from _check_capacity(inv)


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
        if not _HOSTNAME.fullmatch(node.name):
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
        if not _UNIX_USER.fullmatch(node.ssh_user):
            yield f"{where}.ssh_user", f"{node.ssh_user!r} is not a valid user name"
        elif node.ssh_user == "root":
            yield (
                f"{where}.ssh_user",
                "'root' is refused: log in as a user with passwordless sudo (every step runs "
                "`sudo -n`), and keep root logins over SSH off",
            )
        for key, value in node.labels.items():
            problem = _label_problem(key, value) or _kubelet_label_problem(key)
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


def _label_problem(key: str, value: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))) or not (
        name and _LABEL_NAME.fullmatch(name)
    ):
        return f"{key!r} is not a valid Kubernetes label key"
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        return f"{value!r} is not a valid Kubernetes label value (at most 63 of A-Za-z0-9-_.)"
    return None


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


def _check_capacity(inv: Inventory):
    names: dict[str, int] = {}
    for j, workload in enumerate(inv.workloads):
        if workload.name in names:
            yield (
                f"workloads[{j}].name",
                f"{workload.name!r} is already used by workloads[{names[workload.name]}]",
            )
        names.setdefault(workload.name, j)
    for j, workload in enumerate(inv.workloads):
        for key, value in workload.node_selector.items():
            problem = _label_problem(key, value)
            if problem:
                yield f"workloads[{j}].node_selector.{key}", problem
        if not any(_matches(workload.node_selector, n.labels) for n in inv.nodes):
            selector = ", ".join(f"{k}={v}" for k, v in workload.node_selector.items())
            yield (
                f"workloads[{j}].node_selector",
                f"{workload.name}: no node has the labels {selector}; it could never start",
            )
    for i, node in enumerate(inv.nodes):
        base = K3S_SERVER_MIB if node.role == "server" else K3S_AGENT_MIB
        placed = inv.workloads_on(node)
        total = OS_RESERVED_MIB + base + sum(w.memory_mib for w in placed)
        limit = int(node.memory_mib * (1 - HEADROOM_FRACTION))
        if total > limit:
            parts = ", ".join(f"{w.name} {w.memory_mib}" for w in placed) or "no workloads"
            yield (
                f"nodes[{i}]",
                f"{node.name} would need {total} MiB (OS {OS_RESERVED_MIB} + K3s {node.role} "
                f"{base} + {parts}) but only {limit} MiB of its {node.memory_mib} MiB may be "
                f"planned ({int(HEADROOM_FRACTION * 100)} % headroom); move workloads by "
                "changing labels or workloads[].node_selector",
            )


def capacity_table(inv: Inventory) -> list[dict[str, object]]:
    """Planned memory per node (for the inventory asset's summary)."""
    rows = []
    for node in inv.nodes:
        base = K3S_SERVER_MIB if node.role == "server" else K3S_AGENT_MIB
        placed = inv.workloads_on(node)
        total = OS_RESERVED_MIB + base + sum(w.memory_mib for w in placed)
        rows.append(
            {
                "node": node.name,
                "role": node.role,
                "address": node.address,
                "workloads": ", ".join(w.name for w in placed) or "-",
                "planned_mib": total,
                "memory_mib": node.memory_mib,
                "limit_mib": int(node.memory_mib * (1 - HEADROOM_FRACTION)),
            }
        )
    return rows


def json_schema() -> dict:
    schema = Inventory.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "PiClusterOps inventory"
    return schema


def main(argv: list[str]) -> int:
    """`python -m platform_assets.inventory FILE...` checks files; `--schema` prints the schema."""
    if argv == ["--schema"]:
        print(json.dumps(json_schema(), indent=2))
        return 0
    if not argv or any(arg.startswith("-") for arg in argv):
        print("usage: python -m platform_assets.inventory FILE... | --schema", file=sys.stderr)
        return 2
    failed = False
    for arg in argv:
        try:
            inv = load_inventory(arg)
        except InventoryError as exc:
            print(exc, file=sys.stderr)
            failed = True
            continue
        print(f"{arg}: ok ({len(inv.nodes)} nodes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
