"""The node steps without Dagster: read facts, plan, apply unless in plan mode, read again.

The assets call these; tests call them directly too (with the SSH resource's `NodeSessions`
against the fake-Pi cluster, or `tests/platform/recorded.py`). Every function works on the
subset of the inventory's nodes it is given, fans out with `sessions.for_each` (bounded
parallelism, one node's failure never stops the others) and returns one outcome per node, where
an outcome is either a result or the `NodeError` that node raised.

Nodes the profile may not contact (the local profile contacts loopback addresses only, so the
example inventory's 192.168.0.x nodes are never reached from a laptop) get a plan computed
against unknown facts: the full desired state, marked "not contacted".
"""

import contextlib
import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from platform_assets import facts as F
from platform_assets import planning as P
from platform_assets.facts import NodeFacts
from platform_assets.inventory import Inventory, Node

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
ETCD_FSYNC_P99_MS = 10.0
MIN_FREE_DISK_BYTES = 5 * 1024**3
WARN_FREE_DISK_BYTES = 15 * 1024**3
NOT_CONTACTED = "unknown (not contacted)"


def may_contact(node: Node, allow_remote: bool) -> bool:
    """The local profile reaches loopback nodes only (the fake-Pi cluster), never the LAN."""
    return allow_remote or ipaddress.IPv4Address(node.address) in LOOPBACK


def ssh_targets(inv: Inventory, names: Sequence[str]) -> list[Any]:
    from resources.ssh import SshTarget

    return [
        SshTarget(n.name, n.address, n.ssh_port, n.ssh_user)
        for n in (inv.node(name) for name in names)
    ]


def select_nodes(inv: Inventory, wanted: Sequence[str], role: str | None = None) -> list[str]:
    """The inventory's node names, in inventory order, limited to `wanted` (empty: all)."""
    known = [n.name for n in inv.nodes]
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise ValueError(f"not in the inventory: {', '.join(unknown)} (nodes: {', '.join(known)})")
    return [
        n.name
        for n in inv.nodes
        if (not wanted or n.name in wanted) and (role is None or n.role == role)
    ]


# --- preflight ---------------------------------------------------------------------------------


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
    if codename in P.SUPPORTED_CODENAMES:
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
    facts = F.preflight_facts(inv.k3s.data_dir)

    def one(name: str) -> NodePreflight:
        if not may_contact(inv.node(name), allow_remote):
            return NodePreflight(name, [], contacted=False)
        return NodePreflight(
            name, evaluate_preflight(inv, name, F.read_facts(sessions, name, facts))
        )

    return _each(sessions, names, one)


def _each(sessions: Any, names: Sequence[str], fn: Callable[[str], Any]) -> dict[str, Any]:
    if sessions is None:  # no node may be contacted: nothing to connect
        return {name: fn(name) for name in names}
    return sessions.for_each(list(names), fn)


# --- plan / apply ------------------------------------------------------------------------------


@dataclass
class NodeOutcome:
    """One node's step: what was planned, whether it was applied, and what is left after."""

    node: str
    plan: P.NodePlan
    applied: bool = False
    remaining: list[P.Change] | None = None  # re-planned after apply; [] = converged

    @property
    def converged(self) -> bool:
        return self.remaining is not None and not self.remaining


def apply_changes(sessions: Any, node: str, changes: Sequence[P.Change]) -> int:
    """Runs every change's commands in order; stops at the first failure (CommandFailed)."""
    count = 0
    for change in changes:
        for command in change.commands:
            sessions.run(node, list(command.argv), sudo=command.sudo, stdin=command.stdin)
            count += 1
    return count


def _unknown_plan(name: str, changes: list[P.Change]) -> P.NodePlan:
    shown = [P.Change(c.name, NOT_CONTACTED, c.after, c.commands, c.needs_reboot) for c in changes]
    return P.NodePlan(name, shown, contacted=False)


def run_step(
    sessions: Any,
    inv: Inventory,
    names: Sequence[str],
    *,
    facts: tuple[F.Fact, ...] | Callable[[str], tuple[F.Fact, ...]],
    plan: Callable[[str, NodeFacts], list[P.Change]],
    apply: bool,
    allow_remote: bool,
    gate: Callable[[str, NodeFacts], str | None] = lambda name, facts: None,
) -> dict[str, Any]:
    """Facts -> plan -> (apply -> facts -> plan again) on each node.

    `gate(node, facts)` returns why nothing may be applied on that node (shown in the plan; in
    apply mode the node fails with that reason) or None.
    """
    from resources.ssh import NodeError

    def one(name: str) -> NodeOutcome:
        if not may_contact(inv.node(name), allow_remote):
            node_plan = _unknown_plan(name, plan(name, NodeFacts(name)))
            if apply:
                raise NodeError(
                    name,
                    f"{inv.node(name).address} is not contacted from the "
                    "local profile (loopback only); use the cluster profile",
                )
            return NodeOutcome(name, node_plan)
        node_facts = facts(name) if callable(facts) else facts
        before = F.read_facts(sessions, name, node_facts)
        try:
            changes = plan(name, before)
        except P.PlanError as exc:
            raise NodeError(name, str(exc).removeprefix(f"{name}: ")) from None
        blocked = gate(name, before) if changes else None
        node_plan = P.NodePlan(name, changes, problem=blocked)
        if not apply or not changes:
            return NodeOutcome(name, node_plan, remaining=changes if not changes else None)
        if blocked:
            raise NodeError(name, f"not applied: {blocked}")
        apply_changes(sessions, name, changes)
        after = F.read_facts(sessions, name, node_facts)
        return NodeOutcome(name, node_plan, applied=True, remaining=plan(name, after))

    return _each(sessions, names, one)


