"""Fact parsers on real Raspberry Pi output (published captures, see the pi-facts README).

Where a file name says pi4/pi3/non-pi, that is what the capture is; synthetic fixtures (no real
capture exists) are named `SYNTHETIC_...` here.
"""

import pytest

from platform_assets.core.facts import (
    Fact,
    parse_first_line,
    parse_int,
    parse_result,
    parse_words,
    unit_state_fact,
)
from platform_assets.k3s.facts import parse_k3s_version
from platform_assets.node_prep.facts import SwapArea, parse_dpkg_query, parse_proc_swaps, prep_facts
from platform_assets.preflight.facts import (
    DiskSpace,
    FsyncProbe,
    Link,
    TimeSync,
    fsync_probe_argv,
    parse_df,
    parse_ethtool,
    parse_fsync_probe,
    parse_meminfo_total_kib,
    parse_model,
    parse_os_release,
    parse_rpi_issue,
    parse_timedatectl,
)
from tests.platform.pi_facts import body


def test_header_grammar_keeps_bodies_that_start_with_hash():
    text = body("rpi-swap-swap-conf.default.txt")
    assert text.startswith("#  This file is part of rpi-swap.")
    assert body("proc-cgroups.pi5.bookworm-6.12.no-memory-row.txt").startswith("#subsys_name")


def test_model_strips_the_nul_terminator():
    # The capture has the author's next prompt glued on where the real file ends in a NUL; the
    # node's bytes are the value followed by NUL and nothing else.
    published = body("device-tree-model.pi5.bookworm.txt")
    value = published.split("(myenv)")[0]
    assert parse_model(value + "\x00") == "Raspberry Pi 5 Model B Rev 1.0"
    assert parse_model(value + "\x00(myenv)") == "Raspberry Pi 5 Model B Rev 1.0"


@pytest.mark.parametrize(
    ("name", "codename", "version"),
    [
        ("os-release.raspios.bookworm.txt", "bookworm", "12"),
        ("os-release.raspios.trixie.txt", "trixie", "13"),
    ],
)
def test_os_release(name, codename, version):
    release = parse_os_release(body(name))
    assert (release.id, release.codename, release.version_id) == ("debian", codename, version)
    assert release.pretty_name.startswith("Debian GNU/Linux")


def test_pi_os_is_detected_by_rpi_issue():
    assert parse_rpi_issue(body("rpi-issue.raspios.bookworm.txt")) == (
        "Raspberry Pi reference 2024-11-19"
    )
    assert parse_rpi_issue(body("rpi-issue.raspios.trixie.txt")) == (
        "Raspberry Pi reference 2026-06-18"
    )


def test_cgroup_controllers_without_memory():
    controllers = parse_words(body("cgroup-controllers.pi5.no-memory.txt"))
    assert controllers == ("cpuset", "cpu", "io", "pids")
    assert "memory" not in controllers


def test_cmdline_txt_with_flags_added():
    words = parse_words(body("cmdline-txt.pi5.bookworm.cgroup-added.txt"))
    assert "cgroup_enable=memory" in words and "cgroup_memory=1" in words
    assert words[0] == "console=serial0,115200"


def test_proc_cmdline_keeps_firmware_disable_first():
    words = parse_words(body("proc-cmdline.pi5.bookworm-6.12.dtb-cgroup-disable-first.txt"))
    assert words.index("cgroup_disable=memory") < words.index("cgroup_enable=memory")


def test_proc_swaps_rpi_swap_file():
    assert parse_proc_swaps(body("proc-swaps.pi5.rpi-swap-swapfile.iiab.txt")) == (
        SwapArea("/var/swap", "file", 1048560),
    )
    assert parse_proc_swaps("Filename\tType\tSize\tUsed\tPriority\n") == ()


@pytest.mark.parametrize(
    "name", ["getconf-pagesize.pi5.6.12.47.txt", "getconf-page_size.pi5.bookworm-6.1.txt"]
)
def test_page_size_16k(name):
    assert parse_int(body(name)) == 16384


def test_architecture():
    assert parse_first_line(body("dpkg-print-architecture.pi5.bookworm.txt")) == "arm64"


