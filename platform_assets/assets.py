"""Cluster bring-up as assets: inventory -> preflight -> node prep -> reboot -> K3s -> kubeconfig.

Plan mode is the default: a materialization reads each node's facts and shows, per node, every
change (before -> after, commands) as markdown, and changes nothing. `apply: true` in the launch
config (or the `apply_cluster` job) applies, then re-reads the facts; the `converged` checks
prove nothing is left to do.

Per node, but not partitioned: each step fans out over the nodes inside one run (one SSH
connection per host for the step; under the default executor each step is its own process, so
a connection cannot outlive it), and the cluster-wide K3s steps follow the per-node ones in the
same job (an asset job cannot mix per-node partitions with unpartitioned assets). The `nodes`
config limits a run to some nodes; every result shows one row per node.
"""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from platform_assets.core.engine import may_contact, select_nodes, ssh_targets
from platform_assets.core.render import converged_check, fail_if_any_node_failed, step_metadata
from platform_assets.inventory import Inventory, capacity_table
from platform_assets.k3s.apply import run_k3s
from platform_assets.k3s.facts import K3S_KUBECONFIG
from platform_assets.k3s.plan import server_url
from platform_assets.kubeconfig.fetch import rewrite_kubeconfig, write_private
from platform_assets.node_prep.apply import run_node_prep
from platform_assets.node_reboot.apply import run_reboot
from platform_assets.preflight.verdicts import run_preflight
from platform_assets.resources import InventoryFile, K3sToken
from resources.kubernetes import KubernetesResource
from resources.ssh import NodeError, SshResource

GROUP = "platform"


class NodeStepConfig(dg.Config):
    apply: bool = False
    """Apply the planned changes. Off: plan only (nothing changes on any node)."""
    nodes: list[str] = []
    """Limit the step to these nodes (inventory names); empty: every node the step concerns."""


class RebootConfig(NodeStepConfig):
    timeout_s: float = 300.0
    """How long to wait for a rebooted node to answer again (a Pi 5 boots in ~30 s)."""


def _open(
    ssh: SshResource, inv: Inventory, names: Sequence[str], log=None, secrets: Sequence[str] = ()
):
    """SSH sessions for the step's nodes. Connections open on first use, so nodes the profile
    may not contact (see `core.engine.may_contact`) are never connected to."""
    return ssh.open(ssh_targets(inv, names), log=log, secrets=secrets)


# --- assets ------------------------------------------------------------------------------------


@dg.asset(group_name=GROUP, kinds={"yaml"})
def inventory(context: dg.AssetExecutionContext, inventory_file: InventoryFile):
    """The cluster's inventory, validated: nodes, network plan, K3s and SSH settings, and the
    planned memory per node."""
    inv = inventory_file.load()
    rows = capacity_table(inv)
    table = [
        "| node | role | address | workloads | planned MiB | limit MiB |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    table += [
        f"| {r['node']} | {r['role']} | {r['address']} | {r['workloads']} | "
        f"{r['planned_mib']} | {r['limit_mib']} |"
        for r in rows
    ]
    net = inv.network
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(inv.nodes),
            "file": inventory_file.path,
            "k3s_version": inv.k3s.version,
            "nodes": dg.MetadataValue.md("\n".join(table)),
            "network": dg.MetadataValue.md(
                f"LAN {net.subnet} (gateway {net.gateway}), MetalLB {net.metallb_pool.start}-"
                f"{net.metallb_pool.end}, pods {net.pod_cidr}, services {net.service_cidr}"
            ),
            "contacted": "all nodes"
            if inventory_file.allow_remote_nodes
            else "loopback nodes only (local profile)",
        }
    )


