"""Planning: desired state + facts -> the changes that close the gap, as pure functions.

Each function compares what the inventory wants with what `facts` read from the node and
returns `Change`s, one per thing that differs, each with `before`, `after` and the `Command`s that
make it so. Nothing that already matches produces a change, so a second apply plans nothing.
Commands are argv lists; the SSH layer quotes every argument (`shlex.join`), and their display
form here is quoted the same way. Secrets (the K3s join token) travel only as a command's stdin
and never appear in `before`, `after` or a command line.
"""

import difflib
import ipaddress
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from platform_assets import facts as F
from platform_assets.facts import NodeFacts
from platform_assets.inventory import Inventory, Node

CGROUP_FLAGS = ("cgroup_memory=1", "cgroup_enable=memory")
SUPPORTED_CODENAMES = ("bookworm", "trixie")
MANAGED = "# Managed by PiClusterOps; changes here are overwritten by node prep."
HOSTS_BEGIN = "# BEGIN picluster nodes"
HOSTS_END = "# END picluster nodes"
K3S_RELEASE_URL = "https://github.com/k3s-io/k3s/releases/download/{version}/{name}"


class PlanError(ValueError):
    """The node is in a state planning cannot fix; the message names the node and what to do."""


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]
    sudo: bool = True
    # Not in the repr: it may be a secret (the K3s token is written from stdin).
    stdin: bytes | None = field(default=None, repr=False)

    @property
    def shell(self) -> str:
        """The command line as the node runs it, every argument quoted."""
        line = shlex.join(self.argv)
        line = f"sudo -n -- {line}" if self.sudo else line
        if self.stdin is not None:
            line += f"  # stdin: {len(self.stdin)} bytes"
        return line


@dataclass(frozen=True)
class Change:
    name: str
    before: str
    after: str
    commands: tuple[Command, ...]
    needs_reboot: bool = False
    detail: str = ""  # a file's unified diff (or new content), shown under the plan table


@dataclass
class NodePlan:
    node: str
    changes: list[Change] = field(default_factory=list)
    contacted: bool = True
    problem: str | None = None  # why nothing may be applied on this node

    @property
    def commands(self) -> list[Command]:
        return [c for change in self.changes for c in change.commands]


def _cmd(*argv: str, sudo: bool = True, stdin: str | bytes | None = None) -> Command:
    data = stdin.encode() if isinstance(stdin, str) else stdin
    return Command(tuple(argv), sudo, data)


def write_file(path: str, content: str, mode: str = "0644") -> Command:
    """Writes a whole file from stdin, creating folders, owned by root."""
    return _cmd(
        "install", "-D", "-m", mode, "-o", "root", "-g", "root", "/dev/stdin", path, stdin=content
    )


def _summary(text: str | None) -> str:
    if text is None:
        return "absent"
    lines = [line for line in text.splitlines() if line.strip()]
    return f"{len(lines)} lines" if len(lines) > 1 else (lines[0] if lines else "empty")


def plan_file(
    name: str,
    path: str,
    current: str | None,
    desired: str,
    mode: str = "0644",
    then: Sequence[Command] = (),
) -> list[Change]:
    if current == desired:
        return []
    return [
        Change(
            name,
            f"{path}: {_summary(current)}",
            f"{path}: {_summary(desired)}",
            (write_file(path, desired, mode), *then),
            detail=file_diff(path, current, desired),
        )
    ]


def file_diff(path: str, current: str | None, desired: str, limit: int = 60) -> str:
    lines = list(
        difflib.unified_diff(
            (current or "").splitlines(),
            desired.splitlines(),
            f"{path} (now)",
            f"{path} (planned)",
            lineterm="",
        )
    )
    if len(lines) > limit:
        lines = [*lines[:limit], f"... {len(lines) - limit} more lines"]
    return "\n".join(lines)


# --- node prep ---------------------------------------------------------------------------------


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
                _cmd("cp", "-p", F.CMDLINE_TXT, F.CMDLINE_TXT + ".picluster-backup"),
                _cmd(*sed, F.CMDLINE_TXT),
            ),
            needs_reboot=True,
        )
    ]


