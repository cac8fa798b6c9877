"""The weekly patch as an asset: `node_patches`, run by the `patch_nodes` job (OS packages)
and the `upgrade_k3s` job (the inventory's K3s release), both through the same roll.

Plan first, always: each node's upgradable packages and kernels (or K3s release) are read and
recorded as an observation, in patch order, before anything changes; materializing the asset
without `apply` stops there. With `apply` the nodes are patched one at a time (rolling.py)
and each node's history (packages changed, kernel before and after, time per phase) is
recorded as it finishes; the materialization holds all of them. A halt fails the run naming
the node, which stays cordoned.
"""

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from platform_assets.core.engine import for_each_node, may_contact, select_nodes, ssh_targets
from platform_assets.core.facts import read_facts
from platform_assets.node_health.facts import HealthLimits
from platform_assets.patching import ROLLING_PATCH_JOBS, gates
from platform_assets.patching.facts import K3S_PATCH_FACTS, OS_PATCH_FACTS
from platform_assets.patching.plan import (
    K3S,
    OS,
    REFRESH,
    NodePatchPlan,
    patch_order,
    plan_k3s,
    plan_markdown,
    plan_os,
)
from platform_assets.patching.rolling import NodeHistory, PatchHalted, Rollout, roll
from platform_assets.resources import InventoryFile, K3sToken
from resources.kubernetes import KubernetesResource
from resources.object_store import ObjectStore
from resources.ssh import NodeError, SshResource
from resources.warehouse import Warehouse

GROUP = "patching"
ASSET = "node_patches"


class PatchConfig(dg.Config):
    apply: bool = False
    """Patch the nodes. Off: plan only (package lists refreshed, nothing upgraded)."""
    mode: str = OS
    """`os`: Raspberry Pi OS packages (apt). `k3s`: the inventory's K3s release."""
    nodes: list[str] = []
    """Limit the run to these nodes (inventory names); empty: every node."""
    drain_timeout_s: float = 300.0
    """How long a node's drain may take (PodDisruptionBudgets respected, never forced)."""
    reboot_timeout_s: float = 600.0
    """How long a rebooted node may take to answer SSH again."""
    ready_timeout_s: float = 300.0
    """How long a node may take to be Ready again in Kubernetes."""
    max_soc_temp_c: float = HealthLimits.max_soc_temp_c
    """A node hotter than this is not disrupted (the gate halts)."""
    poll_s: float = 2.0
    """How often the waits ask again."""


def pod_node(kube: KubernetesResource, pod: str, namespace: str) -> str | None:
    """The node a pod was scheduled to (None: no such pod, or not scheduled yet)."""
    return (kube.get("v1", "Pod", pod, namespace) or {}).get("spec", {}).get("nodeName")


def this_run_node(kube: KubernetesResource) -> str | None:
    """The node this run's pod runs on (None outside the cluster). A pod's hostname is its
    name; its namespace is in the mounted ServiceAccount."""
    if not kube.in_cluster():
        return None
    namespace = (Path(kube.service_account_dir) / "namespace").read_text().strip()
    return pod_node(kube, os.environ.get("HOSTNAME", ""), namespace)


def read_plans(sessions, inv, order, config: PatchConfig, allow_remote: bool) -> dict:
    def one(name: str) -> NodePatchPlan:
        if not may_contact(inv.node(name), allow_remote):
            return NodePatchPlan(name, config.mode, skipped="not contacted (local profile)")
        if config.mode == K3S:
            return plan_k3s(name, read_facts(sessions, name, K3S_PATCH_FACTS), inv.k3s.version)
        sessions.run(name, list(REFRESH.argv), sudo=True, timeout_s=REFRESH.timeout_s)
        return plan_os(name, read_facts(sessions, name, OS_PATCH_FACTS))

    return for_each_node(sessions, order, one)


