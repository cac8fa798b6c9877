#!/usr/bin/python3 -S
"""FAKE Raspberry Pi commands: the stand-ins a fake node runs instead of the real ones.

Runs INSIDE one fake node's mount namespace, with the system's python3 and the standard library
only (it is copied to `/usr/lib/fakepi/standin.py` of the node, and every stand-in command is a
symlink to it; `argv[0]` says which one was called). Each call is recorded in
`/var/lib/fakepi/commands.log` (one JSON line) and changes the node's state in
`/var/lib/fakepi/state.json` the way the real command would change a Pi: `apt-get install`
marks packages installed for `dpkg-query`, `swapoff` empties `/proc/swaps`, `reboot` asks the
node's supervisor to reboot it (which applies the boot command line, see `boot()`), ...

None of these touch the real machine: the files they write are the node's own (overlay mounts
over /etc, /usr, /var, /boot, a tmpfs /proc), and nothing here opens a network connection but
the server's k3s `etcd-snapshot save` and `--cluster-reset`, which talk to the test control
plane's etcd on loopback (see "K3s etcd snapshots" below).
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid

FAKEPI = "/var/lib/fakepi"
STATE = f"{FAKEPI}/state.json"
LOG = f"{FAKEPI}/commands.log"
LOCK = f"{FAKEPI}/state.lock"
REBOOT_REQUEST = f"{FAKEPI}/reboot-request"
STANDIN = "/usr/lib/fakepi/standin.py"
DPHYS_CONF = "/etc/dphys-swapfile"
SWAPFILE = "/var/swap"
CMDLINE_TXT = "/boot/firmware/cmdline.txt"
SYSTEMD_DIRS = ("/etc/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system")
K3S_BIN = "/usr/local/bin/k3s"
GITHUB_K3S = re.compile(r"^https://github\.com/k3s-io/k3s/releases/download/([^/]+)/([^/?]+)$")

# What a fresh Raspberry Pi OS Lite (bookworm) has, as far as node prep reads it.
BASE_PACKAGES = {
    "openssh-server": "1:9.2p1-2+deb12u7",
    "sudo": "1.9.13p3-1+deb12u2",
    "systemd": "252.39-1~deb12u1",
    "ca-certificates": "20230311+deb12u1",
    "curl": "7.88.1-10+deb12u14",
    "dphys-swapfile": "20100506-7.1+rpt3",
    "ethtool": "1:6.1-1",
    "iptables": "1.8.9-2",
    "raspberrypi-sys-mods": "20250605~bookworm",
}
# Packages apt can find (the rest gives "Unable to locate package").
CATALOG = {
    **BASE_PACKAGES,
    "nftables": "1.0.6-2+deb12u2",
    "fio": "3.33-3",
    "ufw": "0.36.2-1",
    "chrony": "4.3-2+deb12u1",
    "jq": "1.6-2.1",
    "open-iscsi": "2.1.8-1",
    "nfs-common": "1:2.6.2-4+deb12u1",
    "rpi-swap": "1.0.0",
    "systemd-zram-generator": "1.1.2-1",
    "apparmor": "3.0.8-3",
    "git": "1:2.39.5-0+deb12u2",
    "python3": "3.11.2-1+b1",
    "htop": "3.2.2-2",
    "vim": "2:9.0.1378-2+deb12u2",
}
# Commands a package brings (linked to the stand-in when it is installed, removed with it).
PACKAGE_COMMANDS = {
    "dphys-swapfile": ["/usr/sbin/dphys-swapfile"],
    "fio": ["/usr/bin/fio"],
    "nftables": ["/usr/sbin/nft"],
    "ufw": ["/usr/sbin/ufw"],
}
PACKAGE_UNITS = {
    "nftables": "nftables.service",
    "dphys-swapfile": "dphys-swapfile.service",
    "chrony": "chrony.service",
    "ufw": "ufw.service",
}
BASE_UNITS = {
    "ssh.service": ["enabled", "active"],
    "systemd-timesyncd.service": ["enabled", "active"],
    "systemd-journald.service": ["static", "active"],
    "dphys-swapfile.service": ["enabled", "active"],
    "cron.service": ["enabled", "active"],
}
DEFAULT_SYSCTL = {
    "net.ipv4.ip_forward": "0",
    "net.ipv6.conf.all.forwarding": "0",
    "net.bridge.bridge-nf-call-iptables": "1",
    "net.bridge.bridge-nf-call-ip6tables": "1",
    "vm.swappiness": "60",
    "vm.overcommit_memory": "0",
    "vm.panic_on_oom": "0",
    "kernel.panic": "0",
    "kernel.panic_on_oops": "0",
    "fs.inotify.max_user_instances": "128",
    "fs.inotify.max_user_watches": "60899",
    "net.core.somaxconn": "4096",
}
PAGE_SIZE = "16384"  # the Pi 5's 2712 kernel (pi-facts getconf-pagesize.pi5.6.12.47.txt)
# From the Pi 5 capture seed/uname-a.pi5.bookworm-6.12.34.txt (and for trixie
# kernel-version.pi5.trixie-6.12.62.partial.txt in pi-facts).
KERNEL_RELEASE = "6.12.34+rpt-rpi-2712"
KERNEL_VERSION = "#1 SMP PREEMPT Debian 1:6.12.34-1+rpt1~bookworm (2025-06-26)"
K3S_COMMIT = "0fake000"
# Raspberry Pi OS trixie swaps with rpi-swap (zram by default) instead of dphys-swapfile.
TRIXIE_SWAP_PACKAGES = {"rpi-swap": "1.0.0", "systemd-zram-generator": "1.2.1-2"}
TRIXIE_KERNEL = ("6.12.62+rpt-rpi-2712", "#1 SMP PREEMPT Debian 1:6.12.62-1+rpt1 (2025-12-18)")
RPI_SWAP_CONF = "/etc/rpi/swap.conf"
ZRAM_KIB = 2097148  # rpi-swap's zram: RAM x 1, capped at 2048 MiB


class Exit(Exception):
    def __init__(self, code: int, stderr: str = ""):
        super().__init__(code)
        self.code = code
        self.stderr = stderr


# --- state ------------------------------------------------------------------------------------


def initial_state(role: str, hostname: str, os_codename: str = "bookworm") -> dict:
    installed = dict(BASE_PACKAGES)
    units = {k: list(v) for k, v in BASE_UNITS.items()}
    if os_codename == "trixie":
        del installed["dphys-swapfile"]
        del units["dphys-swapfile.service"]
        installed.update(TRIXIE_SWAP_PACKAGES)
    return {
        "os": os_codename,
        "role": role,
        "hostname": hostname,
        "installed": installed,
        "removed": [],
        "units": units,
        "sysctl": dict(DEFAULT_SYSCTL),
        "modules": [],
        "ruleset": "",
        "ufw": {"active": False, "rules": []},
        "reboots": 0,
        "apt_updates": 0,
    }


@contextlib.contextmanager
def locked_state():
    with open(LOCK, "a+") as lock:
        if os.environ.get("FAKEPI_STATE_LOCKED") != "1":
            fcntl.flock(lock, fcntl.LOCK_EX)
        with open(STATE) as f:
            state = json.load(f)
        yield state
        tmp = STATE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1, sort_keys=True)
        os.replace(tmp, STATE)


def read_state() -> dict:
    with open(STATE) as f:
        return json.load(f)


def record(argv: list[str]) -> None:
    entry = {"time": round(time.time(), 3), "uid": os.geteuid(), "argv": argv}
    with open(LOG, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(json.dumps(entry) + "\n")


def require_root(what: str, message: str | None = None) -> None:
    if os.geteuid() != 0:
        raise Exit(1, message or f"{what}: Permission denied (run as root)\n")


def write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def read(path: str, default: str = "") -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


# --- swap -------------------------------------------------------------------------------------

SWAPS_HEADER = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n"


def swap_areas() -> list[list[str]]:
    return [line.split() for line in read("/proc/swaps").splitlines()[1:] if line.strip()]


def set_swap_areas(areas: list[list[str]]) -> None:
    lines = [f"{a[0]:<40}{a[1]}\t\t{a[2]}\t\t{a[3]}\t\t{a[4]}\n" for a in areas]
    write("/proc/swaps", SWAPS_HEADER + "".join(lines))


def dphys_size_kib() -> int:
    match = re.search(r"^\s*CONF_SWAPSIZE=(\d+)", read(DPHYS_CONF), re.MULTILINE)
    return int(match.group(1)) * 1024 - 4 if match else 0


def swap_on_file() -> None:
    size = dphys_size_kib()
    if size <= 0 or not os.path.exists(SWAPFILE):
        return
    areas = [a for a in swap_areas() if a[0] != SWAPFILE]
    set_swap_areas([*areas, [SWAPFILE, "file", str(size), "0", "-2"]])


def swap_off(path: str | None) -> None:
    set_swap_areas([a for a in swap_areas() if path is not None and a[0] != path])


# --- units ------------------------------------------------------------------------------------


def unit_name(name: str) -> str:
    return name if "." in name else f"{name}.service"


def unit_file(unit: str) -> str | None:
    for base in SYSTEMD_DIRS[:1]:  # only the node's own units; the host's are not the Pi's
        path = f"{base}/{unit}"
        if os.path.exists(path):
            return path
    return None


def unit_known(state: dict, unit: str) -> bool:
    return unit in state["units"] or unit_file(unit) is not None


def start_unit(state: dict, unit: str) -> None:
    if unit in ("k3s.service", "k3s-agent.service"):
        start_k3s(state, unit)
    elif unit == "dphys-swapfile.service":
        if not os.path.exists(SWAPFILE):
            dphys_setup()
        swap_on_file()
    elif unit == "nftables.service":
        if os.path.exists("/etc/nftables.conf"):
            state["ruleset"] = load_ruleset(read("/etc/nftables.conf"))
    else:
        path = unit_file(unit)
        if path is not None:
            text = read(path)
            if re.search(r"^Type=oneshot", text, re.MULTILINE):
                # The caller holds the state lock; the unit's commands update the same state.
                env = {**os.environ, "FAKEPI_STATE_LOCKED": "1"}
                for match in re.finditer(r"^ExecStart=[-@+!]*(.+)$", text, re.MULTILINE):
                    argv = shlex.split(match.group(1))
                    if not os.path.exists(argv[0]):
                        raise Exit(1, f"Job for {unit} failed: {argv[0]}: No such file\n")
                    proc = subprocess.run(
                        argv,
                        capture_output=True,
                        text=True,
                        check=False,
                        env=env,
                    )
                    if proc.returncode != 0:
                        raise Exit(
                            1,
                            f"Job for {unit} failed because the control process exited with "
                            f"error code.\n{proc.stderr}",
                        )
                fresh = read_state()  # what the unit's commands changed
                for key in ("ruleset", "nft_files", "ufw", "modules", "sysctl"):
                    if key in fresh:
                        state[key] = fresh[key]
    state["units"].setdefault(unit, ["disabled", "inactive"])[1] = "active"


def stop_unit(state: dict, unit: str) -> None:
    if unit == "dphys-swapfile.service":
        swap_off(SWAPFILE)
    if unit in state["units"]:
        state["units"][unit][1] = "inactive"


def systemctl(args: list[str]) -> str:
    flags = {a for a in args if a.startswith("-")}
    words = [a for a in args if not a.startswith("-")]
    if not words:
        return "  UNIT  LOAD  ACTIVE  SUB  DESCRIPTION (fake Pi)\n"
    verb, units = words[0], [unit_name(u) for u in words[1:]]
    quiet = "-q" in flags or "--quiet" in flags
    if verb in ("reboot", "poweroff", "halt"):
        require_root("systemctl", "Call to Reboot failed: Access denied\n")
        request_reboot(verb)
        return ""
    if verb == "daemon-reload":
        require_root("systemctl", "Failed to reload daemon: Access denied\n")
        return ""
    if verb in ("is-active", "is-enabled", "is-failed", "status", "show", "cat"):
        state = read_state()
        out, code = [], 0
        for unit in units:
            known = unit_known(state, unit)
            enabled, active = state["units"].get(unit, ["disabled", "inactive"])
            if verb == "is-active":
                out.append(active)
                code = code or (0 if active == "active" else 3)
            elif verb == "is-failed":
                out.append("inactive" if active != "failed" else "failed")
                code = code or (0 if active == "failed" else 1)
            elif verb == "is-enabled":
                if not known:
                    raise Exit(
                        1, f"Failed to get unit file state for {unit}: No such file or directory\n"
                    )
                out.append(enabled)
                code = code or (0 if enabled in ("enabled", "static", "alias") else 1)
            elif verb == "status":
                if not known:
                    raise Exit(4, f"Unit {unit} could not be found.\n")
                out.append(
                    f"* {unit} - fake Pi unit\n     Loaded: loaded ({enabled})\n"
                    f"     Active: {active}"
                )
                code = code or (0 if active == "active" else 3)
            elif verb == "show":
                out.append(f"Id={unit}\nActiveState={active}\nUnitFileState={enabled}")
            else:
                path = unit_file(unit)
                if path is None:
                    raise Exit(1, f"No files found for {unit}.\n")
                out.append(f"# {path}\n{read(path).rstrip()}")
        text = "" if quiet else "\n".join(out) + ("\n" if out else "")
        if code:
            raise _StdoutExit(code, text)
        return text
    require_root("systemctl", f"Failed to {verb} unit: Access denied\n")
    with locked_state() as state:
        for unit in units:
            if not unit_known(state, unit):
                if verb in ("disable", "stop", "mask"):
                    continue
                raise Exit(
                    5 if verb in ("start", "restart") else 1,
                    f"Failed to {verb} {unit}: Unit {unit} not found.\n",
                )
            entry = state["units"].setdefault(unit, ["disabled", "inactive"])
            if verb == "enable":
                entry[0] = "enabled" if entry[0] != "static" else "static"
                if "--now" in flags:
                    start_unit(state, unit)
            elif verb == "disable":
                entry[0] = "disabled" if entry[0] != "static" else "static"
                if "--now" in flags:
                    stop_unit(state, unit)
            elif verb == "mask":
                entry[0] = "masked"
                if "--now" in flags:
                    stop_unit(state, unit)
            elif verb == "unmask":
                entry[0] = "disabled" if entry[0] == "masked" else entry[0]
            elif verb in ("start", "restart", "reload", "reload-or-restart", "try-restart"):
                if entry[0] == "masked":
                    raise Exit(1, f"Failed to {verb} {unit}: Unit {unit} is masked.\n")
                if verb == "try-restart" and entry[1] != "active":
                    continue
                start_unit(state, unit)
            elif verb == "stop":
                stop_unit(state, unit)
            else:
                raise Exit(1, f"Unknown command verb {verb} (fake Pi).\n")
    return ""


class _StdoutExit(Exit):
    def __init__(self, code: int, stdout: str):
        super().__init__(code, "")
        self.stdout = stdout


def request_reboot(how: str) -> None:
    write(REBOOT_REQUEST, how)


# --- packages ---------------------------------------------------------------------------------


def link_command(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    os.symlink(STANDIN, path)


def apt_get(args: list[str]) -> str:
    words, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("-o", "-c", "-t"):
            skip = True
        elif not a.startswith("-"):
            words.append(a)
    if not words:
        raise Exit(100, "E: No command given (fake Pi apt-get)\n")
    verb, names = words[0], [n.split("=")[0] for n in words[1:]]
    if verb == "list" and "--upgradable" in args:
        return apt_list_upgradable()
    if verb in ("upgrade", "full-upgrade", "dist-upgrade") and (
        "-s" in args or "--simulate" in args
    ):
        return apt_simulate_upgrade()
    if verb in ("policy", "show", "list", "search"):
        return ""
    require_root(
        "apt-get",
        "E: Could not open lock file /var/lib/dpkg/lock-frontend - open (13: Permission denied)\n"
        "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), are you "
        "root?\n",
    )
    out = [
        "Reading package lists...",
        "Building dependency tree...",
        "Reading state information...",
    ]
    with locked_state() as state:
        if verb == "update":
            state["apt_updates"] += 1
            return (
                "Hit:1 http://deb.debian.org/debian bookworm InRelease (fake Pi)\n"
                + "Reading package lists...\n"
            )
        if verb == "install":
            missing = [n for n in names if n not in CATALOG]
            if missing:
                raise Exit(100, "".join(f"E: Unable to locate package {n}\n" for n in missing))
            new = [n for n in names if n not in state["installed"]]
            for n in names:
                if n in state["installed"]:
                    out.append(f"{n} is already the newest version ({CATALOG[n]}).")
            for n in new:
                state["installed"][n] = CATALOG[n]
                if n in state["removed"]:
                    state["removed"].remove(n)
                for path in PACKAGE_COMMANDS.get(n, []):
                    link_command(path)
                unit = PACKAGE_UNITS.get(n)
                if unit and unit not in state["units"]:
                    state["units"][unit] = ["disabled", "inactive"]
                out.append(f"Setting up {n} ({CATALOG[n]}) ...")
            out.append(f"0 upgraded, {len(new)} newly installed, 0 to remove and 0 not upgraded.")
        elif verb in ("remove", "purge", "autoremove"):
            for n in names:
                if n in state["installed"]:
                    del state["installed"][n]
                    state["removed"].append(n)
                    for path in PACKAGE_COMMANDS.get(n, []):
                        with contextlib.suppress(FileNotFoundError):
                            os.remove(path)
                    unit = PACKAGE_UNITS.get(n)
                    if unit in state["units"]:
                        stop_unit(state, unit)
                        del state["units"][unit]
                    out.append(f"Removing {n} ({CATALOG.get(n, '?')}) ...")
        elif verb in ("upgrade", "full-upgrade", "dist-upgrade"):
            out += apt_upgrade(state)
        elif verb not in ("clean", "autoclean"):
            raise Exit(100, f"E: Invalid operation {verb}\n")
    return "\n".join(out) + "\n"


# --- apt upgrades and kernels (the weekly patch) ----------------------------------------------
# FAKE pending updates: a week of Raspberry Pi OS bookworm updates, shaped like the packages the
# archive published (raspberrypi/firmware#1963 shows the 6.12.20 kernel packages' names). The
# state's "upgrades" ({package: new version}) replaces them; {} means up to date. A test makes
# the next upgrade fail by setting the state's "apt_upgrade_fails" to the message to print.
FAKE_WEEKLY_UPGRADES = {
    "openssh-server": "1:9.2p1-2+deb12u8",
    "sudo": "1.9.13p3-1+deb12u3",
    "linux-image-rpi-2712": "1:6.12.47-1+rpt1~bookworm",
}
KERNEL_PACKAGE = "linux-image-rpi-2712"
KERNEL_PACKAGE_BEFORE = "1:6.12.34-1+rpt1~bookworm"
MODULES = "/lib/modules"


def pending_upgrades(state: dict) -> dict[str, str]:
    return dict(state.get("upgrades", FAKE_WEEKLY_UPGRADES))


def installed_version(state: dict, package: str) -> str:
    if package == KERNEL_PACKAGE:
        return state.get("kernel_package", KERNEL_PACKAGE_BEFORE)
    return state["installed"].get(package, "")


def kernel_release_of(version: str) -> str:
    """linux-image-rpi-2712 1:6.12.47-1+rpt1~bookworm installs the kernel 6.12.47+rpt-rpi-2712."""
    upstream = version.split(":", 1)[-1].split("-", 1)[0]
    return f"{upstream}+rpt-rpi-2712"


def apt_list_upgradable() -> str:
    state = read_state()
    lines = ["Listing..."]
    for package, new in sorted(pending_upgrades(state).items()):
        old = installed_version(state, package)
        lines.append(f"{package}/stable {new} arm64 [upgradable from: {old}]")
    return "\n".join(lines) + "\n"


def apt_simulate_upgrade() -> str:
    state = read_state()
    upgrades = sorted(pending_upgrades(state).items())
    lines = ["Reading package lists...", "Building dependency tree...", "Calculating upgrade..."]
    lines.append(f"{len(upgrades)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
    for package, new in upgrades:
        old = installed_version(state, package)
        lines.append(f"Inst {package} [{old}] ({new} Raspberry Pi:stable [arm64])")
    return "\n".join(lines) + "\n"


def apt_upgrade(state: dict) -> list[str]:
    failure = state.get("apt_upgrade_fails")
    if failure:
        raise Exit(100, f"{failure}\nE: Sub-process /usr/bin/dpkg returned an error code (1)\n")
    out = []
    upgrades = pending_upgrades(state)
    for package, new in sorted(upgrades.items()):
        if package == KERNEL_PACKAGE:
            release = kernel_release_of(new)
            os.makedirs(f"{MODULES}/{release}", exist_ok=True)
            state["kernel_package"] = new
            state["kernel_installed"] = release
            # The kernel a boot after this one runs (see booted_kernel).
            state["kernel_installed_boot"] = read(f"{FAKEPI}/boot_id").strip()
        else:
            state["installed"][package] = new
        out.append(f"Setting up {package} ({new}) ...")
    state["upgrades"] = {}
    state["apt_upgrades"] = state.get("apt_upgrades", 0) + 1
    out.append(f"{len(upgrades)} upgraded, 0 newly installed, 0 to remove and 0 not upgraded.")
    return out


def booted_kernel(state: dict) -> tuple[str, str] | None:
    """The running kernel once a newer one was installed and the node booted since."""
    release = state.get("kernel_installed")
    if not release or read(f"{FAKEPI}/boot_id").strip() == state.get("kernel_installed_boot"):
        return None
    upstream = release.split("+", 1)[0]
    return release, f"#1 SMP PREEMPT Debian 1:{upstream}-1+rpt1~bookworm (fake Pi)"


# --- vcgencmd (the firmware's view of the SoC) ------------------------------------------------
# FAKE readings: the state's "soc_temp_mc" (millidegrees, default 47400 as the Pi 5 capture in
# pi-facts thermal-zone0-grep.pi5.partial.txt) and "throttled" (the get_throttled bits, 0).


def vcgencmd(args: list[str]) -> str:
    state = read_state()
    if args[:1] == ["measure_temp"]:
        return f"temp={state.get('soc_temp_mc', 47400) / 1000:.1f}'C\n"
    if args[:1] == ["get_throttled"]:
        return f"throttled={state.get('throttled', 0):#x}\n"
    raise Exit(255, f"vcgencmd {' '.join(args)}: not supported by the fake Pi\n")


def dpkg_format(fmt: str, name: str, version: str, installed: bool) -> str:
    fmt = fmt.encode().decode("unicode_escape")
    values = {
        "Package": name,
        "binary:Package": name,
        "Version": version if installed else "",
        "Architecture": "arm64",
        "Status": "install ok installed" if installed else "deinstall ok config-files",
        "db:Status-Abbrev": "ii " if installed else "rc ",
        "db:Status-Status": "installed" if installed else "config-files",
        "db:Status-Want": "install" if installed else "deinstall",
    }
    return re.sub(r"\$\{([^}]+)\}", lambda m: values.get(m.group(1).split(";")[0], ""), fmt)


def dpkg_query(args: list[str]) -> str:
    state = read_state()
    fmt, names, mode, i = "${binary:Package}\t${Version}\n", [], "-W", 0
    while i < len(args):
        a = args[i]
        if a in ("-f", "--showformat"):
            fmt, i = args[i + 1], i + 1
        elif a.startswith(("-f=", "--showformat=")):
            fmt = a.split("=", 1)[1]
        elif a.startswith("-f") and len(a) > 2:
            fmt = a[2:]
        elif a in ("-W", "--show", "-s", "--status", "-l", "--list"):
            mode = a
        elif not a.startswith("-"):
            names.append(a)
        i += 1
    out, err = [], []
    for name in names:
        installed = name in state["installed"]
        if not installed and name not in state["removed"]:
            err.append(f"dpkg-query: no packages found matching {name}\n")
            continue
        version = state["installed"].get(name, "")
        if mode in ("-s", "--status"):
            out.append(
                dpkg_format(
                    "Package: ${Package}\nStatus: ${Status}\n"
                    "Architecture: arm64\nVersion: ${Version}\n\n",
                    name,
                    version,
                    installed,
                )
            )
        elif mode in ("-l", "--list"):
            out.append(
                dpkg_format(
                    "${db:Status-Abbrev} ${Package} ${Version} arm64\n", name, version, installed
                )
            )
        else:
            out.append(dpkg_format(fmt, name, version, installed))
    if err:
        raise _StdoutAndErrExit(1, "".join(out), "".join(err))
    return "".join(out)


class _StdoutAndErrExit(Exit):
    def __init__(self, code: int, stdout: str, stderr: str):
        super().__init__(code, stderr)
        self.stdout = stdout


# --- sysctl, kernel, time, network ------------------------------------------------------------


def sysctl_files() -> list[str]:
    files = []
    if os.path.isdir("/etc/sysctl.d"):
        files += sorted(
            f"/etc/sysctl.d/{n}" for n in os.listdir("/etc/sysctl.d") if n.endswith(".conf")
        )
    if os.path.exists("/etc/sysctl.conf"):
        files.append("/etc/sysctl.conf")
    return files


def apply_sysctl_file(state: dict, path: str, out: list[str]) -> None:
    out.append(f"* Applying {path} ...")
    for line in read(path).splitlines():
        line = line.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, _, value = line.lstrip("-").partition("=")
        key, value = key.strip().replace("/", "."), value.strip()
        state["sysctl"][key] = value
        out.append(f"{key} = {value}")


def sysctl(args: list[str]) -> str:
    out: list[str] = []
    if "--system" in args:
        require_root("sysctl")
        with locked_state() as state:
            for path in sysctl_files():
                apply_sysctl_file(state, path, out)
        return "\n".join(out) + "\n"
    if "-p" in args or "--load" in args:
        require_root("sysctl")
        rest = [a for a in args if not a.startswith("-")]
        with locked_state() as state:
            apply_sysctl_file(state, rest[0] if rest else "/etc/sysctl.conf", out)
        return "\n".join(out) + "\n"
    names_only = "-n" in args or "--values" in args
    state = read_state()
    for a in args:
        if a.startswith("-"):
            continue
        if "=" in a:
            require_root("sysctl", f'sysctl: permission denied on key "{a.split("=")[0]}"\n')
            key, _, value = a.partition("=")
            with locked_state() as st:
                st["sysctl"][key] = value
            out.append(f"{key} = {value}")
        elif a in state["sysctl"]:
            out.append(state["sysctl"][a] if names_only else f"{a} = {state['sysctl'][a]}")
        else:
            raise Exit(
                255,
                f"sysctl: cannot stat /proc/sys/{a.replace('.', '/')}: No such file or directory\n",
            )
    return "\n".join(out) + ("\n" if out else "")


def kernel() -> tuple[str, str]:
    state = read_state()
    booted = booted_kernel(state)
    if booted is not None:
        return booted
    if state.get("os") == "trixie":
        return TRIXIE_KERNEL
    return KERNEL_RELEASE, KERNEL_VERSION


def uname(args: list[str]) -> str:
    host = socket.gethostname()
    release, version = kernel()
    parts = {
        "-s": "Linux",
        "-n": host,
        "-r": release,
        "-v": version,
        "-m": "aarch64",
        "-p": "unknown",
        "-i": "unknown",
        "-o": "GNU/Linux",
    }
    if not args:
        return "Linux\n"
    if "-a" in args or "--all" in args:
        return f"Linux {host} {release} {version} aarch64 GNU/Linux\n"
    flags = [f"-{c}" for a in args if a.startswith("-") and not a.startswith("--") for c in a[1:]]
    return " ".join(parts.get(f, "unknown") for f in flags) + "\n"


def getconf(args: list[str]) -> str:
    if args and args[0] in ("PAGESIZE", "PAGE_SIZE"):
        return PAGE_SIZE + "\n"
    if args and args[0] == "LONG_BIT":
        return "64\n"
    if args and args[0] == "_NPROCESSORS_ONLN":
        return "4\n"
    raise Exit(1, f"getconf: Unrecognized variable '{args[0] if args else ''}' (fake Pi)\n")


def timedatectl(args: list[str]) -> str:
    now = time.time()
    if args and args[0] == "show":
        return (
            "Timezone=Europe/London\nLocalRTC=no\nCanNTP=yes\nNTP=yes\nNTPSynchronized=yes\n"
            f"TimeUSec={time.strftime('%a %Y-%m-%d %H:%M:%S UTC', time.gmtime(now))}\n"
            f"RTCTimeUSec={time.strftime('%a %Y-%m-%d %H:%M:%S UTC', time.gmtime(now))}\n"
        )
    if args and args[0] in ("set-ntp", "set-timezone"):
        require_root("timedatectl", "Failed to set: Access denied\n")
        return ""
    # Labels as in seed/timedatectl.pi.synced.txt; a Pi 5 has an RTC, so it shows a time.
    stamp = time.strftime("%a %Y-%m-%d %H:%M:%S", time.gmtime(now))
    return (
        f"               Local time: {stamp} GMT\n"
        f"           Universal time: {stamp} UTC\n"
        f"                 RTC time: {stamp}\n"
        "                Time zone: Europe/London (GMT, +0000)\n"
        "System clock synchronized: yes\n"
        "              NTP service: active\n"
        "          RTC in local TZ: no\n"
    )


ETHTOOL_ETH0 = """Settings for eth0:
\tSupported ports: [ TP\tMII ]
\tSupported link modes:   10baseT/Half 10baseT/Full
\t                        100baseT/Half 100baseT/Full
\t                        1000baseT/Full
\tSupported pause frame use: Symmetric Receive-only
\tSupports auto-negotiation: Yes
\tSupported FEC modes: Not reported
\tAdvertised link modes:  10baseT/Half 10baseT/Full
\t                        100baseT/Half 100baseT/Full
\t                        1000baseT/Full
\tAdvertised pause frame use: Symmetric Receive-only
\tAdvertised auto-negotiation: Yes
\tAdvertised FEC modes: Not reported
\tSpeed: 1000Mb/s
\tDuplex: Full
\tAuto-negotiation: on
\tPort: Twisted Pair
\tPHYAD: 1
\tTransceiver: external
\tMDI-X: Unknown
\tSupports Wake-on: d
\tWake-on: d
\tLink detected: yes
"""  # SYNTHETIC: no full Pi 5 `ethtool eth0` capture exists (pi-facts README, "Not found")


def ethtool(args: list[str]) -> str:
    names = [a for a in args if not a.startswith("-")]
    if names != ["eth0"]:
        raise Exit(1, f"netlink error: no device matches name ({' '.join(names)}) (fake Pi)\n")
    if any(a.startswith("-") for a in args):
        raise Exit(1, "netlink error: Operation not supported\n")
    return ETHTOOL_ETH0


def load_ruleset(text: str) -> str:
    lines = [
        line
        for line in text.splitlines()
        if not line.startswith("#!") and line.strip() != "flush ruleset"
    ]
    return "\n".join(lines).strip() + "\n"


def nft(args: list[str]) -> str:
    if args[:2] == ["list", "ruleset"]:
        require_root("nft", "Operation not permitted (you must be root)\n")
        return read_state()["ruleset"]
    if "-f" in args:
        require_root("nft", "Operation not permitted (you must be root)\n")
        path = args[args.index("-f") + 1]
        text = read(path, None)  # type: ignore[arg-type]
        if text is None:
            raise Exit(1, f"Error: Could not process rule: No such file or directory\n{path}\n")
        if text.count("{") != text.count("}"):
            raise Exit(1, f"{path}: Error: syntax error, unbalanced braces (fake Pi check)\n")
        if "-c" not in args and "--check" not in args:
            with locked_state() as state:
                # Files here replace their own tables (`delete table` first), so one loaded
                # text per file is what `nft list ruleset` shows.
                files = state.setdefault("nft_files", {})
                if "flush ruleset" in text:
                    files.clear()
                files[path] = load_ruleset(text)
                state["ruleset"] = "".join(files.values())
        return ""
    if args[:1] == ["flush"] and args[1:2] == ["ruleset"]:
        require_root("nft")
        with locked_state() as state:
            state["ruleset"] = ""
            state["nft_files"] = {}
        return ""
    raise Exit(1, f"nft {' '.join(args)}: not supported by the fake Pi\n")


def ufw(args: list[str]) -> str:
    require_root("ufw", "ERROR: You need to be root to run this script\n")
    with locked_state() as state:
        if args[:1] == ["status"]:
            if not state["ufw"]["active"]:
                return "Status: inactive\n"
            return "Status: active\n\n" + "".join(f"{r}\n" for r in state["ufw"]["rules"])
        if args[:1] == ["enable"] or args[:2] == ["--force", "enable"]:
            state["ufw"]["active"] = True
            return "Firewall is active and enabled on system startup\n"
        if args[:1] == ["disable"]:
            state["ufw"]["active"] = False
            return "Firewall stopped and disabled on system startup\n"
        rule = " ".join(args)
        if rule not in state["ufw"]["rules"]:
            state["ufw"]["rules"].append(rule)
            return "Rule added\n"
        return "Skipping adding existing rule\n"


def modprobe(args: list[str]) -> str:
    require_root("modprobe", "modprobe: ERROR: could not insert module: Operation not permitted\n")
    with locked_state() as state:
        for name in (a for a in args if not a.startswith("-")):
            if name not in state["modules"]:
                state["modules"].append(name)
    return ""


def hostnamectl(args: list[str]) -> str:
    if args[:1] == ["set-hostname"] and len(args) >= 2:
        require_root("hostnamectl", "Could not set hostname: Access denied\n")
        name = args[1]
        write("/etc/hostname", name + "\n")
        socket.sethostname(name)
        with locked_state() as state:
            state["hostname"] = name
        return ""
    if args[:1] == ["hostname"]:
        return socket.gethostname() + "\n"
    return (
        f" Static hostname: {read('/etc/hostname').strip()}\n"
        f"Operating System: {read('/etc/os-release').split('PRETTY_NAME=')[-1].split(chr(10))[0]}\n"
        f"          Kernel: Linux {kernel()[0]}\n    Architecture: arm64\n"
    )


def swapoff(args: list[str]) -> str:
    require_root("swapoff", "swapoff: Not superuser.\n")
    if "-a" in args or "--all" in args:
        swap_off(None)
    for path in (a for a in args if not a.startswith("-")):
        if path not in [a[0] for a in swap_areas()]:
            raise Exit(4, f"swapoff: {path}: swapoff failed: Invalid argument\n")
        swap_off(path)
    return ""


def swapon(args: list[str]) -> str:
    if "--show" in args or "-s" in args or not args:
        areas = swap_areas()
        if not areas:
            return ""
        lines = ["NAME      TYPE  SIZE USED PRIO"]
        for a in areas:
            lines.append(f"{a[0]:<9} {a[1]:<5} {int(a[2]) // 1024}M   0B   {a[4]}")
        return "\n".join(lines) + "\n"
    require_root("swapon", "swapon: Not superuser.\n")
    for path in (a for a in args if not a.startswith("-")):
        if path == SWAPFILE:
            swap_on_file()
    return ""


def dphys_setup() -> None:
    size = dphys_size_kib()
    if size > 0:
        with open(SWAPFILE, "wb") as f:
            f.truncate(size * 1024)  # sparse: takes no room on the fake node
        os.chmod(SWAPFILE, 0o600)


def dphys_swapfile(args: list[str]) -> str:
    require_root("dphys-swapfile", "dphys-swapfile: Not superuser.\n")
    verb = args[0] if args else ""
    if verb == "setup":
        dphys_setup()
        return f"want /var/swap={dphys_size_kib() // 1024}MByte, generating swapfile ... done.\n"
    if verb == "swapon":
        swap_on_file()
    elif verb == "swapoff":
        swap_off(SWAPFILE)
    elif verb == "uninstall":
        swap_off(SWAPFILE)
        with contextlib.suppress(FileNotFoundError):
            os.remove(SWAPFILE)
    else:
        raise Exit(1, f"dphys-swapfile: unknown command {verb!r}\n")
    return ""


# --- K3s --------------------------------------------------------------------------------------


def k3s_binary(version: str) -> bytes:
    """What the fake GitHub release serves as `k3s-arm64`: a stand-in that knows its version."""
    return (
        f"#!/bin/sh\n# FAKE k3s {version} (fake Pi stand-in)\n"
        f'exec {STANDIN} k3s-binary {shlex.quote(version)} "$@"\n'
    ).encode()


def k3s_install_script() -> bytes:
    return (
        "#!/bin/sh\n# FAKE get.k3s.io installer (fake Pi stand-in)\n"
        f'exec {STANDIN} k3s-install "$@"\n'
    ).encode()


def k3s_config_value(key: str) -> str | None:
    match = re.search(
        rf"^{re.escape(key)}:\s*\"?([^\"\n]+)\"?\s*$",
        read("/etc/rancher/k3s/config.yaml"),
        re.MULTILINE,
    )
    return match.group(1).strip() if match else None


def refuse_changed_token(token_path: str, token: str, unit: str) -> None:
    """As K3s does: once its datastore exists, its bootstrap data is encrypted with the token the
    cluster was created with, and a server started with another token exits."""
    stored = read(token_path).strip()
    if not stored:
        return
    password = token.split("::server:", 1)[-1]
    if stored.split("::server:", 1)[-1] != password:
        raise Exit(
            1,
            f"Job for {unit} failed because the control process exited with error code.\n"
            'k3s: level=fatal msg="starting kubernetes: preparing server: bootstrap data '
            'already found and encrypted with different token" (fake Pi)\n',
        )


K3S_ADMIN_KUBECONFIG = f"{FAKEPI}/k3s-admin.yaml"
FAKE_K3S_YAML = (
    "# FAKE kubeconfig: this fake Pi runs without the test control plane\n"
    "apiVersion: v1\nclusters:\n- cluster:\n"
    "    certificate-authority-data: RkFLRS1QSS1DQQ==\n"
    "    server: https://127.0.0.1:6443\n  name: default\n"
    "contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\n"
    "current-context: default\nkind: Config\npreferences: {}\nusers:\n- name: default\n"
    "  user:\n    client-certificate-data: RkFLRS1QSS1DRVJU\n"
    "    client-key-data: RkFLRS1QSS1LRVk=\n"
)


def start_k3s(state: dict, unit: str) -> None:
    if not os.access(K3S_BIN, os.X_OK):
        raise Exit(1, f"Job for {unit} failed: {K3S_BIN} not found (fake Pi)\n")
    token = k3s_config_value("token")
    token_file = k3s_config_value("token-file")
    if token is None and token_file:
        token = read(token_file).strip() or None
    if unit == "k3s-agent.service":
        if not k3s_config_value("server") and not os.environ.get("K3S_URL"):
            raise Exit(1, f"Job for {unit} failed: agent has no server URL (fake Pi)\n")
        if not token:
            raise Exit(1, f"Job for {unit} failed: agent has no token (fake Pi)\n")
    else:
        data_dir = k3s_config_value("data-dir") or "/var/lib/rancher/k3s"
        token = token or uuid.uuid4().hex
        refuse_changed_token(f"{data_dir}/server/token", token, unit)
        digest = hashlib.sha256(token.encode()).hexdigest()
        write(f"{data_dir}/server/token", f"K10{digest}::server:{token}\n")
        write(f"{data_dir}/server/node-token", f"K10{digest}::server:{token}\n")
        # With the test control plane, the admin kubeconfig of its real API server (put there by
        # the fake cluster); without one, a FAKE kubeconfig that reaches nothing.
        write("/etc/rancher/k3s/k3s.yaml", read(K3S_ADMIN_KUBECONFIG) or FAKE_K3S_YAML)
        os.chmod("/etc/rancher/k3s/k3s.yaml", 0o600)
    state["k3s_started"] = state.get("k3s_started", 0) + 1


def k3s_cli(version: str, args: list[str]) -> str:
    if args[:1] in (["--version"], ["-v"], ["version"]):
        return f"k3s version {version} ({K3S_COMMIT})\ngo version go1.24.12\n"
    if args[:1] == ["check-config"]:
        return "cgroups V2 mounted, cpu|cpuset|memory controllers status: good (fake Pi)\n"
    if args[:2] == ["etcd-snapshot", "save"]:
        return k3s_etcd_snapshot_save(args[2:])
    if args[:1] == ["server"] and "--cluster-reset" in args:
        return k3s_cluster_reset(args[1:])
    raise Exit(1, f"k3s {' '.join(args[:2])}: not available on a fake Pi\n")


# --- K3s etcd snapshots (FAKE k3s on the test control plane's real etcd) ----------------------
#
# With the test control plane behind the fake cluster, the server's `k3s etcd-snapshot save`
# takes a REAL etcd snapshot of that control plane's etcd (the Maintenance.Snapshot stream, the
# same bytes K3s writes: bbolt + sha256), through etcd's JSON gateway on loopback (the URL in
# ETCD_URL_FILE, written by the fake cluster). Like K3s it first keeps its bootstrap data under
# `/bootstrap/<hash of the token>` in etcd, so a snapshot says which token it needs.
#
# `k3s server --cluster-reset --cluster-reset-restore-path=F` is FAKED: it cannot replace the
# data dir of an etcd the test session runs, so it puts the snapshot's keys back into that live
# etcd instead — every key under /registry/ and /bootstrap/ set to its value in the snapshot,
# those the snapshot lacks deleted — except leases and events (heartbeats the running
# components own). The API server then serves the cluster state of the snapshot. Like K3s it
# refuses a token the snapshot's bootstrap data was not made with, and while k3s runs.

ETCD_URL_FILE = f"{FAKEPI}/k3s-etcd-url"
RESTORED_PREFIXES = (b"/registry/", b"/bootstrap/")
LIVE_PREFIXES = (b"/registry/leases/", b"/registry/events/", b"/registry/events.k8s.io/")


def etcd_call(path: str, body: dict) -> bytes:
    import urllib.request

    url = read(ETCD_URL_FILE).strip()
    if not url:
        raise Exit(
            1,
            'k3s: level=fatal msg="etcd datastore is not running" (fake Pi: its k3s has an etcd '
            "only with the test control plane behind the fake cluster)\n",
        )
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback)
        return response.read()


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def _unb64(text: str) -> bytes:
    import base64

    return base64.b64decode(text or "")


def k3s_data_dir() -> str:
    return k3s_config_value("data-dir") or "/var/lib/rancher/k3s"


def token_password(token: str) -> str:
    return token.strip().split("::server:", 1)[-1]


def bootstrap_key(token: str) -> bytes:
    # K3s: "/bootstrap/" + the first 12 hex digits of sha256(token passphrase).
    return b"/bootstrap/" + hashlib.sha256(token_password(token).encode()).hexdigest()[:12].encode()


def flag_value(args: list[str], *names: str) -> str | None:
    for i, a in enumerate(args):
        for name in names:
            if a == name and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(name + "="):
                return a.split("=", 1)[1]
    return None


def k3s_etcd_snapshot_save(args: list[str]) -> str:
    require_root("k3s etcd-snapshot", 'k3s: level=fatal msg="permission denied (run as root)"\n')
    data_dir = k3s_data_dir()
    token = read(f"{data_dir}/server/token").strip()
    if not token:
        raise Exit(1, f'k3s: level=fatal msg="etcd database not found in {data_dir}/server"\n')
    name = flag_value(args, "--name", "--etcd-snapshot-name") or "on-demand"
    directory = (
        flag_value(args, "--dir", "--etcd-snapshot-dir") or f"{data_dir}/server/db/snapshots"
    )
    etcd_call(
        "/v3/kv/put",
        {"key": _b64(bootstrap_key(token)), "value": _b64(b'{"fake": "K3s bootstrap data"}')},
    )
    raw = etcd_call("/v3/maintenance/snapshot", {})
    blob = b"".join(
        _unb64(json.loads(line)["result"].get("blob", ""))
        for line in raw.splitlines()
        if line.strip()
    )
    file_name = f"{name}-{socket.gethostname()}-{int(time.time())}"
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = f"{directory}/{file_name}"
    fd = os.open(path + ".part", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(blob)
    os.replace(path + ".part", path)
    sys.stderr.write(f'level=info msg="Snapshot {file_name} saved." (fake Pi: {len(blob)} bytes)\n')
    return ""


def snapshot_keys(path: str) -> dict[bytes, bytes]:
    """The live keys of an etcd snapshot file (a FAKE's minimal bbolt reader: no checks; the
    platform's own reader, platform_assets/backups/etcd_file.py, is the one that checks)."""
    with open(path, "rb") as f:
        data = f.read()
    db = data[:-32]
    if len(data) < 8224 or hashlib.sha256(db).digest() != data[-32:]:
        raise Exit(1, f'k3s: level=fatal msg="snapshot {path} is corrupt: hash mismatch"\n')
    import struct

    meta = max(
        (struct.unpack_from("<IIIIQQQQQQ", db, p * 4096 + 16) for p in (0, 1)),
        key=lambda m: m[8],
    )
    page_size, root = meta[2], meta[4]

    def items(buf: bytes, offset: int):
        _pid, flags, count, _o = struct.unpack_from("<QHHI", buf, offset)
        for n in range(count):
            at = offset + 16 + n * 16
            if flags & 0x02:
                eflags, pos, ksize, vsize = struct.unpack_from("<IIII", buf, at)
                start = at + pos
                yield eflags, buf[start : start + ksize], buf[start + ksize : start + ksize + vsize]
            else:
                yield from items(db, struct.unpack_from("<IIQ", buf, at)[2] * page_size)

    def field(data: bytes, wanted: int) -> bytes:
        i = 0
        while i < len(data):
            tag, i = _uvarint(data, i)
            if tag & 7 == 0:
                _, i = _uvarint(data, i)
                continue
            n, i = _uvarint(data, i)
            if tag >> 3 == wanted:
                return data[i : i + n]
            i += n
        return b""

    live: dict[bytes, bytes] = {}
    for _f, bucket, value in items(db, root * page_size):
        if bucket != b"key":
            continue
        sub_root = struct.unpack_from("<Q", value, 0)[0]
        rows = items(db, sub_root * page_size) if sub_root else items(value[16:], 0)
        for _f2, rev, kv in rows:
            key = field(kv, 1)
            if len(rev) == 18:
                live.pop(key, None)
            else:
                live[key] = field(kv, 5)
    return live


def _uvarint(data: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def k3s_cluster_reset(args: list[str]) -> str:
    require_root("k3s server", 'k3s: level=fatal msg="permission denied (run as root)"\n')
    if read_state()["units"].get("k3s.service", ["", ""])[1] == "active":
        raise Exit(
            1,
            'k3s: level=fatal msg="starting kubernetes: preparing server: ports in use: '
            'k3s is running; stop it before --cluster-reset" (fake Pi)\n',
        )
    path = flag_value(args, "--cluster-reset-restore-path")
    token = flag_value(args, "--token") or ""
    token_file = flag_value(args, "--token-file") or k3s_config_value("token-file")
    if not token and token_file:
        token = read(token_file).strip()
    data_dir = k3s_data_dir()
    if path:
        if not os.path.isfile(path):
            raise Exit(1, f'k3s: level=fatal msg="snapshot {path} not found"\n')
        if not token:
            raise Exit(1, 'k3s: level=fatal msg="--token is required to restore a snapshot"\n')
        wanted = snapshot_keys(path)
        if (
            not any(k.startswith(b"/bootstrap/") for k in wanted)
            or bootstrap_key(token) not in wanted
        ):
            raise Exit(
                1,
                'k3s: level=fatal msg="starting kubernetes: preparing server: bootstrap data '
                'already found and encrypted with different token" (fake Pi)\n',
            )
        restore_into_etcd(wanted)
        write(f"{data_dir}/server/token", token_password_line(token))
        os.chmod(f"{data_dir}/server/token", 0o600)
    write(f"{data_dir}/server/db/reset-flag", "")
    with locked_state() as state:
        state["cluster_resets"] = state.get("cluster_resets", 0) + 1
    sys.stderr.write(
        'level=info msg="Managed etcd cluster membership has been reset, restart without '
        f"--cluster-reset flag now. Backup and delete {k3s_data_dir()}/server/db on each peer "
        'etcd server and rejoin the nodes" (fake Pi)\n'
    )
    return ""


def token_password_line(token: str) -> str:
    password = token_password(token)
    digest = hashlib.sha256(password.encode()).hexdigest()
    return f"K10{digest}::server:{password}\n"


def restore_into_etcd(wanted: dict[bytes, bytes]) -> None:
    def restored(key: bytes) -> bool:
        return key.startswith(RESTORED_PREFIXES) and not key.startswith(LIVE_PREFIXES)

    current: dict[bytes, bytes] = {}
    for prefix in RESTORED_PREFIXES:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        body = json.loads(etcd_call("/v3/kv/range", {"key": _b64(prefix), "range_end": _b64(end)}))
        for kv in body.get("kvs", []):
            current[_unb64(kv["key"])] = _unb64(kv.get("value", ""))
    for key, value in sorted(wanted.items()):
        if restored(key) and current.get(key) != value:
            etcd_call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)})
    for key in sorted(current.keys() - wanted.keys()):
        if restored(key):
            etcd_call("/v3/kv/deleterange", {"key": _b64(key)})


