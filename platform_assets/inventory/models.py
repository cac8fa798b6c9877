"""The inventory's shape: nodes, network plan, K3s and SSH settings (pydantic: types, ranges,
unknown keys). Checks of the plan as a whole are in checks.py."""

import ipaddress
import os
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

# Patterns are used with fullmatch: `$` alone would let a trailing newline through (a YAML
# block scalar `name: |` ends in one), and that newline would reach K3s's config and the URLs.
HOSTNAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
UNIX_USER_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
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
# A Pi 5 has at most 16 GB; more in a node's or a workload's memory_mib is a typo.
MAX_MEMORY_MIB = 16384
# Where K3s's data (etcd) must not live: tmpfs or kernel file systems lose it at reboot,
# systemd-tmpfiles cleans /var/tmp, and /boot is the firmware's. Only compared, never written.
_DATA_DIR_FORBIDDEN = ("/tmp", "/run", "/proc", "/sys", "/dev", "/boot", "/var/tmp")  # noqa: S108


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


class Inventory(_Strict):
    """The whole plan for the cluster."""

    nodes: list[Node] = Field(min_length=1)
    network: Network
    k3s: K3s
    ssh: Ssh
    timezone: str = Field(
        "UTC",
        description="IANA time zone of the cluster's home (e.g. Europe/Berlin): the nightly "
        "backups (02:00) and the weekly patches run at local time there.",
    )

    nifi: bool = Field(
        False,
        description="Run Apache NiFi (the `nifi` release). Off by default: the capacity plan "
        "of the example cluster has no room for it (docs/releases.md).",
    )

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        iana_zone(value)
        return value

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


def iana_zone(name: str) -> ZoneInfo:
    """The IANA zone, or a ValueError naming it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"time zone {name!r} is not an IANA time zone name (e.g. Europe/Berlin, UTC)"
        ) from None


def selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def label_problem(key: str, value: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if (prefix and (len(prefix) > 253 or not _LABEL_PREFIX.fullmatch(prefix))) or not (
        name and _LABEL_NAME.fullmatch(name)
    ):
        return f"{key!r} is not a valid Kubernetes label key"
    if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
        return f"{value!r} is not a valid Kubernetes label value (at most 63 of A-Za-z0-9-_.)"
    return None
