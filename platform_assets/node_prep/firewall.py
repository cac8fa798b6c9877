"""The nodes' firewall: an nftables table of our own, loaded by a oneshot unit at boot."""

from platform_assets.core.commands import cmd
from platform_assets.core.facts import NodeFacts
from platform_assets.core.plan import MANAGED, Change, plan_file
from platform_assets.inventory import Inventory
from platform_assets.node_prep.facts import FIREWALL_FILE, FIREWALL_UNIT, FIREWALL_UNIT_FILE


def desired_firewall(inv: Inventory) -> str:
    """An nftables table of our own (K3s keeps its rules in its tables; nothing is flushed).

    It filters in prerouting, before kube-proxy's DNAT, so that NodePorts and MetalLB addresses
    are covered too: SSH, the web ports and the API only from the LAN (plus the pods and the
    inventory's `trusted_cidrs`); NodePorts, etcd (its metrics on 2381 included: K3s's
    etcd-expose-metrics serves them unauthenticated), the kubelet and flannel only from the nodes
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
\t\ttcp dport {{ 2379, 2380, 2381, 10250 }} ip saddr != @cluster drop
\t\tudp dport 8472 ip saddr != @cluster drop
\t\tmeta nfproto ipv6 tcp dport {{ 22, 80, 443, 6443, 2379, 2380, 2381, 10250 }} drop
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
ExecStart=/usr/sbin/nft -f {FIREWALL_FILE}
ExecStop=/usr/sbin/nft delete table inet picluster

[Install]
WantedBy=multi-user.target
"""


def plan_firewall(inv: Inventory, facts: NodeFacts) -> list[Change]:
    changes = plan_file(
        "firewall rules", FIREWALL_FILE, facts["firewall_file"], desired_firewall(inv)
    )
    unit = plan_file(
        "firewall service",
        FIREWALL_UNIT_FILE,
        facts["firewall_unit_file"],
        desired_firewall_unit(),
        then=[cmd("systemctl", "daemon-reload")],
    )
    changes += unit
    if facts["firewall_enabled"] != "enabled":
        changes.append(
            Change(
                "firewall at boot",
                f"{FIREWALL_UNIT}: {facts['firewall_enabled'] or 'absent'}",
                "enabled",
                (cmd("systemctl", "enable", FIREWALL_UNIT),),
            )
        )
    if changes or facts["firewall_active"] != "active":
        changes.append(
            Change(
                "firewall loaded",
                f"{FIREWALL_UNIT}: {facts['firewall_active'] or 'unknown'}",
                "active with the current rules",
                (cmd("systemctl", "restart", FIREWALL_UNIT),),
            )
        )
    return changes
