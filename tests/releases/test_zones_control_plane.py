"""The zones' Namespaces and every NetworkPolicy against the real API server: admitted with
strict field validation, and stored as sent (nothing pruned or defaulted away). No CNI runs
there, so whether packets are dropped is the table test's evaluator's business (test_zones.py)
and, on the Pis, K3s's network policy controller's."""

from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import zones

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())
INV = parse_inventory({**EXAMPLE, "nifi": True}, "inventory.yaml")
MANAGER = "piclusterops-tests"


def test_every_network_policy_is_admitted_as_rendered(kube_control_plane):
    kube = kube_control_plane.resource()
    for namespace in zones.namespace_manifests(INV):
        kube.apply(namespace, field_manager=MANAGER)
    policies = zones.network_policies(INV)
    assert len(policies) > 3 * len(zones.namespaces(INV))
    for policy in policies:
        answered = kube.apply(policy, field_manager=MANAGER, dry_run=True)
        assert answered["spec"] == policy["spec"], policy["metadata"]
    # A mistyped field is refused, not dropped: the acceptance above means something.
    broken = {**policies[0], "spec": {**policies[0]["spec"], "podSelectr": {}}}
    with pytest.raises(Exception, match="podSelectr"):
        kube.apply(broken, field_manager=MANAGER, dry_run=True)
