"""Node prep on each node: facts -> plan -> apply -> facts again, gated by preflight's errors."""

from collections.abc import Callable, Sequence
from typing import Any

from platform_assets.core.engine import run_step
from platform_assets.core.facts import Fact, NodeFacts
from platform_assets.inventory import Inventory
from platform_assets.node_prep.facts import prep_facts
from platform_assets.node_prep.plan import plan_node_prep
from platform_assets.preflight.facts import preflight_facts
from platform_assets.preflight.verdicts import blocking_findings, evaluate_preflight


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


def node_prep_facts(inv: Inventory) -> tuple[Fact, ...]:
    # Preflight's facts without the slow fsync probe, so the gate sees the same errors.
    cheap = tuple(
        f
        for f in preflight_facts(inv.k3s.data_dir)
        if f.name not in ("fsync", "os_release", "cgroup_controllers")
    )
    return cheap + prep_facts()


def run_node_prep(
    sessions: Any, inv: Inventory, names: Sequence[str], *, apply: bool, allow_remote: bool
) -> dict[str, Any]:
    return run_step(
        sessions,
        inv,
        names,
        facts=node_prep_facts(inv),
        plan=lambda name, facts: plan_node_prep(inv, name, facts),
        apply=apply,
        allow_remote=allow_remote,
        gate=preflight_gate(inv),
    )
