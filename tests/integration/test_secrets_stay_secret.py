"""Secrets never reach what Dagster records: a secrets audit against the real services.

Each test runs the real thing with distinctive secret values, then scans EVERYTHING Dagster kept
about it for each secret: every event log entry (messages, metadata, errors) serialized whole, the
run (config and tags), the job and execution-plan snapshots (the resource config the UI shows),
the repository snapshot the UI's resources page reads, every byte under the instance's folder
(SQLite storage and compute logs), the process's own stdout/stderr, and the text of any raised
exception.

- Data path, cluster profile: the S3 store (SeaweedFS) and the ledger (PostgreSQL), with the right
  secrets, with a WRONG S3 secret key and with a WRONG PostgreSQL password. A failure must name the
  endpoint or host that refused, never the value. Trino is left out (it holds no secret of ours;
  its query errors are covered by tests/warehouse).
- Platform, on the FAKE Pi cluster (real sshd per node): the K3s join token already on a node (in
  its file, in config.yaml, on the unit's command line) must not come back through the facts that
  K3s steps read, in plan mode without the token and when the configured token differs. The full
  apply is checked in tests/ssh/test_cluster_bringup.py.
"""

import socket
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.remote_representation.external_data import RepositorySnap

import data_assets
from data_assets.simulator import simulate_day, write_day
from platform_assets.assets import PLATFORM_ASSETS, apply_run_config
from platform_assets.inventory import load_inventory
from platform_assets.k3s.facts import K3S_CONFIG, K3S_TOKEN_FILE
from platform_assets.resources import InventoryFile, K3sToken, ssh_resource
from resources.kubernetes import KubernetesResource
from resources.object_store import object_store_for
from resources.settings import load_settings
from tests.fake_pi.cluster import FakeCluster
from tests.fake_pi.fixtures import targets_for
from tests.integration.cluster_env import cluster_profile_env

pytestmark = [pytest.mark.service]

DAY = "2026-03-03"
CURATED = dg.AssetSelection.assets("curated_sensor_readings")
WRONG_S3_SECRET = "wrong-s3-secret-Zq7xVb2Lk9"  # noqa: S105 (test values, never real secrets)
WRONG_PG_PASSWORD = "wrong-pg-pass/Wm3@Tn8:Rf"  # noqa: S105 (URL-special characters on purpose)
OLD_TOKEN = "K10old-join-token-on-the-node-4d2e91"  # noqa: S105
NEW_TOKEN = "K10new-join-token-in-the-env-b7c350"  # noqa: S105


# --- what Dagster recorded ---------------------------------------------------------------------


def recorded(instance: dg.DagsterInstance, run_id: str, home: Path) -> str:
    """Everything the instance holds about one run, as text, plus every file under its home."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    parts = [dg.serialize_value(entry) for entry in instance.all_logs(run_id)]
    parts.append(dg.serialize_value(run))
    parts.append(dg.serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
    if run.execution_plan_snapshot_id:
        plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        parts.append(dg.serialize_value(plan))
    for path in home.rglob("*"):
        if path.is_file():
            parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def ui_snapshot(defs: dg.Definitions) -> str:
    """The repository snapshot the UI shows, including each resource's configured values."""
    return dg.serialize_value(RepositorySnap.from_def(defs.get_repository_def()))


def assert_absent(text: str, secrets: dict[str, str], where: str) -> None:
    for name, value in secrets.items():
        assert value not in text, f"{name} appears in {where}"


def errors_of(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        e.event_specific_data.error.to_string()
        for e in result.all_events
        if e.is_step_failure and e.event_specific_data.error is not None
    ]


@pytest.fixture
def instance(tmp_path: Path):
    home = tmp_path / "dagster-home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst, home


def test_the_scan_finds_a_secret_given_as_plain_config(instance):
    """The scan is not blind: a token passed as plain config (not dg.EnvVar) is found in the UI's
    snapshot. This is why every secret goes through dg.EnvVar."""
    plain = "plain-config-token-" + uuid.uuid4().hex

    @dg.asset
    def uses_the_token(k3s_token: K3sToken) -> None: ...

    defs = dg.Definitions(assets=[uses_the_token], resources={"k3s_token": K3sToken(token=plain)})
    assert plain in ui_snapshot(defs)
    defs = dg.Definitions(
        assets=[uses_the_token], resources={"k3s_token": K3sToken(token=dg.EnvVar("UNSET_TOKEN"))}
    )
    assert "UNSET_TOKEN" in ui_snapshot(defs)


