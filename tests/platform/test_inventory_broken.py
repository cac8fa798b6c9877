"""Broken inventories, as users write them: each is refused before anything runs, one line per
problem naming the file, the field and the reason, with no secret repeated.

The cases are tables: edits to `inventory.example.yaml`, or the raw bytes of a file.
"""

import copy
from pathlib import Path

import pytest
import yaml

import platform_assets
from platform_assets.inventory import InventoryError, load_inventory, main
from resources.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TEXT = (ROOT / "inventory.example.yaml").read_text()
DELETE = object()
TOKEN = "K10f3a9c1d2e4b5a6978812ab34cd56ef7890abcdef1234567890abcdef12345678::server:s3cr3tpass"


def _edited(edits: dict) -> dict:
    data = yaml.safe_load(EXAMPLE_TEXT)
    for dotted, value in edits.items():
        *parents, last = [int(k) if k.isdigit() else k for k in dotted.split(".")]
        target = data
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = copy.deepcopy(value)
    return data


def _refusal(file: Path) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_inventory(file)
    return str(caught.value).splitlines()


def _assert_line(lines: list[str], path: str, reason: str) -> None:
    prefix = f"inventory.yaml: {path}: " if path else "inventory.yaml: "
    assert any(line.startswith(prefix) and reason in line for line in lines), lines
    assert not any("Traceback" in line for line in lines)


