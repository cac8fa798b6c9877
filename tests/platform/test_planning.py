"""Planning as tables: facts (real Pi OS output where it exists) + desired state -> changes."""

from pathlib import Path

import pytest
import yaml

from platform_assets.core.facts import NodeFacts, parse_words
from platform_assets.core.plan import NodePlan, PlanError
from platform_assets.core.render import plans_markdown
from platform_assets.inventory import load_inventory, parse_inventory
from platform_assets.k3s import facts as k3s_fact_reads
from platform_assets.k3s.plan import desired_k3s_config, desired_k3s_unit, plan_k3s
from platform_assets.node_prep.facts import (
    REQUIRED_PACKAGES,
    RPI_SWAP_DROPIN,
    SwapArea,
    parse_proc_swaps,
)
from platform_assets.node_prep.firewall import desired_firewall, desired_firewall_unit
from platform_assets.node_prep.plan import (
    CGROUP_FLAGS,
    desired_hosts,
    desired_journald,
    desired_sysctl,
    plan_cmdline,
    plan_node_prep,
    plan_swap,
)
from platform_assets.node_reboot.plan import reboot_reason, reboot_waves
from platform_assets.preflight.facts import OsRelease, parse_os_release, preflight_facts
from platform_assets.releases.access_settings import load_access_settings
from tests.platform.pi_facts import body

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(ROOT / "inventory.example.yaml")
BOOKWORM = parse_os_release(body("os-release.raspios.bookworm.txt"))
TRIXIE = parse_os_release(body("os-release.raspios.trixie.txt"))
# The Pi OS Lite default line: the published capture minus the flags its author appended (no
# capture without flags exists; README "Not found").
DEFAULT_CMDLINE = tuple(
    w
    for w in parse_words(body("cmdline-txt.pi5.bookworm.cgroup-added.txt"))
    if not w.startswith("cgroup_")
)


def converged_facts(node: str = "pi-agent-1", **overrides) -> NodeFacts:
    """Facts of a node that node prep already converged (built from the planners' own output)."""
    n = INV.node(node)
    values = {
        "os_release": BOOKWORM,
        "cmdline_txt": DEFAULT_CMDLINE + CGROUP_FLAGS,
        "cgroup_controllers": ("cpuset", "cpu", "io", "memory", "pids"),
        "swaps": (),
        "dphys_swapfile_enabled": "disabled",
        "rpi_swap_dropin": None,
        "hostname": n.name,
        "hosts": desired_hosts(INV, n, "127.0.0.1\tlocalhost\n"),
        "packages": dict.fromkeys(REQUIRED_PACKAGES, True),
        "sysctl_file": desired_sysctl(),
        "journald_file": desired_journald(),
        "firewall_file": desired_firewall(INV),
        "firewall_unit_file": desired_firewall_unit(),
        "firewall_enabled": "enabled",
        "firewall_active": "active",
    }
    values.update(overrides)
    return NodeFacts(node, values)


def names(changes):
    return [c.name for c in changes]


def test_converged_node_plans_nothing():
    assert plan_node_prep(INV, "pi-agent-1", converged_facts()) == []


FRESH_BOOKWORM = dict(
    cmdline_txt=DEFAULT_CMDLINE,
    cgroup_controllers=parse_words(body("cgroup-controllers.pi5.no-memory.txt")),
    swaps=(SwapArea("/var/swap", "file", 102396),),
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
    changes = plan_node_prep(INV, "pi-agent-1", converged_facts(**FRESH_BOOKWORM))
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
            DEFAULT_CMDLINE + CGROUP_FLAGS,
            ["-e", "1s/$/ cgroup_memory=1 cgroup_enable=memory/"],
        ),
        # The published line with the flags already there (and cgroup_enable=cpuset): no change.
        (parse_words(body("cmdline-txt.pi5.bookworm.cgroup-added.txt")), None, None),
        # Only one flag present (the desktop capture has both, in the other order): no change.
        (
            parse_words(body("cmdline-txt.pi5.raspios-desktop.cgroup-added.author-redacted.txt")),
            None,
            None,
        ),
        (
            DEFAULT_CMDLINE + ("cgroup_enable=memory",),
            DEFAULT_CMDLINE + ("cgroup_enable=memory", "cgroup_memory=1"),
            ["-e", "1s/$/ cgroup_memory=1/"],
        ),
        (
            DEFAULT_CMDLINE + ("cgroup_disable=memory",) + CGROUP_FLAGS,
            DEFAULT_CMDLINE + CGROUP_FLAGS,
            ["-e", "s/ *cgroup_disable=memory//g"],
        ),
    ],
)
def test_cmdline_flags(words, after, sed):
    changes = plan_cmdline(NodeFacts("n", {"cmdline_txt": words}))
    if after is None:
        assert changes == []
        return
    (change,) = changes
    assert change.after == " ".join(after) and change.needs_reboot
    assert change.commands[-1].argv == ("sed", "-i", *sed, "/boot/firmware/cmdline.txt")