def reboot_reason(facts: NodeFacts) -> str | None:
    """Why the node must reboot before K3s can run, or None."""
    words = facts["cmdline_txt"] or ()
    controllers = facts["cgroup_controllers"]
    if controllers is not None and "memory" in controllers:
        return None
    if all(flag in words for flag in CGROUP_FLAGS):
        return (
            "cmdline.txt has the memory cgroup flags but the running kernel has no memory "
            "controller: the new command line takes effect at the next boot"
        )
    return None


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
                    _cmd("dphys-swapfile", "swapoff"),
                    _cmd("dphys-swapfile", "uninstall"),
                    _cmd("systemctl", "disable", "--now", "dphys-swapfile.service"),
                ),
            )
        )
    if packages.get("rpi-swap") or codename == "trixie":
        changes += plan_file(
            "rpi-swap: no swap at boot",
            F.RPI_SWAP_DROPIN,
            facts["rpi_swap_dropin"],
            f"{MANAGED}\n[Main]\nMechanism=none\n",
        )
    swaps = facts["swaps"]
    if swaps is None and not facts.values:  # facts unknown (node not contacted)
        changes.append(
            Change("swap off", "unknown", "no swap, kept off at boot", (_cmd("swapoff", "-a"),))
        )
    if swaps:
        listed = ", ".join(f"{s.filename} ({s.size_kib // 1024} MiB)" for s in swaps)
        changes.append(Change("swap off", listed, "no swap", (_cmd("swapoff", "-a"),)))
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
            (_cmd("hostnamectl", "set-hostname", node.name),),
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
    missing = [p for p in F.REQUIRED_PACKAGES if not installed.get(p)]
    if not missing:
        return []
    return [
        Change(
            "packages",
            f"missing: {', '.join(missing)}",
            f"installed: {', '.join(missing)}",
            (
                _cmd("apt-get", "update"),
                _cmd(
                    "env",
                    "DEBIAN_FRONTEND=noninteractive",
                    "apt-get",
                    "install",
                    "-y",
                    "--no-install-recommends",
                    *missing,
                ),
            ),
        )
    ]


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


def desired_firewall(inv: Inventory) -> str:
    """An nftables table of our own (K3s keeps its rules in its tables; nothing is flushed).

    It filters in prerouting, before kube-proxy's DNAT, so that NodePorts and MetalLB addresses
    are covered too: SSH, the web ports and the API only from the LAN (plus the pods and the
    inventory's `trusted_cidrs`); NodePorts, etcd, the kubelet and flannel only from the nodes
    and pods.
    """
    net = inv.network
    nodes = ", ".join(n.address for n in inv.nodes)
    lan = ", ".join([net.subnet, net.pod_cidr, *net.trusted_cidrs])
    return f"""{MANAGED}
table inet picluster
delete table inet picluster
table inet picluster {{
\tset lan {{
\t\ttype ipv4_addr; flags interval
\t\telements = {{ {lan} }}
\t}}
\tset cluster {{
\t\ttype ipv4_addr; flags interval
\t\telements = {{ {nodes}, {net.pod_cidr} }}
\t}}
\tset load_balancers {{
\t\ttype ipv4_addr; flags interval
\t\telements = {{ {net.metallb_pool.start}-{net.metallb_pool.end} }}
\t}}
\tchain prerouting {{
\t\ttype filter hook prerouting priority dstnat - 10; policy accept;
\t\tct state established,related accept
\t\tfib daddr type local jump to_node
\t\tip daddr @load_balancers jump to_node
\t}}
\tchain to_node {{
\t\tiif "lo" accept
\t\ttcp dport {{ 22, 80, 443, 6443 }} ip saddr != @lan drop
\t\tmeta l4proto {{ tcp, udp }} th dport 30000-32767 ip saddr != @cluster drop
\t\ttcp dport {{ 2379, 2380, 10250 }} ip saddr != @cluster drop
\t\tudp dport 8472 ip saddr != @cluster drop
\t\tmeta nfproto ipv6 tcp dport {{ 22, 80, 443, 6443, 2379, 2380, 10250 }} drop
\t}}
}}
"""


def desired_firewall_unit() -> str:
    return f"""{MANAGED}
[Unit]
Description=PiClusterOps firewall (nftables table inet picluster)
Wants=network-pre.target
Before=network-pre.target k3s.service k3s-agent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -f {F.FIREWALL_FILE}
ExecStop=/usr/sbin/nft delete table inet picluster

[Install]
WantedBy=multi-user.target
"""


