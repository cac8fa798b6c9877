"""Node prep's plan: packages, memory cgroup flags, swap off for good, hostname and hosts file,
sysctls, journald, firewall (node_prep/firewall.py), in the order they are applied."""

from platform_assets.core.commands import cmd, write_file
from platform_assets.core.facts import NodeFacts
from platform_assets.core.plan import MANAGED, Change, PlanError, plan_file
from platform_assets.inventory import Inventory, Node
from platform_assets.node_prep.facts import (
    CMDLINE_TXT,
    JOURNALD_FILE,
    REQUIRED_PACKAGES,
    RPI_SWAP_DROPIN,
    SYSCTL_FILE,
)
from platform_assets.node_prep.firewall import plan_firewall
from platform_assets.preflight.verdicts import SUPPORTED_CODENAMES

CGROUP_FLAGS = ("cgroup_memory=1", "cgroup_enable=memory")
HOSTS_BEGIN = "# BEGIN picluster nodes"
HOSTS_END = "# END picluster nodes"


def plan_cmdline(facts: NodeFacts) -> list[Change]:
    """Memory cgroup flags in cmdline.txt (K3s refuses to start without the memory controller).

    Since kernel 6.12 the firmware puts `cgroup_disable=memory` before cmdline.txt's text, and the
    kernel applies the last word, so appending `cgroup_enable=memory` is enough; a user-added
    `cgroup_disable=memory` in cmdline.txt itself is removed.
    """
    words = facts["cmdline_txt"]
    if words is None:
        words = ()
    missing = [flag for flag in CGROUP_FLAGS if flag not in words]
    disabled = "cgroup_disable=memory" in words
    if not missing and not disabled:
        return []
    after = [w for w in words if w != "cgroup_disable=memory"] + missing
    sed = ["sed", "-i"]
    if disabled:
        sed += ["-e", "s/ *cgroup_disable=memory//g"]
    if missing:
        sed += ["-e", f"1s/$/ {' '.join(missing)}/"]
    return [
        Change(
            "boot command line: memory cgroup",
            " ".join(words) or "absent",
            " ".join(after),
            (
                cmd("cp", "-p", CMDLINE_TXT, CMDLINE_TXT + ".picluster-backup"),
                cmd(*sed, CMDLINE_TXT),
            ),
            needs_reboot=True,
        )
    ]


def plan_swap(facts: NodeFacts) -> list[Change]:
    """Swap off now and kept off after reboots (the kubelet refuses to run with swap).

    bookworm: dphys-swapfile (/var/swap). trixie: rpi-swap (zram by default) configured by
    drop-ins in /etc/rpi/swap.conf.d; `Mechanism=none` takes effect at the next boot, so swap is
    also turned off now.
    """
    changes: list[Change] = []
    packages = facts["packages"] or {}
    os_release = facts["os_release"]
    codename = os_release.codename if os_release else ""
    if (facts["dphys_swapfile_enabled"] or "") in ("enabled", "enabled-runtime", "static"):
        changes.append(
            Change(
                "dphys-swapfile disabled",
                "dphys-swapfile.service enabled",
                "disabled, /var/swap removed",
                (
                    cmd("dphys-swapfile", "swapoff"),
                    cmd("dphys-swapfile", "uninstall"),
                    cmd("systemctl", "disable", "--now", "dphys-swapfile.service"),
                ),
            )
        )
    if packages.get("rpi-swap") or codename == "trixie":
        changes += plan_file(
            "rpi-swap: no swap at boot",
            RPI_SWAP_DROPIN,
            facts["rpi_swap_dropin"],
            f"{MANAGED}\n[Main]\nMechanism=none\n",
        )
    swaps = facts["swaps"]
    if swaps is None and not facts.values:  # facts unknown (node not contacted)
        changes.append(
            Change("swap off", "unknown", "no swap, kept off at boot", (cmd("swapoff", "-a"),))
        )
    if swaps:
        listed = ", ".join(f"{s.filename} ({s.size_kib // 1024} MiB)" for s in swaps)
        changes.append(Change("swap off", listed, "no swap", (cmd("swapoff", "-a"),)))
    return changes


def plan_hostname(node: Node, facts: NodeFacts) -> list[Change]:
    current = facts["hostname"]
    if current == node.name:
        return []
    return [
        Change(
            "hostname",
            current or "absent",
            node.name,
            (cmd("hostnamectl", "set-hostname", node.name),),
        )
    ]


