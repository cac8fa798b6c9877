"""The step engine without Dagster: read facts, plan, apply unless in plan mode, read again.

Every step works on the subset of the inventory's nodes it is given, fans out with
`sessions.for_each` (bounded parallelism, one node's failure never stops the others) and returns
one outcome per node, where an outcome is either a result or the `NodeError` that node raised.
Tests call it with the SSH resource's `NodeSessions` against the fake-Pi cluster, or
`tests/platform/recorded.py`.

Nodes the profile may not contact (the local profile contacts loopback addresses only, so the
example inventory's 192.168.0.x nodes are never reached from a laptop) get a plan computed
against unknown facts: the full desired state, marked "not contacted".
"""

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from platform_assets.core.facts import Fact, NodeFacts, read_facts
from platform_assets.core.plan import Change, NodePlan, PlanError
from platform_assets.inventory import Inventory, Node
from resources.ssh import CommandTimedOut, NodeError, NodeUnreachable, SshTarget

LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
NOT_CONTACTED = "unknown (not contacted)"


def may_contact(node: Node, allow_remote: bool) -> bool:
    """The local profile reaches loopback nodes only (the fake-Pi cluster), never the LAN."""
    return allow_remote or ipaddress.IPv4Address(node.address) in LOOPBACK


def ssh_targets(inv: Inventory, names: Sequence[str]) -> list[SshTarget]:
    """Where each named node answers SSH, from the inventory."""
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


def for_each_node(sessions: Any, names: Sequence[str], fn: Callable[[str], Any]) -> dict[str, Any]:
    """`fn(node)` on every node through `sessions.for_each`: node -> result or its NodeError."""
    if sessions is None:  # no node may be contacted: nothing to connect
        return {name: fn(name) for name in names}
    return sessions.for_each(list(names), fn)


@dataclass
class NodeOutcome:
    """One node's step: what was planned, whether it was applied, and what is left after."""

    node: str
    plan: NodePlan
    applied: bool = False
    remaining: list[Change] | None = None  # re-planned after apply; [] = converged

    @property
    def converged(self) -> bool:
        return self.remaining is not None and not self.remaining


def apply_changes(sessions: Any, node: str, changes: Sequence[Change]) -> int:
    """Runs every change's commands in order; stops at the first failure (CommandFailed).

    A command killed half-way (its timeout, a lost connection) says what it leaves behind and
    what to run on the node, where the command knows (`Command.if_interrupted`)."""
    count = 0
    for change in changes:
        for command in change.commands:
            try:
                sessions.run(
                    node,
                    list(command.argv),
                    sudo=command.sudo,
                    stdin=command.stdin,
                    timeout_s=command.timeout_s,
                )
            except (CommandTimedOut, NodeUnreachable) as exc:
                if not command.if_interrupted:
                    raise
                raise type(exc)(node, f"{exc.reason}; {command.if_interrupted}") from exc
            count += 1
    return count


def _unknown_plan(name: str, changes: list[Change]) -> NodePlan:
    shown = [Change(c.name, NOT_CONTACTED, c.after, c.commands, c.needs_reboot) for c in changes]
    return NodePlan(name, shown, contacted=False)


def run_step(
    sessions: Any,
    inv: Inventory,
    names: Sequence[str],
    *,
    facts: tuple[Fact, ...] | Callable[[str], tuple[Fact, ...]],
    plan: Callable[[str, NodeFacts], list[Change]],
    apply: bool,
    allow_remote: bool,
    gate: Callable[[str, NodeFacts], str | None] = lambda name, facts: None,
) -> dict[str, Any]:
    """Facts -> plan -> (apply -> facts -> plan again) on each node.

    `gate(node, facts)` returns why nothing may be applied on that node (shown in the plan; in
    apply mode the node fails with that reason) or None.
    """

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
        before = read_facts(sessions, name, node_facts)
        try:
            changes = plan(name, before)
        except PlanError as exc:
            raise NodeError(name, str(exc).removeprefix(f"{name}: ")) from None
        blocked = gate(name, before) if changes else None
        node_plan = NodePlan(name, changes, problem=blocked)
        if not apply or not changes:
            return NodeOutcome(name, node_plan, remaining=changes if not changes else None)
        if blocked:
            raise NodeError(name, f"not applied: {blocked}")
        apply_changes(sessions, name, changes)
        after = read_facts(sessions, name, node_facts)
        return NodeOutcome(name, node_plan, applied=True, remaining=plan(name, after))

    return for_each_node(sessions, names, one)