def k3s_install(args: list[str]) -> str:
    require_root("k3s-install", "[ERROR]  Can not perform installation as non-root\n")
    version = os.environ.get("INSTALL_K3S_VERSION") or "v1.34.4+k3s1"
    exec_args = (os.environ.get("INSTALL_K3S_EXEC", "") + " " + " ".join(args)).split()
    agent = bool(os.environ.get("K3S_URL")) or exec_args[:1] == ["agent"]
    write(K3S_BIN, k3s_binary(version).decode())
    os.chmod(K3S_BIN, 0o755)
    unit = "k3s-agent.service" if agent else "k3s.service"
    write(
        f"/etc/systemd/system/{unit}",
        f"[Unit]\nDescription=Lightweight Kubernetes (fake Pi)\n[Service]\nType=notify\n"
        f"ExecStart={K3S_BIN} {'agent' if agent else 'server'}\n"
        "[Install]\nWantedBy=multi-user.target\n",
    )
    with locked_state() as state:
        state["units"][unit] = ["enabled", "inactive"]
        if os.environ.get("INSTALL_K3S_SKIP_START", "").lower() != "true":
            start_k3s(state, unit)
            state["units"][unit][1] = "active"
    return f"[INFO]  Using {version} as release\n[INFO]  systemd: Starting {unit[:-8]}\n"


