"""Reboots the nodes whose new boot command line is not active yet, and waits for each.

On a running cluster (K3s installed on any node) one node at a time, each back over SSH and
Ready in Kubernetes (where a kubeconfig exists) before the next: see `plan.reboot_waves`.
"""

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from platform_assets.core.engine import NOT_CONTACTED, for_each_node, may_contact
from platform_assets.core.facts import read_facts
from platform_assets.inventory import Inventory
from platform_assets.k3s.facts import k3s_version_fact
from platform_assets.node_reboot.facts import BOOT_ID, REBOOT_FACTS
from platform_assets.node_reboot.plan import reboot_reason, reboot_waves
from resources.ssh import CommandTimedOut, NodeError, NodeUnreachable

# `wait_ready(node, timeout_s)`: returns once Kubernetes reports the node Ready, raises NodeError.
WaitReady = Callable[[str, float], None]


@dataclass
class RebootOutcome:
    node: str
    reason: str | None  # None: no reboot needed
    contacted: bool = True
    rebooted: bool = False
    waited_s: float | None = None
    memory_cgroup_after: bool | None = None
    k3s_installed: bool = False
    wave: int | None = None  # which wave it rebooted in (0: first)


def run_reboot(
    sessions: Any,
    inv: Inventory,
    names: Sequence[str],
    *,
    apply: bool,
    allow_remote: bool,
    timeout_s: float,
    poll_s: float = 2.0,
    wait_ready: WaitReady | None = None,
) -> dict[str, Any]:
    """Reboots only the nodes whose pending boot command line needs it, then waits (bounded)
    until each answers with a new boot id (and, with `wait_ready`, is Ready). Never retried: a
    second call re-reads the facts.

    Whether K3s is installed is read on every node the profile may contact, not only on the
    ones named: a run limited to two agents must not take both down on a running cluster."""

    def look(name: str) -> RebootOutcome:
        if not may_contact(inv.node(name), allow_remote):
            return RebootOutcome(name, NOT_CONTACTED, contacted=False)
        facts = read_facts(sessions, name, (*REBOOT_FACTS, k3s_version_fact()))
        return RebootOutcome(
            name, reboot_reason(facts), k3s_installed=facts["k3s_version"] is not None
        )

    everyone = [n.name for n in inv.nodes]
    looked = for_each_node(sessions, everyone if apply else names, look)
    outcomes = {name: looked[name] for name in names}
    if not apply:
        return outcomes
    k3s_installed = any(
        isinstance(o, RebootOutcome) and o.k3s_installed for o in looked.values()
    ) or any(isinstance(o, NodeError) for o in looked.values())  # unknown: assume it runs
    due = [
        name
        for name, o in outcomes.items()
        if isinstance(o, RebootOutcome) and o.contacted and o.reason is not None
    ]
    waves = reboot_waves(inv, due, k3s_installed)
    for number, wave in enumerate(waves):

        def one(name: str, number: int = number) -> RebootOutcome:
            outcome = reboot_and_wait(sessions, name, outcomes[name], timeout_s, poll_s)
            outcome.wave = number
            if wait_ready is not None and k3s_installed:
                wait_ready(name, max(timeout_s - (outcome.waited_s or 0), poll_s))
            return outcome

        outcomes.update(for_each_node(sessions, wave, one))
        failed = [n for n in wave if isinstance(outcomes[n], NodeError)]
        if failed:
            rest = [n for later in waves[number + 1 :] for n in later]
            for name in rest:
                outcomes[name] = NodeError(
                    name,
                    f"not rebooted: {', '.join(failed)} did not come back Ready, and on a "
                    "running cluster only one node is down at a time",
                )
            break
    return outcomes


def reboot_and_wait(
    sessions: Any, name: str, before: "RebootOutcome", timeout_s: float, poll_s: float
) -> RebootOutcome:
    """Reboots one node and waits until it answers with a new boot id and the memory cgroup."""

    def boot_id() -> str | None:
        result = sessions.run(name, list(BOOT_ID.argv), check=False, quiet=True)
        return result.stdout.strip() or None

    old = boot_id()
    started = time.monotonic()
    # The connection may drop before reboot answers.
    with contextlib.suppress(NodeUnreachable, CommandTimedOut):
        sessions.run(name, ["reboot"], sudo=True, check=False, timeout_s=30)
    while True:
        waited = time.monotonic() - started
        if waited > timeout_s:
            raise NodeUnreachable(
                name,
                f"did not come back within {timeout_s:g}s after reboot; check its console. "
                "Not retried.",
            )
        time.sleep(poll_s)
        try:
            new = boot_id()
        except (NodeUnreachable, CommandTimedOut):
            continue
        if new and new != old:
            break
    after = read_facts(sessions, name, REBOOT_FACTS)
    controllers = after["cgroup_controllers"] or ()
    outcome = RebootOutcome(
        name,
        before.reason,
        rebooted=True,
        waited_s=time.monotonic() - started,
        memory_cgroup_after="memory" in controllers,
        k3s_installed=before.k3s_installed,
    )
    if not outcome.memory_cgroup_after:
        raise NodeError(
            name,
            "rebooted, but the memory cgroup controller is still off; "
            "see raspberrypi/linux#6980 (firmware cgroup_disable=memory)",
        )
    return outcome
