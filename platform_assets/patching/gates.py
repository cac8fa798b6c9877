"""The gates around each node of a rolling patch: what must hold before a node is disrupted and
after it is back. Each returns the reasons it fails (empty: it holds), in the platform's words.

Before: every node Ready, no blocking asset check failing, the data runs quiet (no curation
run in progress; the landing sensor starts none while a patch runs), the node itself not hot
or throttled (the `node_health` facts and limits). After: the node Ready, the `release_ready`
verdict of every applied release placed on it, the warehouse (Trino) and the object store
answering.
"""

from collections.abc import Sequence

import dagster as dg

from platform_assets.inventory import Inventory
from platform_assets.node_health.assets import read_health
from platform_assets.node_health.facts import HealthLimits, health_problems
from platform_assets.releases import catalogue, cluster, readiness
from platform_assets.releases.assets import placement
from platform_assets.releases.spec import HELMCHART_API
from resources.kubernetes import ApiRefused, ClusterUnreachable, KubernetesResource
from resources.object_store import ObjectStore
from resources.ssh import NodeError
from resources.warehouse import Warehouse

IN_PROGRESS = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
CURATED = dg.AssetKey("curated_sensor_readings")


class PatchGate(dg.ConfigurableResource):
    """What the patch gate knows of the code location: its blocking checks (filled in by
    `patching.with_patch_gate` from the Definitions)."""

    blocking_checks: list[str] = []  # "<asset key>:<check name>"
    curation_job: str = "curate_landing_batch"


def check_key(text: str) -> dg.AssetCheckKey:
    asset, _, name = text.rpartition(":")
    return dg.AssetCheckKey(dg.AssetKey.from_user_string(asset), name)


def nodes_not_ready(kube: KubernetesResource, inv: Inventory) -> list[str]:
    try:
        ready = {s.name: s for s in kube.node_statuses()}
    except ClusterUnreachable as exc:
        return [str(exc)]
    out = []
    for node in inv.nodes:
        status = ready.get(node.name)
        if status is None:
            out.append(f"{node.name} is not a Kubernetes node")
        elif not status.ready:
            out.append(f"{node.name} is NotReady ({status.reason})")
    return out


def failing_blocking_checks(instance: dg.DagsterInstance, gate: PatchGate) -> list[str]:
    """Blocking checks whose latest evaluation failed with ERROR severity (what stops
    downstream work stops a patch too: it would hide or worsen the problem)."""
    keys = [check_key(k) for k in gate.blocking_checks]
    if not keys:
        return []
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    out = []
    for key, record in sorted(latest.items(), key=lambda kv: kv[0].to_user_string()):
        if record.status.value != "FAILED" or record.event is None:
            continue
        evaluation = record.event.dagster_event.event_specific_data
        if getattr(evaluation, "severity", None) == dg.AssetCheckSeverity.ERROR:
            out.append(f"blocking check {key.to_user_string()} is failing (run {record.run_id})")
    return out


def data_runs_busy(instance: dg.DagsterInstance, gate: PatchGate) -> list[str]:
    """Curation runs in progress. No new one starts while the patch runs: the landing sensor
    skips its ticks while a rolling patch run is in progress (sensors/landing.py)."""
    out = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_PROGRESS)):
        curating = run.job_name == gate.curation_job or CURATED in (run.asset_selection or ())
        if curating:
            out.append(f"curation run {run.run_id} is {run.status.value.lower()}")
    return out


def node_health_problems(
    sessions, inv: Inventory, node: str, allow_remote: bool, limits: HealthLimits
) -> list[str]:
    reading = read_health(sessions, inv, [node], allow_remote)[node]
    if isinstance(reading, NodeError):
        return [f"{node}'s health could not be read: {reading.reason}"]
    return [f"{node}: {p}" for p in health_problems(reading, limits)]


def applied_releases_on(kube: KubernetesResource, inv: Inventory, node: str) -> list:
    """The releases placed on `node` whose HelmCharts exist on the cluster."""
    out = []
    for release in catalogue.releases(inv):
        if not any(node in names for names in placement(release, inv).values()):
            continue
        try:
            applied = any(
                kube.get(HELMCHART_API, "HelmChart", c.name, cluster.CHART_NAMESPACE) is not None
                for c in release.charts
            )
        except ApiRefused as exc:
            if exc.status != 404:
                raise
            return []  # no HelmChart kind served: K3s's helm-controller never ran, nothing applied
        if applied:
            out.append(release)
    return out


def releases_not_ready(kube: KubernetesResource, inv: Inventory, node: str) -> list[str]:
    out = []
    for release in applied_releases_on(kube, inv, node):
        verdict = readiness.verdict(release.name, *cluster.facts(kube, release))
        out += [f"release_ready: {f}" for f in verdict.failures]
    return out


def services_not_answering(warehouse: Warehouse, object_store: ObjectStore) -> list[str]:
    out = []
    try:
        warehouse.query("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure is "not answering", named
        out.append(f"the warehouse ({warehouse.kind}) does not answer: {type(exc).__name__}: {exc}")
    try:
        next(iter(object_store.list("landing/")), None)
    except Exception as exc:  # noqa: BLE001
        out.append(
            f"the object store ({object_store.describe()}) does not answer: "
            f"{type(exc).__name__}: {exc}"
        )
    return out


def joined(*parts: Sequence[str]) -> list[str]:
    return [p for part in parts for p in part]