# --- downloads: never the network -------------------------------------------------------------


def fake_download(url: str) -> bytes | None:
    match = GITHUB_K3S.match(url)
    if match:
        version = match.group(1).replace("%2B", "+").replace("%2b", "+")
        name = match.group(2)
        if name == "k3s-arm64":
            return k3s_binary(version)
        if name == "sha256sum-arm64.txt":
            digest = hashlib.sha256(k3s_binary(version)).hexdigest()
            return f"{digest}  k3s-arm64\n".encode()
        return None
    if url.rstrip("/") in ("https://get.k3s.io", "https://get.k3s.io/install.sh"):
        return k3s_install_script()
    return None


def download(args: list[str], tool: str) -> bytes | str:
    out_path, urls, i = None, [], 0
    takes_value = {
        "-o",
        "--output",
        "-O",
        "--output-document",
        "--retry",
        "--retry-delay",
        "--connect-timeout",
        "-m",
        "--max-time",
        "-H",
        "--header",
        "-w",
        "-A",
        "--proto",
        "--tries",
        "-T",
        "--timeout",
    }
    while i < len(args):
        a = args[i]
        if a in ("-o", "--output") or (tool == "wget" and a in ("-O", "--output-document")):
            out_path, i = args[i + 1], i + 1
        elif a.startswith("--output-document="):
            out_path = a.split("=", 1)[1]
        elif a in takes_value:
            i += 1
        elif not a.startswith("-"):
            urls.append(a)
        i += 1
    if not urls:
        raise Exit(2, f"{tool}: no URL specified (fake Pi)\n")
    body = fake_download(urls[0])
    if body is None:
        host = re.sub(r"^\w+://([^/]+).*$", r"\1", urls[0])
        raise Exit(
            6,
            f"{tool}: (6) Could not resolve host: {host} (a fake Pi has no network; "
            "only the pinned K3s release is served)\n",
        )
    if out_path and out_path != "-":
        if "--create-dirs" in args:
            os.makedirs(os.path.dirname(out_path) or ".", exist_ok=True)
        try:
            with open(out_path, "wb") as f:
                f.write(body)
        except OSError as exc:
            raise Exit(23, f"{tool}: (23) Failure writing output to destination: {exc}\n") from None
        return ""
    return body


