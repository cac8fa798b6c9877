"""The platform's releases as assets: capacity_plan, then one asset per release, plus rollback.

Plan by default: each selected release is diffed against the live HelmCharts (server-side-apply
dry run) and an observation records the diff; nothing changes. Without a kubeconfig (the local
profile planning inventory.example.yaml) nothing is contacted and the observation holds the
whole desired state. `apply: true` applies with the platform's field manager (a second apply
changes nothing), waits for the controller, and materializes with the chart versions, the values
hash and the whole spec, which `rollback_release` can apply again later.

The releases are one subsettable multi-asset: one process applies them in dependency order and
stops before a release whose dependency is not ready (a later issue asks for one process per
infrastructure job anyway). Each has a blocking `release_ready` check.
"""

import dagster as dg

from platform_assets.assets import InventoryFile
from platform_assets.inventory import Inventory
from platform_assets.releases import capacity, catalogue, cluster, readiness, secrets
from platform_assets.releases.spec import (
    HELMCHART_API,
    RELEASE_LABEL,
    Release,
    helmcharts,
    secret_manifests,
    values_hash,
)
from platform_assets.run_placement import infrastructure_job_tags
from resources.kubernetes import ClusterUnreachable, KubeconfigMissing, KubernetesResource

GROUP = "releases"
NODE_GROUP = "nodes"
KIND_TAG = "picluster/kind"
PLACEMENT = "picluster/placement"  # per workload: the nodes it may run on (blast radius reads it)


def node_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["node", name])


def node_specs(inv: Inventory) -> list[dg.AssetSpec]:
    """The Pis, as the graph's roots: the releases placed on a node depend on it."""
    return [
        dg.AssetSpec(
            key=node_key(n.name),
            group_name=NODE_GROUP,
            kinds={"raspberrypi"},
            tags={KIND_TAG: "node"},
            description=f"The Raspberry Pi {n.name} ({n.role}, {n.address}).",
            metadata={
                "role": n.role,
                "address": n.address,
                "memory_mib": n.memory_mib,
                "labels": ", ".join(f"{k}={v}" for k, v in sorted(n.labels.items())) or "none",
            },
        )
        for n in inv.nodes
    ]


def placement(release: Release, inv: Inventory) -> dict[str, list[str]]:
    return {w.name: [n.name for n in capacity.nodes_for(w, inv)] for w in release.workloads}


# --- capacity ----------------------------------------------------------------------------------


@dg.asset(
    group_name=GROUP,
    kinds={"kubernetes"},
    deps=[dg.AssetKey("inventory"), dg.AssetKey("kubeconfig")],
    check_specs=[
        dg.AssetCheckSpec(
            "capacity_fits",
            asset="capacity_plan",
            blocking=True,
            description="Every node keeps 20 % of its memory free after the OS, K3s and the "
            "limits of the built releases: nothing deploys onto an over-committed node.",
        ),
        dg.AssetCheckSpec(
            "full_catalogue_fits",
            asset="capacity_plan",
            description="The same, with the releases later issues build (their planned sizes).",
        ),
    ],
)
def capacity_plan(inventory_file: InventoryFile) -> dg.MaterializeResult:
    """Memory per node from the releases' own requests and limits, by placement, against each
    node's memory less the OS and K3s. Built releases only for the blocking check; the releases
    of later issues too, as a warning, so the whole catalogue's fit is known now."""
    inv = inventory_file.load()
    built = catalogue.releases(inv)
    plan = capacity.capacity_plan(inv, built)
    full = capacity.capacity_plan(inv, built, catalogue.PLANNED)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(plan.nodes),
            "plan": dg.MetadataValue.md(capacity.markdown(plan)),
            "full_catalogue": dg.MetadataValue.md(capacity.markdown(full)),
            "tightest_node": min(plan.nodes, key=lambda n: n.free_fraction).node,
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="capacity_fits",
                passed=plan.fits,
                description="every node fits" if plan.fits else "\n".join(plan.problems()),
            ),
            dg.AssetCheckResult(
                check_name="full_catalogue_fits",
                passed=full.fits,
                severity=dg.AssetCheckSeverity.WARN,
                description="the whole catalogue fits" if full.fits else "\n".join(full.problems()),
            ),
        ],
    )


