"""Is a release live and ready? Facts read from the API, then a pure verdict.

The helm-controller has no `--wait`: it runs a Job that runs helm, and that is all it reports.
So, per HelmChart: no `Failed` condition, its Job complete, and the newest Helm release record
(Secret type helm.sh/release.v1, labels owner=helm,name=<chart>) `deployed` with the
controller's `helmcharts.helm.cattle.io/configHash` label equal to the hash on the Job's pod
template (the controller's own "this spec is what is installed" test, helm-controller v0.17.7
pkg/controllers/chart/chart.go). Then each workload the release declares must be ready.
"""

from dataclasses import dataclass

CONFIG_HASH = "helmcharts.helm.cattle.io/configHash"
HELM_RELEASE_TYPE = "helm.sh/release.v1"


@dataclass(frozen=True)
class ChartFacts:
    chart: str
    helmchart: dict | None
    job: dict | None
    releases: tuple[dict, ...]  # Helm release Secrets of this chart (metadata only is read)
    job_log: str = ""  # the last lines of the job's pod, read only when something failed


@dataclass(frozen=True)
class WorkloadFacts:
    kind: str
    name: str
    exists: bool
    ready: bool
    reason: str


@dataclass(frozen=True)
class Verdict:
    passed: bool
    rows: tuple[tuple[str, str, str], ...]  # (object, state, detail)
    failures: tuple[str, ...]


def job_name(chart: str, helmchart: dict | None) -> str:
    status = (helmchart or {}).get("status") or {}
    return status.get("jobName") or f"helm-install-{chart}"


def job_config_hash(job: dict | None) -> str:
    """The hash the controller put on the Job's pod template (`SHA256=<hex>`), in the form it
    labels the Helm release with: the hex alone, at most 63 characters (a label's limit)."""
    template = (((job or {}).get("spec") or {}).get("template") or {}).get("metadata") or {}
    value = (template.get("annotations") or {}).get(CONFIG_HASH, "")
    return value.partition("=")[2][:63]


def condition(obj: dict | None, kind: str) -> dict | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


def _latest_release(secrets: tuple[dict, ...]) -> dict | None:
    def version(s: dict) -> int:
        try:
            return int(s["metadata"]["labels"].get("version", "0"))
        except (KeyError, ValueError):
            return 0

    return max(secrets, key=version, default=None)


def chart_state(f: ChartFacts) -> tuple[bool, str]:
    """(ready, what is the case) for one HelmChart."""
    if f.helmchart is None:
        return False, "HelmChart not found in kube-system (never applied)"
    job = job_name(f.chart, f.helmchart)
    failed = condition(f.helmchart, "Failed")
    if failed:
        return False, (
            f"Failed: {failed.get('reason', '')} {failed.get('message', '')}".strip()
            + f" (job {job})"
        )
    if f.job is None:
        return False, f"job {job} not created yet"
    if condition(f.job, "Failed"):
        return False, f"job {job} failed"
    if not condition(f.job, "Complete"):
        return False, f"job {job} still running"
    latest = _latest_release(f.releases)
    if latest is None:
        return False, f"job {job} completed but there is no Helm release record for {f.chart}"
    labels = latest["metadata"].get("labels") or {}
    version = labels.get("version", "?")
    status = labels.get("status", "?")
    if status != "deployed":
        return False, f"Helm release {f.chart} v{version} is {status} (job {job})"
    want = job_config_hash(f.job)
    have = labels.get(CONFIG_HASH, "")
    if not want or have != want:
        return False, (
            f"Helm release {f.chart} v{version} was installed from other values "
            f"(configHash {have or 'none'}, job {job} has {want or 'none'}): the applied spec "
            "is not live yet"
        )
    return True, f"deployed v{version} by job {job}"


def verdict(release: str, charts: list[ChartFacts], workloads: list[WorkloadFacts]) -> Verdict:
    rows: list[tuple[str, str, str]] = []
    failures: list[str] = []
    for f in charts:
        ok, state = chart_state(f)
        rows.append((f"HelmChart {f.chart}", "ok" if ok else "FAILED", state))
        if not ok:
            tail = (
                f"\nlast lines of job {job_name(f.chart, f.helmchart)}:\n{f.job_log}"
                if (f.job_log)
                else ""
            )
            failures.append(f"{release}: HelmChart {f.chart}: {state}{tail}")
    for w in workloads:
        if not w.exists:
            rows.append((f"{w.kind} {w.name}", "MISSING", "not created by the chart"))
            why = "" if w.reason == "missing" else f" ({w.reason})"
            failures.append(f"{release}: {w.kind} {w.name} does not exist{why}")
        elif not w.ready:
            rows.append((f"{w.kind} {w.name}", "NOT READY", w.reason))
            failures.append(f"{release}: {w.kind} {w.name} is not ready: {w.reason}")
        else:
            rows.append((f"{w.kind} {w.name}", "ready", w.reason))
    return Verdict(passed=not failures, rows=tuple(rows), failures=tuple(failures))


def cnpg_cluster_state(cluster: dict) -> tuple[bool, str]:
    """A CloudNativePG Cluster is ready when every instance is."""
    want = int((cluster.get("spec") or {}).get("instances", 1))
    status = cluster.get("status") or {}
    have = int(status.get("readyInstances") or 0)
    phase = status.get("phase", "no phase yet")
    return have >= want, f"{have}/{want} instances ready ({phase})"


def job_state(job: dict) -> tuple[bool, str]:
    """A Job a release runs (e.g. a bucket hook) is ready once it completed."""
    if condition(job, "Complete"):
        return True, "completed"
    if condition(job, "Failed"):
        return False, "failed"
    return False, "still running"