# --- boot: applied by the supervisor when the node (re)boots ----------------------------------


def memory_controller_enabled(cmdline: str) -> bool:
    enabled = True
    for word in cmdline.split():
        if word == "cgroup_disable=memory":
            enabled = False
        elif word == "cgroup_enable=memory":
            enabled = True
    return enabled


def boot(dtb_bootargs: str) -> None:
    """What a reboot changes on the fake Pi: runs as root inside the node, sessions gone.

    The firmware's bootargs (with `cgroup_disable=memory`, as on 6.12 kernels) come before the
    text of cmdline.txt; the last cgroup flag for memory wins.
    """
    cmdline = f"{dtb_bootargs.strip()}  {read(CMDLINE_TXT).strip()}".strip()
    write("/proc/cmdline", cmdline + "\n")
    # Without memory: "cpuset cpu io pids", as in seed/cgroup-controllers.pi5.no-memory.txt.
    controllers = ["cpuset", "cpu", "io", "memory", "pids"]
    if not memory_controller_enabled(cmdline):
        controllers.remove("memory")
    write("/sys/fs/cgroup/cgroup.controllers", " ".join(controllers) + "\n")
    write("/var/lib/fakepi/boot_id", str(uuid.uuid4()) + "\n")
    hostname = read("/etc/hostname").strip()
    if hostname:
        socket.sethostname(hostname)
    with locked_state() as state:
        state["reboots"] += 1
        state["hostname"] = hostname or state["hostname"]
        state["sysctl"] = dict(DEFAULT_SYSCTL)
        for path in sysctl_files():
            apply_sysctl_file(state, path, [])
        state["ruleset"] = ""
        state["nft_files"] = {}
        set_swap_areas([])
        for unit, entry in list(state["units"].items()):
            entry[1] = "inactive"
            if entry[0] in ("enabled", "static"):
                try:
                    start_unit(state, unit)
                except Exit:
                    entry[1] = "failed"
        if "rpi-swap" in state["installed"]:
            rpi_swap_at_boot()
        state["modules"] = [m for m in state["modules"] if m in modules_load_d()]


