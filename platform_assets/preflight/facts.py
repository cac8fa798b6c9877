"""Preflight's facts: what the Pi is (model, architecture, OS, memory, page size, cgroups, disk,
fsync latency, time sync, NIC speed), each a read-only command and a pure parser."""

import re
from dataclasses import dataclass

from platform_assets.core.facts import (
    Fact,
    cat_fact,
    parse_first_line,
    parse_int,
    parse_key_values,
    parse_words,
)

# Writes of the fsync probe: fio's etcd recipe (IBM, 2019) uses 2300-byte writes; dd writes this
# many of them when fio is not installed.
FSYNC_DD_COUNT = 200
# fio's 22 MB in 2300-byte fdatasync'd writes: ~10,000 syncs, under two minutes even on an SD card
# at 10 ms each; a card slower than that has failed the check already.
FSYNC_PROBE_TIMEOUT_S = 300.0


def parse_model(text: str) -> str:
    """`/proc/device-tree/model` is NUL-terminated with no newline; keep what is before the NUL."""
    return text.split("\x00", 1)[0].strip()


@dataclass(frozen=True)
class OsRelease:
    id: str
    version_id: str
    codename: str
    pretty_name: str


def parse_os_release(text: str) -> OsRelease:
    kv = parse_key_values(text)
    return OsRelease(
        id=kv.get("ID", ""),
        version_id=kv.get("VERSION_ID", ""),
        codename=kv.get("VERSION_CODENAME", ""),
        pretty_name=kv.get("PRETTY_NAME", ""),
    )


