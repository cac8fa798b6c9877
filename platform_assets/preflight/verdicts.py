"""Preflight's verdicts: each node's facts -> findings (ok, warn, error); an error blocks node
prep on that node."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from platform_assets.core.engine import for_each_node, may_contact
from platform_assets.core.facts import NodeFacts, read_facts
from platform_assets.inventory import Inventory
from platform_assets.preflight.facts import preflight_facts

SUPPORTED_CODENAMES = ("bookworm", "trixie")
ETCD_FSYNC_P99_MS = 10.0
MIN_FREE_DISK_BYTES = 5 * 1024**3
WARN_FREE_DISK_BYTES = 15 * 1024**3


@dataclass(frozen=True)
class Finding:
    level: str  # "ok", "warn" or "error" (an error blocks node prep on that node)
    item: str
    value: str
    message: str = ""


def evaluate_preflight(inv: Inventory, node_name: str, facts: NodeFacts) -> list[Finding]:
    """What preflight says about one node's facts (pure)."""
    node = inv.node(node_name)
    out: list[Finding] = []
    model = facts["model"]
    if not model:
        out.append(
            Finding(
                "error", "model", "absent", "no /proc/device-tree/model: this is not a Raspberry Pi"
            )
        )
    elif "Raspberry Pi 5" in model:
        out.append(Finding("ok", "model", model))
    else:
        out.append(
            Finding(
                "warn",
                "model",
                model,
                "not a Raspberry Pi 5; memory and page-size assumptions may not hold",
            )
        )
    arch = facts["architecture"]
    out.append(
        Finding("ok", "architecture", arch)
        if arch == "arm64"
        else Finding("error", "architecture", arch or "unknown", "K3s needs a 64-bit OS (arm64)")
    )
    release = facts["os_release"]
    codename = release.codename if release else ""
    issue = facts["rpi_issue"]
    if codename in SUPPORTED_CODENAMES:
        label = f"{release.pretty_name}" + (f", {issue}" if issue else "")
        out.append(
            Finding(
                "ok" if issue else "warn",
                "os",
                label,
                "" if issue else "no /etc/rpi-issue: not Raspberry Pi OS",
            )
        )
    else:
        out.append(
            Finding(
                "error",
                "os",
                (release.pretty_name if release else "unknown"),
                "supported: Raspberry Pi OS bookworm (12) or trixie (13)",
            )
        )
    mem_kib = facts["memory_kib"]
    if mem_kib is None:
        out.append(Finding("error", "memory", "unknown", "/proc/meminfo unreadable"))
    else:
        mib = mem_kib // 1024
        # The kernel keeps some RAM for itself and the GPU: an 8 GB Pi 5 reports ~7.9 GiB.
        if mib < node.memory_mib * 0.9:
            out.append(
                Finding(
                    "error",
                    "memory",
                    f"{mib} MiB",
                    f"the inventory plans {node.memory_mib} MiB for this node; fix "
                    f"nodes[].memory_mib so the capacity plan is true",
                )
            )
        else:
            out.append(Finding("ok", "memory", f"{mib} MiB"))
    page = facts["page_size"]
    if page == 16384:
        out.append(
            Finding(
                "ok",
                "page size",
                "16 KB",
                "Pi 5 kernel (2712); software built for 4 KB pages (e.g. jemalloc) can fail on it",
            )
        )
    else:
        out.append(Finding("ok", "page size", f"{page} bytes" if page else "unknown"))
    controllers = facts["cgroup_controllers"]
    if controllers is None:
        out.append(
            Finding(
                "error",
                "cgroup v2",
                "not mounted",
                "/sys/fs/cgroup/cgroup.controllers is missing: K3s needs cgroup v2",
            )
        )
    elif "memory" in controllers:
        out.append(Finding("ok", "memory cgroup", "enabled"))
    else:
        out.append(
            Finding(
                "warn",
                "memory cgroup",
                " ".join(controllers),
                "memory controller off: node prep adds the boot flags and node_reboot reboots",
            )
        )
    disk = facts["disk"]
    if disk is None:
        out.append(Finding("error", "free disk", "unknown", "df gave no answer"))
    else:
        gib = disk.avail_bytes / 1024**3
        level = (
            "error"
            if disk.avail_bytes < MIN_FREE_DISK_BYTES
            else "warn"
            if disk.avail_bytes < WARN_FREE_DISK_BYTES
            else "ok"
        )
        out.append(
            Finding(
                level,
                "free disk",
                f"{gib:.1f} GiB on {disk.mount}",
                "" if level == "ok" else "K3s images and etcd need room",
            )
        )
    if "fsync" in facts.values:
        probe = facts["fsync"]
        if probe is None:
            out.append(
                Finding(
                    "warn",
                    "fsync latency",
                    "not measured",
                    facts.notes.get("fsync", "the probe failed"),
                )
            )
        else:
            what = "p99" if probe.p99_ms is not None else "mean (dd; p99 needs fio)"
            value = f"{probe.worst_ms:.2f} ms {what} in {inv.k3s.data_dir}"
            slow = probe.worst_ms > ETCD_FSYNC_P99_MS
            out.append(
                Finding(
                    "warn" if slow else "ok",
                    "fsync latency",
                    value,
                    "etcd wants fdatasync p99 under 10 ms: expect lost leader "
                    "elections; put K3s's data on an SSD/NVMe"
                    if slow
                    else "",
                )
            )
    time_sync = facts["time"]
    if time_sync is None or time_sync.synchronized is None:
        out.append(Finding("warn", "time sync", "unknown", "timedatectl gave no answer"))
    elif time_sync.synchronized:
        out.append(Finding("ok", "time sync", "synchronized"))
    elif time_sync.ntp_service:
        out.append(
            Finding(
                "warn",
                "time sync",
                "not yet synchronized",
                "NTP is on but the clock is not synchronized yet",
            )
        )
    else:
        out.append(
            Finding(
                "error",
                "time sync",
                "off",
                "no NTP: certificates fail on a wrong clock; run `timedatectl set-ntp true`",
            )
        )
    link = facts["link"]
    if link is None or link.speed_mbps is None:
        out.append(Finding("warn", "NIC speed", "unknown", "eth0 link down or speed not reported"))
    elif link.speed_mbps < 1000:
        out.append(
            Finding(
                "warn",
                "NIC speed",
                f"{link.speed_mbps} Mb/s",
                "below 1 Gb/s: check the cable and switch port",
            )
        )
    else:
        out.append(Finding("ok", "NIC speed", f"{link.speed_mbps} Mb/s"))
    return out


def blocking_findings(findings: Sequence[Finding]) -> list[Finding]:
    return [f for f in findings if f.level == "error"]


@dataclass
class NodePreflight:
    node: str
    findings: list[Finding] = field(default_factory=list)
    contacted: bool = True

    @property
    def errors(self) -> list[Finding]:
        return blocking_findings(self.findings)


def run_preflight(
    sessions: Any,
    inv: Inventory,
    names: Sequence[str],
    allow_remote: bool,
) -> dict[str, Any]:
    """Preflight on each node: node name -> NodePreflight, or the NodeError it raised."""
    facts = preflight_facts(inv.k3s.data_dir)

    def one(name: str) -> NodePreflight:
        if not may_contact(inv.node(name), allow_remote):
            return NodePreflight(name, [], contacted=False)
        return NodePreflight(name, evaluate_preflight(inv, name, read_facts(sessions, name, facts)))

    return for_each_node(sessions, names, one)