def rpi_swap_mechanism() -> str:
    """`Mechanism=` from /etc/rpi/swap.conf and its drop-ins (later files win); default auto."""
    paths = [RPI_SWAP_CONF]
    if os.path.isdir(RPI_SWAP_CONF + ".d"):
        paths += sorted(
            f"{RPI_SWAP_CONF}.d/{n}"
            for n in os.listdir(RPI_SWAP_CONF + ".d")
            if n.endswith(".conf")
        )
    mechanism = "auto"
    for path in paths:
        section = ""
        for line in read(path).splitlines():
            line = line.strip()
            if line.startswith("["):
                section = line
            elif section == "[Main]" and line.startswith("Mechanism="):
                mechanism = line.split("=", 1)[1].strip()
    return mechanism


def rpi_swap_at_boot() -> None:
    """rpi-swap sets swap up at boot only (its changes need a reboot)."""
    mechanism = rpi_swap_mechanism()
    areas = swap_areas()
    if mechanism in ("auto", "zram", "zram+file"):
        areas.append(["/dev/zram0", "partition", str(ZRAM_KIB), "0", "100"])
    if mechanism in ("swapfile", "file", "zram+file"):
        with open(SWAPFILE, "wb") as f:
            f.truncate(ZRAM_KIB * 1024)
        areas.append([SWAPFILE, "file", str(ZRAM_KIB), "0", "-2"])
    set_swap_areas(areas)