# (id, edits, field path, words of the reason)
EDITS = [
    # addresses
    (
        "leading zeros",
        {"nodes.0.address": "192.168.000.120"},
        "nodes[0].address",
        "leading zeros are ambiguous",
    ),
    (
        "address with a port",
        {"nodes.0.address": "192.168.0.120:22"},
        "nodes[0].address",
        "without a port",
    ),
    (
        "address with a prefix",
        {"nodes.0.address": "192.168.0.120/24"},
        "nodes[0].address",
        "without a prefix length",
    ),
    ("IPv6 address", {"nodes.0.address": "fd00::120"}, "nodes[0].address", "not an IPv4"),
    ("host name as address", {"nodes.0.address": "pi.local"}, "nodes[0].address", "not an IPv4"),
    (
        "address with a space",
        {"nodes.0.address": " 192.168.0.120"},
        "nodes[0].address",
        "' 192.168.0.120' is not an IPv4 address",
    ),
    ("0.0.0.0", {"nodes.0.address": "0.0.0.0"}, "nodes[0].address", "outside network.subnet"),
    (
        "255.255.255.255",
        {"nodes.0.address": "255.255.255.255"},
        "nodes[0].address",
        "outside network.subnet",
    ),
    (
        "network address",
        {"nodes.0.address": "192.168.0.0"},
        "nodes[0].address",
        "network or broadcast",
    ),
    (
        "address as a number",
        {"nodes.0.address": 3232235640},
        "nodes[0].address",
        "put it in quotes",
    ),
    # networks
    (
        "netmask form",
        {"network.subnet": "192.168.0.0/255.255.255.0"},
        "network.subnet",
        "did you mean 192.168.0.0/24",
    ),
    (
        "zero-padded prefix",
        {"network.pod_cidr": "10.42.0.0/016"},
        "network.pod_cidr",
        "did you mean 10.42.0.0/16",
    ),
    (
        "service network with host bits",
        {"network.service_cidr": "10.43.0.1/16"},
        "network.service_cidr",
        "did you mean 10.43.0.0/16",
    ),
    (
        "service network on the pods",
        {"network.service_cidr": "10.42.0.0/16"},
        "network.service_cidr",
        "overlaps network.pod_cidr",
    ),
    (
        "pods on the LAN and pool",
        {"network.pod_cidr": "192.168.0.0/22"},
        "network.pod_cidr",
        "overlaps network.subnet",
    ),
    (
        "pod network for 2 nodes",
        {"network.pod_cidr": "10.42.0.0/23"},
        "network.pod_cidr",
        "holds 2 node /24 networks but the inventory has 4 nodes",
    ),
    (
        "pool as CIDR",
        {"network.metallb_pool": "192.168.0.192/26"},
        "network.metallb_pool",
        "expected a mapping",
    ),
    (
        "pool holds DNS",
        {"network.dns": ["192.168.0.210"]},
        "network.dns[0]",
        "inside network.metallb_pool",
    ),
    (
        "pool holds broadcast",
        {"network.metallb_pool.end": "192.168.0.255"},
        "network.metallb_pool.end",
        "broadcast",
    ),
    (
        "gateway is the network address",
        {"network.gateway": "192.168.0.0"},
        "network.gateway",
        "network or broadcast",
    ),
    ("DNS as a string", {"network.dns": "1.1.1.1"}, "network.dns", "expected a list"),
    (
        "DNS twice",
        {"network.dns": ["1.1.1.1", "1.1.1.1"]},
        "network.dns[1]",
        "already listed as network.dns[0]",
    ),
    ("DNS 0.0.0.0", {"network.dns": ["0.0.0.0"]}, "network.dns[0]", "not the address of a DNS"),
    (
        "DNS on loopback",
        {"network.dns": ["127.0.0.53"]},
        "network.dns[0]",
        "pods cannot reach the node's own resolver",
    ),
    (
        "DNS is the broadcast",
        {"network.dns": ["192.168.0.255"]},
        "network.dns[0]",
        "broadcast",
    ),
    (
        "trusting everyone",
        {"network.trusted_cidrs": ["0.0.0.0/0"]},
        "network.trusted_cidrs[0]",
        "list only the networks you administer from",
    ),
    (
        "trusted twice",
        {"network.trusted_cidrs": ["10.8.0.0/24", "10.8.0.0/24"]},
        "network.trusted_cidrs[1]",
        "already listed",
    ),
    # names and roles
    ("upper-case name", {"nodes.1.name": "PI-SERVER"}, "nodes[1].name", "not a valid host name"),
    ("name with a dot", {"nodes.1.name": "pi.local"}, "nodes[1].name", "not a valid host name"),
    ("name of 64", {"nodes.1.name": "a" * 64}, "nodes[1].name", "not a valid host name"),
    ("name of digits", {"nodes.1.name": "123"}, "nodes[1].name", "only digits"),
    (
        "name with a newline",
        {"nodes.1.name": "pi-agent-1\n"},
        "nodes[1].name",
        "not a valid host name",
    ),
    ("role Server", {"nodes.0.role": "Server"}, "nodes[0].role", "'Server' is not allowed"),
    ("role missing", {"nodes.0.role": DELETE}, "nodes[0].role", "is required"),
    # types: YAML already types numbers and booleans, a quoted one is a mistake
    ("port in quotes", {"nodes.0.ssh_port": "22"}, "nodes[0].ssh_port", "without quotes"),
    ("port as a boolean", {"nodes.0.ssh_port": True}, "nodes[0].ssh_port", "valid integer"),
    ("port 0", {"nodes.0.ssh_port": 0}, "nodes[0].ssh_port", "greater than or equal to 1"),
    (
        "port 65536",
        {"nodes.0.ssh_port": 65536},
        "nodes[0].ssh_port",
        "less than or equal to 65535",
    ),
    ("memory in quotes", {"nodes.0.memory_mib": "8192"}, "nodes[0].memory_mib", "without quotes"),
    ("memory 10^30", {"nodes.0.memory_mib": 10**30}, "nodes[0].memory_mib", "16384"),
    (
        "boolean in quotes",
        {"k3s.cluster_init": "yes"},
        "k3s.cluster_init",
        "true or false without quotes",
    ),
    ("timeout in quotes", {"ssh.connect_timeout_s": "10"}, "ssh.connect_timeout_s", "quotes"),
    ("nodes as mapping", {"nodes": {}}, "nodes", "expected a list"),
    ("nodes null", {"nodes": None}, "nodes", "expected a list"),
    ("network null", {"network": None}, "network", "expected a mapping"),
    # users and labels
    ("root login", {"nodes.0.ssh_user": "root"}, "nodes[0].ssh_user", "passwordless sudo"),
    ("empty user", {"nodes.0.ssh_user": ""}, "nodes[0].ssh_user", "not a valid user name"),
    (
        "label read as a boolean",
        {"nodes.0.labels": {"picluster.io/zone": "control", "picluster.io/storage": True}},
        "nodes[0].labels.picluster.io/storage",
        "put it in quotes",
    ),
    (
        "node-role label",
        {"nodes.1.labels": {"node-role.kubernetes.io/worker": "true"}},
        "nodes[1].labels.node-role.kubernetes.io/worker",
        "the kubelet may not set",
    ),
    (
        "label value of 64",
        {"nodes.1.labels": {"zone": "a" * 64}},
        "nodes[1].labels.zone",
        "not a valid Kubernetes label value",
    ),
    # Time zone (the schedules run at its local time)
    ("timezone not IANA", {"timezone": "CEST"}, "timezone", "not an IANA time zone"),
    ("timezone a path", {"timezone": "../etc/passwd"}, "timezone", "not an IANA time zone"),
    # K3s
    ("version stable", {"k3s.version": "stable"}, "k3s.version", "not a pinned K3s release"),
    ("version v1.33", {"k3s.version": "v1.33"}, "k3s.version", "not a pinned K3s release"),
    ("version without +k3s", {"k3s.version": "v1.33.5"}, "k3s.version", "not a pinned"),
    (
        "version with a newline",
        {"k3s.version": "v1.33.5+k3s1\n"},
        "k3s.version",
        "not a pinned K3s release",
    ),
    ("token_env lower case", {"k3s.token_env": "k3s_token"}, "k3s.token_env", "variable name"),
    ("data dir /", {"k3s.data_dir": "/"}, "k3s.data_dir", "whole root file system"),
    ("data dir on tmpfs", {"k3s.data_dir": "/tmp/k3s"}, "k3s.data_dir", "lost at reboot"),
    ("data dir with ..", {"k3s.data_dir": "/var/lib/../../etc"}, "k3s.data_dir", "write /etc"),
    ("disable as a string", {"k3s.disable": "traefik,servicelb"}, "k3s.disable", "a list"),
    # SSH
    ("key path missing", {"ssh.private_key_path": DELETE}, "ssh.private_key_path", "required"),
    ("empty key path", {"ssh.private_key_path": ""}, "ssh.private_key_path", "not a file path"),
    (
        "key and known_hosts the same",
        {"ssh.known_hosts_path": "~/.ssh/id_ed25519"},
        "ssh.known_hosts_path",
        "same file",
    ),
    # unknown keys at every level
    ("top-level typo", {"network_plan": {}}, "network_plan", "unknown key"),
    ("pool typo", {"network.metallb_pool.stop": "192.168.0.9"}, "network.metallb_pool.stop", ""),
    ("k3s typo", {"k3s.verison": "v1.33.5+k3s1"}, "k3s.verison", "unknown key"),
    ("ssh typo", {"ssh.key": "~/.ssh/id"}, "ssh.key", "unknown key"),
    # the old hand-written memory plan (the releases' limits replaced it)
    ("workloads list", {"workloads": []}, "workloads", "capacity_plan"),
]