@dg.asset(
    group_name=GROUP,
    kinds={"ssh", "raspberrypi"},
    deps=[inventory],
    check_specs=[
        dg.AssetCheckSpec(
            "preflight_passed",
            asset="node_preflight",
            blocking=True,
            description="No node has a preflight error: nothing installs on a node that fails it.",
        )
    ],
)
def node_preflight(
    context: dg.AssetExecutionContext,
    config: NodeStepConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
):
    """Each node checked before anything is installed: Pi model, arm64, memory, OS release,
    cgroup v2 memory controller, page size, free disk, fsync latency where K3s keeps its data
    (etcd wants p99 < 10 ms), time sync, NIC speed. Reads only."""
    inv = inventory_file.load()
    names = select_nodes(inv, config.nodes)
    allow = inventory_file.allow_remote_nodes
    with _open(ssh, inv, names, log=context.log) as sessions:
        outcomes = run_preflight(sessions, inv, names, allow)
    lines, errors, warned, not_contacted = [], [], 0, []
    for name, outcome in outcomes.items():
        if isinstance(outcome, NodeError):
            lines.append(f"### {name}: unreachable or failed\n\n{outcome.reason}\n")
            errors.append(name)
            continue
        if not outcome.contacted:
            lines.append(f"### {name}: not contacted (local profile; loopback nodes only)\n")
            not_contacted.append(name)
            continue
        if outcome.errors:
            errors.append(name)
        warned += sum(1 for f in outcome.findings if f.level == "warn")
        lines.append(f"### {name}: " + ("FAILED" if outcome.errors else "ok"))
        lines.append("\n| | check | value | note |\n| --- | --- | --- | --- |")
        icon = {"ok": "ok", "warn": "WARN", "error": "ERROR"}
        lines += [
            f"| {icon[f.level]} | {f.item} | {f.value} | {f.message} |" for f in outcome.findings
        ]
        lines.append("")
    report = dg.MetadataValue.md("\n".join(lines))
    check = dg.AssetCheckResult(
        check_name="preflight_passed",
        passed=not errors and not not_contacted,
        severity=dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN,
        description=(
            f"failed on {', '.join(errors)}"
            if errors
            else f"not contacted: {', '.join(not_contacted)}"
            if not_contacted
            else "every node passed"
        ),
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(names),
            "nodes_failed": len(errors),
            "warnings": warned,
            "report": report,
        },
        check_results=[check],
    )


@dg.asset(
    group_name=GROUP,
    kinds={"ssh", "raspberrypi"},
    deps=[node_preflight],
    check_specs=[
        dg.AssetCheckSpec(
            "converged",
            asset="node_prep",
            description="After an apply, re-read facts plan no change.",
        )
    ],
)
def node_prep(
    context: dg.AssetExecutionContext,
    config: NodeStepConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
):
    """Each node made ready for K3s: packages, memory cgroup flags on the boot command line
    (reboot in node_reboot), swap off for good, hostname and hosts file, K3s sysctls, 30 days
    of journald, firewall (SSH/web only from the LAN, NodePorts only inside the cluster)."""
    inv = inventory_file.load()
    names = select_nodes(inv, config.nodes)
    allow = inventory_file.allow_remote_nodes
    with _open(ssh, inv, names, log=context.log) as sessions:
        outcomes = run_node_prep(sessions, inv, names, apply=config.apply, allow_remote=allow)
    reboots = [
        n
        for n, o in outcomes.items()
        if not isinstance(o, NodeError) and any(c.needs_reboot for c in o.plan.changes)
    ]
    yield dg.MaterializeResult(
        metadata=step_metadata(
            outcomes, config.apply, {"reboot_needed": ", ".join(reboots) or "none"}
        ),
        check_results=[converged_check(outcomes, config.apply, "node_prep")],
    )
    fail_if_any_node_failed(outcomes, "node prep")