# --- releases ----------------------------------------------------------------------------------


class ReleaseConfig(dg.Config):
    apply: bool = False
    """Apply the HelmCharts. Off: plan only (a dry-run diff; nothing changes)."""
    wait_s: float = 900.0
    """After an apply, how long to wait for the controller's jobs and the workloads."""


def _check_result(name: str, verdict: readiness.Verdict, applied: bool) -> dg.AssetCheckResult:
    rows = ["| object | state | detail |", "| --- | --- | --- |"]
    rows += [f"| {o} | {s} | {d} |" for o, s, d in verdict.rows]
    return dg.AssetCheckResult(
        asset_key=name,
        check_name="release_ready",
        passed=verdict.passed,
        # Not ready while only planning is information; after an apply it stops what follows.
        severity=dg.AssetCheckSeverity.ERROR if applied else dg.AssetCheckSeverity.WARN,
        description="ready" if verdict.passed else "\n\n".join(verdict.failures)[:4000],
        metadata={"objects": dg.MetadataValue.md("\n".join(rows))},
    )


def _offline_check(name: str, reason: str) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=name,
        check_name="release_ready",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"not checked: {reason}",
    )


def _spec_metadata(release: Release, manifests: list[dict]) -> dict:
    versions = ", ".join(
        f"{c.name} {c.chart_version}" + (" (own manifests)" if c.own else "")
        for c in release.charts
    )
    return {
        "chart_versions": versions,
        "values_hash": values_hash(manifests),
        # The whole spec, for rollback_release. It holds no secret: values only name Secrets.
        "spec": dg.MetadataValue.json(manifests),
    }


def release_specs(inv: Inventory) -> list[dg.AssetSpec]:
    out = []
    for release in catalogue.releases(inv):
        where = placement(release, inv)
        nodes = sorted({n for names in where.values() for n in names})
        out.append(
            dg.AssetSpec(
                key=release.name,
                group_name=GROUP,
                kinds={"kubernetes", "helm"},
                tags={KIND_TAG: "release"},
                description=release.description,
                deps=[
                    dg.AssetKey("kubeconfig"),
                    capacity_plan.key,
                    *release.needs,
                    *(node_key(n) for n in nodes),
                ],
                skippable=True,  # a plan records an observation, not a materialization
                metadata={
                    "namespace": release.namespace,
                    "charts": ", ".join(c.name for c in release.charts),
                    PLACEMENT: dg.MetadataValue.json(where),
                },
            )
        )
    return out