@pytest.mark.parametrize(
    ("name", "speed", "link"),
    [
        ("ethtool-eth0-speed.pi4.bullseye.txt", 100, None),
        ("ethtool-eth0.pi-model-unstated.partial-1000.txt", 1000, None),
        ("ethtool-eth0.pi3.link-down.txt", None, False),
    ],
)
def test_ethtool(name, speed, link):
    assert parse_ethtool(body(name)) == Link(speed, link)


def test_fio_p99_from_the_etcd_recipe_output():
    probe = parse_fsync_probe(body("fio-etcd-fdatasync.reference-non-pi.txt"))
    assert probe.method == "fio"
    assert probe.p99_ms == pytest.approx(2.376)
    assert probe.mean_ms == pytest.approx(1.27308)


# dd's own summary format (GNU coreutils), written here: no Pi capture of the probe exists.
SYNTHETIC_DD = (
    "200+0 records in\n200+0 records out\n460000 bytes (460 kB, 449 KiB) copied, 3.2 s, 144 kB/s\n"
)


def test_dd_fallback_gives_a_mean():
    probe = parse_fsync_probe(SYNTHETIC_DD)
    assert probe == FsyncProbe("dd", None, pytest.approx(16.0))
    assert probe.worst_ms == pytest.approx(16.0)
    assert parse_fsync_probe("fio: command not found\n") is None


@pytest.mark.parametrize(
    ("name", "synced"),
    [
        ("timedatectl.pi.synced.txt", True),
        ("timedatectl.pi.homebridge-raspbian.unsynced.txt", False),
    ],
)
def test_timedatectl_status_by_label(name, synced):
    assert parse_timedatectl(body(name)) == TimeSync(synced, True)


# `timedatectl show` key=value form: no Pi capture exists (README: not found).
SYNTHETIC_TIMEDATECTL_SHOW = (
    "Timezone=Europe/Berlin\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=no\n"
    "TimeUSec=Wed 2026-11-25 18:00:00 CET\nRTCTimeUSec=Wed 2026-11-25 18:00:00 CET\n"
)


def test_timedatectl_show():
    assert parse_timedatectl(SYNTHETIC_TIMEDATECTL_SHOW) == TimeSync(False, True)


def test_meminfo_and_df_and_dpkg_query():
    # /proc/meminfo and df layouts from the kernel and coreutils; no Pi capture in pi-facts.
    synthetic_meminfo = "MemTotal:        8245632 kB\nMemFree:         7000000 kB\n"
    assert parse_meminfo_total_kib(synthetic_meminfo) == 8245632
    synthetic_df = "   1B-blocks       Avail Mounted on\n62671097856 55012376576 /\n"
    assert parse_df(synthetic_df) == DiskSpace(62671097856, 55012376576, "/")
    synthetic_dpkg = "curl\tii \nfio\tun \nnftables\tii \n"
    assert parse_dpkg_query(synthetic_dpkg) == {"curl": True, "fio": False, "nftables": True}


def test_k3s_version():
    synthetic = "k3s version v1.33.5+k3s1 (8ad4a4a6)\ngo version go1.24.6\n"
    assert parse_k3s_version(synthetic) == "v1.33.5+k3s1"
    assert parse_k3s_version("") is None


def test_a_failed_read_is_absent_but_state_queries_keep_their_answer():
    cat = Fact("rpi_issue", ("cat", "/etc/rpi-issue"), parse_rpi_issue)
    assert parse_result(cat, 1, "") is None
    enabled = unit_state_fact("firewall_enabled", "is-enabled", "x")
    assert parse_result(enabled, 1, "disabled\n") == "disabled"


def test_link_falls_back_to_sysfs_in_ethtool_words():
    assert parse_ethtool("Speed: 1000Mb/s\n") == Link(1000, None)
    assert parse_ethtool("Speed: -1Mb/s\n") == Link(None, None)  # link down
    assert parse_ethtool("Speed: Mb/s\n") == Link(None, None)  # no eth0


def test_fact_commands_are_quoted():
    dpkg = next(f for f in prep_facts() if f.name == "packages")
    assert dpkg.command.startswith("dpkg-query -W '-f=${Package}\\t${db:Status-Abbrev}\\n' ")
    probe = Fact("fsync", fsync_probe_argv("/var/lib/rancher/k3s"), parse_fsync_probe)
    assert probe.command.startswith("sh -c '")
    assert probe.command.endswith(" picluster-fsync-probe /var/lib/rancher/k3s")
