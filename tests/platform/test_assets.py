"""The platform assets in plan mode against inventory.example.yaml, from the local profile.

The example's nodes are LAN addresses (192.168.0.x): the local profile never contacts them. The
SSH resource here points at files that do not exist, so any connection attempt would fail the
run; the plan is computed against unknown facts and shows the full desired state.
"""

from pathlib import Path

import dagster as dg
import pytest

from platform_assets.assets import (
    BRINGUP_STEPS,
    PLATFORM_ASSETS,
    apply_run_config,
    cluster_ready,
    platform_resources,
)
from resources.ssh import SshResource

ROOT = Path(__file__).resolve().parents[2]


def resources(tmp_path: Path) -> dict:
    ssh = SshResource(
        known_hosts_path=str(tmp_path / "no-known-hosts"),
        private_key_path=str(tmp_path / "no-key"),
    )
    return platform_resources(ROOT / "inventory.example.yaml", ssh, tmp_path / "kubeconfig")


def _observed(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (event,) = [
        e.asset_observation_data.asset_observation
        for e in result.get_asset_observation_events()
        if e.asset_key == dg.AssetKey(key)
    ]
    return event.metadata


def test_plan_mode_shows_every_node_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("PICLUSTER_OIDC_ISSUER_URL", raising=False)
    result = dg.materialize([*PLATFORM_ASSETS, cluster_ready], resources=resources(tmp_path))
    assert result.success
    # A plan is an observation of every step; only the inventory (a file) is materialized.
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {"inventory"}
    observed = {e.asset_key.to_user_string() for e in result.get_asset_observation_events()}
    assert observed == set(BRINGUP_STEPS)
    prep = _observed(result, "node_prep")
    assert prep["mode"].value == "plan"
    plan = prep["plan"].value
    for name in ("pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3"):
        assert f"### {name}: " in plan
    assert "facts unknown: node not contacted" in plan
    assert "sudo -n -- hostnamectl set-hostname pi-agent-2" in plan
    assert "unknown (not contacted)" in plan
    assert prep["dagster/row_count"].value > 0
    server = _observed(result, "k3s_server")["plan"].value
    assert "releases/download/v1.34.4%2Bk3s1/k3s-arm64" in server and "pi-agent-1" not in server
    api_oidc = _observed(result, "k3s_server")["api_oidc"].value
    assert api_oidc.startswith("off: PICLUSTER_OIDC_ISSUER_URL is not set")
    agents = _observed(result, "k3s_agents")["plan"].value
    assert "pi-server" not in agents and "k3s-agent.service" in agents
    assert not (tmp_path / "kubeconfig").exists()
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    # Not contacted is not a failure of the node, but it is not a pass either.
    assert not checks["preflight_passed"].passed
    assert checks["preflight_passed"].severity == dg.AssetCheckSeverity.WARN
    # The kubeconfig was only planned, so the check of the cluster it reaches did not run.
    assert "cluster_ready" not in checks


def test_the_server_plan_names_the_oidc_provider_the_api_will_trust(tmp_path, monkeypatch):
    monkeypatch.setenv("PICLUSTER_OIDC_ISSUER_URL", "https://auth.home.example/realms/pi")
    monkeypatch.setenv(
        "PICLUSTER_OIDC_JWKS_URL",
        "https://auth.home.example/realms/pi/protocol/openid-connect/certs",
    )
    monkeypatch.setenv("PICLUSTER_OIDC_KUBECTL_CLIENT_ID", "pi-kubectl")
    result = dg.materialize(PLATFORM_ASSETS, resources=resources(tmp_path))
    assert result.success
    api_oidc = _observed(result, "k3s_server")["api_oidc"].value
    assert api_oidc.startswith(
        "people log in with https://auth.home.example/realms/pi (kubectl's client pi-kubectl)"
    )


def test_apply_from_the_local_profile_refuses_lan_nodes(tmp_path):
    result = dg.materialize(
        PLATFORM_ASSETS,
        selection=["node_preflight", "node_prep"],
        resources=resources(tmp_path),
        run_config=apply_run_config(nodes=["pi-agent-1"]),
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    text = str(failure.step_failure_data.error)
    assert "pi-agent-1" in text and "not contacted from the local profile" in text


def test_unknown_node_in_config_is_named(tmp_path):
    with pytest.raises(Exception, match="not in the inventory: pi-9"):
        dg.materialize(
            PLATFORM_ASSETS,
            selection=["node_preflight"],
            resources=resources(tmp_path),
            run_config=apply_run_config(nodes=["pi-9"], apply=False),
        )