def modules_load_d() -> set[str]:
    names: set[str] = set()
    if os.path.isdir("/etc/modules-load.d"):
        for n in os.listdir("/etc/modules-load.d"):
            for line in read(f"/etc/modules-load.d/{n}").splitlines():
                if line.strip() and not line.startswith("#"):
                    names.add(line.strip())
    return names


# --- dispatch ---------------------------------------------------------------------------------

COMMANDS = {
    "apt-get": apt_get,
    "apt": apt_get,
    "vcgencmd": vcgencmd,
    "dpkg-query": dpkg_query,
    "systemctl": systemctl,
    "sysctl": sysctl,
    "uname": uname,
    "getconf": getconf,
    "timedatectl": timedatectl,
    "ethtool": ethtool,
    "nft": nft,
    "ufw": ufw,
    "modprobe": modprobe,
    "hostnamectl": hostnamectl,
    "swapoff": swapoff,
    "swapon": swapon,
    "dphys-swapfile": dphys_swapfile,
    "k3s-install": k3s_install,
    "curl": lambda a: download(a, "curl"),
    "wget": lambda a: download(a, "wget"),
}
# The commands a fresh node has (package-provided ones are linked by apt-get install).
LINKED = {
    "/usr/bin/apt-get",
    "/usr/bin/apt",
    "/usr/bin/vcgencmd",
    "/usr/bin/dpkg",
    "/usr/bin/dpkg-query",
    "/usr/bin/systemctl",
    "/usr/sbin/sysctl",
    "/usr/bin/uname",
    "/usr/bin/getconf",
    "/usr/bin/timedatectl",
    "/usr/sbin/ethtool",
    "/usr/sbin/modprobe",
    "/usr/bin/hostnamectl",
    "/usr/sbin/swapoff",
    "/usr/sbin/swapon",
    "/usr/bin/curl",
    "/usr/bin/wget",
    "/usr/sbin/reboot",
    "/usr/sbin/shutdown",
    "/usr/sbin/poweroff",
    "/usr/sbin/halt",
    "/usr/sbin/iptables",
    "/usr/sbin/ip6tables",
    "/usr/bin/journalctl",
}


