"""The tests' Kubernetes control plane (tests/harness/kube.py): start-up, a drain, memory.

1. Start-up until every component is ready (etcd healthy, the API server's /readyz, the
   controller-manager's and scheduler's health, KWOK's, the helm-controller's CRDs served),
   against the storage alone (etcd until healthy) started in the same run, samples alternating.
2. A drain of a node with 20 pods (four Deployments of five; two of them under a
   PodDisruptionBudget of maxUnavailable 1) through `KubernetesResource.drain`, against draining
   the same 20 pods with no budget: the cost of the budgets' 429s and retries while each
   replacement becomes Ready on the other node.
3. The resident memory (RSS) of every component once the drains are done.

Needs the binaries `python -m tests.harness.kube_dist` builds. Medians of BENCH_SAMPLES (3).
"""

import os
import secrets
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "3"))
NODES = ("bench-a", "bench-b")
MANAGER = "piclusterops-bench"


def _start(storage_only: bool) -> tuple[float, object, Path]:
    from tests.harness.kube import start_control_plane

    root = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    started = time.perf_counter()
    plane, _ = start_control_plane(root, root / "logs", storage_only=storage_only)
    return time.perf_counter() - started, plane, root


def _node(name: str) -> dict:
    from tests.harness.kwok_stages import K3S_STATE_ANNOTATION, KWOK_NODE_ANNOTATION

    key, value = KWOK_NODE_ANNOTATION
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "bench": "drain"},
            "annotations": {key: value, K3S_STATE_ANNOTATION: "running"},
        },
    }


def _deployment(namespace: str, app: str) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "namespace": namespace},
        "spec": {
            "replicas": 5,
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "nodeSelector": {"bench": "drain"},
                    "containers": [{"name": "main", "image": "registry.invalid/none:1"}],
                    "terminationGracePeriodSeconds": 0,
                },
            },
        },
    }


def _drain_once(kube, with_budgets: bool) -> float:
    """20 pods on bench-a (bench-b cordoned while they are placed), then drain bench-a."""
    from tests.harness.kube import wait_until

    namespace = f"bench-{secrets.token_hex(3)}"
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        field_manager=MANAGER,
    )
    wait_until(lambda: kube.get("v1", "ServiceAccount", "default", namespace), 30, "default SA")
    kube.uncordon(NODES[0])
    kube.cordon(NODES[1])
    apps = [f"app{i}" for i in range(4)]
    for app in apps:
        kube.apply(_deployment(namespace, app), field_manager=MANAGER)
    if with_budgets:
        for app in apps[:2]:
            kube.apply(
                {
                    "apiVersion": "policy/v1",
                    "kind": "PodDisruptionBudget",
                    "metadata": {"name": app, "namespace": namespace},
                    "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": app}}},
                },
                field_manager=MANAGER,
            )
    for app in apps:
        status = kube.wait_for_rollout("Deployment", app, namespace, timeout_s=120)
        if not status.ready:
            raise RuntimeError(status.reason)
    if with_budgets:

        def budgets_ready() -> bool:
            for app in apps[:2]:
                pdb = kube.get("policy/v1", "PodDisruptionBudget", app, namespace)
                if pdb.get("status", {}).get("disruptionsAllowed") != 1:
                    return False
            return True

        wait_until(budgets_ready, 60, "budgets computed")
    kube.uncordon(NODES[1])
    started = time.perf_counter()
    report = kube.drain(NODES[0], timeout_s=300, max_retries_per_pod=200, retry_interval_s=0.2)
    elapsed = time.perf_counter() - started
    if len(report.evicted) != 20:
        raise RuntimeError(f"expected 20 evictions, got {len(report.evicted)}")
    kube.delete("v1", "Namespace", namespace)
    return elapsed


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(samples: int = SAMPLES) -> dict:
    storage, full = [], []
    for _ in range(samples):
        for storage_only, out in ((True, storage), (False, full)):
            seconds, plane, root = _start(storage_only)
            plane.stop()
            shutil.rmtree(root, ignore_errors=True)
            out.append(seconds)
    seconds, plane, root = _start(False)
    try:
        kube = plane.resource(request_timeout_s=30)
        from tests.harness.kube import wait_until

        for name in NODES:
            kube.apply(_node(name), field_manager=MANAGER)
        wait_until(
            lambda: sum(s.ready for s in kube.node_statuses()) == len(NODES), 60, "nodes Ready"
        )
        plain, guarded = [], []
        for _ in range(samples):
            plain.append(_drain_once(kube, with_budgets=False))
            guarded.append(_drain_once(kube, with_budgets=True))
        rss = {p.name: _rss_mib(p.proc.pid) for p in plane.processes}
    finally:
        plane.stop()
        shutil.rmtree(root, ignore_errors=True)
    return {
        "storage": statistics.median(storage),
        "full": statistics.median(full),
        "plain": statistics.median(plain),
        "guarded": statistics.median(guarded),
        "rss": rss,
    }


def main() -> None:
    m = measure()
    start_ratio = m["full"] / m["storage"]
    drain_ratio = m["guarded"] / m["plain"]
    rss_rows = "\n".join(f"| {name} | {mib:.0f} MiB |" for name, mib in m["rss"].items())
    total = sum(m["rss"].values())
    full, start = f"{m['full']:.2f} s", f"{start_ratio:.1f}"
    guarded, drain = f"{m['guarded']:.2f} s", f"{drain_ratio:.2f}"
    body = f"""
The tests' Kubernetes control plane (Kubernetes v1.34 built from the Go module proxy, etcd 3.6,
KWOK, K3s's helm-controller; tests/harness/kube.py), on this one machine. Medians of {SAMPLES}.

**Start-up until every component is ready** (each component waited for before the next starts,
as the fixture does):

| what | median | ratio |
| --- | ---: | ---: |
| etcd alone, until healthy (baseline) | {m["storage"]:.2f} s | 1.00 |
| the whole control plane, until the helm-controller's CRDs are served | {full} | **{start}** |

**Drain of a node with 20 pods** (`KubernetesResource.drain`: cordon, the Eviction API, wait
until the pods are gone; the replacements land on the other KWOK node):

| what | median | ratio |
| --- | ---: | ---: |
| 20 pods, no PodDisruptionBudget (baseline) | {m["plain"]:.2f} s | 1.00 |
| the same 20 pods, 10 of them under budgets of maxUnavailable 1 | {guarded} | **{drain}** |

The budgets make the API server answer 429 until each evicted pod's replacement is Ready and the
disruption controller has counted it; the drain retries every 0.2 s.

**Memory** (resident set of each component after the drains):

| component | RSS |
| --- | ---: |
{rss_rows}
| **all** | **{total:.0f} MiB** |
"""
    write_section(
        "Kubernetes control plane (tests)",
        "uv run python -m benchmarks bench_control_plane",
        body,
    )
    print(body)


if __name__ == "__main__":
    main()