def test_reboot_reason_from_real_captures():
    no_memory = parse_words(body("cgroup-controllers.pi5.no-memory.txt"))
    flagged = parse_words(body("cmdline-txt.pi5.bookworm.cgroup-added.txt"))
    assert (
        reboot_reason(NodeFacts("n", {"cmdline_txt": flagged, "cgroup_controllers": no_memory}))
        is not None
    )
    assert (
        reboot_reason(
            NodeFacts("n", {"cmdline_txt": DEFAULT_CMDLINE, "cgroup_controllers": no_memory})
        )
        is None
    )
    assert (
        reboot_reason(
            NodeFacts("n", {"cmdline_txt": flagged, "cgroup_controllers": no_memory + ("memory",)})
        )
        is None
    )


def test_trixie_keeps_swap_off_with_an_rpi_swap_dropin():
    swaps = parse_proc_swaps(body("proc-swaps.pi5.rpi-swap-swapfile.iiab.txt"))
    facts = converged_facts(
        os_release=TRIXIE,
        swaps=swaps,
        dphys_swapfile_enabled=None,
        packages={**dict.fromkeys(REQUIRED_PACKAGES, True), "rpi-swap": True},
    )
    changes = plan_swap(facts)
    assert names(changes) == ["rpi-swap: no swap at boot", "swap off"]
    write = changes[0].commands[0]
    assert write.argv[-1] == RPI_SWAP_DROPIN and b"Mechanism=none" in write.stdin
    assert changes[1].before == "/var/swap (1023 MiB)"


def test_unsupported_os_is_refused_naming_the_node():
    buster = OsRelease("raspbian", "10", "buster", "Raspbian GNU/Linux 10 (buster)")
    with pytest.raises(PlanError, match="pi-agent-1: OS 'Raspbian GNU/Linux 10"):
        plan_node_prep(INV, "pi-agent-1", converged_facts(os_release=buster))


def test_hosts_keeps_user_lines_and_names_every_node():
    current = "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n10.0.0.9\tnas\n"
    text = desired_hosts(INV, INV.node("pi-agent-2"), current)
    assert "10.0.0.9\tnas" in text and "raspberrypi" not in text
    assert "127.0.1.1\tpi-agent-2" in text and "192.168.0.120\tpi-server" in text
    # Idempotent: planning from its own output changes nothing.
    assert desired_hosts(INV, INV.node("pi-agent-2"), text) == text


def test_firewall_limits_ssh_and_nodeports():
    rules = desired_firewall(INV)
    assert "tcp dport { 22, 80, 443, 6443 } ip saddr != @lan drop" in rules
    assert "th dport 30000-32767 ip saddr != @cluster drop" in rules
    assert "192.168.0.120, 192.168.0.121, 192.168.0.122, 192.168.0.123, 10.42.0.0/16" in rules
    assert "flush ruleset" not in rules  # K3s's own tables survive
    assert "elements = { 192.168.0.0/24, 10.42.0.0/16 }" in rules


def test_trusted_networks_reach_ssh_too():
    data = INV.model_dump()
    data["network"]["trusted_cidrs"] = ["10.8.0.0/24"]
    inv = parse_inventory(data)
    assert "elements = { 192.168.0.0/24, 10.42.0.0/16, 10.8.0.0/24 }" in desired_firewall(inv)


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
    changes = plan_k3s(INV, "pi-server", k3s_facts(), TOKEN)
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
        "sudo -n -- curl -sfL --retry 3 --connect-timeout 30 --max-time 600 -o "
        "/usr/local/lib/picluster/k3s/v1.34.4+k3s1/k3s-arm64 "
        "https://github.com/k3s-io/k3s/releases/download/v1.34.4%2Bk3s1/k3s-arm64",
        "sudo -n -- curl -sfL --retry 3 --connect-timeout 30 --max-time 600 -o "
        "/usr/local/lib/picluster/k3s/v1.34.4+k3s1/sha256sum-arm64.txt "
        "https://github.com/k3s-io/k3s/releases/download/v1.34.4%2Bk3s1/sha256sum-arm64.txt",
        'sudo -n -- sh -c \'cd "$1" && grep " k3s-arm64$" sha256sum-arm64.txt | '
        "sha256sum -c -' picluster-k3s-verify /usr/local/lib/picluster/k3s/v1.34.4+k3s1",
        "sudo -n -- install -m 0755 /usr/local/lib/picluster/k3s/v1.34.4+k3s1/k3s-arm64 "
        "/usr/local/bin/k3s",
    ]