# --- data path: S3 store + PostgreSQL ledger, cluster profile ----------------------------------


@pytest.fixture
def cluster_env(s3, postgres, monkeypatch, tmp_path) -> dict[str, str]:
    """The cluster profile's settings for a fresh bucket and ledger database, one day uploaded."""
    env = cluster_profile_env(s3, postgres, tmp_path / "home", name="secrets")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    store = object_store_for(load_settings()).process_config_and_initialize()
    write_day(store, simulate_day(DAY, devices=2, seed=3))
    return env


def secrets_of(env: dict[str, str]) -> dict[str, str]:
    return {
        "the S3 secret key": env["PICLUSTER_S3_SECRET_KEY"],
        "the PostgreSQL password": env["PICLUSTER_PG_PASSWORD"],
        "the wrong S3 secret key": WRONG_S3_SECRET,
        "the wrong PostgreSQL password": WRONG_PG_PASSWORD,
    }


def curate(instance: dg.DagsterInstance) -> tuple[dg.Definitions, dg.ExecuteInProcessResult]:
    defs = data_assets.build_defs(load_settings())
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    result = dg.materialize(
        assets,
        selection=CURATED,
        partition_key=DAY,
        resources=defs.resources,
        instance=instance,
        raise_on_error=False,
    )
    return defs, result


def test_the_cluster_data_path_records_no_secret(cluster_env, instance, capfd):
    inst, home = instance
    defs, result = curate(inst)
    assert result.success
    (materialization,) = result.asset_materializations_for_node("curated_sensor_readings")
    assert materialization.metadata["dagster/row_count"].value > 0
    secrets = secrets_of(cluster_env)
    assert_absent(recorded(inst, result.run_id, home), secrets, "what Dagster recorded")
    assert_absent(ui_snapshot(defs), secrets, "the UI's repository snapshot")
    assert_absent(repr(defs.resources), secrets, "the resources' repr")
    out, err = capfd.readouterr()
    assert_absent(out + err, secrets, "the process's output")


def test_a_wrong_s3_secret_names_the_endpoint_not_the_secret(cluster_env, instance, monkeypatch):
    inst, home = instance
    monkeypatch.setenv("PICLUSTER_S3_SECRET_KEY", WRONG_S3_SECRET)
    defs, result = curate(inst)
    assert not result.success
    (error,) = errors_of(result)
    assert cluster_env["PICLUSTER_S3_ENDPOINT"] in error, error
    assert "SignatureDoesNotMatch" in error and "PICLUSTER_S3_SECRET_KEY" in error, error
    secrets = secrets_of(cluster_env)
    assert_absent(recorded(inst, result.run_id, home), secrets, "what Dagster recorded")
    assert_absent(ui_snapshot(defs), secrets, "the UI's repository snapshot")


def test_a_wrong_pg_password_names_the_host_not_the_password(cluster_env, instance, monkeypatch):
    inst, home = instance
    monkeypatch.setenv("PICLUSTER_PG_PASSWORD", WRONG_PG_PASSWORD)
    defs, result = curate(inst)
    assert not result.success
    (error,) = errors_of(result)
    host_port = f'"{cluster_env["PICLUSTER_PG_HOST"]}", port {cluster_env["PICLUSTER_PG_PORT"]}'
    assert host_port in error and "password authentication failed" in error, error
    secrets = secrets_of(cluster_env)
    assert_absent(recorded(inst, result.run_id, home), secrets, "what Dagster recorded")
    assert_absent(ui_snapshot(defs), secrets, "the UI's repository snapshot")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_landing_sensor_fails_naming_the_service_never_a_secret(cluster_env, monkeypatch):
    """Wrong secrets and unreachable services: the sensor's error (what a tick records) names
    the endpoint or host, and holds no secret."""
    from sensors.landing import landing_files

    nowhere = f"127.0.0.1:{closed_port()}"
    port = str(closed_port())
    for var, wrong, named in (
        ("PICLUSTER_S3_SECRET_KEY", WRONG_S3_SECRET, cluster_env["PICLUSTER_S3_ENDPOINT"]),
        ("PICLUSTER_PG_PASSWORD", WRONG_PG_PASSWORD, cluster_env["PICLUSTER_PG_HOST"]),
        ("PICLUSTER_S3_ENDPOINT", nowhere, nowhere),
        ("PICLUSTER_PG_PORT", port, f"port {port}"),
    ):
        monkeypatch.setenv(var, wrong)
        defs = data_assets.build_defs(load_settings())
        context = dg.build_sensor_context(resources=dict(defs.resources))
        with context, pytest.raises(Exception) as raised:  # noqa: PT011 (any error naming where)
            landing_files(context)
        text = "".join(
            str(e) for e in (raised.value, raised.value.__cause__, raised.value.__context__) if e
        )
        assert named in text, text
        assert_absent(text, secrets_of(cluster_env), f"the sensor's error with a wrong {var}")
        monkeypatch.setenv(var, cluster_env[var])


