"""Facts: what a node is like now, each read by one plain command and parsed by a pure function.

A fact never changes the node. The parsers take the command's stdout (text as the node printed
it) and return typed values; they are tested on real Raspberry Pi OS output recorded in
`/work/shared/data/pi-facts/` (see tests/platform/test_facts.py). A fact whose command fails
(a file that is not there, a tool that is not installed) has the value `None`: planning treats
that as "absent", never as an error of the read.
"""

import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Where the platform's own files go on a node (planning writes them, facts read them back).
CMDLINE_TXT = "/boot/firmware/cmdline.txt"
SYSCTL_FILE = "/etc/sysctl.d/90-picluster-k3s.conf"
JOURNALD_FILE = "/etc/systemd/journald.conf.d/90-picluster.conf"
RPI_SWAP_DROPIN = "/etc/rpi/swap.conf.d/90-picluster.conf"
FIREWALL_FILE = "/etc/picluster/firewall.nft"
FIREWALL_UNIT = "picluster-firewall.service"
FIREWALL_UNIT_FILE = f"/etc/systemd/system/{FIREWALL_UNIT}"
K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_TOKEN_FILE = "/etc/rancher/k3s/cluster-token"  # noqa: S105 (a path, not a secret)
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
K3S_BINARY = "/usr/local/bin/k3s"
K3S_DOWNLOADS = "/usr/local/lib/picluster/k3s"
REQUIRED_PACKAGES = ("ca-certificates", "curl", "nftables", "fio")
# Packages whose state node prep reads besides the required ones (swap handling differs).
SWAP_PACKAGES = ("dphys-swapfile", "rpi-swap", "systemd-zram-generator")
# Writes of the fsync probe: fio's etcd recipe (IBM, 2019) uses 2300-byte writes; dd writes this
# many of them when fio is not installed.
FSYNC_DD_COUNT = 200


@dataclass(frozen=True)
class Fact:
    """One read: a command (argv; quoted by the SSH layer) and a pure parser of its stdout."""

    name: str
    argv: tuple[str, ...]
    parse: Callable[[str], Any]
    sudo: bool = False
    # Not in the repr: it may hold a secret to compare on the node (see token_file_fact).
    stdin: bytes | None = field(default=None, repr=False)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


# --- parsers -----------------------------------------------------------------------------------


def parse_model(text: str) -> str:
    """`/proc/device-tree/model` is NUL-terminated with no newline; keep what is before the NUL."""
    return text.split("\x00", 1)[0].strip()