def plan_firewall(inv: Inventory, facts: NodeFacts) -> list[Change]:
    changes = plan_file(
        "firewall rules", F.FIREWALL_FILE, facts["firewall_file"], desired_firewall(inv)
    )
    unit = plan_file(
        "firewall service",
        F.FIREWALL_UNIT_FILE,
        facts["firewall_unit_file"],
        desired_firewall_unit(),
        then=[_cmd("systemctl", "daemon-reload")],
    )
    changes += unit
    if facts["firewall_enabled"] != "enabled":
        changes.append(
            Change(
                "firewall at boot",
                f"{F.FIREWALL_UNIT}: {facts['firewall_enabled'] or 'absent'}",
                "enabled",
                (_cmd("systemctl", "enable", F.FIREWALL_UNIT),),
            )
        )
    if changes or facts["firewall_active"] != "active":
        changes.append(
            Change(
                "firewall loaded",
                f"{F.FIREWALL_UNIT}: {facts['firewall_active'] or 'unknown'}",
                "active with the current rules",
                (_cmd("systemctl", "restart", F.FIREWALL_UNIT),),
            )
        )
    return changes


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
            f"{node_name}: {F.CMDLINE_TXT} not found; Raspberry Pi OS bookworm and later keep "
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
            F.SYSCTL_FILE,
            facts["sysctl_file"],
            desired_sysctl(),
            then=[_cmd("sysctl", "--system")],
        ),
        *plan_file(
            "journald: 30 days",
            F.JOURNALD_FILE,
            facts["journald_file"],
            desired_journald(),
            then=[_cmd("systemctl", "restart", "systemd-journald.service")],
        ),
        *plan_firewall(inv, facts),
    ]


# --- K3s ---------------------------------------------------------------------------------------


def server_url(inv: Inventory) -> str:
    return f"https://{inv.server.address}:6443"


def cluster_dns(inv: Inventory) -> str:
    return str(ipaddress.IPv4Network(inv.network.service_cidr).network_address + 10)


def desired_k3s_config(inv: Inventory, node: Node) -> str:
    """/etc/rancher/k3s/config.yaml. The token is in its own 0600 file, never in this one."""
    config: dict[str, object] = {}
    if node.role == "server":
        config |= {
            "cluster-init": inv.k3s.cluster_init,
            "cluster-cidr": inv.network.pod_cidr,
            "service-cidr": inv.network.service_cidr,
            "cluster-dns": cluster_dns(inv),
            "disable": list(inv.k3s.disable),
            "tls-san": [node.address, node.name],
            "write-kubeconfig-mode": "0600",
        }
    else:
        config["server"] = server_url(inv)
    config |= {
        "token-file": F.K3S_TOKEN_FILE,
        "node-name": node.name,
        "node-ip": node.address,
        "data-dir": inv.k3s.data_dir,
    }
    if node.labels:
        config["node-label"] = [f"{k}={v}" for k, v in sorted(node.labels.items())]
    return MANAGED + "\n" + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def k3s_service(node: Node) -> str:
    return "k3s.service" if node.role == "server" else "k3s-agent.service"