@pytest.mark.parametrize(
    ("edits", "path", "reason"), [c[1:] for c in EDITS], ids=[c[0] for c in EDITS]
)
def test_broken_field_is_refused_naming_it(tmp_path, edits, path, reason):
    file = tmp_path / "inventory.yaml"
    file.write_text(yaml.safe_dump(_edited(edits)))
    _assert_line(_refusal(file), path, reason)


_NESTED = "nodes: " + "[" * 20000 + "]" * 20000 + "\n"
_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(8)
)

# (id, file bytes, field path or location, words of the reason)
FILES = [
    ("empty file", b"", "", "expected a mapping"),
    ("only a comment", b"# nothing yet\n", "", "expected a mapping"),
    ("a scalar", b"hello\n", "", "expected a mapping"),
    ("a list", b"- nodes\n", "", "expected a mapping"),
    (
        "a tab",
        EXAMPLE_TEXT.replace("    role: agent", "\trole: agent", 1).encode(),
        "line 15, column 1",
        "found character '\\t'",
    ),
    (
        "an unclosed bracket",
        EXAMPLE_TEXT.replace("role: agent", "role: [agent", 1).encode(),
        "line 16, column 13",
        "not valid YAML",
    ),
    ("Latin-1", "# Café\n".encode("latin-1") + EXAMPLE_TEXT.encode(), "line 1", "not UTF-8"),
    ("UTF-16", EXAMPLE_TEXT.encode("utf-16"), "line 1", "not UTF-8"),
    (
        "a NUL byte",
        EXAMPLE_TEXT.replace("role: agent", "role: ag\0ent", 1).encode(),
        "line 15, column 13",
        "#x0000 is not allowed",
    ),
    ("nested 20000 deep", _NESTED.encode(), "", "nested too deeply"),
    ("alias bomb", _LAUGHS.encode(), "", "once YAML aliases are expanded"),
    ("2 MB", EXAMPLE_TEXT.encode() + b"#" + b"x" * 2_000_000 + b"\n", "", "larger than"),
    ("a list as a key", b"? [a, b]\n: c\n", "line 1, column 3", "a key must be a plain value"),
    ("a number as a key", EXAMPLE_TEXT.encode() + b"1: x\n", "", "key 1 must be text"),
    (
        "two documents",
        EXAMPLE_TEXT.encode() + b"---\nx: 1\n",
        f"line {len(EXAMPLE_TEXT.splitlines()) + 1}, column 1",
        "a single document",
    ),
    (
        "a Python tag",
        EXAMPLE_TEXT.replace("role: agent", "role: !!python/name:os.system", 1).encode(),
        "line 15, column 11",
        "could not determine a constructor",
    ),
]


