"""The weekly patch's own cost per node, beyond the upgrade and the reboot themselves.

On the FAKE Pi cluster behind the test control plane (as `make fake-cluster` runs it): K3s
applied once, then BENCH_SAMPLES rounds (default 3) of `node_patches` with `apply: true`, each
round with a new kernel package on every node (so every node upgrades and reboots). Per node,
the roll times its phases itself; the baseline, measured in the same run on the same node, is
the work any patch costs, job or not: the `apt-get upgrade` command and the reboot until SSH
answers again. The job's own time is everything else: the gates (API, instance, health over
SSH), cordon and drain, re-reading the packages and kernels, waiting for the Node Ready of the
new boot, uncordon, the gate after. Ratio: job's own time / (upgrade + reboot).

The fake's upgrade and reboot are fast (a stand-in apt, a 0.5 s reboot), so the ratio here is
an upper bound: on a Pi an upgrade takes minutes and a reboot ~30 s, and the job's own seconds
stay about the same. Needs root (mount namespaces).
"""

import json
import os
import statistics
import tempfile
from pathlib import Path

from benchmarks.report import write_section

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "3"))
TOKEN = "K10benchmark-join-token"  # a benchmark value, not a secret
PHASES = ("gate", "drain", "upgrade", "verify", "reboot", "ready", "uncordon", "gate_after")


def _set_upgrades(cluster, node: str, kernel_patch: int) -> None:
    path = cluster.node_dir(node) / "control" / "state.json"
    state = json.loads(path.read_text())
    state["upgrades"] = {
        "sudo": f"1.9.13p3-1+deb12u{10 + kernel_patch}",
        "linux-image-rpi-2712": f"1:6.12.{47 + kernel_patch}-1+rpt1~bookworm",
    }
    path.write_text(json.dumps(state, indent=1))


def measure(samples: int = SAMPLES) -> list[dict]:
    import dagster as dg

    from platform_assets.assets import PLATFORM_ASSETS, apply_run_config
    from platform_assets.inventory import load_inventory
    from platform_assets.patching.assets import node_patches, patch_run_config
    from platform_assets.patching.gates import PatchGate
    from platform_assets.resources import InventoryFile, K3sToken, ssh_resource
    from resources.kubernetes import KubernetesResource
    from resources.object_store import LocalObjectStore
    from resources.warehouse import DuckDBWarehouse
    from tests.fake_pi.cluster import cluster_behind_control_plane

    histories: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-patch-") as tmp:
        home = Path(tmp)
        with cluster_behind_control_plane(home) as cluster:
            inv = load_inventory(cluster.inventory_path)
            (home / "store").mkdir()
            (home / "dagster").mkdir()
            resources = {
                "inventory_file": InventoryFile(path=str(cluster.inventory_path)),
                "ssh": ssh_resource(inv),
                "k3s_token": K3sToken(token=TOKEN),
                "kubernetes": KubernetesResource(kubeconfig_path=str(home / "kubeconfig")),
                "patch_gate": PatchGate(),
                "warehouse": DuckDBWarehouse(
                    path=str(home / "w.duckdb"), object_store_root=str(home / "store")
                ),
                "object_store": LocalObjectStore(root=str(home / "store")),
            }
            platform = {
                k: resources[k] for k in ("inventory_file", "ssh", "k3s_token", "kubernetes")
            }
            dg.materialize(PLATFORM_ASSETS, resources=platform, run_config=apply_run_config())
            instance = dg.DagsterInstance.local_temp(str(home / "dagster"))
            run_config = patch_run_config()
            run_config["ops"]["node_patches"]["config"]["poll_s"] = 0.5
            for round_ in range(samples):
                for node in inv.nodes:
                    _set_upgrades(cluster, node.name, round_)
                result = dg.materialize(
                    [node_patches, dg.AssetSpec("kubeconfig"), dg.AssetSpec("node_health")],
                    selection=[node_patches],
                    resources=resources,
                    run_config=run_config,
                    instance=instance,
                )
                for event in result.get_asset_observation_events():
                    metadata = event.asset_observation_data.asset_observation.metadata
                    if "history" in metadata:
                        histories.append(metadata["history"].value)
    return histories


def main() -> None:
    histories = measure()
    work = [h["phases"]["upgrade"] + h["phases"].get("reboot", 0.0) for h in histories]
    own = [h["seconds"] - w for h, w in zip(histories, work, strict=True)]
    ratios = [o / w for o, w in zip(own, work, strict=True)]
    phase_rows = "\n".join(
        f"| {p} | {statistics.median(h['phases'].get(p, 0.0) for h in histories):.2f} s |"
        for p in PHASES
    )
    rows = list(zip(histories, work, own, ratios, strict=True))

    def median_of(node: str | None, column: int) -> float:
        return statistics.median(r[column] for r in rows if node in (None, r[0]["node"]))

    per_node = "\n".join(
        f"| {n} | {median_of(n, 1):.2f} s | {median_of(n, 2):.2f} s | {median_of(n, 3):.2f} |"
        for n in sorted({h["node"] for h in histories})
    )
    everything = (
        f"| **all** | {median_of(None, 1):.2f} s | {median_of(None, 2):.2f} s "
        f"| **{median_of(None, 3):.2f}** |"
    )
    body = f"""
Four FAKE Raspberry Pis behind the test control plane; {SAMPLES} rounds of `node_patches`
(`apply: true`), every node upgrading two packages (one a new kernel) and rebooting each
round: {len(histories)} node patches. Baseline per node, same run: the upgrade command and the
reboot until SSH answers (the work any patch costs). The job's own time: everything else
(gates, cordon and drain, re-reads, the wait for the Node Ready of the new boot, uncordon,
the gate after). The fake reboots in 0.5 s and its apt is a stand-in, so the ratio is an upper
bound: a Pi's upgrade takes minutes and its reboot ~30 s.

| node | upgrade + reboot (baseline), median | job's own time, median | ratio |
| --- | ---: | ---: | ---: |
{per_node}
{everything}

Median per phase (all node patches):

| phase | median |
| --- | ---: |
{phase_rows}
"""
    print(body)
    write_section(
        "Weekly patch: the job's own time per node", "python -m benchmarks bench_patch", body
    )


if __name__ == "__main__":
    main()
