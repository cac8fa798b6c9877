"""Cluster bring-up as assets: inventory -> preflight -> node prep -> reboot -> K3s -> kubeconfig.

Plan mode is the default: a run reads each node's facts and records, per step, an observation
with every change per node (before -> after, commands) as markdown, and changes nothing. Only an
apply (`apply: true` in the launch config, or the `apply_cluster` job) materializes: it applies,
re-reads the facts, and the `converged` checks prove nothing is left to do. A step that fails on
any node records an observation of what happened, not a materialization, and stops the apply.

The steps are one subsettable multi-asset (`cluster_bringup`), run in order in one process: a
plan that records no materialization must not make Dagster skip the steps after it (it skips an
asset whose upstream in the same run produced no output), and every step of a run shares one
SSH connection per host. Each step is still its own asset in the graph, selectable alone.

Per node, but not partitioned: each step fans out over the nodes inside the run, and the
cluster-wide K3s steps follow the per-node ones (an asset job cannot mix per-node partitions
with unpartitioned assets). The `nodes` config limits a run to some nodes; every result shows
one row per node.
"""

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from platform_assets.core.engine import may_contact, select_nodes, ssh_targets
from platform_assets.core.render import converged_check, node_errors, step_metadata
from platform_assets.inventory import Inventory
from platform_assets.k3s.apply import run_k3s
from platform_assets.k3s.facts import K3S_KUBECONFIG
from platform_assets.k3s.plan import api_oidc, server_url
from platform_assets.kubeconfig.fetch import rewrite_kubeconfig, write_private
from platform_assets.node_prep.apply import run_node_prep
from platform_assets.node_reboot.apply import run_reboot
from platform_assets.preflight.verdicts import run_preflight
from platform_assets.releases.access_settings import load_access_settings
from platform_assets.resources import InventoryFile, K3sToken
from platform_assets.run_placement import infrastructure_job_tags
from resources.kubernetes import ClusterUnreachable, KubeconfigMissing, KubernetesResource
from resources.ssh import NodeError, NodeSessions, SshResource

GROUP = "platform"


class BringUpConfig(dg.Config):
    apply: bool = False
    """Apply the planned changes. Off: plan only (nothing changes on any node)."""
    nodes: list[str] = []
    """Limit the steps to these nodes (inventory names); empty: every node a step concerns."""
    reboot_timeout_s: float = 300.0
    """How long to wait for a rebooted node to answer again (a Pi 5 boots in ~30 s) and, on a
    running cluster, to be Ready."""


