"""Blast radius, read from the code location's own asset graph (local profile)."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.blast_radius import blast_radius

ROOT = Path(__file__).resolve().parents[2]
# Node health is written into the warehouse, and the weekly patch's gate asks it (and reads
# node health): both go down with the warehouse.
WAREHOUSE = [
    "device_health",
    "sensor_readings_hourly",
    "sensor_readings_table",
    "node_health",
    "node_patches",
]
CURATED = ["curated_sensor_readings"]
# The local profile's mock uploads write to the object store too.
# The nightly dumps read PostgreSQL and land in the object store; the mirror and retention follow.
BACKUPS = ["backup_retention", "object_store_mirror", "postgres_dump"]
DATA_ON_POSTGRES = [*CURATED, *WAREHOUSE, *BACKUPS]
# The etcd snapshot is sealed into the object store: it needs that, not PostgreSQL.
EVERY_DATA_ASSET = [*CURATED, "mock_sensor_uploads", *WAREHOUSE, *BACKUPS, "etcd_snapshot"]


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    saved = dict(os.environ)
    for k in [k for k in os.environ if k.startswith("PICLUSTER_")]:
        del os.environ[k]
    os.environ["PICLUSTER_HOME"] = str(home)
    try:
        from definitions import build_definitions

        yield build_definitions().resolve_asset_graph()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def names(keys):
    return [k.to_user_string() for k in keys]


# (what goes down, releases it takes down, data assets it takes down)
CASES = [
    # The operators are pinned to the server (capacity: they count once, there), beside
    # Dagster's run pods: without cert-manager no gateway, without MetalLB no S3 address, without
    # CloudNativePG no PostgreSQL.
    (
        ["node", "pi-server"],
        [
            "cert_manager",
            "dagster",
            "gateway",
            "metallb",
            "metastore",
            "notebooks",
            "object_store",
            "postgres",
            "postgres_operator",
            "trino",
        ],
        EVERY_DATA_ASSET,
    ),
    # Prometheus and Alertmanager are on pi-agent-1, Grafana and Loki on pi-agent-2.
    (["node", "pi-agent-1"], ["metastore", "monitoring", "notebooks", "trino"], WAREHOUSE),
    (
        ["node", "pi-agent-2"],
        # OpenBao sits beside PostgreSQL: without it the gateway cannot start.
        [
            "dagster",
            "gateway",
            "logging",
            "metastore",
            "monitoring",
            "notebooks",
            "postgres",
            "secrets",
            "trino",
        ],
        CURATED + WAREHOUSE + BACKUPS,
    ),
    (
        ["node", "pi-agent-3"],
        ["dagster", "metastore", "notebooks", "object_store", "trino"],
        EVERY_DATA_ASSET,
    ),
    (
        ["postgres_operator"],
        ["dagster", "metastore", "notebooks", "postgres", "trino"],
        CURATED + WAREHOUSE + BACKUPS,
    ),
    (
        ["metallb"],
        ["dagster", "gateway", "metastore", "notebooks", "object_store", "trino"],
        EVERY_DATA_ASSET,
    ),
    (["trino"], ["notebooks"], WAREHOUSE),
    (["cert_manager"], ["gateway"], []),
    (["secrets"], ["gateway"], []),
    (["network_zones"], ["access_roles", "gateway", "secrets"], []),
]


@pytest.mark.parametrize(("start", "releases", "data"), CASES, ids=lambda c: str(c))
def test_blast_radius(graph, start, releases, data):
    radius = blast_radius(graph, dg.AssetKey(start))
    assert names(radius.releases) == releases
    assert sorted(names(radius.data_assets)) == sorted(data)


def test_the_lineage_comes_from_the_resources_each_data_asset_uses(graph):
    parents = {
        key: sorted(names(graph.get(dg.AssetKey(key)).parent_keys))
        for key in ("curated_sensor_readings", "sensor_readings_hourly")
    }
    assert parents["curated_sensor_readings"] == ["mock_sensor_uploads", "object_store", "postgres"]
    assert parents["sensor_readings_hourly"] == [
        "metastore",
        "object_store",
        "sensor_readings_table",
        "trino",
    ]
    trino = sorted(names(graph.get(dg.AssetKey("trino")).parent_keys))
    assert trino == [
        "capacity_plan",
        "kubeconfig",
        "metastore",
        "node/pi-agent-1",
        "node/pi-agent-2",
        "object_store",
    ]


def test_node_and_release_assets_carry_their_blast_radius(graph):
    meta = graph.get(dg.AssetKey(["node", "pi-agent-1"])).metadata["blast_radius"].value
    assert meta.startswith("- releases down: metastore, monitoring, notebooks, trino\n")


def _cli(tmp_path, arg):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLUSTER_")}
    env["PICLUSTER_HOME"] = str(tmp_path)
    return subprocess.run(
        [sys.executable, "-m", "platform_assets.blast_radius", arg],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_cli_answers_for_a_node(tmp_path):
    out = _cli(tmp_path, "pi-agent-2")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[:2] == [
        "pi-agent-2 down takes down:",
        "- releases down: dagster, gateway, logging, metastore, monitoring, notebooks, postgres, "
        "secrets, trino",
    ]


def test_the_cli_names_what_exists_for_an_unknown_name(tmp_path):
    out = _cli(tmp_path, "pi-agent-9")
    assert out.returncode != 0
    assert (
        "'pi-agent-9' is neither a node (pi-agent-1, pi-agent-2, pi-agent-3, pi-server)"
        in out.stderr
    )