@pytest.mark.parametrize(
    ("raw", "path", "reason"), [c[1:] for c in FILES], ids=[c[0] for c in FILES]
)
def test_broken_file_is_refused_with_its_location(tmp_path, raw, path, reason):
    file = tmp_path / "inventory.yaml"
    file.write_bytes(raw)
    _assert_line(_refusal(file), path, reason)


def test_a_directory_is_refused_naming_it(tmp_path):
    folder = tmp_path / "inventory.yaml"
    folder.mkdir()
    with pytest.raises(InventoryError, match=r"inventory.yaml: cannot be read: Is a directory"):
        load_inventory(folder)


SECRETS = [
    ("token in token_env", {"k3s.token_env": TOKEN}, TOKEN),
    ("hex token in token_env", {"k3s.token_env": "a3f5" * 16}, "a3f5" * 16),
    ("upper-case hex token", {"k3s.token_env": "DEADBEEF" * 8}, "DEADBEEF" * 8),
    ("token under a wrong key", {"k3s.token": TOKEN}, TOKEN),
    ("token as a number", {"k3s.token_env": 12345678901234567890}, "12345678901234567890"),
    (
        "a pasted private key",
        {"ssh.private_key_path": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n"},
        "b3BlbnNzaC1rZXk",
    ),
]


@pytest.mark.parametrize(("edits", "secret"), [c[1:] for c in SECRETS], ids=[c[0] for c in SECRETS])
def test_a_secret_in_the_file_is_refused_and_never_repeated(tmp_path, edits, secret):
    file = tmp_path / "inventory.yaml"
    file.write_text(yaml.safe_dump(_edited(edits)))
    lines = _refusal(file)
    field = next(iter(edits))
    assert any(line.startswith(f"inventory.yaml: {field}: ") for line in lines), lines
    assert not any(secret in line for line in lines), lines


def test_a_pasted_token_stops_the_code_location_without_showing_it(tmp_path):
    file = tmp_path / "inventory.yaml"
    file.write_text(yaml.safe_dump(_edited({"k3s.token_env": TOKEN})))
    settings = load_settings({"PICLUSTER_HOME": str(tmp_path), "PICLUSTER_INVENTORY": str(file)})
    with pytest.raises(InventoryError, match=r"k3s.token_env: looks like a join token") as caught:
        platform_assets.build_defs(settings)
    assert "s3cr3tpass" not in str(caught.value)


def test_every_plan_problem_is_its_own_line(tmp_path):
    file = tmp_path / "inventory.yaml"
    edits = {
        "nodes.0.ssh_user": "root",
        "nodes.1.labels": {"node-role.kubernetes.io/worker": "true"},
        "network.dns": ["127.0.0.53"],
        "network.trusted_cidrs": ["0.0.0.0/0"],
        "k3s.disable": ["traefik"],
    }
    file.write_text(yaml.safe_dump(_edited(edits)))
    lines = _refusal(file)
    paths = [line.split(": ")[1] for line in lines]
    assert set(paths) >= {
        "nodes[0].ssh_user",
        "network.dns[0]",
        "network.trusted_cidrs[0]",
        "k3s.disable",
    }, lines
    assert all(line.startswith("inventory.yaml: ") for line in lines)


# What the platform accepts on purpose (docs/platform.md says why).
ACCEPTED = [
    # MetalLB takes a range of one address: a single LoadBalancer service.
    (
        "pool of one address",
        {"network.metallb_pool": {"start": "192.168.0.200", "end": "192.168.0.200"}},
    ),
    # The largest service network Kubernetes allows.
    ("service network /12", {"network.service_cidr": "10.96.0.0/12"}),
    # A resolver on one of the nodes (e.g. a Pi-hole).
    ("DNS on a node", {"network.dns": ["192.168.0.121"]}),
]


@pytest.mark.parametrize("edits", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_plans_that_work_are_accepted(tmp_path, edits):
    file = tmp_path / "inventory.yaml"
    file.write_text(yaml.safe_dump(_edited(edits)))
    load_inventory(file)


def test_a_single_server_without_agents_is_a_cluster(tmp_path):
    data = _edited({})
    data["nodes"] = data["nodes"][:1]
    file = tmp_path / "inventory.yaml"
    file.write_text(yaml.safe_dump(data))
    inv = load_inventory(file)
    assert inv.server.name == "pi-server" and inv.agents == []


def test_yaml_merge_keys_and_a_bom_are_fine_and_paths_follow_the_file(tmp_path):
    text = EXAMPLE_TEXT.replace(
        "  - name: pi-agent-1\n    address: 192.168.0.121\n    role: agent\n    ssh_user: pi\n",
        "  - &agent\n    name: pi-agent-1\n    address: 192.168.0.121\n    role: agent\n"
        "    ssh_user: pi\n",
    ).replace(
        "  - name: pi-agent-2\n    address: 192.168.0.122\n    role: agent\n    ssh_user: pi\n",
        "  - <<: *agent\n    name: pi-agent-2\n    address: 192.168.0.122\n",
    )
    text = text.replace("private_key_path: ~/.ssh/id_ed25519", "private_key_path: keys/id")
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "inventory.yaml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    inv = load_inventory(folder / "inventory.yaml")
    agent_2 = inv.node("pi-agent-2")
    assert (agent_2.address, agent_2.role, agent_2.ssh_user) == ("192.168.0.122", "agent", "pi")
    # Keys written next to the merge override the merged ones.
    assert agent_2.labels["picluster.io/trino"] == "worker"
    assert inv.ssh.private_key_path == str((folder / "keys" / "id").resolve())


def test_the_command_checks_every_file_and_fails_on_any(tmp_path, capsys):
    bad = tmp_path / "inventory.yaml"
    bad.write_text(yaml.safe_dump(_edited({"nodes.0.ssh_port": "22"})))
    assert main([str(ROOT / "inventory.example.yaml"), str(bad)]) == 1
    out, err = capsys.readouterr()
    assert "ok (4 nodes)" in out
    assert (
        err.strip()
        == "inventory.yaml: nodes[0].ssh_port: must be a number without quotes (got '22')"
    )
    assert main([]) == 2
