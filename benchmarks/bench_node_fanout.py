"""Node steps over real SSH on the FAKE Pi cluster: the CLI re-apply, in-process re-apply, fan-out.

All in one run, on one fake cluster (tests/fake_pi: four real sshd on 127.0.0.11-14):

1. What a user waits for: a no-op re-apply through the documented CLI (`dg launch --job
   apply_cluster` with the fake cluster's inventory), against a baseline that reads the same
   facts with plain OpenSSH: one `ssh` per node, the four in parallel, running the very
   commands the re-apply ran (recorded as the SSH layer sent them). Beside it, where the time goes:
   a bare Python start, loading the code location, and the same re-apply in-process.
2. The whole bring-up (`dg.materialize`) applied once on fresh nodes, then re-applied with
   nothing left to do. Ratio: re-apply / first apply.
3. Node prep, already converged (reads facts, plans nothing), on one node, on four nodes with
   the inventory's `max_parallel=4`, and on four nodes one at a time (`max_parallel=1`).
   Ratios against one node: 1.0 would be perfect fan-out, 4.0 is serial.

Needs root (the fake cluster uses mount namespaces). Median of BENCH_SAMPLES runs (default 5).
"""

import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.bench_code_location_load import BYTECODE_NOTE, compile_bytecode
from benchmarks.report import write_section

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "5"))
TOKEN = "K10benchmark-join-token"  # a benchmark value, not a secret
ROOT = Path(__file__).resolve().parent.parent
FLOOR_PROJECT = ROOT / "benchmarks" / "dagster_floor.py"
# SSH channels (remote commands or shells) the recorded re-apply opened, per node.
CHANNELS: dict[str, int] = {}


def _cli_env(inventory: Path, home: Path) -> dict[str, str]:
    """The local profile against the fake cluster, as docs/fake-cluster.md sets it up."""
    dagster_home = home / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLUSTER_")}
    return env | {
        "PICLUSTER_PROFILE": "local",
        "PICLUSTER_HOME": str(home),
        "PICLUSTER_INVENTORY": str(inventory),
        "PICLUSTER_K3S_TOKEN": TOKEN,
        "DAGSTER_HOME": str(dagster_home),
    }


def _busy_cpu_s() -> float:
    """CPU seconds this machine's cores have spent busy since boot (every process, /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


def _timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed:\n{done.stderr[-3000:]}")
    return elapsed


def _commands_of_a_reapply(resources: dict) -> dict[str, list[str]]:
    """Every command a no-op re-apply runs on each node, in order, recorded as the SSH layer
    sends it (reads are not logged one by one, so the run's log does not list them); the reads
    that go together in one remote shell (`run_many`) are listed one by one."""
    import dagster as dg

    from platform_assets.assets import PLATFORM_ASSETS, apply_run_config
    from resources.ssh import NodeSessions, command_text

    commands: dict[str, list[str]] = {}
    run, run_many = NodeSessions.run, NodeSessions.run_many

    def recording(self, node_name, command, *, sudo=False, **kwargs):
        CHANNELS[node_name] = CHANNELS.get(node_name, 0) + 1
        commands.setdefault(node_name, []).append(command_text(command, sudo=sudo))
        return run(self, node_name, command, sudo=sudo, **kwargs)

    def recording_many(self, node_name, many):
        CHANNELS[node_name] = CHANNELS.get(node_name, 0) + 1
        for c in many:
            commands.setdefault(node_name, []).append(command_text(c.argv, sudo=c.sudo))
        return run_many(self, node_name, many)

    NodeSessions.run, NodeSessions.run_many = recording, recording_many
    try:
        result = dg.materialize(PLATFORM_ASSETS, resources=resources, run_config=apply_run_config())
    finally:
        NodeSessions.run, NodeSessions.run_many = run, run_many
    if not result.success:
        raise RuntimeError("the re-apply that lists the commands failed")
    return commands


def _openssh_baseline(cluster, commands: dict[str, list[str]]) -> tuple[float, float]:
    """The same commands with plain OpenSSH: one `ssh` per node, all four at once, each command
    run in turn in one remote shell (the token compare gets its token on stdin, as ours).
    Returns the wall seconds and how many of the machine's cores were busy on average."""
    scripts = {}
    for node, lines in commands.items():
        script = []
        for line in lines:
            if "picluster-token-check" in line:
                script.append(f"{line} >/dev/null 2>&1 <<'PICLUSTER_EOF'\n{TOKEN}\nPICLUSTER_EOF")
            else:
                script.append(f"{line} </dev/null >/dev/null 2>&1")
        scripts[node] = "\n".join(script) + "\n"
    address = {n.name: n.address for n in cluster.nodes}

    def one(node: str) -> None:
        argv = [
            "ssh", "-q", "-i", str(cluster.private_key), "-p", str(cluster.port),
            "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={cluster.known_hosts}", f"piadmin@{address[node]}", "sh -s",
        ]  # fmt: skip
        subprocess.run(argv, input=scripts[node], text=True, check=True, capture_output=True)

    busy, started = _busy_cpu_s(), time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(scripts)) as pool:
        list(pool.map(one, scripts))
    wall = time.perf_counter() - started
    return wall, (_busy_cpu_s() - busy) / wall


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
    from tests.fake_pi.cluster import cluster_behind_control_plane

    compile_bytecode()
    keys = ("cli", "openssh", "cores", "floor", "python", "load", "apply", "reapply")
    keys += ("one", "four", "serial")
    out: dict[str, list[float]] = {k: [] for k in keys}
    counts: dict[str, int] = {}
    # The fake Pis as nodes of the test control plane, as `make fake-cluster` runs them: the
    # re-apply's cluster_ready check then asks a real API server, as on a real cluster.
    with (
        tempfile.TemporaryDirectory(prefix="bench-fake-cluster-") as tmp,
        cluster_behind_control_plane(Path(tmp)) as cluster,
    ):
        inv = load_inventory(cluster.inventory_path)
        resources = {
            "inventory_file": InventoryFile(path=str(cluster.inventory_path)),
            "ssh": ssh_resource(inv),
            "k3s_token": K3sToken(token=TOKEN),
            "kubernetes": KubernetesResource(kubeconfig_path=str(Path(tmp) / "kubeconfig")),
        }
        names = [n.name for n in inv.nodes]
        # 1. The CLI, on nodes the in-process apply converged; then what its time is made of.
        _materialize(resources, apply=True)
        env = _cli_env(cluster.inventory_path, Path(tmp) / "home")
        dg_cli = str(Path(sys.executable).parent / "dg")
        floor = [dg_cli, "launch", "--assets", "nothing", "-f", str(FLOOR_PROJECT)]
        commands = _commands_of_a_reapply(resources)
        counts = {node: len(lines) for node, lines in commands.items()}
        for _ in range(samples):  # alternated, so drift on the machine hits both alike
            out["cli"].append(_timed([dg_cli, "launch", "--job", "apply_cluster"], env))
            wall, cores = _openssh_baseline(cluster, commands)
            out["openssh"].append(wall)
            out["cores"].append(cores)
            out["floor"].append(_timed(floor, env))
            out["python"].append(_timed([sys.executable, "-c", "pass"], env))
            out["load"].append(_timed([sys.executable, "-c", "import definitions"], env))
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
    medians = {k: statistics.median(v) for k, v in out.items()}
    medians["commands"] = sum(counts.values()) / max(len(counts), 1)
    medians["channels"] = sum(CHANNELS.values()) / max(len(CHANNELS), 1)
    return medians


