"""Planning as tables: facts (real Pi OS output where it exists) + desired state -> changes."""

from pathlib import Path

import pytest

from platform_assets import facts as F
from platform_assets import planning as P
from platform_assets.facts import NodeFacts
from platform_assets.inventory import load_inventory, parse_inventory
from tests.platform.pi_facts import body

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(ROOT / "inventory.example.yaml")
BOOKWORM = F.parse_os_release(body("os-release.raspios.bookworm.txt"))
TRIXIE = F.parse_os_release(body("os-release.raspios.trixie.txt"))
# The Pi OS Lite default line: the published capture minus the flags its author appended (no
# capture without flags exists; README "Not found").
DEFAULT_CMDLINE = tuple(
    w
    for w in F.parse_words(body("cmdline-txt.pi5.bookworm.cgroup-added.txt"))
    if not w.startswith("cgroup_")
)


def converged_facts(node: str = "pi-agent-1", **overrides) -> NodeFacts:
    """Facts of a node that node prep already converged (built from the planners' own output)."""
    n = INV.node(node)
    values = {
        "os_release": BOOKWORM,
        "cmdline_txt": DEFAULT_CMDLINE + P.CGROUP_FLAGS,
        "cgroup_controllers": ("cpuset", "cpu", "io", "memory", "pids"),
        "swaps": (),
        "dphys_swapfile_enabled": "disabled",
        "rpi_swap_dropin": None,
        "hostname": n.name,
        "hosts": P.desired_hosts(INV, n, "127.0.0.1\tlocalhost\n"),
        "packages": dict.fromkeys(F.REQUIRED_PACKAGES, True),
        "sysctl_file": P.desired_sysctl(),
        "journald_file": P.desired_journald(),
        "firewall_file": P.desired_firewall(INV),
        "firewall_unit_file": P.desired_firewall_unit(),
        "firewall_enabled": "enabled",
        "firewall_active": "active",
    }
    values.update(overrides)
    return NodeFacts(node, values)


def names(changes):
    return [c.name for c in changes]


def test_converged_node_plans_nothing():
    assert P.plan_node_prep(INV, "pi-agent-1", converged_facts()) == []


FRESH_BOOKWORM = dict(
    cmdline_txt=DEFAULT_CMDLINE,
    cgroup_controllers=F.parse_words(body("cgroup-controllers.pi5.no-memory.txt")),
    swaps=(F.SwapArea("/var/swap", "file", 102396),),
    dphys_swapfile_enabled="enabled",
    hostname="raspberrypi",
    hosts="127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n"
    "127.0.1.1\t\traspberrypi\n",
    packages={"ca-certificates": True, "curl": True, "dphys-swapfile": True},
    sysctl_file=None,
    journald_file=None,
    firewall_file=None,
    firewall_unit_file=None,
    firewall_enabled="not-found",
    firewall_active="inactive",
)


def test_fresh_bookworm_node_gets_everything_in_order():
    changes = P.plan_node_prep(INV, "pi-agent-1", converged_facts(**FRESH_BOOKWORM))
    assert names(changes) == [
        "packages",
        "boot command line: memory cgroup",
        "dphys-swapfile disabled",
        "swap off",
        "hostname",
        "hosts file",
        "sysctls for K3s",
        "journald: 30 days",
        "firewall rules",
        "firewall service",
        "firewall at boot",
        "firewall loaded",
    ]
    shells = [c.shell for ch in changes for c in ch.commands]
    assert (
        "sudo -n -- env DEBIAN_FRONTEND=noninteractive apt-get install -y "
        "--no-install-recommends nftables fio"
    ) in shells
    assert (
        "sudo -n -- sed -i -e '1s/$/ cgroup_memory=1 cgroup_enable=memory/' "
        "/boot/firmware/cmdline.txt"
    ) in shells
    assert "sudo -n -- hostnamectl set-hostname pi-agent-1" in shells
    assert "sudo -n -- swapoff -a" in shells
    assert [c.needs_reboot for c in changes].count(True) == 1


