"""The capacity plan: memory per node from the releases' own resources, before anything deploys.

One source of truth: the requests and limits in the releases' values (`Workload.containers`, the
same objects the values are rendered from). A workload with a node selector counts on every node
the selector allows; a DaemonSet runs on each. A workload that may run on any node (MetalLB's
controller, cert-manager, the CloudNativePG operator, the injector, the gateways) runs on one
node, so it counts once: the plan places each, largest first, on the node with the most memory
left, as the scheduler's least-allocated scoring would, and shows where (counting a
one-replica Deployment on all four nodes reserved four times its memory for one pod). Each
node's memory less the OS and K3s (server 1.6 GB with its etcd, agent 0.3 GB: K3s resource
profiling) must keep at least 20 % free after the limits of everything placed there: a
prepared Pi has no swap, so the OOM killer is all that stands between a burst and a lost node.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from platform_assets.inventory import Inventory, Node
from platform_assets.releases.spec import PlannedRelease, Release, Workload

OS_RESERVED_MIB = 512
K3S_SERVER_MIB = 1600
K3S_AGENT_MIB = 300
MIN_FREE_FRACTION = 0.20


@dataclass(frozen=True)
class Placed:
    release: str
    workload: str
    request_mib: int
    limit_mib: int
    planned: bool  # from a release a later issue builds
    floating: bool = False  # may run anywhere: placed here by the plan


@dataclass(frozen=True)
class NodeBudget:
    node: str
    role: str
    memory_mib: int
    placed: tuple[Placed, ...]

    @property
    def reserved_mib(self) -> int:
        return OS_RESERVED_MIB + (K3S_SERVER_MIB if self.role == "server" else K3S_AGENT_MIB)

    @property
    def request_mib(self) -> int:
        return sum(p.request_mib for p in self.placed)

    @property
    def limit_mib(self) -> int:
        return sum(p.limit_mib for p in self.placed)

    @property
    def free_mib(self) -> int:
        return self.memory_mib - self.reserved_mib - self.limit_mib

    @property
    def free_fraction(self) -> float:
        return self.free_mib / self.memory_mib

    @property
    def fits(self) -> bool:
        return self.free_fraction >= MIN_FREE_FRACTION


@dataclass(frozen=True)
class Unplaceable:
    release: str
    workload: str
    selector: str


@dataclass(frozen=True)
class CapacityPlan:
    nodes: tuple[NodeBudget, ...]
    unplaceable: tuple[Unplaceable, ...]

    @property
    def fits(self) -> bool:
        return not self.problems()

    def node(self, name: str) -> NodeBudget:
        return next(n for n in self.nodes if n.node == name)

    def problems(self) -> list[str]:
        """One line per node that would be over-committed or workload that could never start,
        naming what to move."""
        out = []
        for u in self.unplaceable:
            out.append(
                f"{u.release}: {u.workload} needs a node labelled {u.selector} and no node in "
                "the inventory has it; it could never start"
            )
        for n in self.nodes:
            if n.fits:
                continue
            biggest = sorted(n.placed, key=lambda p: -p.limit_mib)[:3]
            named = ", ".join(f"{p.release}/{p.workload} {p.limit_mib} MiB" for p in biggest)
            floor = int(n.memory_mib * MIN_FREE_FRACTION)
            out.append(
                f"{n.node}: {n.limit_mib} MiB of limits + {n.reserved_mib} MiB for the OS and "
                f"K3s leave {n.free_mib} MiB of {n.memory_mib} MiB free "
                f"({n.free_fraction:.0%}); at least {floor} MiB "
                f"({MIN_FREE_FRACTION:.0%}) must stay free. Largest here: {named}. Move a "
                "workload by changing the node labels in the inventory"
            )
        return out


def selector_text(workload: Workload) -> str:
    return ", ".join(f"{k}={v}" for k, v in workload.node_selector.items()) or "any node"


def nodes_for(workload: Workload, inv: Inventory) -> list[Node]:
    """Every node a workload may run on (all of them when it has no selector)."""
    return [
        n for n in inv.nodes if all(n.labels.get(k) == v for k, v in workload.node_selector.items())
    ]


def floats(workload: Workload) -> bool:
    """May run on any node, one replica set: counted once, where the plan places it."""
    return not workload.node_selector and not workload.every_node


def capacity_plan(
    inv: Inventory,
    releases: Sequence[Release],
    planned: Iterable[PlannedRelease] = (),
) -> CapacityPlan:
    placed: dict[str, list[Placed]] = {n.name: [] for n in inv.nodes}
    unplaceable = []
    floating: list[tuple[Release | PlannedRelease, Workload, bool]] = []
    candidates = [(r, False) for r in releases] + [(r, True) for r in planned]
    for release, is_planned in candidates:
        for workload in release.workloads:
            if floats(workload):
                floating.append((release, workload, is_planned))
                continue
            nodes = nodes_for(workload, inv)
            if not nodes:
                unplaceable.append(
                    Unplaceable(release.name, workload.name, selector_text(workload))
                )
            for node in nodes:
                placed[node.name].append(
                    Placed(
                        release.name,
                        workload.name,
                        workload.memory_request_mib,
                        workload.memory_limit_mib,
                        is_planned,
                    )
                )

    def room(node: Node) -> int:
        reserved = OS_RESERVED_MIB + (K3S_SERVER_MIB if node.role == "server" else K3S_AGENT_MIB)
        return node.memory_mib - reserved - sum(p.limit_mib for p in placed[node.name])

    # Largest first onto the node with the most room (the first such in the inventory on a tie).
    for release, workload, is_planned in sorted(
        floating, key=lambda f: (-f[1].memory_limit_mib, f[0].name, f[1].name)
    ):
        node = max(inv.nodes, key=lambda n: (room(n), -inv.nodes.index(n)))
        placed[node.name].append(
            Placed(
                release.name,
                workload.name,
                workload.memory_request_mib,
                workload.memory_limit_mib,
                is_planned,
                floating=True,
            )
        )
    return CapacityPlan(
        nodes=tuple(
            NodeBudget(n.name, n.role, n.memory_mib, tuple(placed[n.name])) for n in inv.nodes
        ),
        unplaceable=tuple(unplaceable),
    )


def markdown(plan: CapacityPlan) -> str:
    """The per-node table, then each node's workloads."""
    lines = [
        "| node | role | memory | OS + K3s | requests | limits | free | fits |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for n in plan.nodes:
        lines.append(
            f"| {n.node} | {n.role} | {n.memory_mib} | {n.reserved_mib} | {n.request_mib} | "
            f"{n.limit_mib} | {n.free_mib} ({n.free_fraction:.0%}) | "
            f"{'yes' if n.fits else '**NO**'} |"
        )
    lines.append("")
    lines.append(f"MiB. A node must keep {MIN_FREE_FRACTION:.0%} of its memory free after limits.")
    for n in plan.nodes:
        lines.append(
            f"\n**{n.node}**: "
            + (
                ", ".join(
                    f"{p.release}/{p.workload} {p.request_mib}/{p.limit_mib}"
                    + (" (planned)" if p.planned else "")
                    + (" (may run anywhere; placed here)" if p.floating else "")
                    for p in n.placed
                )
                or "nothing placed"
            )
        )
    for problem in plan.problems():
        lines.append(f"\n- {problem}")
    return "\n".join(lines)
