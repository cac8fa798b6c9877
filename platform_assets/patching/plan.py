"""The weekly patch's plan, as pure functions: what each node would change, whether it would
reboot, and the order the nodes go in (tests/patching/test_plan.py)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from platform_assets.core.commands import Command, cmd
from platform_assets.core.facts import NodeFacts
from platform_assets.inventory import Inventory
from platform_assets.patching.facts import Upgrade, pending_kernel
from platform_assets.run_placement import disruption_order

OS = "os"  # Raspberry Pi OS packages (apt)
K3S = "k3s"  # the inventory's K3s release

# `--with-new-pkgs`: a Pi's kernel arrives as a new package (linux-image-6.12.47+rpt-rpi-2712)
# that the metapackage depends on, which plain `apt-get upgrade` keeps back; nothing is ever
# removed (that needs full-upgrade, left to a person). The Dpkg options keep every local config
# file without asking (the Debian Handbook's non-interactive upgrade, section 6.9).
UPGRADE = cmd(
    "env",
    "DEBIAN_FRONTEND=noninteractive",
    "apt-get",
    "-y",
    "-q",
    "--with-new-pkgs",
    "-o",
    "Dpkg::Options::=--force-confdef",
    "-o",
    "Dpkg::Options::=--force-confold",
    "upgrade",
    timeout_s=1800,
    if_interrupted="dpkg may be half-way: run `sudo dpkg --configure -a` on the node, then "
    "`sudo apt-get -f install`, before patching it again",
)
# Refreshes the package lists (it changes no installed package) so the plan is this week's.
REFRESH = cmd("apt-get", "-q", "update", timeout_s=600)


@dataclass(frozen=True)
class NodePatchPlan:
    node: str
    mode: str
    upgrades: tuple[Upgrade, ...] = ()
    running_kernel: str | None = None
    pending_kernel: str | None = None  # a newer kernel installed but not booted yet
    k3s_before: str | None = None
    k3s_after: str | None = None
    skipped: str | None = None  # why this run leaves the node alone
    commands: tuple[Command, ...] = field(default=())

    @property
    def kernel_upgrade(self) -> bool:
        return any(u.kernel for u in self.upgrades)

    @property
    def reboot_expected(self) -> bool:
        return self.mode == OS and (self.kernel_upgrade or self.pending_kernel is not None)

    @property
    def changes(self) -> bool:
        if self.mode == K3S:
            return self.k3s_before != self.k3s_after
        return bool(self.upgrades) or self.pending_kernel is not None


def plan_os(node: str, facts: NodeFacts) -> NodePatchPlan:
    return NodePatchPlan(
        node,
        OS,
        upgrades=facts["upgradable"] or (),
        running_kernel=facts["running_kernel"],
        pending_kernel=pending_kernel(facts["running_kernel"], facts["installed_kernels"]),
        commands=(UPGRADE,),
    )


def plan_k3s(node: str, facts: NodeFacts, version: str) -> NodePatchPlan:
    return NodePatchPlan(
        node,
        K3S,
        running_kernel=facts["running_kernel"],
        k3s_before=facts["k3s_version"],
        k3s_after=version,
    )


def patch_order(
    inv: Inventory,
    nodes: Sequence[str],
    *,
    mode: str,
    run_node: str | None = None,
) -> list[str]:
    """The order nodes are patched in, one at a time.

    The K3s server first, then the agents (a K3s upgrade must: agents may not run a newer
    release than the server; for OS patches the control plane first is the usual order too).
    Then, for OS patches, the nodes hosting Dagster move to the end (`disruption_order`), and
    the node this run runs on after them: the run goes on as long as it can. A K3s upgrade
    keeps the server first whatever hosts what."""
    wanted = set(nodes)
    ordered = [n.name for n in inv.nodes if n.name in wanted and n.role == "server"]
    ordered += [n.name for n in inv.nodes if n.name in wanted and n.role != "server"]
    if mode == K3S:
        return ordered
    labels: Mapping[str, Mapping[str, str]] = {n.name: n.labels for n in inv.nodes}
    ordered = disruption_order(ordered, labels)
    if run_node in ordered:
        ordered = [n for n in ordered if n != run_node] + [run_node]
    return ordered


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(plans: Sequence[NodePatchPlan], order: Sequence[str]) -> str:
    """The plan a person reads before anything changes: per node, in patch order."""
    by_node = {p.node: p for p in plans}
    lines = [
        "| # | node | packages | kernel now | kernel after | reboot | K3s | note |",
        "| ---: | --- | ---: | --- | --- | --- | --- | --- |",
    ]
    for number, name in enumerate(order, 1):
        p = by_node[name]
        kernel_after = p.pending_kernel or (
            "newer (kernel package upgraded)" if p.kernel_upgrade else p.running_kernel or "?"
        )
        k3s = (
            f"{p.k3s_before or 'none'} -> {p.k3s_after}"
            if p.mode == K3S and p.changes
            else (p.k3s_before or "")
        )
        note = p.skipped or ("nothing to do" if not p.changes else "")
        lines.append(
            f"| {number} | {name} | {len(p.upgrades)} | {p.running_kernel or '?'} | "
            f"{_cell(kernel_after)} | {'yes' if p.reboot_expected else 'no'} | {k3s} | "
            f"{_cell(note)} |"
        )
    details = []
    for name in order:
        p = by_node[name]
        if p.upgrades:
            details += ["", f"### {name}: {len(p.upgrades)} upgradable packages", ""]
            details += ["| package | installed | candidate |", "| --- | --- | --- |"]
            details += [f"| {u.package} | {u.installed} | {u.candidate} |" for u in p.upgrades]
    commands = sorted({c.shell for p in plans for c in p.commands})
    if commands:
        details += ["", "Commands on each node with packages to upgrade:", ""]
        details += [f"- `{c}`" for c in commands]
    return "\n".join(lines + details)
