"""Node steps over real SSH on the FAKE Pi cluster: a no-op re-apply, and fan-out across nodes.

Both in one run, on one fake cluster (tests/fake_pi: four real sshd on 127.0.0.11-14):

1. The whole bring-up job (`apply_cluster`'s steps through `dg.materialize`) applied once on
   fresh nodes, then re-applied with nothing left to do. Ratio: re-apply / first apply.
2. Node prep, already converged (reads facts, plans nothing), on one node, on four nodes with
   the inventory's `max_parallel=4`, and on four nodes one at a time (`max_parallel=1`).
   Ratios against one node: 1.0 would be perfect fan-out, 4.0 is serial.

Needs root (the fake cluster uses mount namespaces). Median of BENCH_SAMPLES runs (default 5).
"""

import os
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "5"))
TOKEN = "K10benchmark-join-token"  # a benchmark value, not a secret


def _materialize(resources: dict, apply: bool) -> float:
    import dagster as dg

    from platform_assets.assets import PLATFORM_ASSETS, apply_run_config

    started = time.perf_counter()
    result = dg.materialize(
        PLATFORM_ASSETS, resources=resources, run_config=apply_run_config(apply=apply)
    )
    elapsed = time.perf_counter() - started
    if not result.success:
        raise RuntimeError("the bring-up run failed; see the fake cluster's logs")
    return elapsed


def _node_prep(inventory_path: Path, names: list[str], max_parallel: int) -> float:
    from platform_assets.core.engine import ssh_targets
    from platform_assets.inventory import load_inventory
    from platform_assets.node_prep.apply import run_node_prep
    from platform_assets.resources import ssh_resource
    from resources.ssh import NodeError

    inv = load_inventory(inventory_path)
    ssh = ssh_resource(inv).model_copy(update={"max_parallel": max_parallel})
    started = time.perf_counter()
    # A fresh NodeSessions per sample: connecting is part of what a run pays.
    with ssh.open(ssh_targets(inv, names)) as sessions:
        outcomes = run_node_prep(sessions, inv, names, apply=True, allow_remote=False)
    elapsed = time.perf_counter() - started
    for name, outcome in outcomes.items():
        if isinstance(outcome, NodeError) or outcome.plan.changes:
            raise RuntimeError(f"{name} is not converged: {outcome}")
    return elapsed


def measure(samples: int = SAMPLES) -> dict[str, float]:
    from platform_assets.inventory import load_inventory
    from platform_assets.resources import InventoryFile, K3sToken, ssh_resource
    from resources.kubernetes import KubernetesResource
    from tests.fake_pi.cluster import FakeCluster

    out: dict[str, list[float]] = {k: [] for k in ("apply", "reapply", "one", "four", "serial")}
    with tempfile.TemporaryDirectory(prefix="bench-fake-cluster-") as tmp:
        cluster = FakeCluster(
            Path(tmp) / "cluster", port=None, reboot_delay_s=0.5, die_with_parent=True
        )
        cluster.up()
        try:
            inv = load_inventory(cluster.inventory_path)
            resources = {
                "inventory_file": InventoryFile(path=str(cluster.inventory_path)),
                "ssh": ssh_resource(inv),
                "k3s_token": K3sToken(token=TOKEN),
                "kubernetes": KubernetesResource(kubeconfig_path=str(Path(tmp) / "kubeconfig")),
            }
            names = [n.name for n in inv.nodes]
            for i in range(samples):
                if i:  # every first apply starts from freshly imaged nodes
                    for name in names:
                        cluster.stop_node(name)
                    cluster.restart_all()
                out["apply"].append(_materialize(resources, apply=True))
                out["reapply"].append(_materialize(resources, apply=True))
            # Fan-out on converged nodes; the three shapes alternate so drift hits all alike.
            for _ in range(samples):
                out["one"].append(_node_prep(cluster.inventory_path, names[:1], 4))
                out["four"].append(_node_prep(cluster.inventory_path, names, 4))
                out["serial"].append(_node_prep(cluster.inventory_path, names, 1))
        finally:
            cluster.down()
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    m = measure()
    r = {k: f"{v:.2f} s" for k, v in m.items()}
    reapply_ratio = m["reapply"] / m["apply"]
    four_ratio, serial_ratio = m["four"] / m["one"], m["serial"] / m["one"]
    body = f"""
Four FAKE Raspberry Pis (tests/fake_pi: real OpenSSH servers on 127.0.0.11-14, stand-in
commands) on this one machine; median of {SAMPLES} samples each.

**No-op re-apply** (the whole bring-up job: preflight, node prep, reboot, K3s server and agents,
kubeconfig, through `dg.materialize` with `apply: true`):

| what | median | ratio |
| --- | ---: | ---: |
| first apply on four fresh nodes (baseline; four fake reboots of 0.5 s) | {r["apply"]} | 1.00 |
| re-apply on the same four nodes: nothing changes | {r["reapply"]} | **{reapply_ratio:.2f}** |

**Fan-out** (node prep on converged nodes: reads every fact over one SSH connection per node,
plans nothing):

| what | median | ratio to one node |
| --- | ---: | ---: |
| one node (baseline) | {r["one"]} | 1.00 |
| four nodes, `max_parallel: 4` | {r["four"]} | **{four_ratio:.2f}** |
| four nodes, one at a time (`max_parallel: 1`) | {r["serial"]} | {serial_ratio:.2f} |

Parallel against one-at-a-time: {m["serial"] / m["four"]:.2f}x faster. 1.00 against one node
would be perfect fan-out, 4.00 serial. Here all four fake nodes' commands (each stand-in is a
Python process) share this machine's cores, so the ratio is a pessimistic bound: on real Pis each
node runs its own commands and only the SSH round trips share the controller.
"""
    write_section(
        "Node fan-out over SSH (fake-Pi cluster)",
        "uv run python -m benchmarks bench_node_fanout (as root: the fake cluster needs it)",
        body,
    )
    print(body)


if __name__ == "__main__":
    main()