@dg.asset(group_name=GROUP, kinds={"ssh", "raspberrypi"}, deps=[node_prep])
def node_reboot(
    context: dg.AssetExecutionContext,
    config: RebootConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
):
    """Reboots only the nodes whose new boot command line is not active yet, and waits (bounded)
    until each answers with a new boot id and the memory cgroup controller. Never retried
    automatically: a reboot is not idempotent."""
    inv = inventory_file.load()
    names = select_nodes(inv, config.nodes)
    allow = inventory_file.allow_remote_nodes
    with _open(ssh, inv, names, log=context.log) as sessions:
        outcomes = run_reboot(
            sessions, inv, names, apply=config.apply, allow_remote=allow, timeout_s=config.timeout_s
        )
    rows = ["| node | reboot | why | result |", "| --- | --- | --- | --- |"]
    rebooted = 0
    for name, o in outcomes.items():
        if isinstance(o, NodeError):
            rows.append(f"| {name} | failed | | {o.reason} |")
        elif not o.contacted:
            rows.append(f"| {name} | unknown | not contacted | |")
        elif o.reason is None:
            rows.append(f"| {name} | no | boot command line already active | |")
        elif o.rebooted:
            rebooted += 1
            rows.append(
                f"| {name} | yes | {o.reason} | back after {o.waited_s:.0f}s, memory cgroup on |"
            )
        else:
            rows.append(f"| {name} | would reboot | {o.reason} | plan mode |")
    yield dg.MaterializeResult(
        metadata={
            "mode": "apply" if config.apply else "plan",
            "dagster/row_count": rebooted,
            "rebooted": rebooted,
            "nodes": dg.MetadataValue.md("\n".join(rows)),
        }
    )
    fail_if_any_node_failed(outcomes, "reboot")


def _k3s_step(
    context,
    config: NodeStepConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
    k3s_token: K3sToken,
    role: str,
    key: str,
):
    inv = inventory_file.load()
    names = select_nodes(inv, config.nodes, role=role)
    allow = inventory_file.allow_remote_nodes
    token = k3s_token.token or None
    secrets = [token] if token else []
    with _open(ssh, inv, names, log=context.log, secrets=secrets) as sessions:
        outcomes = run_k3s(
            sessions, inv, names, token=token, apply=config.apply, allow_remote=allow
        )
    extra = {"k3s_version": inv.k3s.version, "server": server_url(inv)}
    if not token:
        extra["token"] = f"not set ({inv.k3s.token_env}); plans only"
    yield dg.MaterializeResult(
        metadata=step_metadata(outcomes, config.apply, extra),
        check_results=[converged_check(outcomes, config.apply, key)],
    )
    fail_if_any_node_failed(outcomes, f"K3s {role}")


@dg.asset(
    group_name=GROUP,
    kinds={"k3s", "ssh"},
    deps=[node_reboot],
    check_specs=[dg.AssetCheckSpec("converged", asset="k3s_server")],
)
def k3s_server(
    context: dg.AssetExecutionContext,
    config: NodeStepConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
    k3s_token: K3sToken,
):
    """The K3s server (pinned release, embedded etcd, config file, join token kept in a 0600
    file and redacted everywhere) on the inventory's server node."""
    yield from _k3s_step(context, config, inventory_file, ssh, k3s_token, "server", "k3s_server")


@dg.asset(
    group_name=GROUP,
    kinds={"k3s", "ssh"},
    deps=[k3s_server],
    check_specs=[dg.AssetCheckSpec("converged", asset="k3s_agents")],
)
def k3s_agents(
    context: dg.AssetExecutionContext,
    config: NodeStepConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
    k3s_token: K3sToken,
):
    """K3s agents joined to the server, one per agent node, with the inventory's labels."""
    yield from _k3s_step(context, config, inventory_file, ssh, k3s_token, "agent", "k3s_agents")


@dg.asset(group_name=GROUP, kinds={"kubernetes"}, deps=[k3s_agents])
def kubeconfig(
    context: dg.AssetExecutionContext,
    config: NodeStepConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
    kubernetes: KubernetesResource,
):
    """The cluster's admin kubeconfig, fetched from the K3s server, its server address set to the
    server node, stored 0600 under the platform's home for the later steps. Never logged."""
    inv = inventory_file.load()
    server = inv.server
    target = Path(kubernetes.kubeconfig_path).expanduser()
    url = server_url(inv)
    allow = inventory_file.allow_remote_nodes
    if not config.apply:
        return dg.MaterializeResult(
            metadata={
                "mode": "plan",
                "dagster/row_count": 0,
                "plan": dg.MetadataValue.md(
                    f"would fetch `{K3S_KUBECONFIG}` from {server.name}, set its server to "
                    f"{url} and store it at `{target}` (mode 0600)"
                ),
                "present": target.is_file(),
            }
        )
    if not may_contact(server, allow):
        raise dg.Failure(
            f"{server.name}: {server.address} is not contacted from the local "
            "profile (loopback only)"
        )
    # No log: the kubeconfig holds the cluster's admin credentials.
    with ssh.open(ssh_targets(inv, [server.name]), log=None) as quiet:
        result = quiet.run(server.name, ["cat", K3S_KUBECONFIG], sudo=True)
    write_private(target, rewrite_kubeconfig(result.stdout, url))
    context.log.info(f"kubeconfig stored at {target} (0600), server {url}")
    return dg.MaterializeResult(
        metadata={
            "mode": "apply",
            "dagster/row_count": 1,
            "path": str(target),
            "server": url,
            "file_mode": oct(target.stat().st_mode & 0o777),
        }
    )


