"""Node prep's facts: boot command line, swap, hostname and hosts, packages, the files node prep
manages and the firewall unit's state."""

from dataclasses import dataclass

from platform_assets.core.facts import (
    Fact,
    cat_fact,
    parse_first_line,
    parse_text,
    parse_words,
    unit_state_fact,
)
from platform_assets.preflight.facts import CGROUP_CONTROLLERS, OS_RELEASE

# Where the platform's own files go on a node (planning writes them, facts read them back).
CMDLINE_TXT = "/boot/firmware/cmdline.txt"
SYSCTL_FILE = "/etc/sysctl.d/90-picluster-k3s.conf"
JOURNALD_FILE = "/etc/systemd/journald.conf.d/90-picluster.conf"
RPI_SWAP_DROPIN = "/etc/rpi/swap.conf.d/90-picluster.conf"
FIREWALL_FILE = "/etc/picluster/firewall.nft"
FIREWALL_UNIT = "picluster-firewall.service"
FIREWALL_UNIT_FILE = f"/etc/systemd/system/{FIREWALL_UNIT}"
REQUIRED_PACKAGES = ("ca-certificates", "curl", "nftables", "fio")
# Packages whose state node prep reads besides the required ones (swap handling differs).
SWAP_PACKAGES = ("dphys-swapfile", "rpi-swap", "systemd-zram-generator")


@dataclass(frozen=True)
class SwapArea:
    filename: str
    type: str
    size_kib: int


def parse_proc_swaps(text: str) -> tuple[SwapArea, ...]:
    areas = []
    for line in text.splitlines()[1:]:  # the first line is the column header
        parts = line.split()
        if len(parts) >= 3 and parts[2].isdigit():
            areas.append(SwapArea(parts[0], parts[1], int(parts[2])))
    return tuple(areas)


def parse_dpkg_query(text: str) -> dict[str, bool]:
    """`dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' NAMES`: package -> installed."""
    out: dict[str, bool] = {}
    for line in text.splitlines():
        name, sep, status = line.partition("\t")
        if sep:
            out[name.strip()] = status.strip().startswith("ii")
    return out


def prep_facts() -> tuple[Fact, ...]:
    return (
        OS_RELEASE,
        cat_fact("cmdline_txt", CMDLINE_TXT, parse_words),
        cat_fact("proc_cmdline", "/proc/cmdline", parse_words),
        CGROUP_CONTROLLERS,
        cat_fact("swaps", "/proc/swaps", parse_proc_swaps),
        Fact(
            "dphys_swapfile_enabled",
            ("systemctl", "is-enabled", "dphys-swapfile.service"),
            parse_first_line,
            output_on_failure=True,
        ),
        cat_fact("rpi_swap_dropin", RPI_SWAP_DROPIN, parse_text),
        cat_fact("hostname", "/etc/hostname", parse_first_line),
        cat_fact("hosts", "/etc/hosts", parse_text),
        Fact(
            "packages",
            (
                "dpkg-query",
                "-W",
                "-f=${Package}\\t${db:Status-Abbrev}\\n",
                *REQUIRED_PACKAGES,
                *SWAP_PACKAGES,
            ),
            parse_dpkg_query,
            output_on_failure=True,
        ),
        cat_fact("sysctl_file", SYSCTL_FILE, parse_text),
        cat_fact("journald_file", JOURNALD_FILE, parse_text),
        cat_fact("firewall_file", FIREWALL_FILE, parse_text),
        cat_fact("firewall_unit_file", FIREWALL_UNIT_FILE, parse_text),
        unit_state_fact("firewall_enabled", "is-enabled", FIREWALL_UNIT),
        unit_state_fact("firewall_active", "is-active", FIREWALL_UNIT),
    )