def dispatch(name: str, args: list[str]) -> bytes | str:
    if name in ("reboot", "shutdown", "poweroff", "halt"):
        require_root(name, "Call to Reboot failed: Access denied\n")
        request_reboot(name)
        return ""
    if name == "dpkg":
        if args[:1] == ["--print-architecture"]:
            return "arm64\n"
        raise Exit(2, f"dpkg {' '.join(args)}: not supported by the fake Pi\n")
    if name in ("iptables", "ip6tables"):
        require_root(name, f"{name}: Permission denied (you must be root)\n")
        return ""  # recorded only: the firewall the platform uses is nftables
    if name == "journalctl":
        return "-- No entries (fake Pi) --\n"
    if name == "k3s-binary":
        return k3s_cli(args[0], args[1:])
    if name == "fio":
        return fio(args)
    fn = COMMANDS.get(name)
    if fn is None:
        raise Exit(127, f"{name}: not supported by the fake Pi\n")
    return fn(args)


def fio(args: list[str]) -> str:
    """SYNTHETIC fio output in the layout of fio 3.33's sync percentiles block (NVMe-like)."""
    return (
        "picluster-fsync: (groupid=0, jobs=1): err= 0: pid=4242\n"
        "  write: IOPS=2210, BW=4965KiB/s (5084kB/s)(21.0MiB/4331msec); 0 zone resets\n"
        "  fsync/fdatasync/sync_file_range:\n"
        "    sync (usec): min=280, max=4121, avg=402.53, stdev=110.20\n"
        "    sync percentiles (usec):\n"
        "     |  1.00th=[  297],  5.00th=[  314], 10.00th=[  322], 20.00th=[  338],\n"
        "     | 30.00th=[  351], 40.00th=[  363], 50.00th=[  379], 60.00th=[  396],\n"
        "     | 70.00th=[  416], 80.00th=[  445], 90.00th=[  502], 95.00th=[  562],\n"
        "     | 99.00th=[  758], 99.50th=[  881], 99.90th=[ 1729], 99.95th=[ 2180],\n"
        "     | 99.99th=[ 3425]\n"
    )


def main() -> int:
    name = os.path.basename(sys.argv[0])
    args = sys.argv[1:]
    if name == "standin.py" and args:
        name, args = args[0], args[1:]
    argv = [name, *args]
    record(argv)
    try:
        out = dispatch(name, args)
    except Exit as exc:
        stdout = getattr(exc, "stdout", "")
        if stdout:
            sys.stdout.write(stdout)
        sys.stderr.write(exc.stderr)
        return exc.code
    if isinstance(out, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(out)
    else:
        sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
