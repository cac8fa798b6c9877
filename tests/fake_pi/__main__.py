"""`python -m tests.fake_pi up|down|status` (what `make fake-cluster` runs).

`up` starts a real Kubernetes control plane on 127.0.0.1 (tests/harness/kube.py) and four FAKE
Raspberry Pis on 127.0.0.11-14 (port 2222 by default) that become its nodes once K3s is
applied, and prints how to point the platform at them; `down` stops them all; `status` says
which are up.
"""

import argparse
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.fake_pi.cluster import (
    DEFAULT_PORT,
    MACHINE_LOCK,
    REPO_ROOT,
    FakeCluster,
    FakeClusterError,
)
from tests.harness.procs import default_signals

DEFAULT_STATE_DIR = REPO_ROOT / ".picluster" / "fake-cluster"


def control_plane_pids(state_dir: Path) -> Path:
    return state_dir / "control-plane" / "pids"


def start_control_plane(state_dir: Path):
    """The control plane outlives this command (it runs until `down`); its pids are kept."""
    import shutil

    from tests.harness.kube import start_control_plane as start

    stop_control_plane(state_dir)
    workdir = state_dir / "control-plane"
    shutil.rmtree(workdir, ignore_errors=True)
    plane, _ = start(workdir, workdir / "logs", die_with_parent=False)
    control_plane_pids(state_dir).write_text("\n".join(map(str, plane.pids())) + "\n")
    return plane


def stop_control_plane(state_dir: Path) -> None:
    path = control_plane_pids(state_dir)
    if not path.is_file():
        return
    for line in reversed(path.read_text().split()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(int(line), signal.SIGTERM)  # each component leads its own group
    path.unlink()


def lock_holder_pid(state_dir: Path) -> Path:
    return state_dir / "machine-lock.pid"


def hold_machine_lock(state_dir: Path) -> bool:
    """Takes the machine's fake-cluster lock for as long as this cluster runs, so a test session
    waits for `down` instead of colliding with it on 127.0.0.11:6443; False if another session's
    fake cluster holds it. `up` exits while the cluster runs on, so the lock is handed to a
    `sleep` that inherits it (a flock belongs to the open file, not to the process) until `down`."""
    with MACHINE_LOCK.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        holder = subprocess.Popen(
            ["sleep", "infinity"],
            pass_fds=(handle.fileno(),),
            start_new_session=True,
            # `down` ends it with SIGTERM, which it must not inherit ignored (procs.py).
            preexec_fn=default_signals,
            # Not this command's output: whoever reads it would wait for the `sleep` to end.
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    lock_holder_pid(state_dir).write_text(f"{holder.pid}\n")
    return True


def release_machine_lock(state_dir: Path) -> None:
    path = lock_holder_pid(state_dir)
    if path.is_file():
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            os.kill(int(path.read_text()), signal.SIGTERM)
        path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_pi", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    cluster = FakeCluster(args.state_dir, port=args.port)
    if args.action == "down":
        cluster.down()
        stop_control_plane(args.state_dir)
        release_machine_lock(args.state_dir)
        print("fake cluster stopped")
        return 0
    if args.action == "status":
        if not (args.state_dir / "nodes").exists():
            print("fake cluster: not created (run `make fake-cluster`)")
            return 1
        status = cluster.status()
        for name, line in status.items():
            print(f"{name:12} {line}")
        return 0 if all(v.startswith("up") for v in status.values()) else 1
    from tests.harness.kube import KubeBinariesMissing
    from tests.harness.procs import ServiceNotReady

    args.state_dir.mkdir(parents=True, exist_ok=True)
    release_machine_lock(args.state_dir)  # an `up` again replaces this cluster's own
    if not hold_machine_lock(args.state_dir):
        print(
            f"fake cluster: another session's fake cluster is running on this machine (it holds "
            f"{MACHINE_LOCK}; a test run or a `make fake-cluster` of another checkout): only one "
            "can serve 127.0.0.11:6443. Wait for it, or stop it with its `make fake-cluster-down`",
            file=sys.stderr,
        )
        return 1
    try:
        cluster.control_plane = start_control_plane(args.state_dir)
        cluster.up()
    except (FakeClusterError, KubeBinariesMissing, ServiceNotReady) as exc:
        print(f"fake cluster: {exc}", file=sys.stderr)
        cluster.down()
        stop_control_plane(args.state_dir)
        release_machine_lock(args.state_dir)
        return 1
    for name, line in cluster.status().items():
        print(f"{name:12} {line}")
    print(
        "\nFour FAKE Pis are up (see docs/fake-cluster.md). Point the platform at them:\n"
        f"  export PICLUSTER_INVENTORY={cluster.inventory_path}\n"
        "  export PICLUSTER_K3S_TOKEN=$(openssl rand -hex 32)\n"
        f"Try SSH: ssh -i {cluster.private_key} -o UserKnownHostsFile={cluster.known_hosts} "
        f"-p {cluster.port} piadmin@127.0.0.11\n"
        f"The nodes' Kubernetes API (real, at {cluster.control_plane.server}): apply the "
        "`apply_cluster` job, then\n"
        f"  kubectl --kubeconfig {cluster.control_plane.admin_kubeconfig} get nodes\n"
        "Stop them with: python -m tests.fake_pi down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
