"""One FAKE Raspberry Pi: the supervisor that runs inside the node's own mount + UTS namespace.

Started by `tests.fake_pi.cluster` as
`unshare --mount --uts --propagation private -- python -m tests.fake_pi.node NODE_DIR`.
Inside the namespace it gives the node its own copy of what node prep touches, then runs a
real OpenSSH server on the node's loopback address:

- overlay mounts over /etc, /usr, /var, /boot, /home and /tmp whose writable layer is a tmpfs
  of this node: the real machine's files are the read-only lower layer and never change;
- tmpfs over /run, /sys/fs/cgroup, /sys/class/net, /sys/firmware;
- a tmpfs /proc whose entries link to a private procfs, except the node's own `cmdline`,
  `meminfo`, `swaps`, `device-tree` (and `sys/kernel/random/boot_id`, bind-mounted);
  `/proc/sys` is read-only, so nothing reaches the real kernel's settings;
- the users `piadmin` (passwordless sudo) and `pinosudo` (sudo needs a password), which exist
  only in this node's /etc;
- stand-in commands (`tests/fake_pi/standin.py`) for everything that would change the machine.

A reboot request from a stand-in kills the SSH server and every session, applies the boot
(`standin.boot`: cmdline, cgroup controllers, swap, units, sysctls, hostname), waits a moment
and starts the SSH server again.
"""

import contextlib
import ctypes
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.fake_pi import kubelet, standin

SEED = Path(__file__).resolve().parent / "seed"
PR_SET_PDEATHSIG = 1
USERS = (
    # name, uid, passwordless sudo
    ("piadmin", 29001, True),
    ("pinosudo", 29002, False),
)
# What node prep finds as the firmware's share of /proc/cmdline (6.12 kernels put
# cgroup_disable=memory there): pi-facts proc-cmdline.pi5.bookworm-6.12.dtb-cgroup-disable-first.
DTB_BOOTARGS_FILE = "proc-cmdline.pi5.bookworm-6.12.dtb-cgroup-disable-first.txt"
# The stock cmdline.txt with no cgroup flags has no published capture (pi-facts "Not found");
# it is the real capture's text with the user's appended flags taken out.
CMDLINE_TXT_FILE = "cmdline-txt.pi5.bookworm.cgroup-added.txt"
CGROUP_FLAGS = ("cgroup_enable=cpuset", "cgroup_memory=1", "cgroup_enable=memory")


def seed_body(name: str) -> str:
    """The output part of a pi-facts file (header lines: `# key: ...` or `#   ...`)."""
    lines = (SEED / name).read_text().splitlines(keepends=True)
    i = 0
    while i < len(lines) and re.match(r"^# [a-z/ ]+: |^#   ", lines[i]):
        i += 1
    return "".join(lines[i:])


def dtb_bootargs() -> str:
    words = seed_body(DTB_BOOTARGS_FILE).split()
    # Everything before the cmdline.txt part, which starts at its first console= word.
    cut = next(i for i, w in enumerate(words) if w.startswith("console="))
    return " ".join(w for w in words[:cut] if w not in CGROUP_FLAGS or w.startswith("cgroup_d"))


def stock_cmdline_txt() -> str:
    words = [w for w in seed_body(CMDLINE_TXT_FILE).split() if w not in CGROUP_FLAGS]
    return " ".join(words) + "\n"