def build_release_assets(inv: Inventory) -> dg.AssetsDefinition:
    specs = release_specs(inv)

    @dg.multi_asset(
        name="releases",
        specs=specs,
        check_specs=[
            dg.AssetCheckSpec(
                "release_ready",
                asset=spec.key,
                blocking=True,
                description="The controller's job finished without a Failed condition, the "
                "Helm release is deployed with the applied values' hash, and every workload "
                "of the release is ready.",
            )
            for spec in specs
        ],
        can_subset=True,
        # Two runs applying releases at once would race on the same HelmCharts: the instance's
        # concurrency config should give this pool a limit of 1 (DESIGN: one owner at a time).
        pool="releases",
    )
    def releases(
        context: dg.AssetExecutionContext,
        config: ReleaseConfig,
        inventory_file: InventoryFile,
        kubernetes: KubernetesResource,
    ):
        inv = inventory_file.load()
        built = catalogue.releases(inv)
        fit = capacity.capacity_plan(inv, built)
        if config.apply and not fit.fits:
            raise dg.Failure(
                description="the capacity plan over-commits a node; nothing was applied:\n"
                + "\n".join(f"- {p}" for p in fit.problems())
            )
        selected = [r for r in built if dg.AssetKey(r.name) in context.selected_asset_keys]
        checks = {k.asset_key for k in context.selected_asset_check_keys}
        offline = cluster.no_cluster(kubernetes)
        if config.apply and offline:
            raise dg.Failure(f"releases: cannot apply: {offline}")
        if not offline:
            _require_admin_secrets(kubernetes, selected)
        not_ready: list[str] = []
        for release in selected:
            manifests = helmcharts(release)
            blocked = [n for n in release.needs if n in not_ready]
            if blocked:
                not_ready.append(release.name)
                context.log.warning(f"{release.name}: not applied, {', '.join(blocked)} not ready")
                yield dg.AssetObservation(
                    asset_key=release.name,
                    metadata={"mode": "skipped", "needs_not_ready": ", ".join(blocked)},
                )
                continue
            if not offline:
                try:
                    if config.apply:
                        yield from _apply(context, kubernetes, release, manifests, config)
                    else:
                        plans = cluster.plan(kubernetes, manifests)
                        yield dg.AssetObservation(
                            asset_key=release.name,
                            metadata={
                                "mode": "plan",
                                "changes": sum(1 for p in plans if p.changed or not p.exists),
                                "plan": dg.MetadataValue.md(cluster.plan_markdown(plans)),
                                "values_hash": values_hash(manifests),
                            },
                        )
                except KubeconfigMissing as exc:
                    if config.apply:
                        raise dg.Failure(f"{release.name}: cannot apply: {exc}") from None
                    offline = str(exc)
                except ClusterUnreachable as exc:
                    raise dg.Failure(f"{release.name}: {exc}") from None
            if offline:
                yield dg.AssetObservation(
                    asset_key=release.name,
                    metadata={
                        "mode": "plan (no cluster contacted)",
                        "plan": dg.MetadataValue.md(
                            cluster.offline_markdown(release, manifests, secret_manifests(release))
                        ),
                        **_spec_metadata(release, manifests),
                    },
                )
                if dg.AssetKey(release.name) in checks:
                    yield _offline_check(release.name, offline)
                continue
            if dg.AssetKey(release.name) in checks or config.apply:
                verdict = readiness.verdict(release.name, *cluster.facts(kubernetes, release))
                if not verdict.passed:
                    not_ready.append(release.name)
                if dg.AssetKey(release.name) in checks:
                    yield _check_result(release.name, verdict, config.apply)
        if config.apply and not_ready:
            raise dg.Failure(
                description=f"not ready after apply: {', '.join(not_ready)} (see release_ready)"
            )

    return releases


def _require_admin_secrets(kube, selected: list[Release]) -> None:
    """Before anything is planned or applied: the Secrets only an admin can make exist with the
    keys their releases need (key names only, never a value), so a release is refused now
    rather than its pods waiting and release_ready failing after the apply."""
    try:
        problems = secrets.admin_secret_problems(kube, selected)
    except (KubeconfigMissing, ClusterUnreachable) as exc:
        raise dg.Failure(f"releases: {exc}") from None
    if problems:
        raise dg.Failure(
            description="a Secret only an admin can make is missing or incomplete; nothing was "
            "planned or applied:\n" + "\n".join(f"- {p}" for p in problems)
        )


def _apply(context, kube, release: Release, manifests: list[dict], config: ReleaseConfig):
    planned, secrets_report, before = cluster.apply(kube, release, manifests)
    pending = cluster.wait_settled(kube, release, before, config.wait_s)
    changed = [p.name for p in planned if p.changed or not p.exists]
    context.log.info(
        f"{release.name}: applied ({', '.join(changed) or 'no change'})"
        + (f"; still pending: {'; '.join(pending)}" if pending else "")
    )
    yield dg.MaterializeResult(
        asset_key=release.name,
        metadata={
            "mode": "apply",
            "dagster/row_count": len(changed),
            "changed": ", ".join(changed) or "none",
            "plan": dg.MetadataValue.md(cluster.plan_markdown(planned)),
            "secrets": dg.MetadataValue.md("\n".join(f"- {line}" for line in secrets_report)),
            "pending": "; ".join(pending) or "none",
            **_spec_metadata(release, manifests),
        },
    )