@pytest.mark.parametrize(
    ("words", "after", "sed"),
    [
        (
            DEFAULT_CMDLINE,
            DEFAULT_CMDLINE + P.CGROUP_FLAGS,
            ["-e", "1s/$/ cgroup_memory=1 cgroup_enable=memory/"],
        ),
        # The published line with the flags already there (and cgroup_enable=cpuset): no change.
        (F.parse_words(body("cmdline-txt.pi5.bookworm.cgroup-added.txt")), None, None),
        # Only one flag present (the desktop capture has both, in the other order): no change.
        (
            F.parse_words(body("cmdline-txt.pi5.raspios-desktop.cgroup-added.author-redacted.txt")),
            None,
            None,
        ),
        (
            DEFAULT_CMDLINE + ("cgroup_enable=memory",),
            DEFAULT_CMDLINE + ("cgroup_enable=memory", "cgroup_memory=1"),
            ["-e", "1s/$/ cgroup_memory=1/"],
        ),
        (
            DEFAULT_CMDLINE + ("cgroup_disable=memory",) + P.CGROUP_FLAGS,
            DEFAULT_CMDLINE + P.CGROUP_FLAGS,
            ["-e", "s/ *cgroup_disable=memory//g"],
        ),
    ],
)
def test_cmdline_flags(words, after, sed):
    changes = P.plan_cmdline(NodeFacts("n", {"cmdline_txt": words}))
    if after is None:
        assert changes == []
        return
    (change,) = changes
    assert change.after == " ".join(after) and change.needs_reboot
    assert change.commands[-1].argv == ("sed", "-i", *sed, "/boot/firmware/cmdline.txt")


def test_reboot_reason_from_real_captures():
    no_memory = F.parse_words(body("cgroup-controllers.pi5.no-memory.txt"))
    flagged = F.parse_words(body("cmdline-txt.pi5.bookworm.cgroup-added.txt"))
    assert (
        P.reboot_reason(NodeFacts("n", {"cmdline_txt": flagged, "cgroup_controllers": no_memory}))
        is not None
    )
    assert (
        P.reboot_reason(
            NodeFacts("n", {"cmdline_txt": DEFAULT_CMDLINE, "cgroup_controllers": no_memory})
        )
        is None
    )
    assert (
        P.reboot_reason(
            NodeFacts("n", {"cmdline_txt": flagged, "cgroup_controllers": no_memory + ("memory",)})
        )
        is None
    )


def test_trixie_keeps_swap_off_with_an_rpi_swap_dropin():
    swaps = F.parse_proc_swaps(body("proc-swaps.pi5.rpi-swap-swapfile.iiab.txt"))
    facts = converged_facts(
        os_release=TRIXIE,
        swaps=swaps,
        dphys_swapfile_enabled=None,
        packages={**dict.fromkeys(F.REQUIRED_PACKAGES, True), "rpi-swap": True},
    )
    changes = P.plan_swap(facts)
    assert names(changes) == ["rpi-swap: no swap at boot", "swap off"]
    write = changes[0].commands[0]
    assert write.argv[-1] == F.RPI_SWAP_DROPIN and b"Mechanism=none" in write.stdin
    assert changes[1].before == "/var/swap (1023 MiB)"


def test_unsupported_os_is_refused_naming_the_node():
    buster = F.OsRelease("raspbian", "10", "buster", "Raspbian GNU/Linux 10 (buster)")
    with pytest.raises(P.PlanError, match="pi-agent-1: OS 'Raspbian GNU/Linux 10"):
        P.plan_node_prep(INV, "pi-agent-1", converged_facts(os_release=buster))