def plan_k3s(inv: Inventory, node_name: str, facts: NodeFacts, token: str | None) -> list[Change]:
    """Token file, config file, the pinned K3s release and a running service on one node.

    With `token=None` (plan mode without the secret) the token file is shown as "set" if it
    exists, and planned only if it is absent.
    """
    node = inv.node(node_name)
    version = inv.k3s.version
    service = k3s_service(node)
    changes: list[Change] = []
    # "same", "differs" or "absent", compared on the node (facts.token_file_fact); None: unknown.
    on_node = facts["k3s_token_file"]
    present = on_node in ("same", "differs")
    token_differs = on_node != "same" if token is not None else not present
    if token_differs:
        changes.append(
            Change(
                "join token",
                "set (***), differs" if present else "absent",
                "set (***)",
                (write_file(F.K3S_TOKEN_FILE, (token or "") + "\n", "0600"),),
            )
        )
    config = desired_k3s_config(inv, node)
    changes += plan_file("K3s config", F.K3S_CONFIG, facts["k3s_config"], config, "0600")
    unit = plan_file(
        f"{service} unit",
        f"/etc/systemd/system/{service}",
        facts["k3s_unit_file"],
        desired_k3s_unit(node),
        then=[_cmd("systemctl", "daemon-reload")],
    )
    changes += unit
    installed = facts["k3s_version"]
    if installed != version:
        changes.append(
            Change(
                f"K3s {node.role}",
                f"k3s {installed or 'not installed'}",
                f"k3s {version}",
                install_k3s_commands(version),
            )
        )
    if facts["k3s_enabled"] != "enabled":
        changes.append(
            Change(
                f"{service} at boot",
                facts["k3s_enabled"] or "absent",
                "enabled",
                (_cmd("systemctl", "enable", service),),
            )
        )
    if changes or facts["k3s_active"] != "active":
        changes.append(
            Change(
                f"{service} running",
                facts["k3s_active"] or "unknown",
                "active with the current config and release",
                (_cmd("systemctl", "restart", service),),
            )
        )
    return changes


def install_k3s_commands(version: str) -> tuple[Command, ...]:
    """The pinned arm64 binary from the K3s GitHub release, checked against the release's own
    sha256sum file before it is installed (a mismatch stops the apply)."""
    tag = version.replace("+", "%2B")
    folder = f"{F.K3S_DOWNLOADS}/{version}"
    fetch = [
        _cmd(
            "curl", "-sfL", "--retry", "3", "-o", f"{folder}/{name}",
            K3S_RELEASE_URL.format(version=tag, name=name),
        )
        for name in ("k3s-arm64", "sha256sum-arm64.txt")
    ]  # fmt: skip
    verify = _cmd(
        "sh", "-c", 'cd "$1" && grep " k3s-arm64$" sha256sum-arm64.txt | sha256sum -c -',
        "picluster-k3s-verify", folder,
    )  # fmt: skip
    install = _cmd("install", "-m", "0755", f"{folder}/k3s-arm64", F.K3S_BINARY)
    return (_cmd("install", "-d", "-m", "0755", folder), *fetch, verify, install)


def desired_k3s_unit(node: Node) -> str:
    """The systemd unit (the shape of the one K3s's installer writes); config from config.yaml."""
    kind = "server" if node.role == "server" else "agent"
    return f"""{MANAGED}
[Unit]
Description=Lightweight Kubernetes ({kind})
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target {F.FIREWALL_UNIT}

[Service]
Type=notify
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
TimeoutStartSec=0
Restart=always
RestartSec=5s
ExecStartPre=-/sbin/modprobe br_netfilter
ExecStartPre=-/sbin/modprobe overlay
ExecStart={F.K3S_BINARY} {kind}

[Install]
WantedBy=multi-user.target
"""


# --- presentation ------------------------------------------------------------------------------


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plans_markdown(plans: Sequence[NodePlan], applied: bool) -> str:
    """The per-node diff a person reads in the UI."""
    out: list[str] = []
    for plan in plans:
        verb = "applied" if applied else "planned"
        head = f"### {plan.node}: "
        if plan.problem:
            count = len(plan.changes)
            out.append(
                head + f"{count} change{'' if count == 1 else 's'} planned, "
                f"cannot be applied yet: {plan.problem}"
            )
        elif not plan.changes:
            out.append(head + "no changes (converged)")
        else:
            count = len(plan.changes)
            out.append(
                head
                + f"{count} change{'' if count == 1 else 's'} {verb}"
                + ("" if plan.contacted else " (facts unknown: node not contacted)")
            )
        if plan.changes:
            out.append("")
            out.append("| change | before | after | commands |")
            out.append("| --- | --- | --- | --- |")
            for change in plan.changes:
                cmds = "<br>".join(f"`{_cell(c.shell)}`" for c in change.commands)
                reboot = " (reboot)" if change.needs_reboot else ""
                out.append(
                    f"| {_cell(change.name)}{reboot} | {_cell(change.before)} | "
                    f"{_cell(change.after)} | {cmds} |"
                )
            for change in plan.changes:
                if change.detail and plan.contacted:
                    out += ["", f"{change.name}:", "", "```diff", change.detail, "```"]
        out.append("")
    return "\n".join(out)
