"""K3s on each node: facts -> plan -> apply -> facts again, refused where the memory cgroup
controller is still off."""

from collections.abc import Sequence
from typing import Any

from platform_assets.core.engine import run_step
from platform_assets.core.facts import Fact, NodeFacts
from platform_assets.inventory import Inventory
from platform_assets.k3s.facts import k3s_facts
from platform_assets.k3s.plan import k3s_service, plan_k3s
from platform_assets.releases.access_settings import AccessSettings


def k3s_gate(name: str, facts: NodeFacts) -> str | None:
    controllers = facts["cgroup_controllers"]
    if controllers is not None and "memory" not in controllers:
        return (
            "the memory cgroup controller is off (K3s would exit with 'failed to find "
            "memory cgroup'); apply node_prep and node_reboot first"
        )
    return None


def run_k3s(
    sessions: Any,
    inv: Inventory,
    names: Sequence[str],
    *,
    token: str | None,
    access: AccessSettings,
    apply: bool,
    allow_remote: bool,
) -> dict[str, Any]:
    """`access` is required: every apply (the K3s steps and a patch's K3s upgrade) renders the
    server's config with the same OIDC provider, or one of them would drop the API's logins."""
    if apply and not token:
        raise ValueError(
            f"the K3s join token is not set: export {inv.k3s.token_env} "
            "(the variable the inventory's k3s.token_env names) and reload"
        )

    def facts_for(name: str) -> tuple[Fact, ...]:
        node = inv.node(name)
        data_dir = inv.k3s.data_dir if node.role == "server" else None
        return k3s_facts(k3s_service(node), token, data_dir)

    return run_step(
        sessions,
        inv,
        names,
        facts=facts_for,
        plan=lambda name, f: plan_k3s(inv, name, f, token, access),
        apply=apply,
        allow_remote=allow_remote,
        gate=k3s_gate,
    )