def parse_rpi_issue(text: str) -> str:
    """The first line of `/etc/rpi-issue`, e.g. `Raspberry Pi reference 2024-11-19`."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def parse_meminfo_total_kib(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class DiskSpace:
    size_bytes: int
    avail_bytes: int
    mount: str


def parse_df(text: str) -> DiskSpace | None:
    """`df -B1 --output=size,avail,target PATH`."""
    for line in text.splitlines()[1:]:
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            return DiskSpace(int(parts[0]), int(parts[1]), parts[2].strip())
    return None


@dataclass(frozen=True)
class TimeSync:
    synchronized: bool | None
    ntp_service: bool | None


def _yes(value: str | None) -> bool | None:
    if value is None:
        return None
    value = value.strip().lower()
    if value in ("yes", "active", "true", "1"):
        return True
    if value in ("no", "inactive", "false", "0", "n/a"):
        return False
    return None


def parse_timedatectl(text: str) -> TimeSync:
    """`timedatectl show` (`NTPSynchronized=yes`, `NTP=yes`) or the human `timedatectl status`.

    The status form is parsed by label text, not position: labels are right-aligned and older
    systemd used other words (`NTP synchronized`).
    """
    kv = parse_key_values(text)
    if "NTPSynchronized" in kv or "NTP" in kv:
        return TimeSync(_yes(kv.get("NTPSynchronized")), _yes(kv.get("NTP")))
    labels: dict[str, str] = {}
    for line in text.splitlines():
        label, sep, value = line.partition(":")
        if sep:
            labels[label.strip().lower()] = value.strip()
    synced = labels.get("system clock synchronized", labels.get("ntp synchronized"))
    service = labels.get("ntp service", labels.get("network time on", labels.get("ntp enabled")))
    return TimeSync(_yes(synced), _yes(service))


@dataclass(frozen=True)
class Link:
    speed_mbps: int | None  # None: unknown (link down or not reported)
    link_detected: bool | None


def parse_ethtool(text: str) -> Link:
    speed = re.search(r"^\s*Speed:\s*(\d+)\s*Mb/s", text, re.MULTILINE)
    detected = re.search(r"^\s*Link detected:\s*(\w+)", text, re.MULTILINE)
    return Link(
        int(speed.group(1)) if speed else None,
        _yes(detected.group(1)) if detected else None,
    )


@dataclass(frozen=True)
class FsyncProbe:
    method: str  # "fio" (p99 of fdatasync) or "dd" (mean of O_DSYNC writes)
    p99_ms: float | None
    mean_ms: float | None

    @property
    def worst_ms(self) -> float | None:
        return self.p99_ms if self.p99_ms is not None else self.mean_ms


def parse_fsync_probe(text: str) -> FsyncProbe | None:
    """fio's `sync percentiles` block (the etcd recipe) or dd's summary line as a fallback."""
    block = re.search(r"sync percentiles \((usec|msec|nsec)\):(.*?)(?:\n\s*\n|\Z)", text, re.DOTALL)
    if block:
        unit = {"usec": 1e-3, "msec": 1.0, "nsec": 1e-6}[block.group(1)]
        match = re.search(r"99\.00th=\[\s*(\d+)\]", block.group(2))
        mean = re.search(r"sync \((usec|msec|nsec)\):.*?avg=\s*([\d.]+)", text)
        mean_ms = None
        if mean:
            mean_ms = (
                float(mean.group(2)) * {"usec": 1e-3, "msec": 1.0, "nsec": 1e-6}[mean.group(1)]
            )
        if match:
            return FsyncProbe("fio", int(match.group(1)) * unit, mean_ms)
    dd = re.search(r"^(\d+)\+\d+ records out.*?copied, ([\d.,]+) s", text, re.MULTILINE | re.DOTALL)
    if dd:
        records = int(dd.group(1))
        seconds = float(dd.group(2).replace(",", "."))
        if records:
            return FsyncProbe("dd", None, seconds * 1000 / records)
    return None


def fsync_probe_argv(data_dir: str) -> tuple[str, ...]:
    """Measures fdatasync latency on the file system that will hold K3s's data (etcd's WAL).

    The data dir may not exist yet, so the probe runs in its nearest existing parent. fio gives
    the 99th percentile etcd cares about; without fio, dd with O_DSYNC gives a mean.
    """
    script = (
        'd="$1"; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; '
        "if command -v fio >/dev/null 2>&1; then "
        'exec fio --name=picluster-fsync --directory="$d" --rw=write --ioengine=sync '
        "--fdatasync=1 --size=22m --bs=2300 --unlink=1; "
        "else "
        f'dd if=/dev/zero of="$d/.picluster-fsync-probe" bs=2300 count={FSYNC_DD_COUNT} '
        'oflag=dsync 2>&1; s=$?; rm -f "$d/.picluster-fsync-probe"; exit $s; fi'
    )
    return ("sh", "-c", script, "picluster-fsync-probe", data_dir)


# ethtool lives in /usr/sbin, which is not on a non-root user's PATH on Debian; where it is not
# installed, the kernel's own figure (sysfs) is printed in ethtool's words.
LINK_ARGV = (
    "sh",
    "-c",
    'PATH="$PATH:/usr/sbin:/sbin"; if command -v ethtool >/dev/null 2>&1; then exec ethtool eth0;'
    ' fi; echo "Speed: $(cat /sys/class/net/eth0/speed 2>/dev/null)Mb/s"',
)


# Read by more than one step.
OS_RELEASE = cat_fact("os_release", "/etc/os-release", parse_os_release)
CGROUP_CONTROLLERS = cat_fact(
    "cgroup_controllers", "/sys/fs/cgroup/cgroup.controllers", parse_words
)


def preflight_facts(data_dir: str) -> tuple[Fact, ...]:
    return (
        cat_fact("model", "/proc/device-tree/model", parse_model),
        Fact("architecture", ("dpkg", "--print-architecture"), parse_first_line),
        OS_RELEASE,
        cat_fact("rpi_issue", "/etc/rpi-issue", parse_rpi_issue),
        cat_fact("memory_kib", "/proc/meminfo", parse_meminfo_total_kib),
        Fact("page_size", ("getconf", "PAGESIZE"), parse_int),
        CGROUP_CONTROLLERS,
        Fact("disk", ("df", "-B1", "--output=size,avail,target", "/"), parse_df),
        Fact(
            "fsync",
            fsync_probe_argv(data_dir),
            parse_fsync_probe,
            sudo=True,
            timeout_s=FSYNC_PROBE_TIMEOUT_S,
        ),
        Fact("time", ("timedatectl", "show"), parse_timedatectl),
        Fact("link", LINK_ARGV, parse_ethtool),
    )