def preflight_gate(inv: Inventory) -> Callable[[str, NodeFacts], str | None]:
    """Node prep refuses a node whose (cheap) preflight facts have errors."""

    def gate(name: str, facts: NodeFacts) -> str | None:
        errors = blocking_findings(evaluate_preflight(inv, name, facts))
        if errors:
            return "preflight failed: " + "; ".join(
                f"{e.item}: {e.message or e.value}" for e in errors
            )
        return None

    return gate


def node_prep_facts(inv: Inventory) -> tuple[F.Fact, ...]:
    # Preflight's facts without the slow fsync probe, so the gate sees the same errors.
    cheap = tuple(
        f
        for f in F.preflight_facts(inv.k3s.data_dir)
        if f.name not in ("fsync", "os_release", "cgroup_controllers")
    )
    return cheap + F.prep_facts()


def run_node_prep(
    sessions: Any, inv: Inventory, names: Sequence[str], *, apply: bool, allow_remote: bool
) -> dict[str, Any]:
    return run_step(
        sessions,
        inv,
        names,
        facts=node_prep_facts(inv),
        plan=lambda name, facts: P.plan_node_prep(inv, name, facts),
        apply=apply,
        allow_remote=allow_remote,
        gate=preflight_gate(inv),
    )


def k3s_gate(name: str, facts: NodeFacts) -> str | None:
    controllers = facts["cgroup_controllers"]
    if controllers is not None and "memory" not in controllers:
        return (
            "the memory cgroup controller is off (K3s would exit with 'failed to find "
            "memory cgroup'); apply node_prep and node_reboot first"
        )
    return None


def run_k3s(
    sessions: Any,
    inv: Inventory,
    names: Sequence[str],
    *,
    token: str | None,
    apply: bool,
    allow_remote: bool,
) -> dict[str, Any]:
    if apply and not token:
        raise ValueError(
            f"the K3s join token is not set: export {inv.k3s.token_env} "
            "(the variable the inventory's k3s.token_env names) and reload"
        )

    def facts_for(name: str) -> tuple[F.Fact, ...]:
        return F.k3s_facts(P.k3s_service(inv.node(name)), token)

    return run_step(
        sessions,
        inv,
        names,
        facts=facts_for,
        plan=lambda name, f: P.plan_k3s(inv, name, f, token),
        apply=apply,
        allow_remote=allow_remote,
        gate=k3s_gate,
    )


# --- reboot ------------------------------------------------------------------------------------


@dataclass
class RebootOutcome:
    node: str
    reason: str | None  # None: no reboot needed
    contacted: bool = True
    rebooted: bool = False
    waited_s: float | None = None
    memory_cgroup_after: bool | None = None


REBOOT_FACTS = (
    F._cat("cmdline_txt", F.CMDLINE_TXT, F.parse_words),
    F._cat("cgroup_controllers", "/sys/fs/cgroup/cgroup.controllers", F.parse_words),
)


def run_reboot(
    sessions: Any,
    inv: Inventory,
    names: Sequence[str],
    *,
    apply: bool,
    allow_remote: bool,
    timeout_s: float,
    poll_s: float = 2.0,
) -> dict[str, Any]:
    """Reboots only the nodes whose pending boot command line needs it, then waits (bounded)
    until each answers with a new boot id. Never retried: a second call re-reads the facts."""
    from resources.ssh import CommandTimedOut, NodeError, NodeUnreachable

    def boot_id(name: str) -> str | None:
        result = sessions.run(name, list(F.BOOT_ID.argv), check=False)
        return result.stdout.strip() or None

    def one(name: str) -> RebootOutcome:
        if not may_contact(inv.node(name), allow_remote):
            return RebootOutcome(name, NOT_CONTACTED, contacted=False)
        reason = P.reboot_reason(F.read_facts(sessions, name, REBOOT_FACTS))
        if not apply or reason is None:
            return RebootOutcome(name, reason)
        old = boot_id(name)
        started = time.monotonic()
        # The connection may drop before reboot answers.
        with contextlib.suppress(NodeUnreachable, CommandTimedOut):
            sessions.run(name, ["reboot"], sudo=True, check=False, timeout_s=30)
        while True:
            waited = time.monotonic() - started
            if waited > timeout_s:
                raise NodeUnreachable(
                    name,
                    f"did not come back within {timeout_s:g}s after "
                    "reboot; check its console. Not retried.",
                )
            time.sleep(poll_s)
            try:
                new = boot_id(name)
            except (NodeUnreachable, CommandTimedOut):
                continue
            if new and new != old:
                break
        after = F.read_facts(sessions, name, REBOOT_FACTS)
        controllers = after["cgroup_controllers"] or ()
        outcome = RebootOutcome(
            name,
            reason,
            rebooted=True,
            waited_s=time.monotonic() - started,
            memory_cgroup_after="memory" in controllers,
        )
        if not outcome.memory_cgroup_after:
            raise NodeError(
                name,
                "rebooted, but the memory cgroup controller is still off; "
                "see raspberrypi/linux#6980 (firmware cgroup_disable=memory)",
            )
        return outcome

    return _each(sessions, names, one)


# --- kubeconfig --------------------------------------------------------------------------------


def rewrite_kubeconfig(text: str, server: str) -> str:
    """The server's k3s.yaml points at 127.0.0.1; the platform reaches it at the node's address."""
    import yaml

    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # YAML's message quotes the offending line, which may be a client key or token.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"the fetched kubeconfig is not valid YAML{where}") from None
    if not isinstance(config, dict) or not config.get("clusters"):
        raise ValueError("the fetched kubeconfig has no clusters")
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    return yaml.safe_dump(config, sort_keys=False)


def write_private(path: Any, text: str) -> None:
    """Writes a file only its owner can read, atomically (never world-readable, even briefly)."""
    import os
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