def test_hosts_keeps_user_lines_and_names_every_node():
    current = "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n10.0.0.9\tnas\n"
    text = P.desired_hosts(INV, INV.node("pi-agent-2"), current)
    assert "10.0.0.9\tnas" in text and "raspberrypi" not in text
    assert "127.0.1.1\tpi-agent-2" in text and "192.168.0.120\tpi-server" in text
    # Idempotent: planning from its own output changes nothing.
    assert P.desired_hosts(INV, INV.node("pi-agent-2"), text) == text


def test_firewall_limits_ssh_and_nodeports():
    rules = P.desired_firewall(INV)
    assert "tcp dport { 22, 80, 443, 6443 } ip saddr != @lan drop" in rules
    assert "th dport 30000-32767 ip saddr != @cluster drop" in rules
    assert "192.168.0.120, 192.168.0.121, 192.168.0.122, 192.168.0.123, 10.42.0.0/16" in rules
    assert "flush ruleset" not in rules  # K3s's own tables survive
    assert "elements = { 192.168.0.0/24, 10.42.0.0/16 }" in rules


def test_trusted_networks_reach_ssh_too():
    data = INV.model_dump()
    data["network"]["trusted_cidrs"] = ["10.8.0.0/24"]
    inv = parse_inventory(data)
    assert "elements = { 192.168.0.0/24, 10.42.0.0/16, 10.8.0.0/24 }" in P.desired_firewall(inv)


TOKEN = "K10-secret-token::server:abc"  # noqa: S105


def k3s_facts(**values):
    base = {
        "k3s_version": None,
        "k3s_config": None,
        "k3s_token_file": None,
        "k3s_active": "inactive",
        "cgroup_controllers": ("cpu", "memory"),
    }
    return NodeFacts("pi-server", {**base, **values})


def test_k3s_server_install_plan_never_shows_the_token():
    changes = P.plan_k3s(INV, "pi-server", k3s_facts(), TOKEN)
    assert names(changes) == [
        "join token",
        "K3s config",
        "k3s.service unit",
        "K3s server",
        "k3s.service at boot",
        "k3s.service running",
    ]
    shown = repr([(c.before, c.after, c.detail, [x.shell for x in c.commands]) for c in changes])
    assert TOKEN not in shown
    assert changes[0].commands[0].stdin == (TOKEN + "\n").encode()
    assert changes[0].commands[0].argv[:4] == ("install", "-D", "-m", "0600")
    config = changes[1].commands[0].stdin.decode()
    assert TOKEN not in config
    assert "cluster-init: true" in config and "- servicelb" in config
    assert "cluster-dns: 10.43.0.10" in config
    assert "ExecStart=/usr/local/bin/k3s server" in changes[2].commands[0].stdin.decode()
    install = [c.shell for c in changes[3].commands]
    assert install == [
        "sudo -n -- install -d -m 0755 /usr/local/lib/picluster/k3s/v1.34.4+k3s1",
        "sudo -n -- curl -sfL --retry 3 -o "
        "/usr/local/lib/picluster/k3s/v1.34.4+k3s1/k3s-arm64 "
        "https://github.com/k3s-io/k3s/releases/download/v1.34.4%2Bk3s1/k3s-arm64",
        "sudo -n -- curl -sfL --retry 3 -o "
        "/usr/local/lib/picluster/k3s/v1.34.4+k3s1/sha256sum-arm64.txt "
        "https://github.com/k3s-io/k3s/releases/download/v1.34.4%2Bk3s1/sha256sum-arm64.txt",
        'sudo -n -- sh -c \'cd "$1" && grep " k3s-arm64$" sha256sum-arm64.txt | '
        "sha256sum -c -' picluster-k3s-verify /usr/local/lib/picluster/k3s/v1.34.4+k3s1",
        "sudo -n -- install -m 0755 /usr/local/lib/picluster/k3s/v1.34.4+k3s1/k3s-arm64 "
        "/usr/local/bin/k3s",
    ]


