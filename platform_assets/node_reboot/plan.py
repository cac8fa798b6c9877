"""Whether a node must reboot before K3s can run, and in what order the nodes reboot."""

from collections.abc import Sequence

from platform_assets.core.facts import NodeFacts
from platform_assets.inventory import Inventory
from platform_assets.node_prep.plan import CGROUP_FLAGS


def reboot_reason(facts: NodeFacts) -> str | None:
    """Why the node must reboot before K3s can run, or None."""
    words = facts["cmdline_txt"] or ()
    controllers = facts["cgroup_controllers"]
    if controllers is not None and "memory" in controllers:
        return None
    if all(flag in words for flag in CGROUP_FLAGS):
        return (
            "cmdline.txt has the memory cgroup flags but the running kernel has no memory "
            "controller: the new command line takes effect at the next boot"
        )
    return None


def reboot_waves(inv: Inventory, due: Sequence[str], k3s_installed: bool) -> list[list[str]]:
    """The nodes to reboot, in waves: every node of a wave reboots at once, and a wave starts
    only when the one before is back.

    Before K3s is installed anywhere nothing runs on the nodes, so they all reboot at once. Once
    it is, one node at a time: the server first (the agents' kubelets need its API to come back
    Ready), then the agents in inventory order, so at most one node is ever down.
    """
    ordered = [n.name for n in inv.nodes if n.name in due and n.role == "server"]
    ordered += [n.name for n in inv.nodes if n.name in due and n.role != "server"]
    if not ordered:
        return []
    return [[name] for name in ordered] if k3s_installed else [ordered]
