"""Memory per node: the OS, K3s and every workload placed there must leave 20 % headroom.

The inventory's hand-written `workloads` list is the source for now; the releases' own requests
and limits replace it (a `capacity_plan` asset) once the releases exist."""

from platform_assets.inventory.models import Inventory, label_problem, selector_matches

# K3s resource profiling (docs.k3s.io/reference/resource-profiling): a server with its own
# workload needs about 1.6 GB, an agent about 0.3 GB. The OS itself keeps some more.
K3S_SERVER_MIB = 1600
K3S_AGENT_MIB = 300
OS_RESERVED_MIB = 512
# What stays free on a node after everything placed there: the Pi has no swap once prepared, so
# the OOM killer is the only thing between a burst and a lost node.
HEADROOM_FRACTION = 0.20


def check_capacity(inv: Inventory):
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
            problem = label_problem(key, value)
            if problem:
                yield f"workloads[{j}].node_selector.{key}", problem
        if not any(selector_matches(workload.node_selector, n.labels) for n in inv.nodes):
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
