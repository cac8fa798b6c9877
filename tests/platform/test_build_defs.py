"""The platform's part of the code location: built from the settings and the inventory at load."""

from pathlib import Path

import dagster as dg
import pytest

import platform_assets
from platform_assets.inventory import InventoryError
from resources.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_local_profile_loads_the_example_and_knows_no_token(tmp_path, monkeypatch):
    monkeypatch.delenv("PICLUSTER_K3S_TOKEN", raising=False)
    settings = load_settings({"PICLUSTER_HOME": str(tmp_path)})
    defs = platform_assets.build_defs(settings)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    assert keys == {
        "inventory",
        "node_preflight",
        "node_prep",
        "node_reboot",
        "k3s_server",
        "k3s_agents",
        "kubeconfig",
    }
    apply_cluster = defs.resolve_job_def("apply_cluster")
    assert apply_cluster.tags["dagster/max_retries"] == "0"
    # One process for the whole apply (one SSH connection per host for every step).
    assert apply_cluster.executor_def is dg.in_process_executor
    inventory_file = defs.resources["inventory_file"]
    assert inventory_file.allow_remote_nodes is False
    assert defs.resources["k3s_token"].token == ""
    assert defs.resources["kubernetes"].kubeconfig_path == str(tmp_path / "kubeconfig")


def test_the_token_reaches_the_resource_only_as_an_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("PICLUSTER_K3S_TOKEN", "s3cret-join-token")
    settings = load_settings({"PICLUSTER_HOME": str(tmp_path)})
    defs = platform_assets.build_defs(settings)
    token = defs.resources["k3s_token"]
    assert "s3cret-join-token" not in repr(token)
    assert isinstance(token.token, dg.EnvVar) and token.token.env_var_name == "PICLUSTER_K3S_TOKEN"


def test_a_broken_inventory_stops_the_load_naming_file_and_field(tmp_path):
    bad = tmp_path / "inventory.yaml"
    bad.write_text(
        (ROOT / "inventory.example.yaml")
        .read_text()
        .replace("address: 192.168.0.122", "address: 192.168.0.322")
    )
    settings = load_settings({"PICLUSTER_HOME": str(tmp_path), "PICLUSTER_INVENTORY": str(bad)})
    with pytest.raises(
        InventoryError,
        match=r"inventory.yaml: nodes\[2\].address: "
        r"192.168.0.322 is not an IPv4 address",
    ):
        platform_assets.build_defs(settings)


def test_every_run_of_the_code_location_runs_in_one_process(tmp_path, monkeypatch):
    """Materializing the platform group from the UI uses the code location's default executor."""
    import definitions

    monkeypatch.setenv("PICLUSTER_HOME", str(tmp_path))
    defs = definitions.build_definitions()
    assert defs.resolve_implicit_global_asset_job_def().executor_def is dg.in_process_executor
