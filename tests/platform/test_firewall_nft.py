"""The firewall node prep writes is real nftables: loaded twice (apply, then re-apply) by the
real `nft` inside a private network namespace, so the machine's own netfilter is never touched.

Needs root and the Debian package `nftables` (installed by .ci/run).
"""

import shutil
import subprocess
from pathlib import Path

import pytest

from platform_assets.inventory import load_inventory
from platform_assets.node_prep.firewall import desired_firewall

ROOT = Path(__file__).resolve().parents[2]


def test_ruleset_loads_and_reloads_in_a_private_netns(tmp_path):
    nft = shutil.which("nft") or "/usr/sbin/nft"
    if not Path(nft).exists():
        pytest.fail("nft not found: install the Debian package nftables")
    rules = tmp_path / "firewall.nft"
    rules.write_text(desired_firewall(load_inventory(ROOT / "inventory.example.yaml")))
    script = f"{nft} -f {rules} && {nft} -f {rules} && {nft} list table inet picluster"
    proc = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout
    assert listed.count("chain prerouting") == 1  # the second load replaced, not duplicated
    assert "tcp dport { 22, 80, 443, 6443 } ip saddr != @lan drop" in listed
    # etcd's metrics (K3s's etcd-expose-metrics, no authentication) only for nodes and pods.
    assert "tcp dport { 2379, 2380, 2381, 10250 } ip saddr != @cluster drop" in listed
    assert "192.168.0.200-192.168.0.250" in listed