def sh(*argv: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")


# Inside the namespace the node's directory is bind-mounted here, so the overlays below (which
# may cover the repository's own place, e.g. under /home or /tmp) never hide it.
NODE_MOUNT = Path("/mnt")


class Node:
    def __init__(self, node_dir: Path):
        self.cfg = json.loads((node_dir / "node.json").read_text())
        # Read everything from the repository before any mount can hide it.
        self.seeds = {name: seed_body(name) for name in os.listdir(SEED)}
        self.standin_source = Path(standin.__file__).read_bytes()
        self.dtb_bootargs = dtb_bootargs()
        self.cmdline_txt = stock_cmdline_txt()
        (node_dir / "ns").mkdir(exist_ok=True)
        sh("mount", "--bind", str(node_dir), str(NODE_MOUNT))
        self.dir = NODE_MOUNT
        self.ns = NODE_MOUNT / "ns"
        self.realproc = self.ns / "realproc"
        self.control = NODE_MOUNT / "control"
        self.sshd: subprocess.Popen | None = None
        self.stopping = False
        # With the test control plane: keeps this node's Node in step with its fake k3s.
        self.kubelet = kubelet.load(self.cfg, self.log)

    def log(self, text: str) -> None:
        print(text, flush=True)  # the supervisor's stdout is the node's node.log

    # --- the node's own file system -----------------------------------------------------------

    def mount_all(self) -> None:
        sh(
            "mount",
            "-t",
            "tmpfs",
            "-o",
            "size=60g,mode=755",
            f"fakepi-{self.cfg['name']}",
            str(self.ns),
        )
        for top in ("etc", "usr", "var", "boot", "home", "tmp"):
            if not Path(f"/{top}").is_dir():
                continue
            upper, work = self.ns / top / "u", self.ns / top / "w"
            upper.mkdir(parents=True)
            work.mkdir(parents=True)
            sh(
                "mount",
                "-t",
                "overlay",
                f"fakepi-{top}",
                "-o",
                f"lowerdir=/{top},upperdir={upper},workdir={work}",
                f"/{top}",
            )
        run = self.ns / "run"
        run.mkdir()
        sh("mount", "--bind", str(run), "/run")
        Path(standin.FAKEPI).mkdir(parents=True, exist_ok=True)
        sh("mount", "--bind", str(self.control), standin.FAKEPI)
        for target in ("/sys/fs/cgroup", "/sys/class/net", "/sys/firmware"):
            sh("mount", "-t", "tmpfs", "-o", "size=1m,mode=755", "fakepi-sys", target)

    def seed(self) -> None:
        cfg = self.cfg
        release = cfg.get("os", "bookworm")
        etc = Path("/etc")
        for name in ("os-release", "hostname", "hosts"):
            (etc / name).unlink(missing_ok=True)
        (etc / "os-release").write_text(self.seeds[f"os-release.raspios.{release}.txt"])
        (etc / "rpi-issue").write_text(self.seeds[f"rpi-issue.raspios.{release}.txt"])
        (etc / "hostname").write_text("raspberrypi\n")
        (etc / "hosts").write_text(
            "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
            "ff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n\n127.0.1.1\t\traspberrypi\n"
        )
        if release == "bookworm":
            # SYNTHETIC: the stock bookworm /etc/dphys-swapfile (CONF_SWAPSIZE=100, pi-facts).
            (etc / "dphys-swapfile").write_text(
                "# /etc/dphys-swapfile - user settings for dphys-swapfile package (fake Pi)\n"
                "CONF_SWAPSIZE=100\n"
            )
        else:  # trixie: rpi-swap's package default (pi-facts rpi-swap-swap-conf.default.txt)
            (etc / "rpi/swap.conf.d").mkdir(parents=True)
            (etc / "rpi/swap.conf").write_text(self.seeds["rpi-swap-swap-conf.default.txt"])
        firmware = Path("/boot/firmware")
        firmware.mkdir(parents=True, exist_ok=True)
        (firmware / "cmdline.txt").write_text(self.cmdline_txt)
        for sub in ("sysctl.d", "systemd/system", "systemd/journald.conf.d", "rancher"):
            (etc / sub).mkdir(parents=True, exist_ok=True)
        state = standin.initial_state(cfg["role"], "raspberrypi", release)
        self.add_users()
        self.install_standins(state)
        self.seed_sys_and_proc()
        Path(standin.STATE).write_text(json.dumps(state, indent=1))
        # Stand-ins run as the SSH user too (reads need no sudo): they log and lock as anyone.
        for path in (standin.LOG, standin.LOCK):
            Path(path).write_text("")
            Path(path).chmod(0o666)
        Path(standin.STATE).chmod(0o644)
        Path(standin.REBOOT_REQUEST).unlink(missing_ok=True)

    def add_users(self) -> None:
        pubkey = (self.dir / "client.pub").read_text()
        passwd, group, shadow = Path("/etc/passwd"), Path("/etc/group"), Path("/etc/shadow")
        sudoers = []
        for name, uid, nopasswd in USERS:
            with passwd.open("a") as f:
                f.write(f"{name}:x:{uid}:{uid}:PiClusterOps fake Pi user:/home/{name}:/bin/bash\n")
            with group.open("a") as f:
                f.write(f"{name}:x:{uid}:\n")
            with shadow.open("a") as f:
                f.write(f"{name}:*:20000:0:99999:7:::\n")  # no password: key auth only
            ssh_dir = Path(f"/home/{name}/.ssh")
            ssh_dir.mkdir(parents=True)
            (ssh_dir / "authorized_keys").write_text(pubkey)
            for path in (ssh_dir.parent, ssh_dir, ssh_dir / "authorized_keys"):
                os.chown(path, uid, uid)
            ssh_dir.chmod(0o700)
            (ssh_dir / "authorized_keys").chmod(0o600)
            rule = "NOPASSWD: ALL" if nopasswd else "ALL"
            sudoers.append(f"{name} ALL=(ALL:ALL) {rule}\n")
        drop_in = Path("/etc/sudoers.d/piclusterops-fake-pi")
        drop_in.parent.mkdir(exist_ok=True)
        drop_in.write_text("".join(sudoers))
        drop_in.chmod(0o440)

    def install_standins(self, state: dict) -> None:
        lib = Path(standin.STANDIN).parent
        lib.mkdir(parents=True, exist_ok=True)
        Path(standin.STANDIN).write_bytes(self.standin_source)
        Path(standin.STANDIN).chmod(0o755)
        for path in standin.LINKED:
            standin.link_command(path)
        # Commands that come with packages: present only if the fresh Pi has the package.
        for package, paths in standin.PACKAGE_COMMANDS.items():
            for path in paths:
                if package in state["installed"]:
                    standin.link_command(path)
                else:
                    Path(path).unlink(missing_ok=True)
        Path(standin.K3S_BIN).unlink(missing_ok=True)

    def seed_sys_and_proc(self) -> None:
        net = Path("/sys/class/net/eth0")
        net.mkdir(parents=True)
        (net / "speed").write_text("1000\n")
        (net / "operstate").write_text("up\n")
        dt = Path("/sys/firmware/devicetree/base")
        dt.mkdir(parents=True)
        model = self.seeds["device-tree-model.pi5.bookworm.txt"].split("(myenv)")[0].strip()
        (dt / "model").write_bytes(model.encode() + b"\x00")  # NUL-terminated, no newline
        (dt / "compatible").write_bytes(b"raspberrypi,5-model-b\x00brcm,bcm2712\x00")
        Path("/sys/fs/cgroup/cgroup.controllers").write_text("cpuset cpu io pids\n")
        # /proc: a tmpfs of links into a private procfs, with the node's own files.
        self.realproc.mkdir()
        sh("mount", "-t", "proc", "fakepi-proc", str(self.realproc))
        boot_id = Path(standin.FAKEPI) / "boot_id"
        boot_id.write_text("00000000-0000-0000-0000-000000000000\n")
        sh("mount", "--bind", str(boot_id), str(self.realproc / "sys/kernel/random/boot_id"))
        sh("mount", "--rbind", str(self.realproc / "sys"), str(self.realproc / "sys"))
        sh("mount", "-o", "remount,bind,ro", str(self.realproc / "sys"))
        own = {"cmdline", "meminfo", "swaps", "device-tree", "cpuinfo"}
        entries = sorted(os.listdir(self.realproc))
        sh("mount", "-t", "tmpfs", "-o", "size=4m,mode=555", "fakepi-proc-view", "/proc")
        os.chmod("/proc", 0o755)
        for name in entries:
            if name not in own and not name.isdigit():
                os.symlink(self.realproc / name, f"/proc/{name}")
        os.symlink("/sys/firmware/devicetree/base", "/proc/device-tree")
        Path("/proc/meminfo").write_text(MEMINFO)
        Path("/proc/cpuinfo").write_text(CPUINFO)
        Path("/proc/swaps").write_text(standin.SWAPS_HEADER)
        Path("/proc/cmdline").write_text("\n")
        os.chmod("/proc", 0o555)

    # --- sshd ---------------------------------------------------------------------------------

    def start_sshd(self) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        log = (self.dir / "sshd.log").open("ab")

        def die_with_supervisor() -> None:
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

        self.sshd = subprocess.Popen(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.dir / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_supervisor,  # noqa: PLW1509 - the supervisor is single-threaded
        )
        log.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.cfg["address"], self.cfg["port"]), 0.5):
                    return
            except OSError:
                if self.sshd.poll() is not None:
                    raise RuntimeError(f"sshd exited with {self.sshd.returncode}") from None
                time.sleep(0.05)
        raise RuntimeError("sshd did not listen within 10s")

    def kill_sshd_tree(self) -> None:
        """Like a power cut for SSH: the server and every session process, at once."""
        if self.sshd is None:
            return
        victims = self.descendants(self.sshd.pid) + [self.sshd.pid]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.sshd.wait()
        self.sshd = None

    def descendants(self, root: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for name in os.listdir(self.realproc):
            if not name.isdigit():
                continue
            try:
                stat = (self.realproc / name / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(name))
        out, todo = [], [root]
        while todo:
            for child in children.get(todo.pop(), []):
                out.append(child)
                todo.append(child)
        return out

    # --- life -----------------------------------------------------------------------------------

    def reboot(self) -> None:
        time.sleep(0.2)  # let the `reboot` command return to its caller, as on a real node
        self.kill_sshd_tree()
        if self.kubelet is not None:
            self.kubelet.power_off()
        time.sleep(float(self.cfg.get("reboot_delay_s", 1.0)))
        standin.boot(self.dtb_bootargs)
        self.start_sshd()

    def run(self) -> None:
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.mount_all()
        socket.sethostname("raspberrypi")
        self.seed()
        standin.boot(self.dtb_bootargs)
        state = json.loads(Path(standin.STATE).read_text())
        state["reboots"] = 0
        Path(standin.STATE).write_text(json.dumps(state, indent=1))
        self.start_sshd()
        (self.control / "ready").write_text(str(os.getpid()))
        reboot_request = Path(standin.REBOOT_REQUEST)
        next_sync = 0.0
        while not self.stopping:
            if reboot_request.exists():
                reboot_request.unlink()
                self.reboot()
            elif self.sshd is not None and self.sshd.poll() is not None:
                self.start_sshd()  # crashed: a real node's systemd would restart it
            if self.kubelet is not None and time.monotonic() >= next_sync:
                self.kubelet.sync()
                next_sync = time.monotonic() + 0.25
            time.sleep(0.05)
        self.kill_sshd_tree()
        if self.kubelet is not None:
            self.kubelet.power_off()

    def _stop(self, *_: object) -> None:
        self.stopping = True


# SYNTHETIC: /proc/meminfo of an 8 GB Pi 5 (no published capture; values shaped like free -h's).
MEMINFO = """MemTotal:        8245328 kB
MemFree:         7412816 kB
MemAvailable:    7801344 kB
Buffers:           38912 kB
Cached:           436224 kB
SwapCached:            0 kB
Active:           301056 kB
Inactive:         298800 kB
SwapTotal:        102396 kB
SwapFree:         102396 kB
Shmem:             11264 kB
"""
# SYNTHETIC: the tail of a Pi 5's /proc/cpuinfo.
CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm
CPU implementer\t: 0x41
CPU part\t: 0xd0b

Revision\t: d04170
Model\t\t: Raspberry Pi 5 Model B Rev 1.0
"""


def main() -> int:
    node_dir = Path(sys.argv[1]).resolve()
    try:
        node = Node(node_dir)
    except Exception as exc:
        (node_dir / "node.error").write_text(f"{type(exc).__name__}: {exc}\n")
        raise
    try:
        node.run()
    except Exception as exc:
        (node.dir / "node.error").write_text(f"{type(exc).__name__}: {exc}\n")
        node.kill_sshd_tree()
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
