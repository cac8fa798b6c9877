"""The FAKE Pi cluster seen from the host: four fake nodes, their keys, known_hosts, inventory.

`FakeCluster(state_dir).up()` starts one supervisor per node (`tests.fake_pi.node`, each in its
own mount + UTS namespace, each running a real OpenSSH server on 127.0.0.11-14) and writes:

- `id_ed25519` / `id_ed25519.pub`: the client key every fake node authorizes;
- `known_hosts`: the nodes' own host keys (each node has its own);
- `inventory.fake.yaml`: `inventory.example.yaml` with the nodes, network and SSH settings
  pointed at the fake cluster, for `PICLUSTER_INVENTORY`.

Needs root (mount namespaces), `unshare` (util-linux), `sshd` (openssh-server) and `sudo`.
"""

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from tests.harness.procs import port_is_free

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_PORT = 2222
ADMIN_USER = "piadmin"
NO_SUDO_USER = "pinosudo"


# The fake server forwards the fixed port 6443 of 127.0.0.11 (as K3s serves it), so only one
# fake cluster with a control plane behind it can run on a machine at a time.
# (PICLUSTER_FAKE_CLUSTER_LOCK moves it: the CLI's own test runs a second cluster that never
# serves 6443 beside the session's.)
MACHINE_LOCK = Path(
    os.environ.get("PICLUSTER_FAKE_CLUSTER_LOCK", "/tmp/piclusterops-fake-cluster.lock")
)


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """Holds the machine's fake-cluster lock; a second session waits here (saying so) instead of
    failing to bind 127.0.0.11:6443 half-way through its tests."""
    with MACHINE_LOCK.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting for another session's fake cluster ({MACHINE_LOCK})", file=sys.stderr)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


@contextlib.contextmanager
def cluster_behind_control_plane(home: Path) -> Iterator["FakeCluster"]:
    """Four fake Pis as nodes of a real control plane under `home`, as `make fake-cluster` runs
    them, holding the machine's lock (for the benchmarks; the tests share the session's)."""
    from tests.harness.kube import start_control_plane

    with machine_lock():
        plane, _ = start_control_plane(home / "control-plane", home / "logs")
        cluster = FakeCluster(
            home / "cluster",
            port=None,
            reboot_delay_s=0.5,
            die_with_parent=True,
            control_plane=plane,
        )
        try:
            cluster.up()
            yield cluster
        finally:
            cluster.down()
            plane.stop()


@dataclass(frozen=True)
class FakeNodeSpec:
    name: str
    address: str
    role: str
    os: str = "bookworm"  # or "trixie" (Raspberry Pi OS 13: rpi-swap with zram)


DEFAULT_NODES = (
    FakeNodeSpec("pi-server", "127.0.0.11", "server"),
    FakeNodeSpec("pi-agent-1", "127.0.0.12", "agent"),
    FakeNodeSpec("pi-agent-2", "127.0.0.13", "agent"),
    FakeNodeSpec("pi-agent-3", "127.0.0.14", "agent"),
)


class FakeClusterError(RuntimeError):
    """The fake cluster could not start; the message says which node and quotes its log."""


