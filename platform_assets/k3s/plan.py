"""K3s's plan: token file, config file, the pinned release (checksum-verified), the unit and a
running service on one node."""

import ipaddress

import yaml

from platform_assets.core.commands import Command, cmd, write_file
from platform_assets.core.facts import NodeFacts
from platform_assets.core.plan import MANAGED, Change, PlanError, plan_file
from platform_assets.inventory import Inventory, Node
from platform_assets.k3s.facts import (
    K3S_BINARY,
    K3S_CONFIG,
    K3S_DOWNLOADS,
    K3S_TOKEN_FILE,
)
from platform_assets.node_prep.facts import FIREWALL_UNIT
from platform_assets.releases.access_settings import KUBE_API_PREFIX, AccessSettings

# The arm64 binary is about 70 MB: ten minutes is 1 Mbit/s. --retry 3 may run it four times.
K3S_DOWNLOAD_MAX_S = 600
K3S_RELEASE_URL = "https://github.com/k3s-io/k3s/releases/download/{version}/{name}"


def server_url(inv: Inventory) -> str:
    return f"https://{inv.server.address}:6443"


def cluster_dns(inv: Inventory) -> str:
    return str(ipaddress.IPv4Network(inv.network.service_cidr).network_address + 10)


def api_oidc(access: AccessSettings | None) -> AccessSettings | None:
    """The provider the API server trusts for people's logins, or None: with no provider chosen
    (PICLUSTER_OIDC_ISSUER_URL unset, as in the local profile and CI) the API is not pointed at
    the example issuer the releases plan with, and only certificates (the admin kubeconfig) log
    in."""
    return access if access is not None and access.provider_chosen else None


def kube_apiserver_oidc_args(access: AccessSettings) -> list[str]:
    """kube-apiserver's OIDC flags (without `--`), as K3s's `kube-apiserver-arg` takes them.
    Users and groups get KUBE_API_PREFIX, so the roles' bindings name `oidc:<group>` and no
    provider group can be one of the API's own `system:` groups. The audience is kubectl's own
    client, not the gateways'. The provider's certificate is checked against the server's
    system roots (no `oidc-ca-file`)."""
    return [
        f"oidc-issuer-url={access.issuer_url}",
        f"oidc-client-id={access.kubectl_client_id}",
        f"oidc-username-claim={access.username_claim}",
        f"oidc-username-prefix={KUBE_API_PREFIX}",
        f"oidc-groups-claim={access.groups_claim}",
        f"oidc-groups-prefix={KUBE_API_PREFIX}",
    ]


def desired_k3s_config(inv: Inventory, node: Node, access: AccessSettings | None = None) -> str:
    """/etc/rancher/k3s/config.yaml. The token is in its own 0600 file, never in this one.
    `access`: the OIDC provider; the server's API trusts it when one was chosen (api_oidc)."""
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
            # etcd's metrics on the node address's 2381 (not only 127.0.0.1), where the
            # monitoring release scrapes them for the slow-fsync alert (the inventory's
            # checks require embedded etcd).
            "etcd-expose-metrics": True,
        }
        provider = api_oidc(access)
        if provider is not None:
            config["kube-apiserver-arg"] = kube_apiserver_oidc_args(provider)
    else:
        config["server"] = server_url(inv)
    config |= {
        "token-file": K3S_TOKEN_FILE,
        "node-name": node.name,
        "node-ip": node.address,
        "data-dir": inv.k3s.data_dir,
    }
    if node.labels:
        config["node-label"] = [f"{k}={v}" for k, v in sorted(node.labels.items())]
    return MANAGED + "\n" + yaml.safe_dump(config, sort_keys=False, default_flow_style=False)


def k3s_service(node: Node) -> str:
    return "k3s.service" if node.role == "server" else "k3s-agent.service"


def plan_k3s(
    inv: Inventory,
    node_name: str,
    facts: NodeFacts,
    token: str | None,
    access: AccessSettings | None = None,
) -> list[Change]:
    """Token file, config file, the pinned K3s release and a running service on one node.
    `access`: as for desired_k3s_config.

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
    if token_differs and present and node.role == "server" and facts["k3s_datastore"] == "exists":
        raise PlanError(
            f"{node.name}: the join token in {inv.k3s.token_env} is not the token this server's "
            f"cluster was created with, and K3s refuses to start with another token once its "
            f"datastore exists ({inv.k3s.data_dir}/server), so the token file is not rewritten. "
            "To change the token, rotate it on the server: `sudo k3s token rotate --token "
            "<current> --new-token <new>` (docs.k3s.io/cli/token), restart K3s on every node, "
            f"then set {inv.k3s.token_env} to the new token; otherwise set {inv.k3s.token_env} "
            "back to the cluster's current token"
        )
    if token_differs:
        changes.append(
            Change(
                "join token",
                "set (***), differs" if present else "absent",
                "set (***)",
                (write_file(K3S_TOKEN_FILE, (token or "") + "\n", "0600"),),
            )
        )
    config = desired_k3s_config(inv, node, access)
    changes += plan_file("K3s config", K3S_CONFIG, facts["k3s_config"], config, "0600")
    unit = plan_file(
        f"{service} unit",
        f"/etc/systemd/system/{service}",
        facts["k3s_unit_file"],
        desired_k3s_unit(node),
        then=[cmd("systemctl", "daemon-reload")],
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
                (cmd("systemctl", "enable", service),),
            )
        )
    if changes or facts["k3s_active"] != "active":
        changes.append(
            Change(
                f"{service} running",
                facts["k3s_active"] or "unknown",
                "active with the current config and release",
                (cmd("systemctl", "restart", service),),
            )
        )
    return changes


def install_k3s_commands(version: str) -> tuple[Command, ...]:
    """The pinned arm64 binary from the K3s GitHub release, checked against the release's own
    sha256sum file before it is installed (a mismatch stops the apply)."""
    tag = version.replace("+", "%2B")
    folder = f"{K3S_DOWNLOADS}/{version}"
    fetch = [
        cmd(
            "curl", "-sfL", "--retry", "3", "--connect-timeout", "30",
            "--max-time", str(K3S_DOWNLOAD_MAX_S), "-o", f"{folder}/{name}",
            K3S_RELEASE_URL.format(version=tag, name=name),
            # curl's own limit first, so its error says what happened; ours is the backstop.
            timeout_s=K3S_DOWNLOAD_MAX_S * 4 + 60,
        )
        for name in ("k3s-arm64", "sha256sum-arm64.txt")
    ]  # fmt: skip
    verify = cmd(
        "sh", "-c", 'cd "$1" && grep " k3s-arm64$" sha256sum-arm64.txt | sha256sum -c -',
        "picluster-k3s-verify", folder,
    )  # fmt: skip
    install = cmd("install", "-m", "0755", f"{folder}/k3s-arm64", K3S_BINARY)
    return (cmd("install", "-d", "-m", "0755", folder), *fetch, verify, install)


def desired_k3s_unit(node: Node) -> str:
    """The systemd unit (the shape of the one K3s's installer writes); config from config.yaml."""
    kind = "server" if node.role == "server" else "agent"
    return f"""{MANAGED}
[Unit]
Description=Lightweight Kubernetes ({kind})
Documentation=https://k3s.io
Wants=network-online.target
After=network-online.target {FIREWALL_UNIT}

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
ExecStart={K3S_BINARY} {kind}

[Install]
WantedBy=multi-user.target
"""
