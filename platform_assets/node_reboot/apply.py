"""Reboots the nodes whose new boot command line is not active yet, and waits for each."""

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from platform_assets.core.engine import NOT_CONTACTED, for_each_node, may_contact
from platform_assets.core.facts import read_facts
from platform_assets.inventory import Inventory
from platform_assets.node_reboot.facts import BOOT_ID, REBOOT_FACTS
from platform_assets.node_reboot.plan import reboot_reason
from resources.ssh import CommandTimedOut, NodeError, NodeUnreachable


@dataclass
class RebootOutcome:
    node: str
    reason: str | None  # None: no reboot needed
    contacted: bool = True
    rebooted: bool = False
    waited_s: float | None = None
    memory_cgroup_after: bool | None = None


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

    def boot_id(name: str) -> str | None:
        result = sessions.run(name, list(BOOT_ID.argv), check=False)
        return result.stdout.strip() or None

    def one(name: str) -> RebootOutcome:
        if not may_contact(inv.node(name), allow_remote):
            return RebootOutcome(name, NOT_CONTACTED, contacted=False)
        reason = reboot_reason(read_facts(sessions, name, REBOOT_FACTS))
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
        after = read_facts(sessions, name, REBOOT_FACTS)
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

    return for_each_node(sessions, names, one)