def missing_prerequisites() -> list[str]:
    """What this machine lacks to run the fake cluster (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (mount namespaces)")
    for tool, package in (
        ("unshare", "util-linux"),
        ("ssh-keygen", "openssh-client"),
        ("sudo", "sudo"),
    ):
        if shutil.which(tool) is None:
            missing.append(f"{tool} (Debian package {package})")
    if not Path("/usr/sbin/sshd").exists():
        missing.append("/usr/sbin/sshd (Debian package openssh-server)")
    if not Path("/usr/bin/python3").exists():  # the stand-ins run on the system's python3
        missing.append("/usr/bin/python3 (Debian package python3)")
    if not Path("/mnt").is_dir():  # where each node sees its own state dir
        missing.append("the directory /mnt")
    return missing


def port_free_on_all(port: int, addresses: list[str]) -> bool:
    return all(port_is_free(port, address) for address in addresses)


def free_common_port(addresses: list[str]) -> int:
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind((addresses[0], 0))
            port = sock.getsockname()[1]
        if port_free_on_all(port, addresses):
            return port
    raise FakeClusterError("no TCP port is free on all fake node addresses")


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


SSHD_CONFIG = """# FAKE Pi {name}: sshd for the fake cluster (never the machine's own sshd)
ListenAddress {address}:{port}
HostKey /mnt/ssh_host_ed25519_key
PidFile /run/sshd-fakepi.pid
AuthorizedKeysFile .ssh/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin no
AllowUsers {users}
StrictModes yes
MaxSessions 64
MaxStartups 64:30:128
PrintMotd no
LogLevel VERBOSE
Subsystem sftp internal-sftp
"""


def _term_with_parent() -> None:
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)


class FakeCluster:
    """Four fake Pis on loopback. Use `up()`/`down()`, or as a context manager."""

    def __init__(
        self,
        state_dir: Path,
        port: int | None = DEFAULT_PORT,
        nodes: tuple[FakeNodeSpec, ...] = DEFAULT_NODES,
        reboot_delay_s: float = 1.0,
        die_with_parent: bool = False,
        control_plane=None,
    ):
        self.state_dir = Path(state_dir).resolve()
        self.nodes = nodes
        self.port = port
        self.reboot_delay_s = reboot_delay_s
        # Tests and benchmarks: the nodes stop if the process that started them dies.
        self.die_with_parent = die_with_parent
        # A `tests.harness.kube.KubeControlPlane` whose nodes the fake Pis become (their k3s
        # registers them, see kubelet.py), or None: a fake k3s with a FAKE kubeconfig.
        self.control_plane = control_plane
        self._procs: dict[str, subprocess.Popen] = {}

    # paths
    @property
    def private_key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def inventory_path(self) -> Path:
        return self.state_dir / "inventory.fake.yaml"

    def node_dir(self, name: str) -> Path:
        return self.state_dir / "nodes" / name

    def spec(self, name: str) -> FakeNodeSpec:
        return next(n for n in self.nodes if n.name == name)

    # life
    def __enter__(self) -> "FakeCluster":
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> "FakeCluster":
        missing = missing_prerequisites()
        if missing:
            raise FakeClusterError("the fake cluster needs: " + ", ".join(missing))
        self.down()
        if self.port is None:
            self.port = free_common_port([n.address for n in self.nodes])
        elif not port_free_on_all(self.port, [n.address for n in self.nodes]):
            raise FakeClusterError(
                f"port {self.port} is taken on one of the fake node addresses; "
                "run `python -m tests.fake_pi down` or choose another with --port"
            )
        if self.state_dir.exists():
            shutil.rmtree(self.state_dir / "nodes", ignore_errors=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o700)
        if not self.private_key.exists():
            _keygen(self.private_key, "piclusterops-fake-cluster")
        known_hosts = []
        for node in self.nodes:
            known_hosts.append(self._prepare_node(node))
        self.known_hosts.write_text("".join(known_hosts))
        self.write_inventory()
        try:
            for node in self.nodes:
                self.start_node(node.name, wait=False)
            for node in self.nodes:
                self.wait_node(node.name)
        except BaseException:
            self.down()
            raise
        return self

    def _prepare_node(self, node: FakeNodeSpec) -> str:
        d = self.node_dir(node.name)
        (d / "control").mkdir(parents=True)
        key = d / "ssh_host_ed25519_key"
        _keygen(key, f"fake-pi-{node.name}")
        shutil.copy(self.private_key.with_suffix(".pub"), d / "client.pub")
        (d / "sshd_config").write_text(
            SSHD_CONFIG.format(
                name=node.name,
                address=node.address,
                port=self.port,
                users=f"{ADMIN_USER} {NO_SUDO_USER}",
            )
        )
        cfg = {
            "name": node.name,
            "address": node.address,
            "port": self.port,
            "role": node.role,
            "os": node.os,
            "reboot_delay_s": self.reboot_delay_s,
        }
        if self.control_plane is not None:
            cfg["kube"] = self._node_credentials(d, node)
        (d / "node.json").write_text(json.dumps(cfg, indent=1))
        kind, blob = key.with_suffix(".pub").read_text().split()[:2]
        return f"[{node.address}]:{self.port} {kind} {blob}\n"

    def _node_credentials(self, d: Path, node: FakeNodeSpec) -> dict:
        """What the node's supervisor needs to register its Node (files under /mnt, the
        node dir as the node sees it), and for the server the admin kubeconfig its k3s
        writes to /etc/rancher/k3s/k3s.yaml."""
        plane = self.control_plane
        kube = d / "kube"
        kube.mkdir(mode=0o700)
        # K3s's own supervisor labels its nodes with admin rights; so does this stand-in.
        pair = plane.pki.client(f"fake-pi-{node.name}", "fake-pi-k3s", ("system:masters",))
        shutil.copy(plane.ca_cert, kube / "ca.crt")
        shutil.copy(pair.cert, kube / "client.crt")
        shutil.copy(pair.key, kube / "client.key")
        (kube / "client.key").chmod(0o600)
        if node.role == "server":
            admin = d / "control" / "k3s-admin.yaml"
            admin.write_text(plane.admin_kubeconfig.read_text())
            admin.chmod(0o600)
            # Where its k3s takes etcd snapshots from and restores them into (the stand-in).
            (d / "control" / "k3s-etcd-url").write_text(plane.etcd_url + "\n")
        return {
            "api_port": plane.port,
            "ca": "/mnt/kube/ca.crt",
            "cert": "/mnt/kube/client.crt",
            "key": "/mnt/kube/client.key",
        }

    def start_node(self, name: str, wait: bool = True) -> None:
        """Boots one fake node (fresh state: a freshly imaged Pi)."""
        d = self.node_dir(name)
        for stale in ("ready", "reboot-request"):
            (d / "control" / stale).unlink(missing_ok=True)
        (d / "node.error").unlink(missing_ok=True)
        log = (d / "node.log").open("ab")
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
        proc = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                "--",
                sys.executable,
                "-m",
                "tests.fake_pi.node",
                str(d),
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_term_with_parent if self.die_with_parent else None,  # noqa: PLW1509
        )
        log.close()
        self._procs[name] = proc
        (d / "supervisor.pid").write_text(str(proc.pid))
        if wait:
            self.wait_node(name)

    def wait_node(self, name: str, timeout_s: float = 30.0) -> None:
        d = self.node_dir(name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (d / "control" / "ready").exists():
                return
            if (d / "node.error").exists() or not self._alive(name):
                break
            time.sleep(0.05)
        log = (d / "node.log").read_text(errors="replace")[-3000:]
        sshd_log = ""
        with contextlib.suppress(OSError):
            sshd_log = (d / "sshd.log").read_text(errors="replace")[-2000:]
        raise FakeClusterError(
            f"fake node {name} did not start.\nnode.log:\n{log}\nsshd.log:\n{sshd_log}"
        )

    def _pid(self, name: str) -> int | None:
        try:
            return int((self.node_dir(name) / "supervisor.pid").read_text())
        except (OSError, ValueError):
            return None

    def _alive(self, name: str) -> bool:
        pid = self._pid(name)
        if pid is None:
            return False
        proc = self._procs.get(name)
        if proc is not None and proc.pid == pid:
            return proc.poll() is None
        # Started by another process (the CLI): check the pid is still a fake node's supervisor.
        try:
            os.kill(pid, 0)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (ProcessLookupError, OSError):
            return False
        return b"tests.fake_pi.node" in cmdline

    def stop_node(self, name: str) -> None:
        """Powers one fake node off: its sshd and sessions die, its namespace goes away."""
        pid = self._pid(name)
        if pid is None or not self._alive(name):
            (self.node_dir(name) / "supervisor.pid").unlink(missing_ok=True)
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._alive(name):
            time.sleep(0.05)
        if self._alive(name):
            os.killpg(pid, signal.SIGKILL)
        (self.node_dir(name) / "supervisor.pid").unlink(missing_ok=True)
        (self.node_dir(name) / "control" / "ready").unlink(missing_ok=True)

    def restart_all(self) -> None:
        """Boots every node that is not running, from a fresh image, and waits for them."""
        for node in self.nodes:
            if not self._alive(node.name):
                self.start_node(node.name, wait=False)
        for node in self.nodes:
            self.wait_node(node.name)

    def down(self) -> None:
        if not (self.state_dir / "nodes").exists():
            return
        for node in self.nodes:
            if self.node_dir(node.name).exists():
                self.stop_node(node.name)

    # inspection
    def status(self) -> dict[str, str]:
        return {
            n.name: ("up" if self._alive(n.name) else "down") + f" {n.address}:{self.port}"
            for n in self.nodes
        }

    def commands(self, name: str) -> list[list[str]]:
        """Every stand-in command the node was asked to run, in order."""
        log = self.node_dir(name) / "control" / "commands.log"
        return [json.loads(line)["argv"] for line in log.read_text().splitlines() if line]

    def state(self, name: str) -> dict:
        return json.loads((self.node_dir(name) / "control" / "state.json").read_text())

    def host_public_key(self, name: str) -> str:
        return (self.node_dir(name) / "ssh_host_ed25519_key.pub").read_text()

    # the user's view
    def write_inventory(self, ssh_user: str = ADMIN_USER, path: Path | None = None) -> Path:
        """`inventory.example.yaml` pointed at the fake nodes (or another user, elsewhere)."""
        example = yaml.safe_load((REPO_ROOT / "inventory.example.yaml").read_text())
        by_role = {n["role"]: n for n in example["nodes"]}
        agents = [n for n in example["nodes"] if n["role"] == "agent"]
        nodes = []
        for i, node in enumerate(self.nodes):
            template = (
                by_role["server"] if node.role == "server" else agents[min(i - 1, len(agents) - 1)]
            )
            nodes.append(
                {
                    "name": node.name,
                    "address": node.address,
                    "role": node.role,
                    "ssh_user": ssh_user,
                    "ssh_port": self.port,
                    "labels": dict(template.get("labels", {})),
                }
            )
        inventory = dict(example)
        inventory["nodes"] = nodes
        inventory["network"] = {
            "subnet": "127.0.0.0/24",
            "gateway": "127.0.0.1",
            "dns": ["127.0.0.1"],
            "metallb_pool": {"start": "127.0.0.200", "end": "127.0.0.250"},
            "pod_cidr": example["network"]["pod_cidr"],
            "service_cidr": example["network"]["service_cidr"],
        }
        inventory["ssh"] = {
            **example.get("ssh", {}),
            "private_key_path": str(self.private_key),
            "known_hosts_path": str(self.known_hosts),
            "connect_timeout_s": 5,
            "command_timeout_s": 120,
        }
        header = (
            "# FAKE cluster inventory written by `python -m tests.fake_pi up`: four fake Pis\n"
            "# on loopback (see docs/fake-cluster.md). Point PICLUSTER_INVENTORY here.\n"
        )
        path = path or self.inventory_path
        path.write_text(header + yaml.safe_dump(inventory, sort_keys=False))
        return path