def test_no_repr_of_a_plan_or_a_fact_holds_the_token():
    # A plan or a fact in an error message or a debugger's log must not carry the token.
    changes = plan_k3s(INV, "pi-server", k3s_facts(), TOKEN)
    assert TOKEN not in repr(changes)
    reads = k3s_fact_reads.k3s_facts("k3s.service", TOKEN)
    (fact,) = [f for f in reads if f.name == "k3s_token_file"]
    assert TOKEN not in repr(fact) and TOKEN not in fact.command
    assert fact.stdin == (TOKEN + "\n").encode()  # compared on the node, never read back


def test_secret_settings_in_k3s_files_are_masked_and_ours_pass_unchanged():
    import subprocess

    def masked(text: str) -> str:
        fact = next(f for f in k3s_fact_reads.k3s_facts("k3s.service") if f.name == "k3s_config")
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
        for ours in (desired_k3s_config(INV, node), desired_k3s_unit(node)):
            assert masked(ours) == ours


PROVIDER = load_access_settings(
    {
        "PICLUSTER_OIDC_ISSUER_URL": "https://auth.home.example/application/o/pi/",
        "PICLUSTER_OIDC_JWKS_URL": "https://auth.home.example/application/o/pi/jwks/",
        "PICLUSTER_OIDC_CLIENT_ID": "pi-cluster",
        "PICLUSTER_OIDC_USERNAME_CLAIM": "preferred_username",
    }
)


def server_config(access=None) -> dict:
    return yaml.safe_load(desired_k3s_config(INV, INV.node("pi-server"), access))


def test_the_server_api_trusts_the_chosen_oidc_provider_with_prefixed_names():
    assert server_config(PROVIDER)["kube-apiserver-arg"] == [
        "oidc-issuer-url=https://auth.home.example/application/o/pi/",
        "oidc-client-id=pi-cluster",
        "oidc-username-claim=preferred_username",
        "oidc-username-prefix=oidc:",
        "oidc-groups-claim=groups",
        "oidc-groups-prefix=oidc:",
    ]
    # Agents run no API server.
    agent = yaml.safe_load(desired_k3s_config(INV, INV.node("pi-agent-1"), PROVIDER))
    assert "kube-apiserver-arg" not in agent


def test_the_api_takes_kubectls_own_client_as_audience_and_the_gateways_when_it_has_none():
    assert PROVIDER.kubectl_client_id == "pi-cluster"  # unset: the gateways' client, as before
    kubectl = load_access_settings(
        {
            "PICLUSTER_OIDC_ISSUER_URL": "https://auth.home.example/application/o/pi/",
            "PICLUSTER_OIDC_JWKS_URL": "https://auth.home.example/application/o/pi/jwks/",
            "PICLUSTER_OIDC_CLIENT_ID": "pi-cluster",
            "PICLUSTER_OIDC_KUBECTL_CLIENT_ID": "pi-kubectl",
        }
    )
    args = server_config(kubectl)["kube-apiserver-arg"]
    assert [a for a in args if a.startswith("oidc-client-id=")] == ["oidc-client-id=pi-kubectl"]
    assert kubectl.client_id == "pi-cluster"  # the gateways keep theirs


def test_with_no_provider_chosen_the_api_gets_no_oidc_flags():
    # PICLUSTER_OIDC_ISSUER_URL unset: the releases plan with the example issuer; the API
    # server is not pointed at it.
    example = load_access_settings({})
    assert not example.provider_chosen
    assert "kube-apiserver-arg" not in server_config(example)
    assert "kube-apiserver-arg" not in server_config(None)


def test_etcd_metrics_are_exposed_on_servers_with_embedded_etcd():
    assert server_config()["etcd-expose-metrics"] is True
    agent = yaml.safe_load(desired_k3s_config(INV, INV.node("pi-agent-1")))
    assert "etcd-expose-metrics" not in agent


def converged_server() -> NodeFacts:
    """The server's facts once K3s runs as the inventory (with no OIDC provider) wants it."""
    server = INV.node("pi-server")
    return k3s_facts(
        k3s_version="v1.34.4+k3s1",
        k3s_token_file="same",
        k3s_config=desired_k3s_config(INV, server),
        k3s_unit_file=desired_k3s_unit(server),
        k3s_enabled="enabled",
        k3s_active="active",
    )


def test_choosing_a_provider_rewrites_a_running_servers_config_and_restarts_it():
    running = converged_server()
    changes = plan_k3s(INV, "pi-server", running, TOKEN, PROVIDER)
    assert names(changes) == ["K3s config", "k3s.service running"]
    assert "oidc-issuer-url=" in changes[0].commands[0].stdin.decode()


def test_k3s_agent_joins_the_server():
    changes = plan_k3s(INV, "pi-agent-3", k3s_facts(), TOKEN)
    config = changes[1].commands[0].stdin.decode()
    assert "server: https://192.168.0.120:6443" in config
    assert "picluster.io/dagster=true" in config
    assert names(changes)[2] == "k3s-agent.service unit"
    assert "ExecStart=/usr/local/bin/k3s agent" in changes[2].commands[0].stdin.decode()


