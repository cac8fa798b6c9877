"""The capacity plan, as tables: from the releases' own resources, per node by placement."""

import dataclasses
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
    # The operators (metallb controller, cert-manager, CloudNativePG: 992 MiB) count on the one
    # node labelled for them, the server; the DaemonSets (MetalLB's speaker 192, node_exporter 48,
    # Fluent Bit 96) on every node.
    daemonsets = 192 + 48 + 96
    operators = 1184 - 192
    assert [(n.node, n.reserved_mib, n.limit_mib) for n in p.nodes] == [
        # Dagster's run pods prefer the server: two at a time; the operators are pinned here.
        ("pi-server", 512 + 1600, daemonsets + operators + 2 * 1536),
        # The metastore, Trino's coordinator, and monitoring: Prometheus with its reloader,
        # Alertmanager with its reloader, the operator, kube-state-metrics, the Pushgateway;
        # then one gateway the plan placed here (below).
        ("pi-agent-1", 512 + 300, daemonsets + 1024 + 3072 + 816 + 112 + 96 + 96 + 32 + 64),
        # PostgreSQL, Trino's worker, OpenBao beside them, Grafana with its dashboard sidecar,
        # Loki; then the injector and a gateway.
        ("pi-agent-2", 512 + 300, daemonsets + 1024 + 3072 + 192 + 384 + 512 + 96 + 64),
        # SeaweedFS and its bucket job, Dagster's four, JupyterLab, a gateway.
        (
            "pi-agent-3",
            512 + 300,
            daemonsets + 1536 + 128 + 640 + 640 + 512 + 768 + 1024 + 64,
        ),
    ]


def test_what_may_run_anywhere_counts_once_largest_first_where_most_memory_is_left():
    p = plan(inventory())
    floating = {n.node: [pl.workload for pl in n.placed if pl.floating] for n in p.nodes}
    assert floating == {
        "pi-server": [],
        "pi-agent-1": ["gateway-dash"],
        "pi-agent-2": ["openbao-agent-injector", "gateway-ops"],
        "pi-agent-3": ["gateway-lab"],
    }
    # Counted once in all: a one-replica Deployment holds memory on one node.
    everywhere = [pl for n in p.nodes for pl in n.placed if pl.workload == "gateway-ops"]
    assert len(everywhere) == 1


def test_a_workload_counts_on_every_node_its_placement_allows():
    p = plan(inventory())
    for n in p.nodes:
        names = {pl.workload for pl in n.placed}
        assert {"metallb-speaker", "node-exporter", "fluent-bit"} <= names, n.node
        operators = {"metallb-controller", "cloudnative-pg", "cert-manager"}
        assert (operators <= names) == (n.node == "pi-server"), n.node
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
    # pi-agent-1 halved: the floating workloads move away, Trino and the metastore cannot.
    (
        _set(1, "memory_mib", 4096),
        "pi-agent-1: 5584 MiB of limits + 812 MiB for the OS and K3s leave -2300 MiB of 4096 MiB",
    ),
    # The metastore may now land on pi-agent-3 too: it counts there, beside Dagster.
    (_label(3, "picluster.io/metastore", "true"), "pi-agent-3: 6608 MiB of limits"),
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


def test_the_whole_catalogue_fits_the_example_with_nifi_off():
    p = plan(inventory(), planned=True)
    assert p.fits, p.problems()
    assert min(n.free_fraction for n in p.nodes) >= 0.20


def test_nifi_on_names_the_server_it_is_placed_on_and_what_is_largest_there():
    p = plan(inventory(lambda d: d.update(nifi=True)), planned=True)
    assert not p.fits
    server = next(line for line in p.problems() if line.startswith("pi-server:"))
    assert "Largest here: dagster/dagster-run 3072 MiB, nifi/nifi 2048 MiB" in server


def test_nifi_fits_when_one_dagster_run_slot_and_jupyterlab_give_way():
    # docs/releases.md's "what to give up for NiFi", held to the plan: one of Dagster's two run
    # slots and JupyterLab, and the operators move to pi-agent-3 (where JupyterLab was).
    def nifi_on(data):
        data["nifi"] = True
        _unlabel(0, "picluster.io/operators")(data)
        _label(3, "picluster.io/operators", "true")(data)

    inv = inventory(nifi_on)
    built = []
    for r in catalogue.releases(inv):
        if r.name == "notebooks":
            continue
        built.append(
            dataclasses.replace(
                r,
                workloads=tuple(
                    dataclasses.replace(w, replicas=1) if w.name == "dagster-run" else w
                    for w in r.workloads
                ),
            )
        )
    p = capacity.capacity_plan(inv, built, catalogue.PLANNED)
    assert p.fits, p.problems()


def test_markdown_shows_the_table():
    text = capacity.markdown(plan(inventory()))
    assert "| pi-agent-1 | agent | 8192 | 812 | 4728 | 5648 | 1732 (21%) | yes |" in text
    assert "gateway/gateway-dash 32/64 (may run anywhere; placed here)" in text
