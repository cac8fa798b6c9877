"""Planning the whole release catalogue against the tests' real control plane.

What a plan costs is one GET and one server-side-apply dry run per HelmChart (the diff of every
release). The baseline, measured in the same run against the same API: listing the HelmCharts
once. Three figures: the dry-run diffs alone (in process), the Dagster plan of every release with
its release_ready checks (in process), and what a user runs, `dg launch --assets <releases>`,
against `dg launch --assets capacity_plan` (the same CLI with no cluster call) as its baseline.
Every HelmChart is applied first, so each diff is against a live object.
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "5"))
CLI_SAMPLES = int(os.environ.get("BENCH_CLI_SAMPLES", "3"))


def _median(fn, samples: int) -> float:
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    import dagster as dg

    from platform_assets.assets import InventoryFile
    from platform_assets.inventory import load_inventory
    from platform_assets.releases import catalogue, cluster
    from platform_assets.releases.assets import build_release_assets
    from platform_assets.releases.spec import CHART_NAMESPACE, FIELD_MANAGER, helmcharts
    from tests.harness.kube import start_control_plane

    example = ROOT / "inventory.example.yaml"
    inv = load_inventory(example)
    manifests = [m for r in catalogue.releases(inv) for m in helmcharts(r)]
    with tempfile.TemporaryDirectory() as tmp:
        plane, proc = start_control_plane(Path(tmp) / "kube", Path(tmp) / "logs")
        try:
            kube = plane.resource()
            for m in manifests:
                kube.apply(m, field_manager=FIELD_MANAGER)

            def listing():
                assert len(kube.list("helm.cattle.io/v1", "HelmChart", CHART_NAMESPACE)) >= len(
                    manifests
                )

            def plan():
                assert not any(p.changed for p in cluster.plan(kube, manifests))

            releases = build_release_assets(inv)
            resources = {"inventory_file": InventoryFile(path=str(example)), "kubernetes": kube}

            def dagster_plan():
                with dg.instance_for_test() as instance:
                    result = dg.materialize([releases], resources=resources, instance=instance)
                    assert result.success

            listing(), plan()  # warm the connection and the discovery cache
            base = _median(listing, SAMPLES * 4)
            diffs = _median(plan, SAMPLES)
            in_dagster = _median(dagster_plan, max(2, SAMPLES // 2))

            home = Path(tmp) / "home"
            (home / "dagster").mkdir(parents=True)
            env = {k: v for k, v in os.environ.items() if not k.startswith("PICLUSTER_")}
            env.update(
                {
                    "PICLUSTER_HOME": str(home),
                    "PICLUSTER_KUBECONFIG": str(plane.admin_kubeconfig),
                    "DAGSTER_HOME": str(home / "dagster"),
                }
            )
            dg_bin = str(Path(sys.executable).with_name("dg"))

            def cli(selection: str):
                def launch():
                    subprocess.run(
                        [dg_bin, "launch", "--assets", selection],
                        cwd=ROOT,
                        env=env,
                        check=True,
                        capture_output=True,
                    )

                return launch

            every = ",".join(catalogue.RELEASE_NAMES)
            cli_base = _median(cli("capacity_plan"), CLI_SAMPLES)
            cli_plan = _median(cli(every), CLI_SAMPLES)
        finally:
            proc.stop()
    load = os.getloadavg()[0]
    body = f"""
Load average at the end: {load:.1f} on {os.cpu_count()} cores (other work shares the machine;
the ratios are within one run, the CLI ones the noisiest).

{len(manifests)} HelmCharts ({len(catalogue.RELEASE_NAMES)} releases), every one live. Medians
({SAMPLES * 4} listings, {SAMPLES} diff rounds, {max(2, SAMPLES // 2)} Dagster runs, {CLI_SAMPLES}
CLI launches each).

| what | median | ratio |
| --- | ---: | ---: |
| list the HelmCharts once (baseline) | {base * 1000:.1f} ms | 1.0 |
| dry-run diff of every HelmChart | {diffs * 1000:.1f} ms | **{diffs / base:.1f}** |
| Dagster plan + `release_ready`, every release | {in_dagster:.2f} s | {in_dagster / base:.0f} |
| `dg launch --assets capacity_plan` (CLI baseline, no cluster call) | {cli_base:.2f} s | 1.0 |
| `dg launch --assets {every}` | {cli_plan:.2f} s | **{cli_plan / cli_base:.2f}** |

The diffs cost about two requests per HelmChart (a GET and a dry-run PATCH) against one listing;
what a person waits for through the CLI is dominated by the Dagster process, not the cluster.
"""
    write_section(
        "Planning the release catalogue (issue 9)",
        "uv run python -m benchmarks bench_release_plan",
        body,
    )
    print(body)


if __name__ == "__main__":
    main()
