"""What the release assets do through the Kubernetes API: plan, apply, wait, read readiness facts.

Written against `KubernetesResource` (`get`, `list`, `apply`, `apply_diff`, `rollout_status`,
`wait_for_rollout`, `pod_logs`), passed in as `kube`. HelmCharts are diffed and applied with the
platform's field manager; Secrets only ever get `get` and `apply` (see `secrets`).
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from platform_assets.releases import catalogue, readiness, secrets
from platform_assets.releases.spec import (
    CHART_NAMESPACE,
    FIELD_MANAGER,
    HELMCHART_API,
    Release,
    to_yaml,
)
from resources.kubernetes import ApiRefused

APPS_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
LOG_LINES = 20


def no_cluster(kube) -> str:
    """Why there is no cluster to contact ("" when there is one): no kubeconfig yet, and not
    running in a pod. Checked before any request, so a plan on a laptop contacts nothing."""
    path = getattr(kube, "kubeconfig_path", "")
    if path:
        if Path(path).expanduser().is_file():
            return ""
        return f"no kubeconfig at {path} (apply k3s_server and the kubeconfig asset first)"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return ""
    return "no kubeconfig configured and not running in a pod"


@dataclass(frozen=True)
class ChartPlan:
    name: str
    exists: bool
    changed: bool
    diff: str


def plan(kube, manifests: list[dict]) -> list[ChartPlan]:
    """Server-side-apply dry run of each HelmChart against the live one."""
    out = []
    for manifest in manifests:
        d = kube.apply_diff(manifest, field_manager=FIELD_MANAGER)
        out.append(ChartPlan(manifest["metadata"]["name"], d.exists, d.changed, d.diff))
    return out


def plan_markdown(plans: list[ChartPlan]) -> str:
    parts = []
    for p in plans:
        state = "new" if not p.exists else "changed" if p.changed else "unchanged"
        parts.append(f"### HelmChart {CHART_NAMESPACE}/{p.name}: {state}\n")
        if p.changed or not p.exists:
            parts.append(f"```diff\n{p.diff}\n```\n")
    return "\n".join(parts)


def offline_markdown(release: Release, manifests: list[dict], shown_secrets: list[dict]) -> str:
    """The full desired state, for a plan that contacts nothing."""
    text = [
        f"No cluster contacted: the whole desired state of `{release.name}`.\n",
        f"```yaml\n{to_yaml(manifests)}```\n",
    ]
    if shown_secrets:
        text.append(
            "Secrets it reads (generated once at the first apply; keys only, never values):\n"
        )
        text.append(f"```yaml\n{to_yaml(shown_secrets)}```\n")
    for s in release.admin_secrets:
        text.append(
            f"Secret `{s.namespace}/{s.name}`, made by an admin, must hold "
            f"{', '.join(f'`{k}`' for k, _ in s.keys)} ({s.needed_by}; {s.guide}): checked "
            "before a plan or an apply that reaches the cluster.\n"
        )
    return "\n".join(text)


def _job(kube, chart: str) -> dict | None:
    hc = kube.get(HELMCHART_API, "HelmChart", chart, CHART_NAMESPACE)
    return kube.get("batch/v1", "Job", readiness.job_name(chart, hc), CHART_NAMESPACE)


def _job_identity(job: dict | None) -> tuple[str, str]:
    meta = (job or {}).get("metadata") or {}
    return meta.get("uid", ""), readiness.job_config_hash(job)


def apply(kube, release: Release, manifests: list[dict]) -> tuple[list[ChartPlan], list[str], dict]:
    """Secrets first (the pods need them), the release's own objects, then the HelmCharts.
    Returns what changed, the Secrets report (names only) and, per changed chart, the Job that
    ran before the apply."""
    for ns in secrets.namespaces(release):
        kube.apply(ns, field_manager=FIELD_MANAGER)
    report = secrets.ensure_secrets(kube, release, catalogue.s3_identities)
    for obj in release.objects:
        kube.apply(dict(obj), field_manager=FIELD_MANAGER)
    planned = plan(kube, manifests)
    before = {p.name: _job_identity(_job(kube, p.name)) for p in planned if p.changed}
    for manifest in manifests:
        kube.apply(manifest, field_manager=FIELD_MANAGER)
    return planned, report, before


def wait_settled(kube, release: Release, before: dict, timeout_s: float, poll_s: float = 2.0):
    """Waits (bounded) until each changed chart's new Job finished or the chart Failed, then
    for the release's workloads. Returns what is still pending (empty: all settled)."""
    deadline = time.monotonic() + timeout_s
    pending = dict(before)
    while pending and time.monotonic() < deadline:
        for chart, old in list(pending.items()):
            hc = kube.get(HELMCHART_API, "HelmChart", chart, CHART_NAMESPACE)
            if readiness.condition(hc, "Failed"):
                del pending[chart]
                continue
            job = kube.get("batch/v1", "Job", readiness.job_name(chart, hc), CHART_NAMESPACE)
            # A Job of the spec before this apply does not count: the controller replaces it
            # (new uid or new configHash) when the spec changes.
            new = job is not None and _job_identity(job) != old
            if new and (readiness.condition(job, "Complete") or readiness.condition(job, "Failed")):
                del pending[chart]
        if pending:
            time.sleep(poll_s)
    still = [f"job of {c} not finished after {timeout_s:.0f}s" for c in pending]
    if not still:
        # Workloads come only from a deployed Helm release: waiting for them otherwise would
        # only spend the whole timeout.
        charts, _ = facts(kube, release, workloads=False)
        still = [state for ok, state in map(readiness.chart_state, charts) if not ok]
    for w in release.workloads:
        left = deadline - time.monotonic()
        if left <= 0 or still:
            break
        if w.kind in APPS_KINDS:
            status = kube.wait_for_rollout(w.kind, w.name, release.namespace, timeout_s=left)
            if not status.ready:
                still.append(f"{w.kind} {w.name}: {status.reason}")
    return still


