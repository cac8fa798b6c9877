"""The rolling patch without Dagster: one node at a time, gate -> cordon + drain -> upgrade ->
reboot when the kernel changed -> SSH and Node Ready again -> uncordon -> gate after.

The first failure halts the roll with `PatchHalted` naming the node; the node stays cordoned
(whatever was drained from it stays off it) and the nodes after it are not touched. At most one
node is ever cordoned: the gate refuses to start on a node while any node is cordoned.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from platform_assets.core.engine import apply_changes
from platform_assets.core.facts import read_facts
from platform_assets.core.plan import Change
from platform_assets.inventory import Inventory
from platform_assets.k3s.apply import run_k3s
from platform_assets.node_reboot.apply import RebootOutcome, reboot_and_wait
from platform_assets.node_reboot.facts import BOOT_ID
from platform_assets.patching.facts import KERNEL_FACTS, UPGRADABLE, pending_kernel
from platform_assets.patching.plan import K3S, NodePatchPlan
from platform_assets.releases.access_settings import load_access_settings
from resources.kubernetes import (
    ClusterUnreachable,
    DrainBlocked,
    DrainTimedOut,
    KubernetesResource,
)
from resources.ssh import NodeError

# gate(node) -> the reasons the node may not be disrupted now (empty: it may).
Gate = Callable[[str], list[str]]


class PatchHalted(Exception):
    def __init__(self, node: str, step: str, reason: str, history: list["NodeHistory"]):
        super().__init__(f"{node}: {step}: {reason}")
        self.node = node
        self.step = step
        self.reason = reason
        self.history = history


@dataclass
class NodeHistory:
    """What patching one node did, and how long each part took (seconds)."""

    node: str
    result: str = "not started"
    packages: list[str] = field(default_factory=list)  # "name old -> new"
    kept_back: list[str] = field(default_factory=list)
    kernel_before: str | None = None
    kernel_after: str | None = None
    k3s_before: str | None = None
    k3s_after: str | None = None
    rebooted: bool = False
    evicted: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return sum(self.phases.values())

    @property
    def work_s(self) -> float:
        """The upgrade and the reboot themselves: what any patch costs, job or not."""
        return self.phases.get("upgrade", 0.0) + self.phases.get("reboot", 0.0)

    @property
    def overhead_s(self) -> float:
        """Everything the job adds around that work: gates, drain, waits, uncordon."""
        return self.seconds - self.work_s


@dataclass
class Rollout:
    """What a roll works with. `sessions` is the SSH resource's NodeSessions (or a recorded
    fake with the same `run`)."""

    sessions: Any
    kube: KubernetesResource
    inv: Inventory
    gate_before: Gate
    gate_after: Gate
    reboot_timeout_s: float = 600.0
    drain_timeout_s: float = 300.0
    ready_timeout_s: float = 300.0
    poll_s: float = 2.0
    # Pods never evicted (the run's own pod, where the run is on a node it drains).
    skip_pod_selector: str | None = None
    token: str | None = None  # the K3s join token, for K3s upgrades
    allow_remote: bool = False
    log: Any = None

    def info(self, text: str) -> None:
        if self.log is not None:
            self.log.info(text)


class _Timer:
    def __init__(self, history: NodeHistory, phase: str):
        self.history, self.phase = history, phase

    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, *exc):
        took = time.monotonic() - self.started
        self.history.phases[self.phase] = self.history.phases.get(self.phase, 0.0) + took


def cordoned_nodes(kube: KubernetesResource) -> list[str]:
    return sorted(
        n["metadata"]["name"]
        for n in kube.list("v1", "Node")
        if n.get("spec", {}).get("unschedulable")
    )


def wait_ready_after_boot(
    kube: KubernetesResource, node: str, boot_id: str | None, timeout_s: float, poll_s: float
) -> None:
    """Until the Node is Ready and reported by the kubelet of this boot (`nodeInfo.bootID`): a
    Node still shows the Ready of before a reboot until its lease runs out (50 s by default)."""
    deadline = time.monotonic() + timeout_s
    last = "not registered"
    while True:
        try:
            obj = kube.get("v1", "Node", node)
        except ClusterUnreachable as exc:
            # The API is the K3s server's: while the server itself boots it does not answer.
            obj, last = None, str(exc)
        if obj is not None:
            status = obj.get("status", {})
            ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
            reported = status.get("nodeInfo", {}).get("bootID")
            if ready.get("status") == "True" and (not boot_id or reported == boot_id):
                return
            last = (
                f"Ready={ready.get('status', '?')} ({ready.get('reason', '')})"
                if ready.get("status") != "True"
                else f"Ready, but still reported by the boot before ({reported})"
            )
        if time.monotonic() > deadline:
            raise NodeError(node, f"not Ready in Kubernetes within {timeout_s:g}s: {last}")
        time.sleep(poll_s)


def _boot_id(sessions: Any, node: str) -> str | None:
    result = sessions.run(node, list(BOOT_ID.argv), check=False, quiet=True)
    return result.stdout.strip() or None


def _upgrade_os(r: Rollout, plan: NodePatchPlan, h: NodeHistory) -> None:
    name = plan.node
    with _Timer(h, "upgrade"):
        apply_changes(r.sessions, name, [Change("upgrade packages", "", "", plan.commands)])
    with _Timer(h, "verify"):
        after = read_facts(r.sessions, name, (UPGRADABLE, *KERNEL_FACTS))
    left = {u.package for u in after["upgradable"] or ()}
    h.packages = [
        f"{u.package} {u.installed} -> {u.candidate}"
        for u in plan.upgrades
        if u.package not in left
    ]
    h.kept_back = sorted(left)
    newer = pending_kernel(after["running_kernel"], after["installed_kernels"])
    if newer is None:
        h.kernel_after = h.kernel_before
        return
    r.info(f"[{name}] kernel {h.kernel_before} -> {newer}: rebooting")
    with _Timer(h, "reboot"):
        reboot_and_wait(
            r.sessions,
            name,
            RebootOutcome(name, f"kernel {newer} installed, {h.kernel_before} running"),
            r.reboot_timeout_s,
            r.poll_s,
        )
    h.rebooted = True
    with _Timer(h, "verify"):
        h.kernel_after = read_facts(r.sessions, name, KERNEL_FACTS)["running_kernel"]
    if h.kernel_after != newer:
        # An rpi-update kernel or a `kernel=` line in config.txt boots another kernel.
        raise NodeError(
            name,
            f"rebooted into {h.kernel_after}, not the newly installed {newer}: check "
            "/boot/firmware/config.txt for a kernel= line",
        )


def _upgrade_k3s(r: Rollout, plan: NodePatchPlan, h: NodeHistory) -> None:
    with _Timer(h, "upgrade"):
        # The same settings as the k3s_server step, so an upgrade keeps the API's OIDC flags.
        outcome = run_k3s(
            r.sessions,
            r.inv,
            [plan.node],
            token=r.token,
            access=load_access_settings(),
            apply=True,
            allow_remote=r.allow_remote,
        )[plan.node]
    if isinstance(outcome, NodeError):
        raise outcome
    h.k3s_after = plan.k3s_after
    h.kernel_after = h.kernel_before


def patch_node(r: Rollout, plan: NodePatchPlan) -> NodeHistory:
    """Patch one node. Raises PatchHalted naming the node and the step that failed."""
    name = plan.node
    h = NodeHistory(name, kernel_before=plan.running_kernel, k3s_before=plan.k3s_before)

    def halt(step: str, reason: str) -> PatchHalted:
        h.result = f"halted at {step}"
        return PatchHalted(name, step, reason, [h])

    with _Timer(h, "gate"):
        reasons = r.gate_before(name)
        try:
            others = [n for n in cordoned_nodes(r.kube) if n != name]
        except ClusterUnreachable as exc:
            others, reasons = [], [*reasons, str(exc)]
        if others:
            reasons.append(f"{', '.join(others)} cordoned: only one node at a time")
    if reasons:
        raise halt("gate", "; ".join(reasons) + " (nothing was changed on it)")
    with _Timer(h, "drain"):
        try:
            report = r.kube.drain(
                name, timeout_s=r.drain_timeout_s, skip_pod_selector=r.skip_pod_selector
            )
        except (DrainBlocked, DrainTimedOut) as exc:
            raise halt("drain", f"{exc} (left cordoned; nothing was forced)") from exc
    h.evicted = report.evicted
    try:
        if plan.mode == K3S:
            _upgrade_k3s(r, plan, h)
        else:
            _upgrade_os(r, plan, h)
        with _Timer(h, "ready"):
            boot = _boot_id(r.sessions, name)
            wait_ready_after_boot(r.kube, name, boot, r.ready_timeout_s, r.poll_s)
    except NodeError as exc:
        raise halt("upgrade", f"{exc.reason} (left cordoned)") from exc
    with _Timer(h, "uncordon"):
        r.kube.uncordon(name)
    with _Timer(h, "gate_after"):
        after = r.gate_after(name)
    if after:
        raise halt("gate after", "; ".join(after) + " (uncordoned; the nodes after it wait)")
    h.result = "patched" if (h.packages or h.rebooted or plan.mode == K3S) else "nothing to upgrade"
    return h


def roll(
    r: Rollout, order: Sequence[str], plans: dict[str, NodePatchPlan]
) -> Iterator[NodeHistory]:
    """Patch the nodes in `order`, one at a time, yielding each node's history as it is done.
    PatchHalted carries the history of every node so far, the halted one last."""
    done: list[NodeHistory] = []
    for name in order:
        plan = plans[name]
        if plan.skipped:
            continue
        try:
            history = patch_node(r, plan)
        except PatchHalted as halted:
            raise PatchHalted(
                halted.node, halted.step, halted.reason, done + halted.history
            ) from halted
        done.append(history)
        yield history
