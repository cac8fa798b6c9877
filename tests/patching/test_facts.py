"""The patch's and node health's fact parsers on published Raspberry Pi outputs (pi-facts and
tests/patching/outputs, each with its source; SYNTHETIC where none was found)."""

import pytest

from platform_assets.node_health.facts import (
    HealthLimits,
    NodeHealth,
    health_problems,
    parse_df,
    parse_measure_temp,
    parse_thermal_zone,
    parse_throttled,
)
from platform_assets.patching.facts import (
    kernel_flavour,
    kernel_key,
    parse_lines,
    parse_upgradable,
    pending_kernel,
)
from tests.patching.outputs_reader import output, pi_fact


def uname_release(name: str) -> str:
    return pi_fact(name).split()[2]  # `uname -a`: Linux <host> <release> ...


@pytest.mark.parametrize(
    ("text", "raw", "now", "since_boot"),
    [
        (pi_fact("vcgencmd-get-throttled.pi.0x0.txt"), 0x0, [], []),
        (pi_fact("vcgencmd-get-throttled.pi.0x80000.txt"), 0x80000, [], ["soft_temp_limit"]),
        (
            output("vcgencmd-get-throttled.pi3.0x50005.txt"),
            0x50005,
            ["under_voltage", "throttled"],
            ["under_voltage", "throttled"],
        ),
    ],
)
def test_throttling_flags_decoded(text, raw, now, since_boot):
    throttling = parse_throttled(text)
    flags = ("under_voltage", "freq_capped", "throttled", "soft_temp_limit")
    assert throttling.raw == raw
    assert [f for f in flags if throttling.now(f)] == now
    assert [f for f in flags if throttling.since_boot(f)] == since_boot


def test_throttling_described_for_a_person():
    assert parse_throttled("throttled=0x0").describe() == "none"
    assert (
        parse_throttled(output("vcgencmd-get-throttled.pi3.0x50005.txt")).describe()
        == "0x50005 (now: under_voltage, throttled; since boot: under_voltage, throttled)"
    )


def test_soc_temperature_from_vcgencmd_and_the_thermal_zone():
    assert parse_measure_temp(pi_fact("vcgencmd-measure-temp.pi5.txt")) == 37.3
    # The first of the three lines of the Pi 3 report.
    assert parse_measure_temp(output("vcgencmd-get-throttled.pi3.0x50005.txt")) == 38.6
    assert parse_thermal_zone(pi_fact("thermal-zone0-temp.pi5.ubuntu-23.10.txt")) == 48.5
    assert parse_measure_temp("VCHI initialization failed") is None
    assert parse_thermal_zone("cat: No such file") is None


def test_root_disk_use():
    disk = parse_df(output("df-root.pi5.synthetic.txt"))
    assert (disk.size_bytes, disk.used_bytes, disk.avail_bytes) == (
        62417969152,
        50352889856,
        9491648512,
    )
    assert disk.mount == "/"
    assert disk.used_fraction == pytest.approx(50352889856 / (50352889856 + 9491648512))
    assert parse_df("df: /: No such file or directory\n") is None


def test_upgradable_packages_from_apt_list():
    upgrades = parse_upgradable(output("apt-list-upgradable.raspbian-buster-testing.dietpi.txt"))
    assert len(upgrades) == 14  # the notice and "Listing... Done" are no packages
    first, eleventh = upgrades[0], upgrades[10]
    assert (first.package, first.installed, first.candidate) == (
        "apt-transport-https",
        "1.8.0~beta1",
        "1.8.0~rc2",
    )
    assert (eleventh.package, eleventh.installed) == ("libgnutls30", "3.6.5-2+rpi1")
    assert not any(u.kernel for u in upgrades)
    assert parse_upgradable("Listing... Done\n") == ()


def test_kernel_packages_are_recognised():
    text = (
        "linux-image-rpi-2712/stable 1:6.12.47-1+rpt1~bookworm arm64 "
        "[upgradable from: 1:6.12.34-1+rpt1~bookworm]"
    )
    (upgrade,) = parse_upgradable(text)
    assert upgrade.kernel and upgrade.installed == "1:6.12.34-1+rpt1~bookworm"


def test_kernel_releases_of_pi5_bookworm_sort_by_their_numbers():
    names = [
        "uname-a.pi5.bookworm-6.12.34.txt",
        "uname-a.pi5.bookworm-6.1.0-rpi6.txt",
        "uname-a.pi5.bookworm-6.6.74.txt",
        "uname-a.pi5.bookworm-6.1.0-rpi4.txt",
    ]
    releases = sorted((uname_release(n) for n in names), key=kernel_key)
    assert releases == [
        "6.1.0-rpi4-rpi-2712",
        "6.1.0-rpi6-rpi-2712",
        "6.6.74+rpt-rpi-2712",
        "6.12.34+rpt-rpi-2712",
    ]
    assert {kernel_flavour(r) for r in releases} == {"2712"}
    assert kernel_flavour(uname_release("uname-a.pi5.bookworm-rpi-update-6.1.74-16k.txt")) == "16k+"


def test_a_newer_kernel_installed_is_pending_until_booted():
    running = uname_release("uname-a.pi5.bookworm-6.12.34.txt")
    installed = parse_lines(output("ls-lib-modules.pi5.bookworm.synthetic.txt"))
    assert pending_kernel(running, installed) == "6.12.47+rpt-rpi-2712"  # not the v8 one
    assert pending_kernel("6.12.47+rpt-rpi-2712", installed) is None
    assert pending_kernel(running, None) is None  # /lib/modules unreadable: no claim
    # A Pi booted into the v8 kernel compares with v8 kernels only.
    assert pending_kernel("6.12.34+rpt-rpi-v8", installed) == "6.12.47+rpt-rpi-v8"


def health(**overrides) -> NodeHealth:
    from datetime import UTC, datetime

    values = {
        "node": "pi-agent-1",
        "measured_at": datetime(2026, 12, 6, 3, 0, tzinfo=UTC),
        "soc_temp_c": 47.4,
        "temp_source": "vcgencmd",
        "throttling": parse_throttled("throttled=0x0"),
        "disk": parse_df(output("df-root.pi5.synthetic.txt")),
    }
    values.update(overrides)
    return NodeHealth(**values)


def test_health_problems_name_what_stops_a_patch():
    assert health_problems(health()) == []
    assert health_problems(health(soc_temp_c=81.2)) == ["SoC at 81.2 °C (limit 80 °C)"]
    throttled = parse_throttled(output("vcgencmd-get-throttled.pi3.0x50005.txt"))
    assert health_problems(health(throttling=throttled)) == [
        "firmware reports under_voltage, throttled now (0x50005)"
    ]
    # Only history (since boot): a reboot clears it, no reason to hold a patch.
    history = parse_throttled(pi_fact("vcgencmd-get-throttled.pi.0x80000.txt"))
    assert health_problems(health(throttling=history)) == []
    assert health_problems(health(soc_temp_c=None, throttling=None)) == [
        "SoC temperature unreadable (neither vcgencmd nor the thermal zone)",
        "throttling flags unreadable (`vcgencmd get_throttled`)",
    ]
    full = health_problems(health(), HealthLimits(max_disk_used=0.5))
    assert full == ["root disk 84% used (limit 50%)"]