@dg.asset_check(
    asset=kubeconfig,
    description="Every inventory node is a Ready Kubernetes node (through the Kubernetes API).",
)
def cluster_ready(inventory_file: InventoryFile, kubernetes: KubernetesResource):
    from resources.kubernetes import ClusterUnreachable, KubeconfigMissing

    inv = inventory_file.load()
    try:
        statuses = {s.name: s for s in kubernetes.node_statuses()}
    except KubeconfigMissing as exc:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, description=str(exc)
        )
    except ClusterUnreachable as exc:
        return dg.AssetCheckResult(passed=False, description=str(exc))
    rows = ["| node | Kubernetes | kubelet | address |", "| --- | --- | --- | --- |"]
    missing = []
    for node in inv.nodes:
        s = statuses.get(node.name)
        if s is None:
            missing.append(node.name)
            rows.append(f"| {node.name} | not registered | | |")
        else:
            if not s.ready:
                missing.append(node.name)
            rows.append(
                f"| {node.name} | {'Ready' if s.ready else 'NotReady: ' + s.reason} | "
                f"{s.kubelet_version} | {s.internal_ip} |"
            )
    return dg.AssetCheckResult(
        passed=not missing,
        description="all nodes Ready" if not missing else f"not Ready: {', '.join(missing)}",
        metadata={
            "nodes": dg.MetadataValue.md("\n".join(rows)),
            "ready": len(inv.nodes) - len(missing),
        },
    )


PLATFORM_ASSETS = [
    inventory,
    node_preflight,
    node_prep,
    node_reboot,
    k3s_server,
    k3s_agents,
    kubeconfig,
]
# Every step after the inventory takes the plan/apply config.
APPLY_STEPS = [a.key.to_user_string() for a in PLATFORM_ASSETS if a is not inventory]


def platform_resources(
    inventory_path: str | Path,
    ssh: SshResource,
    kubeconfig_path: str | Path,
    token: str = "",
    allow_remote_nodes: bool = False,
) -> dict:
    """The resources the platform assets need, e.g. for `dg.materialize(PLATFORM_ASSETS,
    resources=platform_resources(...), run_config=apply_run_config())` against the fake
    cluster. `token` may be a `dg.EnvVar`."""
    return {
        "inventory_file": InventoryFile(
            path=str(inventory_path), allow_remote_nodes=allow_remote_nodes
        ),
        "ssh": ssh,
        "k3s_token": K3sToken(token=token),
        "kubernetes": KubernetesResource(kubeconfig_path=str(kubeconfig_path)),
    }


def apply_run_config(
    nodes: Sequence[str] = (), apply: bool = True, steps: Sequence[str] = tuple(APPLY_STEPS)
) -> dict:
    """Run config that applies (or plans) the given steps, optionally on some nodes only."""
    return {"ops": {step: {"config": {"apply": apply, "nodes": list(nodes)}} for step in steps}}


apply_cluster = dg.define_asset_job(
    "apply_cluster",
    selection=dg.AssetSelection.groups(GROUP),
    config=apply_run_config(),
    description="Applies the cluster plan: node prep, reboots where needed, K3s server and "
    "agents, kubeconfig. Materializing the assets without this job only plans.",
    # A reboot is not idempotent: never re-run automatically.
    tags={"dagster/max_retries": "0"},
)