def parse_key_values(text: str) -> dict[str, str]:
    """`KEY=value` lines (os-release, `timedatectl show`); quotes around values removed."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        out[key.strip()] = value
    return out


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


def parse_words(text: str) -> tuple[str, ...]:
    """Whitespace-separated words (cgroup.controllers, a kernel command line)."""
    return tuple(text.split())


def parse_meminfo_total_kib(text: str) -> int | None:
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) if match else None


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


def parse_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def parse_first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


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


def parse_dpkg_query(text: str) -> dict[str, bool]:
    """`dpkg-query -W -f='${Package}\\t${db:Status-Abbrev}\\n' NAMES`: package -> installed."""
    out: dict[str, bool] = {}
    for line in text.splitlines():
        name, sep, status = line.partition("\t")
        if sep:
            out[name.strip()] = status.strip().startswith("ii")
    return out


def parse_k3s_version(text: str) -> str | None:
    match = re.search(r"k3s version (v\S+)", text)
    return match.group(1) if match else None


def parse_text(text: str) -> str:
    return text


# --- the facts ---------------------------------------------------------------------------------


def _cat(name: str, path: str, parse: Callable[[str], Any], sudo: bool = False) -> Fact:
    return Fact(name, ("cat", path), parse, sudo)


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


def preflight_facts(data_dir: str) -> tuple[Fact, ...]:
    return (
        _cat("model", "/proc/device-tree/model", parse_model),
        Fact("architecture", ("dpkg", "--print-architecture"), parse_first_line),
        _cat("os_release", "/etc/os-release", parse_os_release),
        _cat("rpi_issue", "/etc/rpi-issue", parse_rpi_issue),
        _cat("memory_kib", "/proc/meminfo", parse_meminfo_total_kib),
        Fact("page_size", ("getconf", "PAGESIZE"), parse_int),
        _cat("cgroup_controllers", "/sys/fs/cgroup/cgroup.controllers", parse_words),
        Fact("disk", ("df", "-B1", "--output=size,avail,target", "/"), parse_df),
        Fact("fsync", fsync_probe_argv(data_dir), parse_fsync_probe, sudo=True),
        Fact("time", ("timedatectl", "show"), parse_timedatectl),
        Fact("link", LINK_ARGV, parse_ethtool),
    )


def prep_facts() -> tuple[Fact, ...]:
    return (
        _cat("os_release", "/etc/os-release", parse_os_release),
        _cat("cmdline_txt", CMDLINE_TXT, parse_words),
        _cat("proc_cmdline", "/proc/cmdline", parse_words),
        _cat("cgroup_controllers", "/sys/fs/cgroup/cgroup.controllers", parse_words),
        _cat("swaps", "/proc/swaps", parse_proc_swaps),
        Fact(
            "dphys_swapfile_enabled",
            ("systemctl", "is-enabled", "dphys-swapfile.service"),
            parse_first_line,
        ),
        _cat("rpi_swap_dropin", RPI_SWAP_DROPIN, parse_text),
        _cat("hostname", "/etc/hostname", parse_first_line),
        _cat("hosts", "/etc/hosts", parse_text),
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
        ),
        _cat("sysctl_file", SYSCTL_FILE, parse_text),
        _cat("journald_file", JOURNALD_FILE, parse_text),
        _cat("firewall_file", FIREWALL_FILE, parse_text),
        _cat("firewall_unit_file", FIREWALL_UNIT_FILE, parse_text),
        Fact("firewall_enabled", ("systemctl", "is-enabled", FIREWALL_UNIT), parse_first_line),
        Fact("firewall_active", ("systemctl", "is-active", FIREWALL_UNIT), parse_first_line),
    )


# Compares the token file with the wanted token ON THE NODE, the token going in on stdin as when
# it is written: only "absent", "same" or "differs" comes back. Reading the file instead would
# stream the token on the node (an old one, or any one in plan mode) into the run's logs.
_COMPARE_ON_NODE = (
    'if [ ! -e "$1" ]; then echo absent; elif cmp -s - "$1"; then echo same; else echo differs; fi'
)


def token_file_fact(name: str, path: str, token: str | None) -> Fact:
    """Whether the secret file at `path` holds `token` + newline: "absent", "same" or "differs"
    (without a token: "differs" for any non-empty file). The file's content never leaves the
    node."""
    stdin = (token + "\n").encode() if token else b""
    argv = ("sh", "-c", _COMPARE_ON_NODE, "picluster-token-check", path)
    return Fact(name, argv, parse_first_line, sudo=True, stdin=stdin)


# A K3s node set up by hand often has `token:` in config.yaml or `--token` in the unit (the
# installer's INSTALL_K3S_EXEC writes one quoted argument per line). Their values are masked ON
# THE NODE, so they reach neither the run's logs nor the plan's diff. Our own files hold no
# secret (the token has its own file), so the mask never hides drift that we would fix.
_MASKED_KEYS = (
    r"(token|agent-token|datastore-endpoint|[A-Za-z0-9_-]*(secret|password)[A-Za-z0-9_-]*)"
)
MASK_SECRETS = (
    rf"""s/^([[:space:]]*"?{_MASKED_KEYS}"?[[:space:]]*:).*$/\1 ***/I""",  # key: value
    rf"""s/(--{_MASKED_KEYS}'?)([= ]+)'?[^[:space:]'\\]+'?/\1\4***/Ig""",  # --flag value
    rf"""/--{_MASKED_KEYS}'?[[:space:]]*\\$/I{{n;s/[^[:space:]\\]+/***/}}""",  # --flag \ value
)


def _cat_masked(name: str, path: str, sudo: bool = False) -> Fact:
    """Like `cat`, with the values of secret-looking settings replaced by `***` on the node."""
    argv = ["sed", "-E"]
    for expression in MASK_SECRETS:
        argv += ["-e", expression]
    return Fact(name, (*argv, path), parse_text, sudo)


def k3s_facts(service: str, token: str | None = None) -> tuple[Fact, ...]:
    return (
        Fact("k3s_version", ("k3s", "--version"), parse_k3s_version),
        _cat_masked("k3s_config", K3S_CONFIG, sudo=True),
        token_file_fact("k3s_token_file", K3S_TOKEN_FILE, token),
        Fact("k3s_active", ("systemctl", "is-active", service), parse_first_line),
        Fact("k3s_enabled", ("systemctl", "is-enabled", service), parse_first_line),
        _cat_masked("k3s_unit_file", f"/etc/systemd/system/{service}"),
        _cat("cgroup_controllers", "/sys/fs/cgroup/cgroup.controllers", parse_words),
    )


BOOT_ID = _cat("boot_id", "/proc/sys/kernel/random/boot_id", parse_first_line)

# Facts whose command prints its answer even with a non-zero exit status.
_OUTPUT_ON_FAILURE = {
    "packages",
    "k3s_enabled",
    "dphys_swapfile_enabled",
    "firewall_enabled",
    "firewall_active",
    "k3s_active",
}


@dataclass
class NodeFacts:
    """The facts read from one node: name -> parsed value (None: absent or not readable)."""

    node: str
    values: dict[str, Any] = field(default_factory=dict)
    # For the plan's markdown: which command each fact came from, and why a read failed.
    notes: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.values.get(name)

    def get(self, name: str, default: Any = None) -> Any:
        value = self.values.get(name)
        return default if value is None else value


def parse_result(fact: Fact, exit_code: int, stdout: str) -> Any:
    """The parsed value of one read, given the command's exit code and stdout."""
    if exit_code != 0 and fact.name not in _OUTPUT_ON_FAILURE:
        return None
    if exit_code != 0 and not stdout.strip():
        return None
    return fact.parse(stdout)


def read_facts(sessions: Any, node: str, facts: tuple[Fact, ...]) -> NodeFacts:
    """Runs each fact's command on `node` through `sessions` (an SSH `NodeSessions` or a recorded
    fake with the same `run`) and parses the output. Connection errors propagate."""
    out = NodeFacts(node)
    for fact in facts:
        result = sessions.run(node, list(fact.argv), sudo=fact.sudo, check=False, stdin=fact.stdin)
        out.values[fact.name] = parse_result(fact, result.exit_code, result.stdout)
        if result.exit_code != 0:
            tail = (result.stderr or "").strip().splitlines()[-1:] or [""]
            out.notes[fact.name] = f"exit {result.exit_code}: {tail[0][:200]}"
    return out


def facts_from_mapping(node: str, values: Mapping[str, Any]) -> NodeFacts:
    return NodeFacts(node, dict(values))
