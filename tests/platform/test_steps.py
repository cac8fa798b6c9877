"""Preflight verdicts from real Pi facts, and the step fan-out through the recorded SSH stand-in
(`recorded.py`: a fake of our SSH layer, not of a Pi; over-real-SSH tests are in tests/ssh/)."""

from pathlib import Path

import pytest

from platform_assets.core.engine import select_nodes
from platform_assets.core.facts import NodeFacts, parse_first_line, parse_int, parse_words
from platform_assets.inventory import load_inventory, parse_inventory
from platform_assets.node_prep.apply import run_node_prep
from platform_assets.preflight.facts import (
    DiskSpace,
    FsyncProbe,
    OsRelease,
    TimeSync,
    parse_ethtool,
    parse_fsync_probe,
    parse_model,
    parse_os_release,
    parse_rpi_issue,
    parse_timedatectl,
)
from platform_assets.preflight.verdicts import blocking_findings, evaluate_preflight
from resources.ssh import CommandTimedOut, NodeError
from tests.platform.pi_facts import body
from tests.platform.recorded import Recorded, RecordedSessions, records

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = load_inventory(ROOT / "inventory.example.yaml")


def loopback_inventory():
    """The example's plan moved onto loopback addresses (like the fake-Pi cluster)."""
    data = EXAMPLE.model_dump()
    for i, node in enumerate(data["nodes"]):
        node["address"] = f"127.0.0.{11 + i}"
    data["network"].update(
        subnet="127.0.0.0/24",
        gateway="127.0.0.1",
        dns=["127.0.0.1"],
        metallb_pool={"start": "127.0.0.200", "end": "127.0.0.250"},
    )
    return parse_inventory(data)


def pi5_bookworm_facts(**overrides) -> NodeFacts:
    model = body("device-tree-model.pi5.bookworm.txt").split("(myenv)")[0] + "\x00"
    values = {
        "model": parse_model(model),
        "architecture": parse_first_line(body("dpkg-print-architecture.pi5.bookworm.txt")),
        "os_release": parse_os_release(body("os-release.raspios.bookworm.txt")),
        "rpi_issue": parse_rpi_issue(body("rpi-issue.raspios.bookworm.txt")),
        "memory_kib": 8245632,  # MemTotal of an 8 GB Pi 5 (synthetic: no capture of meminfo)
        "page_size": parse_int(body("getconf-pagesize.pi5.6.12.47.txt")),
        "cgroup_controllers": parse_words(body("cgroup-controllers.pi5.no-memory.txt")),
        "disk": DiskSpace(62 * 1024**3, 50 * 1024**3, "/"),
        "fsync": parse_fsync_probe(body("fio-etcd-fdatasync.reference-non-pi.txt")),
        "time": parse_timedatectl(body("timedatectl.pi.synced.txt")),
        "link": parse_ethtool(body("ethtool-eth0.pi-model-unstated.partial-1000.txt")),
    }
    values.update(overrides)
    return NodeFacts("pi-agent-1", values)


def levels(findings):
    return {f.item: f.level for f in findings}


def test_stock_pi5_bookworm_passes_with_the_memory_cgroup_to_fix():
    findings = evaluate_preflight(EXAMPLE, "pi-agent-1", pi5_bookworm_facts())
    assert blocking_findings(findings) == []
    assert levels(findings)["memory cgroup"] == "warn"
    page = next(f for f in findings if f.item == "page size")
    assert page.value == "16 KB" and "4 KB pages" in page.message


@pytest.mark.parametrize(
    ("overrides", "item", "level"),
    [
        ({"architecture": "armhf"}, "architecture", "error"),
        ({"os_release": OsRelease("debian", "11", "bullseye", "Debian 11")}, "os", "error"),
        ({"rpi_issue": None}, "os", "warn"),
        ({"model": None}, "model", "error"),
        ({"memory_kib": 4 * 1024 * 1024}, "memory", "error"),
        ({"cgroup_controllers": None}, "cgroup v2", "error"),
        ({"disk": DiskSpace(16 * 1024**3, 2 * 1024**3, "/")}, "free disk", "error"),
        (
            {"fsync": parse_fsync_probe("200+0 records out\n1 bytes copied, 4.0 s, 1 kB/s\n")},
            "fsync latency",
            "warn",
        ),
        (
            {"time": parse_timedatectl(body("timedatectl.pi.homebridge-raspbian.unsynced.txt"))},
            "time sync",
            "warn",
        ),
        ({"time": TimeSync(False, False)}, "time sync", "error"),
        (
            {"link": parse_ethtool(body("ethtool-eth0-speed.pi4.bullseye.txt"))},
            "NIC speed",
            "warn",
        ),
        ({"link": parse_ethtool(body("ethtool-eth0.pi3.link-down.txt"))}, "NIC speed", "warn"),
    ],
)
def test_preflight_verdicts(overrides, item, level):
    findings = evaluate_preflight(EXAMPLE, "pi-agent-1", pi5_bookworm_facts(**overrides))
    assert levels(findings)[item] == level


def test_trixie_is_supported():
    facts = pi5_bookworm_facts(
        os_release=parse_os_release(body("os-release.raspios.trixie.txt")),
        rpi_issue=parse_rpi_issue(body("rpi-issue.raspios.trixie.txt")),
    )
    os_finding = next(f for f in evaluate_preflight(EXAMPLE, "pi-agent-1", facts) if f.item == "os")
    assert os_finding.level == "ok"
    assert os_finding.value == ("Debian GNU/Linux 13 (trixie), Raspberry Pi reference 2026-06-18")


