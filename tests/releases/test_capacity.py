"""The capacity plan, as tables: from the releases' own resources, per node by placement."""

from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import capacity, catalogue

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())


def inventory(edit=None):
    data = yaml.safe_load(yaml.safe_dump(EXAMPLE))
    data.pop("workloads", None)  # the hand-written list the plan replaces
    if edit:
        edit(data)
    return parse_inventory(data, "inventory.yaml")


def plan(inv, planned=False):
    return capacity.capacity_plan(
        inv, catalogue.releases(inv), catalogue.PLANNED if planned else ()
    )


def test_the_example_fits_with_20_percent_free_everywhere():
    p = plan(inventory())
    assert p.fits, p.problems()
    # (node, reserved for OS + K3s, limits placed there)
    # The operators (metallb controller, cert-manager, CloudNativePG: 992 MiB) count on the two
    # nodes labelled for them; the DaemonSets (MetalLB's speaker 192, node_exporter 48,
    # Fluent Bit 96) on every node.
    daemonsets = 192 + 48 + 96
    operators = 1184 - 192
    assert [(n.node, n.reserved_mib, n.limit_mib) for n in p.nodes] == [
        # Dagster's run pods prefer the server: two at a time.
        ("pi-server", 512 + 1600, daemonsets + operators + 2 * 1536),
        # The metastore, Trino's coordinator, and monitoring: Prometheus with its reloader,
        # Alertmanager with its reloader, the operator, kube-state-metrics, the Pushgateway.
        ("pi-agent-1", 512 + 300, daemonsets + 1024 + 3072 + 816 + 112 + 96 + 96 + 32),
        # PostgreSQL, Trino's worker, Grafana with its dashboard sidecar, Loki.
        ("pi-agent-2", 512 + 300, daemonsets + 1024 + 3072 + 384 + 512),
        # Dagster: webserver and read-only webserver, daemon, code location.
        (
            "pi-agent-3",
            512 + 300,
            daemonsets + operators + 1536 + 128 + 640 + 640 + 512 + 768,
        ),
    ]


def test_a_workload_counts_on_every_node_its_placement_allows():
    p = plan(inventory())
    for n in p.nodes:
        names = {pl.workload for pl in n.placed}
        assert {"metallb-speaker", "node-exporter", "fluent-bit"} <= names, n.node
        operators = {"metallb-controller", "cloudnative-pg", "cert-manager"}
        assert (operators <= names) == (n.node in ("pi-server", "pi-agent-3")), n.node
    assert [pl.workload for pl in p.node("pi-server").placed if pl.release == "trino"] == []


def _set(node, key, value):
    def edit(data):
        data["nodes"][node][key] = value

    return edit


def _label(node, key, value):
    def edit(data):
        data["nodes"][node]["labels"][key] = value

    return edit


def _unlabel(node, key):
    def edit(data):
        del data["nodes"][node]["labels"][key]

    return edit


# (edit, the problem it must produce)
REFUSED = [
    (
        _set(1, "memory_mib", 4096),
        "pi-agent-1: 5584 MiB of limits + 812 MiB for the OS and K3s leave -2300 MiB of 4096 MiB",
    ),
    # The metastore may now land on pi-agent-2 too: it counts there, beside Trino's worker.
    (_label(2, "picluster.io/metastore", "true"), "pi-agent-2: 6352 MiB of limits"),
    (
        _unlabel(1, "picluster.io/metastore"),
        "metastore: metastore needs a node labelled picluster.io/metastore=true",
    ),
]


@pytest.mark.parametrize(("edit", "problem"), REFUSED)
def test_an_over_committed_or_unplaceable_plan_is_refused_naming_it(edit, problem):
    p = plan(inventory(edit))
    assert not p.fits
    assert any(line.startswith(problem) for line in p.problems()), p.problems()


def test_the_problem_names_the_largest_workloads_and_what_to_change():
    (line,) = plan(inventory(_set(1, "memory_mib", 4096))).problems()
    assert "Largest here: trino/trino-coordinator 3072 MiB, metastore/metastore 1024 MiB" in line
    assert "changing the node labels in the inventory" in line


def test_the_whole_catalogue_with_later_releases_does_not_fit_the_example():
    # The point of planning them now: this is known before any of them is built.
    p = plan(inventory(), planned=True)
    assert {line.split(":")[0] for line in p.problems()} == {"pi-server", "pi-agent-3"}
    planned = [pl for pl in p.node("pi-agent-3").placed if pl.planned]
    assert {pl.release for pl in planned} >= {"notebooks", "nifi"}


def test_markdown_shows_the_table():
    text = capacity.markdown(plan(inventory()))
    assert "| pi-agent-1 | agent | 8192 | 812 | 4696 | 5584 | 1796 (22%) | yes |" in text
