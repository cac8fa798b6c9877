"""Whether a node must reboot before K3s can run."""

from platform_assets.core.facts import NodeFacts
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