def history_markdown(history: list[NodeHistory]) -> str:
    rows = [
        "| node | result | packages changed | kernel before -> after | rebooted | seconds "
        "| upgrade + reboot s | job's own s |",
        "| --- | --- | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for h in history:
        kernel = f"{h.kernel_before} -> {h.kernel_after or '?'}"
        if h.k3s_before or h.k3s_after:
            kernel += f"; K3s {h.k3s_before} -> {h.k3s_after or '?'}"
        rows.append(
            f"| {h.node} | {h.result} | {len(h.packages)} | {kernel} | "
            f"{'yes' if h.rebooted else 'no'} | {h.seconds:.1f} | {h.work_s:.1f} | "
            f"{h.overhead_s:.1f} |"
        )
    for h in history:
        if h.packages:
            rows += ["", f"**{h.node}**: " + ", ".join(h.packages)]
        if h.kept_back:
            rows += ["", f"**{h.node}** kept back: " + ", ".join(h.kept_back)]
    return "\n".join(rows)


def history_json(h: NodeHistory) -> dict:
    return {**dataclasses.asdict(h), "seconds": round(h.seconds, 2)}


@dg.asset(
    name=ASSET,
    group_name=GROUP,
    kinds={"ssh", "kubernetes", "raspberrypi"},
    deps=[dg.AssetKey("kubeconfig"), dg.AssetKey("node_health")],
    output_required=False,  # a plan records an observation and no materialization
    # A reboot is not idempotent: never re-run automatically.
    op_tags={"dagster/max_retries": "0"},
)
def node_patches(
    context: dg.AssetExecutionContext,
    config: PatchConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
    kubernetes: KubernetesResource,
    k3s_token: K3sToken,
    patch_gate: gates.PatchGate,
    warehouse: Warehouse,
    object_store: ObjectStore,
) -> Iterator:
    """The nodes patched one at a time: the plan first (per node the upgradable packages,
    whether the kernel changes, in patch order), then for each node a gate (every node Ready,
    no blocking check failing, no curation running (the landing sensor waits), the node not
    hot or throttled), cordon, drain through the Eviction API, `apt-get upgrade` keeping local
    config files, a reboot only when a newer kernel was installed, SSH and Node Ready again,
    uncordon, and a gate after (release_ready of its releases, Trino and the object store
    answering). The node hosting Dagster, and the one this run runs on, go last. History per
    node: packages changed, kernel before and after, time taken."""
    if config.mode not in (OS, K3S):
        raise dg.Failure(f"mode must be {OS!r} or {K3S!r}, not {config.mode!r}")
    inv = inventory_file.load()
    names = select_nodes(inv, config.nodes)
    run_node = this_run_node(kubernetes)
    order = patch_order(inv, names, mode=config.mode, run_node=run_node)
    token = k3s_token.token or None
    allow_remote = inventory_file.allow_remote_nodes
    limits = HealthLimits(max_soc_temp_c=config.max_soc_temp_c)
    all_nodes = [n.name for n in inv.nodes]
    with ssh.open(
        ssh_targets(inv, all_nodes), log=context.log, secrets=[token] if token else []
    ) as sessions:
        read = read_plans(sessions, inv, order, config, allow_remote)
        failed = {n: o for n, o in read.items() if isinstance(o, NodeError)}
        plans = {n: p for n, p in read.items() if not isinstance(p, NodeError)}
        for name in failed:
            plans[name] = NodePatchPlan(
                name, config.mode, skipped=f"facts unreadable: {failed[name].reason}"
            )
        if run_node in plans:
            plans[run_node] = dataclasses.replace(
                plans[run_node],
                skipped="this run runs on it: a run placed off it patches it (weekly_patches)",
            )
        for name, plan in plans.items():
            if plan.skipped is None and not plan.changes:
                plans[name] = dataclasses.replace(plan, skipped="nothing to upgrade")
        plan_md = plan_markdown(list(plans.values()), order)
        yield dg.AssetObservation(
            asset_key=ASSET,
            metadata={
                "mode": f"{config.mode} {'apply' if config.apply else 'plan'}",
                "order": ", ".join(order),
                "run_node": run_node or "(not in the cluster)",
                "plan": dg.MetadataValue.md(plan_md),
                "reboots_expected": sum(p.reboot_expected for p in plans.values() if not p.skipped),
            },
        )
        if not config.apply:
            return
        if failed:
            raise dg.Failure(
                description="nothing was patched: the facts of "
                + ", ".join(f"{n} ({e.reason})" for n, e in failed.items())
                + " could not be read"
            )

        def gate_before(node: str) -> list[str]:
            return gates.joined(
                gates.nodes_not_ready(kubernetes, inv),
                gates.failing_blocking_checks(context.instance, patch_gate),
                gates.data_runs_busy(context.instance, patch_gate),
                gates.node_health_problems(sessions, inv, node, allow_remote, limits),
            )

        def gate_after(node: str) -> list[str]:
            return gates.joined(
                gates.nodes_not_ready(kubernetes, inv),
                gates.releases_not_ready(kubernetes, inv, node),
                gates.services_not_answering(warehouse, object_store),
            )

        rollout = Rollout(
            sessions,
            kubernetes,
            inv,
            gate_before,
            gate_after,
            reboot_timeout_s=config.reboot_timeout_s,
            drain_timeout_s=config.drain_timeout_s,
            ready_timeout_s=config.ready_timeout_s,
            poll_s=config.poll_s,
            skip_pod_selector=f"dagster/run-id={context.run.run_id}",
            token=token,
            allow_remote=allow_remote,
            log=context.log,
        )
        history: list[NodeHistory] = []
        try:
            for done in roll(rollout, order, plans):
                history.append(done)
                yield dg.AssetObservation(
                    asset_key=ASSET,
                    metadata={
                        "node": done.node,
                        "result": done.result,
                        "history": dg.MetadataValue.json(history_json(done)),
                    },
                )
        except PatchHalted as halted:
            later = order[order.index(halted.node) + 1 :]
            raise dg.Failure(
                description=(
                    f"patch halted at {halted.node} ({halted.step}): {halted.reason}. "
                    f"Not touched: {', '.join(later) or 'none'}. Fix it, uncordon "
                    f"{halted.node} if it is cordoned, and run patch_nodes again."
                ),
                metadata={
                    "halted_node": halted.node,
                    "halted_step": halted.step,
                    "not_touched": ", ".join(later) or "none",
                    "history": dg.MetadataValue.md(history_markdown(halted.history)),
                },
            ) from None
    skipped = {n: p.skipped for n, p in plans.items() if p.skipped}
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(history),
            "mode": config.mode,
            "patched": ", ".join(h.node for h in history) or "none",
            "skipped": dg.MetadataValue.json(skipped),
            "history": dg.MetadataValue.md(history_markdown(history)),
            "plan": dg.MetadataValue.md(plan_md),
        }
    )


def patch_run_config(apply: bool = True, mode: str = OS, nodes: tuple[str, ...] = ()) -> dict:
    return {"ops": {ASSET: {"config": {"apply": apply, "mode": mode, "nodes": list(nodes)}}}}


patch_nodes = dg.define_asset_job(
    ROLLING_PATCH_JOBS[0],
    selection=[ASSET],
    config=patch_run_config(),
    description="Patches the nodes' OS packages one at a time (plan first, gates around each "
    "node, reboots only for a new kernel). Started weekly by weekly_patches.",
    executor_def=dg.in_process_executor,
    tags={"dagster/max_retries": "0"},
)
upgrade_k3s = dg.define_asset_job(
    ROLLING_PATCH_JOBS[1],
    selection=[ASSET],
    config=patch_run_config(mode=K3S),
    description="Upgrades K3s to the inventory's k3s.version: the server first, then the "
    "agents, one at a time, each cordoned and drained first (the same roll as patch_nodes).",
    executor_def=dg.in_process_executor,
    tags={"dagster/max_retries": "0"},
)