# --- platform: the K3s join token on the fake Pi cluster ---------------------------------------


def platform_resources(cluster: FakeCluster, tmp_path: Path, token: str) -> dict:
    inv = load_inventory(cluster.inventory_path)
    return {
        "inventory_file": InventoryFile(path=str(cluster.inventory_path)),
        "ssh": ssh_resource(inv),
        "k3s_token": K3sToken(token=token),
        "kubernetes": KubernetesResource(kubeconfig_path=str(tmp_path / "kubeconfig")),
    }


@pytest.mark.slow
def test_a_token_already_on_the_node_is_never_read_back(
    fresh_cluster: FakeCluster, instance, tmp_path, monkeypatch, capfd
):
    cluster = fresh_cluster
    inst, home = instance
    res = platform_resources(cluster, tmp_path, token="")
    # A node set up by hand: the token in its own file, in config.yaml and on the unit's command
    # line the way the K3s installer writes it (one quoted argument per line).
    by_hand = {
        K3S_TOKEN_FILE: f"{OLD_TOKEN}\n",
        K3S_CONFIG: f"token: {OLD_TOKEN}\nwrite-kubeconfig-mode: '0644'\n",
        "/etc/systemd/system/k3s.service": (
            "[Service]\nExecStart=/usr/local/bin/k3s \\\n    server \\\n"
            f"\t'--token' \\\n\t'{OLD_TOKEN}' \\\n\t'--agent-token={OLD_TOKEN}' \\\n"
        ),
    }
    server = [t for t in targets_for(cluster) if t.name == "pi-server"]
    with res["ssh"].open(server, log=None) as sessions:
        for path, content in by_hand.items():
            sessions.run(
                "pi-server",
                ["install", "-D", "-m", "0600", "/dev/stdin", path],
                sudo=True,
                stdin=content.encode(),
            )
    secrets = {"the token on the node": OLD_TOKEN, "the configured token": NEW_TOKEN}
    # Plan mode without the token (a laptop planning), then with a new token (a rotation), whose
    # value goes through dg.EnvVar as build_defs does it.
    monkeypatch.setenv("PICLUSTER_K3S_TOKEN", NEW_TOKEN)
    for token in ("", dg.EnvVar("PICLUSTER_K3S_TOKEN")):
        res["k3s_token"] = K3sToken(token=token)
        result = dg.materialize(
            PLATFORM_ASSETS,
            selection=["k3s_server"],
            resources=res,
            instance=inst,
            run_config=apply_run_config(nodes=["pi-server"], apply=False),
        )
        assert result.success
        (plan_event,) = result.get_asset_observation_events()
        plan = plan_event.asset_observation_data.asset_observation.metadata["plan"].value
        assert "join token" in plan if token else "join token" not in plan
        assert "-token: ***" in plan  # the config's drift is shown, its value masked
        assert_absent(recorded(inst, result.run_id, home), secrets, "what Dagster recorded")
        assert_absent(
            ui_snapshot(dg.Definitions(assets=PLATFORM_ASSETS, resources=res)),
            secrets,
            "the UI's repository snapshot",
        )
    out, err = capfd.readouterr()
    assert_absent(out + err, secrets, "the process's output")
    # Nothing carried the token on a command line either (visible in `ps` on the node).
    assert all(OLD_TOKEN not in " ".join(argv) for argv in cluster.commands("pi-server"))
    assert all(NEW_TOKEN not in " ".join(argv) for argv in cluster.commands("pi-server"))