def desired_hosts(inv: Inventory, node: Node, current: str | None) -> str:
    """The node's /etc/hosts: the user's lines kept, `127.0.1.1` set to the node's name, and one
    managed block naming every node (K3s and the platform address nodes by name)."""
    kept: list[str] = []
    inside = False
    for line in (current or "").splitlines():
        stripped = line.strip()
        if stripped == HOSTS_BEGIN:
            inside = True
            continue
        if stripped == HOSTS_END:
            inside = False
            continue
        if inside or stripped.split()[:1] == ["127.0.1.1"]:
            continue
        kept.append(line)
    if not kept:
        kept = ["127.0.0.1\tlocalhost", "::1\t\tlocalhost ip6-localhost ip6-loopback"]
    lines = [*kept, f"127.0.1.1\t{node.name}", HOSTS_BEGIN]
    lines += [f"{n.address}\t{n.name}" for n in inv.nodes]
    lines.append(HOSTS_END)
    return "\n".join(lines) + "\n"


def plan_hosts(inv: Inventory, node: Node, facts: NodeFacts) -> list[Change]:
    current = facts["hosts"]
    desired = desired_hosts(inv, node, current)
    if current == desired:
        return []
    names = ", ".join(n.name for n in inv.nodes)
    before = (
        "absent"
        if current is None
        else ("has the node block" if HOSTS_BEGIN in current else "no node block")
    )
    return [
        Change(
            "hosts file",
            f"/etc/hosts: {before}",
            f"/etc/hosts: 127.0.1.1 {node.name}; nodes {names}",
            (write_file("/etc/hosts", desired),),
        )
    ]


def plan_packages(facts: NodeFacts) -> list[Change]:
    installed = facts["packages"] or {}
    missing = [p for p in REQUIRED_PACKAGES if not installed.get(p)]
    if not missing:
        return []
    return [
        Change(
            "packages",
            f"missing: {', '.join(missing)}",
            f"installed: {', '.join(missing)}",
            (
                cmd("apt-get", "update", timeout_s=APT_UPDATE_TIMEOUT_S),
                cmd(
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "--no-install-recommends",
                    *missing,
                    timeout_s=APT_INSTALL_TIMEOUT_S,
                    if_interrupted=APT_INTERRUPTED,
                ),
            ),
        )
    ]


# A Pi on a slow mirror takes minutes; a hung mirror must not hold the run for ever.
APT_UPDATE_TIMEOUT_S = 600.0
APT_INSTALL_TIMEOUT_S = 1200.0
APT_INTERRUPTED = (
    "apt-get install was stopped half-way, so dpkg may have left packages unconfigured (and "
    "its lock held): run `sudo dpkg --configure -a` on the node, then apply again"
)


SYSCTLS = (
    # K3s routes pod traffic through the host.
    ("net.ipv4.ip_forward", "1"),
    ("net.ipv6.conf.all.forwarding", "1"),
    # The kubelet's --protect-kernel-defaults values.
    ("vm.overcommit_memory", "1"),
    ("vm.panic_on_oom", "0"),
    ("kernel.panic", "10"),
    ("kernel.panic_on_oops", "1"),
    # Many pods watching files (log shippers, Dagster) run out of the Debian defaults.
    ("fs.inotify.max_user_instances", "1024"),
    ("fs.inotify.max_user_watches", "524288"),
)


def desired_sysctl() -> str:
    return MANAGED + "\n" + "".join(f"{k} = {v}\n" for k, v in SYSCTLS)


def desired_journald() -> str:
    return f"{MANAGED}\n[Journal]\nStorage=persistent\nMaxRetentionSec=30day\nSystemMaxUse=256M\n"


def plan_node_prep(inv: Inventory, node_name: str, facts: NodeFacts) -> list[Change]:
    """Every change node prep makes on one node, in the order they are applied."""
    node = inv.node(node_name)
    os_release = facts["os_release"]
    if os_release is not None and os_release.codename not in SUPPORTED_CODENAMES:
        raise PlanError(
            f"{node_name}: OS {os_release.pretty_name or os_release.codename!r} is "
            f"not supported; install Raspberry Pi OS bookworm or trixie (64-bit)"
        )
    if facts.values and facts["cmdline_txt"] is None:
        raise PlanError(
            f"{node_name}: {CMDLINE_TXT} not found; Raspberry Pi OS bookworm and later keep "
            "the boot command line there (is this a Raspberry Pi OS install?)"
        )
    return [
        *plan_packages(facts),
        *plan_cmdline(facts),
        *plan_swap(facts),
        *plan_hostname(node, facts),
        *plan_hosts(inv, node, facts),
        *plan_file(
            "sysctls for K3s",
            SYSCTL_FILE,
            facts["sysctl_file"],
            desired_sysctl(),
            then=[cmd("sysctl", "--system")],
        ),
        *plan_file(
            "journald: 30 days",
            JOURNALD_FILE,
            facts["journald_file"],
            desired_journald(),
            then=[cmd("systemctl", "restart", "systemd-journald.service")],
        ),
        *plan_firewall(inv, facts),
    ]
