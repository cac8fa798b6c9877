"""K3s's facts: the installed release, its config and unit (secrets masked on the node), whether
the token file holds the wanted token (compared on the node), the service's state."""

import re

from platform_assets.core.facts import Fact, parse_first_line, parse_text, unit_state_fact
from platform_assets.preflight.facts import CGROUP_CONTROLLERS

K3S_CONFIG = "/etc/rancher/k3s/config.yaml"
K3S_TOKEN_FILE = "/etc/rancher/k3s/cluster-token"  # noqa: S105 (a path, not a secret)
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
K3S_BINARY = "/usr/local/bin/k3s"
K3S_DOWNLOADS = "/usr/local/lib/picluster/k3s"


def parse_k3s_version(text: str) -> str | None:
    match = re.search(r"k3s version (v\S+)", text)
    return match.group(1) if match else None


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


def masked_cat_fact(name: str, path: str, sudo: bool = False) -> Fact:
    """Like `cat`, with the values of secret-looking settings replaced by `***` on the node."""
    argv = ["sed", "-E"]
    for expression in MASK_SECRETS:
        argv += ["-e", expression]
    return Fact(name, (*argv, path), parse_text, sudo)


# K3s writes the server token here when it creates the cluster's datastore (server/db): from
# then on the datastore is encrypted with that token, and K3s refuses to start with another.
_DATASTORE_CHECK = (
    'if [ -e "$1/server/token" ] || [ -e "$1/server/db" ]; then echo exists; else echo absent; fi'
)


def datastore_fact(data_dir: str) -> Fact:
    """Whether this server's K3s datastore exists: "exists" or "absent"."""
    argv = ("sh", "-c", _DATASTORE_CHECK, "picluster-datastore-check", data_dir)
    return Fact("k3s_datastore", argv, parse_first_line, sudo=True)


def k3s_version_fact() -> Fact:
    """The installed K3s release (`None`: not installed)."""
    return Fact("k3s_version", ("k3s", "--version"), parse_k3s_version)


def k3s_facts(
    service: str, token: str | None = None, data_dir: str | None = None
) -> tuple[Fact, ...]:
    """K3s's facts on one node; with `data_dir` (servers) also whether its datastore exists."""
    return (
        k3s_version_fact(),
        masked_cat_fact("k3s_config", K3S_CONFIG, sudo=True),
        token_file_fact("k3s_token_file", K3S_TOKEN_FILE, token),
        unit_state_fact("k3s_active", "is-active", service),
        unit_state_fact("k3s_enabled", "is-enabled", service),
        masked_cat_fact("k3s_unit_file", f"/etc/systemd/system/{service}"),
        CGROUP_CONTROLLERS,
        *((datastore_fact(data_dir),) if data_dir else ()),
    )