def test_k3s_converged_and_drift():
    done = converged_server()
    assert plan_k3s(INV, "pi-server", done, TOKEN) == []
    # Plan mode without the secret: a present token file is not planned again.
    assert plan_k3s(INV, "pi-server", done, None) == []
    stopped = NodeFacts("pi-server", {**done.values, "k3s_active": "failed"})
    assert names(plan_k3s(INV, "pi-server", stopped, TOKEN)) == ["k3s.service running"]
    # Another token: the node's comparison says the file differs.
    rotated = NodeFacts("pi-server", {**done.values, "k3s_token_file": "differs"})
    other = plan_k3s(INV, "pi-server", rotated, "another-token")
    assert names(other) == ["join token", "k3s.service running"]
    assert other[0].before == "set (***), differs"
    older = NodeFacts("pi-server", {**done.values, "k3s_version": "v1.32.1+k3s1"})
    upgrade = plan_k3s(INV, "pi-server", older, TOKEN)
    assert names(upgrade) == ["K3s server", "k3s.service running"]
    assert upgrade[0].before == "k3s v1.32.1+k3s1"


def test_markdown_shows_before_after_and_commands():
    changes = plan_node_prep(INV, "pi-agent-1", converged_facts(hostname="raspberrypi"))
    md = plans_markdown([NodePlan("pi-agent-1", changes)], applied=False)
    assert "### pi-agent-1: 1 change planned" in md
    assert (
        "| hostname | raspberrypi | pi-agent-1 | `sudo -n -- hostnamectl set-hostname "
        "pi-agent-1` |" in md
    )


@pytest.mark.parametrize(
    ("due", "k3s_installed", "waves"),
    [
        # A fresh bring-up: nothing runs yet, every node reboots at once.
        (
            ["pi-agent-2", "pi-server", "pi-agent-1"],
            False,
            [["pi-server", "pi-agent-1", "pi-agent-2"]],
        ),
        # A running cluster: one node at a time, the server first.
        (
            ["pi-agent-2", "pi-server", "pi-agent-1"],
            True,
            [["pi-server"], ["pi-agent-1"], ["pi-agent-2"]],
        ),
        (["pi-agent-3", "pi-agent-1"], True, [["pi-agent-1"], ["pi-agent-3"]]),
        ([], True, []),
    ],
)
def test_reboot_waves(due, k3s_installed, waves):
    assert reboot_waves(INV, due, k3s_installed) == waves


def test_slow_commands_have_their_own_timeouts():
    fresh = plan_node_prep(INV, "pi-agent-1", converged_facts(packages={}))
    (packages,) = [c for c in fresh if c.name == "packages"]
    update, install = packages.commands
    assert update.timeout_s == 600 and install.timeout_s == 1200
    assert "sudo dpkg --configure -a" in install.if_interrupted
    server = plan_k3s(INV, "pi-server", k3s_facts(), TOKEN)
    downloads = [c for change in server for c in change.commands if c.argv[0] == "curl"]
    assert len(downloads) == 2
    for download in downloads:
        # curl stops itself first (its error says why); the SSH timeout is the backstop.
        max_time = float(download.argv[download.argv.index("--max-time") + 1])
        assert download.timeout_s > 4 * max_time  # --retry 3 may run it four times
    (fsync,) = [f for f in preflight_facts("/var/lib/rancher/k3s") if f.name == "fsync"]
    assert fsync.timeout_s == 300


def test_a_drifted_token_on_a_server_with_a_datastore_is_refused_naming_the_rotation():
    drifted = k3s_facts(k3s_token_file="differs", k3s_datastore="exists", k3s_version="v1.33.5")
    with pytest.raises(PlanError) as refused:
        plan_k3s(INV, "pi-server", drifted, TOKEN)
    message = str(refused.value)
    assert message.startswith("pi-server: the join token in PICLUSTER_K3S_TOKEN is not the token")
    assert "sudo k3s token rotate --token <current> --new-token <new>" in message
    assert TOKEN not in message


@pytest.mark.parametrize(
    ("node", "datastore"),
    [
        ("pi-server", "absent"),  # installed, never started: no cluster to lose yet
        ("pi-agent-1", None),  # an agent has no datastore: it joins with the token it is given
    ],
)
def test_a_drifted_token_is_rewritten_where_no_datastore_holds_the_old_one(node, datastore):
    facts = k3s_facts(k3s_token_file="differs", k3s_datastore=datastore)
    changes = plan_k3s(INV, node, NodeFacts(node, facts.values), TOKEN)
    assert changes[0].name == "join token" and changes[0].before == "set (***), differs"