def main() -> None:
    m = measure()
    r = {k: f"{v:.2f} s" for k, v in m.items()}
    reapply_ratio = m["reapply"] / m["apply"]
    four_ratio, serial_ratio = m["four"] / m["one"], m["serial"] / m["one"]
    base = m["openssh"]
    run_only = m["cli"] - m["load"]
    cli_ratio = m["cli"] / base
    # The fake nodes' commands are CPU work on this machine's cores: when the baseline keeps
    # them all busy, no re-apply's steps can finish sooner than the baseline, so the least a
    # `dg launch` re-apply can take is Dagster's floor (before and after the steps) plus it.
    bound = (m["floor"] + base) / base
    cores = os.cpu_count() or 1
    parts = "\n".join(
        f"| {what} | {seconds:.2f} s | {seconds / base:.2f} |"
        for what, seconds in (
            ("a bare `python -c pass`", m["python"]),
            (
                "Dagster's floor: `dg launch` of a one-asset code location whose asset does "
                "nothing (benchmarks/dagster_floor.py), same instance",
                m["floor"],
            ),
            ("loading the code location (`python -c 'import definitions'`)", m["load"]),
            ("the rest: `dg` itself, the SQLite instance, the run's events, the steps", run_only),
            ("the same re-apply in-process (`dg.materialize`)", m["reapply"]),
        )
    )
    body = f"""
Four FAKE Raspberry Pis (tests/fake_pi: real OpenSSH servers on 127.0.0.11-14, stand-in
commands) on this one machine; median of {SAMPLES} samples each.

**No-op re-apply through the CLI** (`dg launch --job apply_cluster`, the local profile with the
fake cluster's inventory, on nodes already converged), against plain OpenSSH reading the same
facts: one `ssh` per node, the four in parallel, each running in one remote shell the
{m["commands"]:.0f} commands per node (on average) that the re-apply itself sent (it sends them
over {m["channels"]:.0f} SSH channels per node: a step's reads on a node share one remote shell).
{BYTECODE_NOTE}

| what | median | ratio to OpenSSH |
| --- | ---: | ---: |
| plain OpenSSH, the same commands (baseline) | {base:.2f} s | 1.00 |
| `dg launch --job apply_cluster`, nothing to change | {m["cli"]:.2f} s | **{cli_ratio:.2f}** |
| the least any `dg launch` re-apply can take here: Dagster's floor + the baseline | \
{m["floor"] + base:.2f} s | {bound:.2f} |

The baseline kept {m["cores"]:.2f} of this machine's {cores} cores busy (all processes, from
/proc/stat): the fake nodes' commands are CPU-bound here (each stand-in is a Python process), so
the steps of a re-apply cannot run faster than the baseline on this machine, whatever the
controller does, and the floor comes on top of them. The floor is measured with `-f` (no project
discovery), so it is if anything low. Issue 7's target, 2x the baseline, is below that bound
on this machine. What the re-apply spends above the bound, {m["cli"] - m["floor"] - base:.2f} s, is
this project's own: loading its code location, the run's further events (each stored event
opens SQLite connections of its own), importing the Kubernetes client for `cluster_ready`.
Levers tried or weighed: a console script of our own calling `execute_job` without `dg` saved
about 0.6 s (measured on 2026-12-01) and would change the documented command; importing the
Kubernetes client in a thread while the SSH steps wait gained nothing here (the cores are
already busy with the nodes' commands); `ConsolidatedSqliteEventLogStorage` is documented as
for tests.

Where the CLI's time goes (each measured on its own, same run):

| part | median | ratio to OpenSSH |
| --- | ---: | ---: |
{parts}

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