apply_releases = dg.define_asset_job(
    "apply_releases",
    selection=dg.AssetSelection.groups(GROUP),
    config={"ops": {"releases": {"config": {"apply": True}}}},
    description="Applies the releases (capacity plan first). Materializing them without this "
    "job only plans.",
    # One infrastructure run at a time; an apply waits on the cluster, re-running it
    # automatically would only wait again.
    tags=infrastructure_job_tags(),
)


# --- rollback ----------------------------------------------------------------------------------


class RollbackConfig(dg.Config):
    release: str
    """The release to roll back, e.g. trino."""
    back: int = 1
    """Which earlier apply to restore: 1 = the one before the latest, 2 = the one before that."""
    wait_s: float = 900.0


def earlier_spec(instance: dg.DagsterInstance, release: str, back: int) -> tuple[list[dict], str]:
    """The spec the `back`-th apply before the latest recorded, and its run id."""
    if release not in catalogue.RELEASE_NAMES:
        raise dg.Failure(
            f"rollback_release: no release named {release!r}; releases: "
            + ", ".join(catalogue.RELEASE_NAMES)
        )
    if back < 1:
        raise dg.Failure(f"rollback_release: back must be 1 or more, got {back}")
    records = instance.fetch_materializations(dg.AssetKey(release), limit=back + 1).records
    applied = [r for r in records if "spec" in r.asset_materialization.metadata]
    if len(applied) <= back:
        raise dg.Failure(
            f"rollback_release: {release} has {len(applied)} recorded applies; none is "
            f"{back} before the latest"
        )
    record = applied[back]
    spec = record.asset_materialization.metadata["spec"].value
    for manifest in spec:
        labels = manifest.get("metadata", {}).get("labels", {})
        if manifest.get("kind") != "HelmChart" or labels.get(RELEASE_LABEL) != release:
            raise dg.Failure(
                f"rollback_release: the spec recorded by run {record.run_id} holds something "
                f"other than {release}'s HelmCharts; refusing to apply it"
            )
    return spec, record.run_id


@dg.op(out={})
def rollback_release_op(
    context: dg.OpExecutionContext,
    config: RollbackConfig,
    inventory_file: InventoryFile,
    kubernetes: KubernetesResource,
):
    """Re-applies the whole recorded spec of an earlier apply of one release."""
    spec, run_id = earlier_spec(context.instance, config.release, config.back)
    inv = inventory_file.load()
    release = next(r for r in catalogue.releases(inv) if r.name == config.release)
    # As before an apply: the spec restored may read a Secret only an admin makes.
    _require_admin_secrets(kubernetes, [release])
    # The same path as an apply: Secrets kept, a dry run to see what changes, then the apply.
    planned, _, before = cluster.apply(kubernetes, release, spec)
    restored = {m["metadata"]["name"] for m in spec}
    # Charts the release gained after that apply are left in place (deleting a HelmChart
    # uninstalls its release); they are named so a person can decide.
    live = kubernetes.list(
        HELMCHART_API, "HelmChart", "kube-system", label_selector=f"{RELEASE_LABEL}={release.name}"
    )
    extra = [h["metadata"]["name"] for h in live if h["metadata"]["name"] not in restored]
    pending = cluster.wait_settled(kubernetes, release, before, config.wait_s)
    context.log.info(f"{release.name}: restored the spec of run {run_id}")
    yield dg.AssetMaterialization(
        asset_key=release.name,
        metadata={
            "mode": "rollback",
            "rolled_back_to_run": run_id,
            "changed": ", ".join(p.name for p in planned if p.changed or not p.exists) or "none",
            "charts_not_in_that_spec": ", ".join(extra) or "none",
            "pending": "; ".join(pending) or "none",
            "chart_versions": ", ".join(
                f"{m['metadata']['name']} {m['spec'].get('version') or 'own manifests'}"
                for m in spec
            ),
            "values_hash": values_hash(spec),
            "spec": dg.MetadataValue.json(spec),
        },
    )


@dg.job(
    description="Re-applies an earlier recorded spec of one release (config: release, back).",
    # Never beside another infrastructure run, never retried by itself: a rollback half done
    # is for a person to look at.
    tags=infrastructure_job_tags(),
)
def rollback_release():
    rollback_release_op()