@dg.asset(group_name=GROUP, kinds={"yaml"})
def inventory(context: dg.AssetExecutionContext, inventory_file: InventoryFile):
    """The cluster's inventory, validated: nodes, network plan, K3s and SSH settings. Memory
    per node is planned by `capacity_plan`, from the releases' own limits."""
    inv = inventory_file.load()
    table = [
        "| node | role | address | memory MiB | labels |",
        "| --- | --- | --- | ---: | --- |",
    ]
    table += [
        f"| {n.name} | {n.role} | {n.address} | {n.memory_mib} | "
        + ", ".join(f"`{k}={v}`" for k, v in sorted(n.labels.items()))
        + " |"
        for n in inv.nodes
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


# --- the steps -----------------------------------------------------------------------------------


@dataclass
class StepRun:
    """What every step of one run works with."""

    context: dg.AssetExecutionContext
    config: BringUpConfig
    inv: Inventory
    allow_remote: bool
    sessions: NodeSessions
    ssh: SshResource
    token: str | None
    kubernetes: KubernetesResource

    def nodes(self, role: str | None = None) -> list[str]:
        return select_nodes(self.inv, self.config.nodes, role=role)


@dataclass
class StepReport:
    """One step's result: its metadata (the plan), its checks, and why it failed, if it did."""

    metadata: dict
    checks: list[dg.AssetCheckResult] = field(default_factory=list)
    failure: str | None = None


def _failure(outcomes: dict, step: str) -> str | None:
    errors = node_errors(outcomes)
    if not errors:
        return None
    lines = "\n".join(f"- {e}" for e in errors.values())
    return f"{step} failed on {', '.join(errors)} (the other nodes finished):\n{lines}"


def preflight_step(run: StepRun) -> StepReport:
    names = run.nodes()
    outcomes = run_preflight(run.sessions, run.inv, names, run.allow_remote)
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
    check = dg.AssetCheckResult(
        asset_key="node_preflight",
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
    return StepReport(
        metadata={
            "mode": "apply" if run.config.apply else "plan",
            "dagster/row_count": len(names),
            "nodes_failed": len(errors),
            "warnings": warned,
            "report": dg.MetadataValue.md("\n".join(lines)),
        },
        checks=[check],
        # Nothing installs on a node that fails preflight: an apply stops here.
        failure=f"preflight failed on {', '.join(errors)}; nothing after it was applied"
        if errors
        else None,
    )


def node_prep_step(run: StepRun) -> StepReport:
    apply = run.config.apply
    outcomes = run_node_prep(
        run.sessions, run.inv, run.nodes(), apply=apply, allow_remote=run.allow_remote
    )
    reboots = [
        n
        for n, o in outcomes.items()
        if not isinstance(o, NodeError) and any(c.needs_reboot for c in o.plan.changes)
    ]
    return StepReport(
        metadata=step_metadata(outcomes, apply, {"reboot_needed": ", ".join(reboots) or "none"}),
        checks=[converged_check(outcomes, apply, "node_prep")],
        failure=_failure(outcomes, "node prep"),
    )


def node_reboot_step(run: StepRun) -> StepReport:
    outcomes = run_reboot(
        run.sessions,
        run.inv,
        run.nodes(),
        apply=run.config.apply,
        allow_remote=run.allow_remote,
        timeout_s=run.config.reboot_timeout_s,
        wait_ready=lambda name, timeout_s: wait_until_ready(run.kubernetes, name, timeout_s),
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
                f"| {name} | yes (wave {o.wave + 1}) | {o.reason} | back after "
                f"{o.waited_s:.0f}s, memory cgroup on |"
            )
        else:
            rows.append(f"| {name} | would reboot | {o.reason} | plan mode |")
    return StepReport(
        metadata={
            "mode": "apply" if run.config.apply else "plan",
            "dagster/row_count": rebooted,
            "rebooted": rebooted,
            "nodes": dg.MetadataValue.md("\n".join(rows)),
        },
        failure=_failure(outcomes, "reboot"),
    )


def wait_until_ready(kubernetes: KubernetesResource, node: str, timeout_s: float) -> None:
    """Returns once Kubernetes reports the node Ready. Without a kubeconfig (a cluster being
    brought up) there is nothing to ask, and SSH being back is all that can be known."""
    if not Path(kubernetes.kubeconfig_path).expanduser().is_file():
        return
    deadline = time.monotonic() + timeout_s
    last = "not registered"
    while True:
        try:
            status = {s.name: s for s in kubernetes.node_statuses()}.get(node)
        except (ClusterUnreachable, KubeconfigMissing) as exc:
            status, last = None, str(exc)
        if status is not None and status.ready:
            return
        if status is not None:
            last = f"NotReady: {status.reason}"
        if time.monotonic() > deadline:
            raise NodeError(
                node,
                f"back over SSH but not Ready in Kubernetes within {timeout_s:g}s ({last}); "
                "the nodes after it were not rebooted",
            )
        time.sleep(2.0)


def _k3s_step(run: StepRun, role: str, key: str) -> StepReport:
    apply = run.config.apply
    access = load_access_settings()
    outcomes = run_k3s(
        run.sessions,
        run.inv,
        run.nodes(role=role),
        token=run.token,
        access=access,
        apply=apply,
        allow_remote=run.allow_remote,
    )
    extra = {"k3s_version": run.inv.k3s.version, "server": server_url(run.inv)}
    if role == "server":
        provider = api_oidc(access)
        extra["api_oidc"] = (
            f"people log in with {provider.issuer_url} (kubectl's client "
            f"{provider.kubectl_client_id}); their groups reach RBAC as oidc:<group>"
            if provider
            else "off: PICLUSTER_OIDC_ISSUER_URL is not set, so the API takes only "
            "certificates (the admin kubeconfig)"
        )
    if not run.token:
        extra["token"] = f"not set ({run.inv.k3s.token_env}); plans only"
    return StepReport(
        metadata=step_metadata(outcomes, apply, extra),
        checks=[converged_check(outcomes, apply, key)],
        failure=_failure(outcomes, f"K3s {role}"),
    )


def k3s_server_step(run: StepRun) -> StepReport:
    return _k3s_step(run, "server", "k3s_server")


def k3s_agents_step(run: StepRun) -> StepReport:
    return _k3s_step(run, "agent", "k3s_agents")


def kubeconfig_step(run: StepRun) -> StepReport:
    server = run.inv.server
    target = Path(run.kubernetes.kubeconfig_path).expanduser()
    url = server_url(run.inv)
    if not run.config.apply:
        return StepReport(
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
    if not may_contact(server, run.allow_remote):
        return StepReport(
            metadata={"mode": "apply", "dagster/row_count": 0},
            failure=f"{server.name}: {server.address} is not contacted from the local "
            "profile (loopback only)",
        )
    # No log: the kubeconfig holds the cluster's admin credentials.
    with run.ssh.open(ssh_targets(run.inv, [server.name]), log=None) as quiet:
        result = quiet.run(server.name, ["cat", K3S_KUBECONFIG], sudo=True)
    write_private(target, rewrite_kubeconfig(result.stdout, url))
    run.context.log.info(f"kubeconfig stored at {target} (0600), server {url}")
    return StepReport(
        metadata={
            "mode": "apply",
            "dagster/row_count": 1,
            "path": str(target),
            "server": url,
            "file_mode": oct(target.stat().st_mode & 0o777),
        }
    )


def _step(key: str, kinds: set[str], deps: list, description: str) -> dg.AssetSpec:
    # skippable: a plan records an observation and no materialization.
    return dg.AssetSpec(
        key, deps=deps, kinds=kinds, description=description, group_name=GROUP, skippable=True
    )


# In the order they run; each asset depends on the one before.
STEPS: list[tuple[dg.AssetSpec, Callable[[StepRun], StepReport]]] = [
    (
        _step(
            "node_preflight",
            {"ssh", "raspberrypi"},
            [inventory],
            "Each node checked before anything is installed: Pi model, arm64, memory, OS "
            "release, cgroup v2 memory controller, page size, free disk, fsync latency where K3s "
            "keeps its data (etcd wants p99 < 10 ms), time sync, NIC speed. Reads only.",
        ),
        preflight_step,
    ),
    (
        _step(
            "node_prep",
            {"ssh", "raspberrypi"},
            ["node_preflight"],
            "Each node made ready for K3s: packages, memory cgroup flags on the boot command "
            "line (reboot in node_reboot), swap off for good, hostname and hosts file, K3s "
            "sysctls, 30 days of journald, firewall (SSH/web only from the LAN, NodePorts only "
            "inside the cluster).",
        ),
        node_prep_step,
    ),
    (
        _step(
            "node_reboot",
            {"ssh", "raspberrypi"},
            ["node_prep"],
            "Reboots only the nodes whose new boot command line is not active yet, and waits "
            "(bounded) until each answers with a new boot id and the memory cgroup controller. "
            "Once K3s runs anywhere, one node at a time: the server first, then the agents, each "
            "back and Ready before the next. Never retried automatically: a reboot is not "
            "idempotent.",
        ),
        node_reboot_step,
    ),
    (
        _step(
            "k3s_server",
            {"k3s", "ssh"},
            ["node_reboot"],
            "The K3s server (pinned release, embedded etcd, config file, join token kept in a "
            "0600 file and redacted everywhere) on the inventory's server node. A token that "
            "differs from the one an existing cluster was created with is refused (rotate it "
            "with `k3s token rotate`).",
        ),
        k3s_server_step,
    ),
    (
        _step(
            "k3s_agents",
            {"k3s", "ssh"},
            ["k3s_server"],
            "K3s agents joined to the server, one per agent node, with the inventory's labels.",
        ),
        k3s_agents_step,
    ),
    (
        _step(
            "kubeconfig",
            {"kubernetes"},
            ["k3s_agents"],
            "The cluster's admin kubeconfig, fetched from the K3s server, its server address "
            "set to the server node, stored 0600 under the platform's home for the later "
            "steps. Never logged.",
        ),
        kubeconfig_step,
    ),
]

STEP_CHECKS = [
    dg.AssetCheckSpec(
        "preflight_passed",
        asset="node_preflight",
        blocking=True,
        description="No node has a preflight error: nothing installs on a node that fails it.",
    ),
    dg.AssetCheckSpec(
        "converged",
        asset="node_prep",
        description="After an apply, re-read facts plan no change.",
    ),
    dg.AssetCheckSpec("converged", asset="k3s_server"),
    dg.AssetCheckSpec("converged", asset="k3s_agents"),
]


@dg.multi_asset(
    name="cluster_bringup",
    specs=[spec for spec, _ in STEPS],
    check_specs=STEP_CHECKS,
    can_subset=True,
    # A reboot is not idempotent: never re-run automatically.
    op_tags={"dagster/max_retries": "0"},
)
def cluster_bringup(
    context: dg.AssetExecutionContext,
    config: BringUpConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
    k3s_token: K3sToken,
    kubernetes: KubernetesResource,
) -> Iterator:
    """The bring-up steps selected for this run, in order, each planned or applied."""
    inv = inventory_file.load()
    select_nodes(inv, config.nodes)  # an unknown name fails before anything is contacted
    token = k3s_token.token or None
    selected = context.selected_asset_keys
    checks = context.selected_asset_check_keys
    failures: list[str] = []
    # Every node's sessions, connected on first use: only the nodes a step reads are contacted.
    targets = ssh_targets(inv, [n.name for n in inv.nodes])
    with ssh.open(targets, log=context.log, secrets=[token] if token else []) as sessions:
        run = StepRun(
            context,
            config,
            inv,
            inventory_file.allow_remote_nodes,
            sessions,
            ssh,
            token,
            kubernetes,
        )
        for spec, step in STEPS:
            if spec.key not in selected:
                continue
            report = step(run)
            if config.apply and report.failure is None:
                yield dg.MaterializeResult(asset_key=spec.key, metadata=report.metadata)
            else:
                yield dg.AssetObservation(asset_key=spec.key, metadata=report.metadata)
            yield from (
                c for c in report.checks if dg.AssetCheckKey(spec.key, c.check_name) in checks
            )
            if report.failure is not None:
                failures.append(report.failure)
                if config.apply:
                    break  # nothing after a failed step is applied
    if failures:
        raise dg.Failure(description="\n\n".join(failures))


@dg.asset_check(
    asset="kubeconfig",
    description="Every inventory node is a Ready Kubernetes node (through the Kubernetes API).",
)
def cluster_ready(inventory_file: InventoryFile, kubernetes: KubernetesResource):
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


PLATFORM_ASSETS = [inventory, cluster_bringup]
# The bring-up steps, in order, by asset key.
BRINGUP_STEPS = [spec.key.to_user_string() for spec, _ in STEPS]


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


def apply_run_config(nodes: Sequence[str] = (), apply: bool = True) -> dict:
    """Run config that applies (or plans) the selected bring-up steps, optionally on some nodes
    only; which steps run is the run's asset selection."""
    return {"ops": {"cluster_bringup": {"config": {"apply": apply, "nodes": list(nodes)}}}}


apply_cluster = dg.define_asset_job(
    "apply_cluster",
    selection=dg.AssetSelection.groups(GROUP),
    config=apply_run_config(),
    description="Applies the cluster plan: node prep, reboots where needed, K3s server and "
    "agents, kubeconfig. Materializing the assets without this job only plans.",
    # One process for the whole run: one SSH connection per host, no process start per step.
    executor_def=dg.in_process_executor,
    # One infrastructure run at a time, never re-run automatically (a reboot is not
    # idempotent); the nodes a run touches are added at launch (run_placement.run_tags).
    tags=infrastructure_job_tags(),
)