def _release_records(kube, chart: str, namespace: str) -> tuple[dict, ...]:
    items = kube.list("v1", "Secret", namespace, label_selector=f"owner=helm,name={chart}")
    # Keep the metadata only: a Helm release record carries the chart and its values.
    return tuple(
        {"metadata": i.get("metadata") or {}}
        for i in items
        if i.get("type") == readiness.HELM_RELEASE_TYPE
    )


def _job_log(kube, job: str) -> str:
    try:
        pods = kube.list("v1", "Pod", CHART_NAMESPACE, label_selector=f"job-name={job}")
        if not pods:
            return "(no pod of the job is left to read)"
        newest = max(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))
        return kube.pod_logs(newest["metadata"]["name"], CHART_NAMESPACE, tail_lines=LOG_LINES)
    except Exception as exc:  # the log is a courtesy: the verdict stands without it
        return f"(log not readable: {type(exc).__name__}: {exc})"


def facts(kube, release: Release, workloads: bool = True):
    """Everything the release_ready verdict needs, read from the API."""
    charts = []
    for chart in release.charts:
        hc = kube.get(HELMCHART_API, "HelmChart", chart.name, CHART_NAMESPACE)
        job_name = readiness.job_name(chart.name, hc)
        job = kube.get("batch/v1", "Job", job_name, CHART_NAMESPACE) if hc else None
        f = readiness.ChartFacts(
            chart.name, hc, job, _release_records(kube, chart.name, release.namespace)
        )
        if hc is not None and not readiness.chart_state(f)[0]:
            log = _job_log(kube, job_name) if job else f"(no job {job_name} left to read)"
            f = readiness.ChartFacts(f.chart, hc, job, f.releases, log)
        charts.append(f)
    states: list[readiness.WorkloadFacts] = []
    for w in release.workloads if workloads else ():
        try:
            live = kube.get(w.api_version, w.kind, w.name, release.namespace)
        except ApiRefused as exc:
            if exc.status != 404:
                raise
            # The kind itself is not served: the operator owning its CRD is not installed.
            states.append(readiness.WorkloadFacts(w.kind, w.name, False, False, str(exc)))
            continue
        if live is None:
            states.append(readiness.WorkloadFacts(w.kind, w.name, False, False, "missing"))
        elif w.kind in APPS_KINDS:
            status = kube.rollout_status(w.kind, w.name, release.namespace)
            states.append(
                readiness.WorkloadFacts(w.kind, w.name, True, status.ready, status.reason)
            )
        elif w.kind == "Job":
            ready, reason = readiness.job_state(live)
            states.append(readiness.WorkloadFacts(w.kind, w.name, True, ready, reason))
        else:
            ready, reason = readiness.cnpg_cluster_state(live)
            states.append(readiness.WorkloadFacts(w.kind, w.name, True, ready, reason))
    return charts, states
