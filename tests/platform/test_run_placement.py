"""Per-run placement: an infrastructure run for node X is never placed on X (pure rules; the
real scheduler's answer is the control-plane test's)."""

import json

import pytest

from platform_assets.inventory import load_inventory
from platform_assets.releases.dagster import INFRASTRUCTURE_TAG
from platform_assets.run_placement import (
    K8S_CONFIG_TAG,
    disruption_order,
    off_nodes_affinity,
    run_tags,
)
from resources.settings import PROJECT_ROOT


def test_an_infrastructure_run_for_a_node_is_kept_off_it():
    tags = run_tags(["pi-agent-2"])
    assert tags[INFRASTRUCTURE_TAG] == "true"
    config = json.loads(tags[K8S_CONFIG_TAG])
    (term,) = config["pod_spec_config"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["pi-agent-2"]}
    ]


def test_a_run_names_the_nodes_it_touches():
    with pytest.raises(ValueError, match="names the nodes"):
        run_tags([])
    assert off_nodes_affinity([]) == {}


def test_the_node_hosting_dagster_is_disrupted_last():
    inv = load_inventory(PROJECT_ROOT / "inventory.example.yaml")
    labels = {n.name: n.labels for n in inv.nodes}
    names = [n.name for n in inv.nodes]  # pi-agent-3 hosts Dagster in the example
    order = disruption_order(["pi-agent-3", *names], labels)
    assert order == ["pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3"]
