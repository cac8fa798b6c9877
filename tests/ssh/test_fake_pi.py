"""The FAKE Pi cluster itself: a fresh node looks like a Pi 5 on bookworm, its stand-ins change
its own state and nothing of the real machine, and the `python -m tests.fake_pi` CLI works."""

import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fake_pi.cluster import REPO_ROOT, FakeCluster, free_common_port
from tests.fake_pi.fixtures import ssh_resource_for, targets_for

pytestmark = pytest.mark.service


def test_a_fresh_node_reads_like_a_pi5_on_bookworm(fresh_cluster: FakeCluster):
    resource = ssh_resource_for(fresh_cluster)
    with resource.open(targets_for(fresh_cluster)) as s:

        def read(*argv: str) -> str:
            return s.run("pi-agent-1", list(argv)).stdout

        assert read("cat", "/proc/device-tree/model") == "Raspberry Pi 5 Model B Rev 1.0\x00"
        assert "VERSION_CODENAME=bookworm" in read("cat", "/etc/os-release")
        assert read("cat", "/etc/rpi-issue").startswith("Raspberry Pi reference")
        assert read("uname", "-m") == "aarch64\n"
        assert read("getconf", "PAGESIZE") == "16384\n"
        assert read("dpkg", "--print-architecture") == "arm64\n"
        assert "memory" not in read("cat", "/sys/fs/cgroup/cgroup.controllers").split()
        assert "cgroup_disable=memory" in read("cat", "/proc/cmdline")
        assert "/var/swap" in read("cat", "/proc/swaps")
        assert read("systemctl", "is-enabled", "dphys-swapfile.service") == "enabled\n"
        assert read("hostname") == "raspberrypi\n"
        missing = s.run("pi-agent-1", ["k3s", "--version"], check=False)
        assert missing.exit_code == 127


def test_stand_ins_change_only_the_node_they_ran_on(fresh_cluster: FakeCluster):
    real_hostname = socket.gethostname()
    resource = ssh_resource_for(fresh_cluster)
    with resource.open(targets_for(fresh_cluster)) as s:
        s.run("pi-server", ["apt-get", "install", "-y", "fio"], sudo=True)
        s.run("pi-server", ["hostnamectl", "set-hostname", "pi-server"], sudo=True)
        s.run("pi-server", ["swapoff", "-a"], sudo=True)
        s.run(
            "pi-server",
            ["install", "-D", "-m", "0644", "/dev/stdin", "/etc/picluster/x"],
            sudo=True,
            stdin=b"only on pi-server\n",
        )
        pkgs = s.run(
            "pi-server", ["dpkg-query", "-W", "-f=${Package} ${db:Status-Abbrev}\n", "fio"]
        ).stdout
        assert pkgs == "fio ii \n"
        assert s.run("pi-server", ["cat", "/proc/swaps"]).stdout.count("\n") == 1
        assert s.run("pi-server", ["hostname"]).stdout == "pi-server\n"
        # The neighbour did not change...
        other = s.run("pi-agent-1", ["cat", "/etc/picluster/x"], check=False)
        assert (other.exit_code, other.stderr) == (
            1,
            "cat: /etc/picluster/x: No such file or directory\n",
        )
        assert s.run("pi-agent-1", ["hostname"]).stdout == "raspberrypi\n"
        assert "/var/swap" in s.run("pi-agent-1", ["cat", "/proc/swaps"]).stdout
    # ...and neither did this machine.
    assert socket.gethostname() == real_hostname
    assert not Path("/etc/picluster/x").exists()
    assert "piadmin" not in Path("/etc/passwd").read_text()
    assert not Path("/etc/sudoers.d/piclusterops-fake-pi").exists()
    assert not Path("/usr/bin/fio").exists()
    assert fresh_cluster.commands("pi-server")[0] == ["apt-get", "install", "-y", "fio"]
    assert fresh_cluster.commands("pi-agent-1") == []


def test_reboot_applies_the_pending_boot_command_line(fresh_cluster: FakeCluster):
    resource = ssh_resource_for(fresh_cluster)
    cmdline = "/boot/firmware/cmdline.txt"
    with resource.open(targets_for(fresh_cluster)) as s:
        s.run(
            "pi-agent-3",
            ["sed", "-i", "1s/$/ cgroup_memory=1 cgroup_enable=memory/", cmdline],
            sudo=True,
        )
        s.run("pi-agent-3", ["systemctl", "disable", "--now", "dphys-swapfile.service"], sudo=True)
        s.run("pi-agent-3", ["reboot"], sudo=True)
    fresh_cluster.wait_node("pi-agent-3")
    state = fresh_cluster.state("pi-agent-3")
    for _ in range(200):  # the supervisor reboots the node a moment after `reboot` returns
        if state["reboots"] == 1:
            break
        time.sleep(0.05)
        state = fresh_cluster.state("pi-agent-3")
    assert state["reboots"] == 1
    with resource.open(targets_for(fresh_cluster)) as s:
        s.wait_reachable("pi-agent-3", timeout_s=30, interval_s=0.2)
        controllers = s.run("pi-agent-3", ["cat", "/sys/fs/cgroup/cgroup.controllers"]).stdout
        assert "memory" in controllers.split()
        assert (
            s.run("pi-agent-3", ["cat", "/proc/cmdline"])
            .stdout.rstrip()
            .endswith("cgroup_memory=1 cgroup_enable=memory")
        )
        assert s.run("pi-agent-3", ["cat", "/proc/swaps"]).stdout.count("\n") == 1


def test_cli_up_status_down(tmp_path):
    state_dir = tmp_path / "cli-cluster"
    port = free_common_port(["127.0.0.11", "127.0.0.12", "127.0.0.13", "127.0.0.14"])
    cli = [sys.executable, "-m", "tests.fake_pi"]
    args = ["--state-dir", str(state_dir), "--port", str(port)]
    # Its own machine lock: the session's fake cluster holds the real one.
    lock = tmp_path / "machine.lock"
    env = {**os.environ, "PICLUSTER_FAKE_CLUSTER_LOCK": str(lock)}

    def run(*argv: str, timeout: int = 60) -> subprocess.CompletedProcess:
        return subprocess.run(
            [*cli, *argv], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )

    try:
        up = run("up", *args, timeout=120)
        assert up.returncode == 0, up.stderr
        assert f"PICLUSTER_INVENTORY={state_dir / 'inventory.fake.yaml'}" in up.stdout
        # The cluster holds the machine's lock after `up` exits: a second one is refused,
        # naming the lock, and a test session would wait for `down`.
        second = run("up", "--state-dir", str(tmp_path / "second"), "--port", str(port))
        assert second.returncode == 1
        assert f"another session's fake cluster is running on this machine (it holds {lock}" in (
            second.stderr
        )
        with lock.open("a") as handle, pytest.raises(BlockingIOError):
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        status = run("status", *args)
        assert status.returncode == 0 and status.stdout.count(" up ") == 4
        from platform_assets.inventory import load_inventory

        inv = load_inventory(state_dir / "inventory.fake.yaml")
        assert [n.address for n in inv.nodes] == [f"127.0.0.{i}" for i in range(11, 15)]
        assert {n.ssh_port for n in inv.nodes} == {port}
    finally:
        down = run("down", *args)
    assert down.returncode == 0
    after = run("status", *args)
    assert after.returncode == 1 and after.stdout.count(" down ") == 4
    with lock.open("a") as handle:  # `down` gave the lock back
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