def test_no_repr_of_a_plan_or_a_fact_holds_the_token():
    # A plan or a fact in an error message or a debugger's log must not carry the token.
    changes = P.plan_k3s(INV, "pi-server", k3s_facts(), TOKEN)
    assert TOKEN not in repr(changes)
    (fact,) = [f for f in F.k3s_facts("k3s.service", TOKEN) if f.name == "k3s_token_file"]
    assert TOKEN not in repr(fact) and TOKEN not in fact.command
    assert fact.stdin == (TOKEN + "\n").encode()  # compared on the node, never read back


def test_secret_settings_in_k3s_files_are_masked_and_ours_pass_unchanged():
    import subprocess

    def masked(text: str) -> str:
        fact = next(f for f in F.k3s_facts("k3s.service") if f.name == "k3s_config")
        argv = [*fact.argv[:-1], "/dev/stdin"]  # GNU sed, as on Raspberry Pi OS
        return subprocess.run(argv, input=text, capture_output=True, text=True, check=True).stdout

    by_hand = (
        f"token: {TOKEN}\n  agent-token: '{TOKEN}'\netcd-s3-secret-key: {TOKEN}\n"
        f"ExecStart=/usr/local/bin/k3s \\\n\t'--token' \\\n\t'{TOKEN}' \\\n"
        f"\t'--datastore-password={TOKEN}' --agent-token {TOKEN}\n"
    )
    assert TOKEN not in masked(by_hand)
    assert masked(by_hand).count("***") == 6
    for node in INV.nodes:  # a converged node stays converged: our files hold no secret
        for ours in (P.desired_k3s_config(INV, node), P.desired_k3s_unit(node)):
            assert masked(ours) == ours


def test_k3s_agent_joins_the_server():
    changes = P.plan_k3s(INV, "pi-agent-3", k3s_facts(), TOKEN)
    config = changes[1].commands[0].stdin.decode()
    assert "server: https://192.168.0.120:6443" in config
    assert "picluster.io/dagster=true" in config
    assert names(changes)[2] == "k3s-agent.service unit"
    assert "ExecStart=/usr/local/bin/k3s agent" in changes[2].commands[0].stdin.decode()


def test_k3s_converged_and_drift():
    server = INV.node("pi-server")
    done = k3s_facts(
        k3s_version="v1.34.4+k3s1",
        k3s_token_file="same",
        k3s_config=P.desired_k3s_config(INV, server),
        k3s_unit_file=P.desired_k3s_unit(server),
        k3s_enabled="enabled",
        k3s_active="active",
    )
    assert P.plan_k3s(INV, "pi-server", done, TOKEN) == []
    # Plan mode without the secret: a present token file is not planned again.
    assert P.plan_k3s(INV, "pi-server", done, None) == []
    stopped = NodeFacts("pi-server", {**done.values, "k3s_active": "failed"})
    assert names(P.plan_k3s(INV, "pi-server", stopped, TOKEN)) == ["k3s.service running"]
    # Another token: the node's comparison says the file differs.
    rotated = NodeFacts("pi-server", {**done.values, "k3s_token_file": "differs"})
    other = P.plan_k3s(INV, "pi-server", rotated, "another-token")
    assert names(other) == ["join token", "k3s.service running"]
    assert other[0].before == "set (***), differs"
    older = NodeFacts("pi-server", {**done.values, "k3s_version": "v1.32.1+k3s1"})
    upgrade = P.plan_k3s(INV, "pi-server", older, TOKEN)
    assert names(upgrade) == ["K3s server", "k3s.service running"]
    assert upgrade[0].before == "k3s v1.32.1+k3s1"


def test_markdown_shows_before_after_and_commands():
    changes = P.plan_node_prep(INV, "pi-agent-1", converged_facts(hostname="raspberrypi"))
    md = P.plans_markdown([P.NodePlan("pi-agent-1", changes)], applied=False)
    assert "### pi-agent-1: 1 change planned" in md
    assert (
        "| hostname | raspberrypi | pi-agent-1 | `sudo -n -- hostnamectl set-hostname "
        "pi-agent-1` |" in md
    )
