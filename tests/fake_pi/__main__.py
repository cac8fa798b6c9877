"""`python -m tests.fake_pi up|down|status` (what `make fake-cluster` runs).

`up` starts four FAKE Raspberry Pis on 127.0.0.11-14 (port 2222 by default) and prints how to
point the platform at them; `down` stops them; `status` says which are up.
"""

import argparse
import sys
from pathlib import Path

from tests.fake_pi.cluster import DEFAULT_PORT, REPO_ROOT, FakeCluster, FakeClusterError

DEFAULT_STATE_DIR = REPO_ROOT / ".picluster" / "fake-cluster"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fake_pi", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    cluster = FakeCluster(args.state_dir, port=args.port)
    if args.action == "down":
        cluster.down()
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
    try:
        cluster.up()
    except FakeClusterError as exc:
        print(f"fake cluster: {exc}", file=sys.stderr)
        return 1
    for name, line in cluster.status().items():
        print(f"{name:12} {line}")
    print(
        "\nFour FAKE Pis are up (see docs/fake-cluster.md). Point the platform at them:\n"
        f"  export PICLUSTER_INVENTORY={cluster.inventory_path}\n"
        "  export PICLUSTER_K3S_TOKEN=$(openssl rand -hex 32)\n"
        f"Try SSH: ssh -i {cluster.private_key} -o UserKnownHostsFile={cluster.known_hosts} "
        f"-p {cluster.port} piadmin@127.0.0.11\n"
        "Stop them with: python -m tests.fake_pi down"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