def test_slow_storage_warns_with_the_etcd_rule():
    slow = FsyncProbe("fio", 18.5, 6.0)
    (finding,) = [
        f
        for f in evaluate_preflight(EXAMPLE, "pi-agent-1", pi5_bookworm_facts(fsync=slow))
        if f.item == "fsync latency"
    ]
    assert finding.level == "warn" and "18.50 ms p99" in finding.value
    assert "10 ms" in finding.message


def test_a_down_node_fails_alone_and_is_named():
    inv = loopback_inventory()
    answers = records(
        Recorded("cat /etc/hostname", "raspberrypi\n"),
        Recorded("cat /boot/firmware/cmdline.txt", "console=tty1 root=PARTUUID=1-02 rootwait\n"),
    )
    sessions = RecordedSessions({n.name: answers for n in inv.nodes}, unreachable={"pi-agent-2"})
    outcomes = run_node_prep(
        sessions, inv, [n.name for n in inv.nodes], apply=False, allow_remote=False
    )
    assert isinstance(outcomes["pi-agent-2"], NodeError)
    assert str(outcomes["pi-agent-2"]).startswith("pi-agent-2: ")
    ok = [n for n, o in outcomes.items() if not isinstance(o, NodeError)]
    assert ok == ["pi-server", "pi-agent-1", "pi-agent-3"]
    # Plan mode reads only: every command sent was a read.
    for _, cmd, stdin in sessions.calls:
        words = cmd.removeprefix("sudo -n -- ").split()
        assert stdin is None
        assert words[0] in {
            "cat",
            "dpkg",
            "getconf",
            "df",
            "timedatectl",
            "ethtool",
            "dpkg-query",
            "sh",  # the NIC probe (ethtool or sysfs)
            "systemctl",
        }, cmd
        assert words[0] != "systemctl" or words[1].startswith("is-"), cmd


def test_a_node_without_cmdline_txt_is_refused_by_name():
    inv = loopback_inventory()
    sessions = RecordedSessions({"pi-agent-3": {}})
    outcomes = run_node_prep(sessions, inv, ["pi-agent-3"], apply=False, allow_remote=False)
    assert "pi-agent-3: /boot/firmware/cmdline.txt not found" in str(outcomes["pi-agent-3"])


def test_node_prep_refuses_a_node_that_fails_preflight():
    inv = loopback_inventory()
    armhf = records(
        Recorded("dpkg --print-architecture", "armhf\n"),
        Recorded("cat /boot/firmware/cmdline.txt", "console=tty1 root=PARTUUID=1-02 rootwait\n"),
        Recorded("cat /etc/os-release", body("os-release.raspios.bookworm.txt")),
    )
    sessions = RecordedSessions({"pi-agent-1": armhf})
    outcomes = run_node_prep(sessions, inv, ["pi-agent-1"], apply=True, allow_remote=False)
    error = outcomes["pi-agent-1"]
    assert isinstance(error, NodeError)
    assert "preflight failed" in str(error) and "architecture" in str(error)
    assert not any(cmd.startswith("sudo -n -- install") for _, cmd, _ in sessions.calls)


def test_lan_nodes_are_never_contacted_from_the_local_profile():
    sessions = RecordedSessions({})
    outcomes = run_node_prep(sessions, EXAMPLE, ["pi-server"], apply=False, allow_remote=False)
    assert sessions.calls == []
    assert not outcomes["pi-server"].plan.contacted
    with pytest.raises(ValueError, match="not in the inventory: pi-7"):
        select_nodes(EXAMPLE, ["pi-7"])


def test_a_package_install_killed_half_way_says_what_to_run():
    inv = loopback_inventory()
    fresh = records(
        Recorded("cat /boot/firmware/cmdline.txt", "console=tty1 root=PARTUUID=1-02 rootwait\n"),
        Recorded("cat /etc/os-release", body("os-release.raspios.bookworm.txt")),
        Recorded("dpkg --print-architecture", "arm64\n"),
        Recorded("cat /proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\x00"),
        Recorded("cat /proc/meminfo", "MemTotal:        8245632 kB\n"),  # synthetic
        Recorded(
            "cat /sys/fs/cgroup/cgroup.controllers", body("cgroup-controllers.pi5.no-memory.txt")
        ),
        Recorded(
            "df -B1 --output=size,avail,target /",
            "     1B-blocks        Avail Mounted on\n66571993088 53687091200 /\n",  # synthetic
        ),
        Recorded("apt-get update"),
    )
    install = (
        "env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "
        "ca-certificates curl nftables fio"
    )
    sessions = RecordedSessions({"pi-agent-1": fresh}, hang={install})
    outcomes = run_node_prep(sessions, inv, ["pi-agent-1"], apply=True, allow_remote=False)
    error = outcomes["pi-agent-1"]
    assert isinstance(error, CommandTimedOut)
    assert f"`sudo -n -- {install}` did not finish within 1200s" in str(error)
    assert "run `sudo dpkg --configure -a` on the node, then apply again" in str(error)
    # Each command ran with its own limit, not the resource's default.
    assert sessions.timeouts["apt-get update"] == 600
    assert sessions.timeouts[install] == 1200
