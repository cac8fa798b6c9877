"""The inventory refuses plans that cannot work, naming the file, the field and the reason."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import (
    InventoryError,
    json_schema,
    load_inventory,
    parse_inventory,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"


def example() -> dict:
    return yaml.safe_load(EXAMPLE.read_text())


def test_example_inventory_is_the_platform_plan():
    inv = load_inventory(EXAMPLE)
    assert inv.server.address == "192.168.0.120"
    assert [n.address for n in inv.agents] == ["192.168.0.121", "192.168.0.122", "192.168.0.123"]
    assert (inv.network.metallb_pool.start, inv.network.metallb_pool.end) == (
        "192.168.0.200",
        "192.168.0.250",
    )
    assert inv.k3s.cluster_init and inv.k3s.version == "v1.34.4+k3s1"
    # Relative and ~ paths become absolute.
    assert Path(inv.ssh.known_hosts_path).is_absolute()


def test_schema_file_is_generated_from_the_model():
    on_disk = json.loads((ROOT / "inventory.schema.json").read_text())
    assert on_disk == json_schema(), "run: python -m platform_assets.inventory --schema"


def _set(data: dict, path: str, value):
    keys = path.split(".")
    target = data
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    last = keys[-1]
    if value is _DELETE:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


_DELETE = object()

BROKEN = [
    # (id, edits, expected field path, words of the reason)
    (
        "bad address",
        {"nodes.2.address": "192.168.0.300"},
        "nodes[2].address",
        "192.168.0.300 is not an IPv4 address",
    ),
    (
        "address outside LAN",
        {"nodes.1.address": "10.0.0.5"},
        "nodes[1].address",
        "outside network.subnet",
    ),
    ("broadcast address", {"nodes.1.address": "192.168.0.255"}, "nodes[1].address", "broadcast"),
    (
        "duplicate address",
        {"nodes.3.address": "192.168.0.121"},
        "nodes[3].address",
        "already used by nodes[1] (pi-agent-1)",
    ),
    ("duplicate name", {"nodes.3.name": "pi-agent-1"}, "nodes[3].name", "already used"),
    ("bad host name", {"nodes.0.name": "Pi_Server"}, "nodes[0].name", "not a valid host name"),
    ("node is the gateway", {"nodes.3.address": "192.168.0.1"}, "nodes[3].address", "gateway"),
    ("no server", {"nodes.0.role": "agent"}, "nodes", "no node has role 'server'"),
    ("two servers", {"nodes.1.role": "server"}, "nodes", "2 nodes have role 'server'"),
    ("unknown role", {"nodes.1.role": "master"}, "nodes[1].role", "'master' is not allowed"),
    ("no nodes", {"nodes": []}, "nodes", "at least 1"),
    ("typo in key", {"nodes.0.adress": "192.168.0.9"}, "nodes[0].adress", "unknown key"),
    ("missing field", {"nodes.0.ssh_user": _DELETE}, "nodes[0].ssh_user", "is required"),
    ("ssh port", {"nodes.0.ssh_port": 70000}, "nodes[0].ssh_port", "less than or equal"),
    (
        "bad label",
        {"nodes.0.labels": {"bad key!": "x"}},
        "nodes[0].labels.bad key!",
        "not a valid Kubernetes label key",
    ),
    (
        "gateway outside",
        {"network.gateway": "192.168.1.1"},
        "network.gateway",
        "outside network.subnet",
    ),
    (
        "subnet host bits",
        {"network.subnet": "192.168.0.1/24"},
        "network.subnet",
        "did you mean 192.168.0.0/24",
    ),
    (
        "subnet no prefix",
        {"network.subnet": "192.168.0.0"},
        "network.subnet",
        "needs a prefix length",
    ),
    (
        "pool reversed",
        {"network.metallb_pool": {"start": "192.168.0.250", "end": "192.168.0.200"}},
        "network.metallb_pool",
        "after end",
    ),
    (
        "pool outside LAN",
        {"network.metallb_pool.end": "192.168.1.10"},
        "network.metallb_pool.end",
        "outside network.subnet",
    ),
    (
        "pool holds a node",
        {"network.metallb_pool.start": "192.168.0.100"},
        "nodes[0].address",
        "inside network.metallb_pool",
    ),
    (
        "pool holds the gateway",
        {"network.metallb_pool": {"start": "192.168.0.1", "end": "192.168.0.50"}},
        "network.metallb_pool",
        "contains the gateway",
    ),
    (
        "pod network on the LAN",
        {"network.pod_cidr": "192.168.0.0/16"},
        "network.pod_cidr",
        "overlaps network.subnet",
    ),
    (
        "service network on pods",
        {"network.service_cidr": "10.42.128.0/17"},
        "network.service_cidr",
        "overlaps network.pod_cidr",
    ),
    (
        "seed pod network too small",
        {"network.pod_cidr": "10.0.2.0/24", "network.service_cidr": "10.0.3.0/24"},
        "network.pod_cidr",
        "holds 1 node /24 networks but the inventory has 4 nodes",
    ),
    (
        "pod network smaller than a node",
        {"network.pod_cidr": "10.42.0.0/25"},
        "network.pod_cidr",
        "smaller than the /24 K3s gives each node",
    ),
    (
        "service network too big",
        {"network.service_cidr": "10.0.0.0/8", "network.pod_cidr": "172.16.0.0/16"},
        "network.service_cidr",
        "larger than Kubernetes allows",
    ),
    ("loopback pods", {"network.pod_cidr": "127.16.0.0/16"}, "network.pod_cidr", "loopback"),
    (
        "dns not an address",
        {"network.dns": ["dns.example"]},
        "network.dns[0]",
        "not an IPv4 address",
    ),
    ("no dns", {"network.dns": []}, "network.dns", "at least 1"),
    ("unpinned version", {"k3s.version": "latest"}, "k3s.version", "not a pinned K3s release"),
    (
        "token in the inventory",
        {"k3s.token_env": "K10abc::server:secret"},
        "k3s.token_env",
        "never the token itself",
    ),
    ("no embedded etcd", {"k3s.cluster_init": False}, "k3s.cluster_init", "etcd snapshots"),
    (
        "servicelb with MetalLB",
        {"k3s.disable": ["traefik"]},
        "k3s.disable",
        "must contain 'servicelb'",
    ),
    (
        "unknown component",
        {"k3s.disable": ["servicelb", "treafik"]},
        "k3s.disable[1]",
        "not a K3s packaged component",
    ),
    ("relative data dir", {"k3s.data_dir": "var/lib/k3s"}, "k3s.data_dir", "absolute"),
    ("zero parallel", {"ssh.max_parallel": 0}, "ssh.max_parallel", "greater than or equal"),
]


@pytest.mark.parametrize(
    ("edits", "path", "reason"), [b[1:] for b in BROKEN], ids=[b[0] for b in BROKEN]
)
def test_broken_inventory_is_refused_naming_field_and_reason(tmp_path, edits, path, reason):
    data = example()
    for key, value in edits.items():
        _set(data, key, value if value is _DELETE else copy.deepcopy(value))
    file = tmp_path / "inventory.yaml"
    file.write_text(yaml.safe_dump(data))
    with pytest.raises(InventoryError) as caught:
        load_inventory(file)
    lines = str(caught.value).splitlines()
    assert any(line.startswith(f"inventory.yaml: {path}: ") and reason in line for line in lines), (
        lines
    )


def test_every_problem_is_reported_at_once():
    data = example()
    data["nodes"][2]["address"] = "192.168.0.300"
    data["network"]["pod_cidr"] = "192.168.0.0/16"
    with pytest.raises(InventoryError) as caught:
        parse_inventory(data)
    # Type errors stop before the plan checks (they need valid values): one problem here.
    assert len(caught.value.problems) == 1
    data["nodes"][2]["address"] = "192.168.0.122"
    data["nodes"][1]["role"] = "server"
    with pytest.raises(InventoryError) as caught:
        parse_inventory(data)
    paths = {p for p, _ in caught.value.problems}
    # The DNS server 192.168.0.1 now sits inside the pod network too.
    assert paths == {"nodes", "network.pod_cidr", "network.dns[0]"}


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(InventoryError, match="missing.yaml: file not found"):
        load_inventory(tmp_path / "missing.yaml")
    bad = tmp_path / "inventory.yaml"
    bad.write_text("nodes: [\n  - name: a\n")
    with pytest.raises(InventoryError, match=r"inventory.yaml: line \d+, column \d+: not valid"):
        load_inventory(bad)
    bad.write_text(
        EXAMPLE.read_text().replace(
            "    address: 192.168.0.121\n", "    address: 192.168.0.121\n    address: 192.168.0.9\n"
        )
    )
    with pytest.raises(
        InventoryError,
        match=r"inventory.yaml: line 15, column 5: not valid YAML: "
        r"key 'address' appears twice",
    ):
        load_inventory(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(InventoryError, match="expected a mapping"):
        load_inventory(bad)
