"""The backups' settings: defaults, and a wrong or missing one named at load."""

import dagster as dg
import pytest

import data_assets
import platform_assets
from platform_assets import backups
from platform_assets.backups.resources import BackupKeyResource
from platform_assets.backups.settings import load_backup_settings
from resources.settings import SettingsError, load_settings
from tests.integration.cluster_env import OFFLINE_CLUSTER_ENV

CLUSTER_ENV = {
    **OFFLINE_CLUSTER_ENV,
    "PICLUSTER_PG_DATABASE": "ledger",
    "PICLUSTER_BACKUP_KEY": "unused",
    "PICLUSTER_BACKUP_MIRROR_ENDPOINT": "127.0.0.1:2",
    "PICLUSTER_BACKUP_MIRROR_ACCESS_KEY": "unused",
    "PICLUSTER_BACKUP_MIRROR_SECRET_KEY": "unused",
}


def backup_settings(**changes: str | None):
    env = {**CLUSTER_ENV, **changes}
    env = {k: v for k, v in env.items() if v is not None}
    return load_backup_settings(load_settings(env), env)


def test_cluster_defaults():
    s = backup_settings()
    assert s.postgres.databases == ("dagster", "metastore", "ledger")
    assert s.postgres.user == "piclusterops" and s.postgres.password_var == "PICLUSTER_PG_PASSWORD"
    assert s.mirror_s3.endpoint == "127.0.0.1:2"
    assert s.mirror_s3.buckets == {"mirror": "piclusterops-mirror"}
    assert s.mirror_s3.secret_key_var == "PICLUSTER_BACKUP_MIRROR_SECRET_KEY"
    assert s.key_var == "PICLUSTER_BACKUP_KEY"


def test_a_backup_role_of_its_own():
    s = backup_settings(PICLUSTER_BACKUP_PG_USER="backup", PICLUSTER_BACKUP_PG_PASSWORD="x")
    assert s.postgres.user == "backup"
    assert s.postgres.password_var == "PICLUSTER_BACKUP_PG_PASSWORD"


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"PICLUSTER_BACKUP_KEY": None}, "PICLUSTER_BACKUP_KEY is not set"),
        ({"PICLUSTER_BACKUP_MIRROR_ENDPOINT": None}, "PICLUSTER_BACKUP_MIRROR_ENDPOINT is not set"),
        ({"PICLUSTER_BACKUP_MIRROR_ENDPOINT": "https://nas:9000"}, "BACKUP_MIRROR_ENDPOINT="),
        ({"PICLUSTER_BACKUP_MIRROR_SECRET_KEY": None}, "BACKUP_MIRROR_SECRET_KEY is not set"),
        ({"PICLUSTER_BACKUP_MIRROR_SECURE": "maybe"}, "PICLUSTER_BACKUP_MIRROR_SECURE="),
        ({"PICLUSTER_BACKUP_DATABASES": "dagster,,ledger"}, "PICLUSTER_BACKUP_DATABASES="),
        ({"PICLUSTER_BACKUP_DATABASES": "dagster;drop"}, "PICLUSTER_BACKUP_DATABASES="),
        ({"PICLUSTER_BACKUP_DATABASES": "a,a"}, "PICLUSTER_BACKUP_DATABASES="),
        ({"PICLUSTER_BACKUP_PG_USER": "backup"}, "PICLUSTER_BACKUP_PG_PASSWORD is not set"),
    ],
)
def test_a_wrong_setting_is_named(changes, named):
    with pytest.raises(SettingsError, match=named):
        backup_settings(**changes)


def test_a_secret_value_is_never_echoed():
    with pytest.raises(SettingsError) as err:
        backup_settings(PICLUSTER_BACKUP_MIRROR_ENDPOINT="s3://k3y-v4lue@nas")
    assert "PICLUSTER_BACKUP_MIRROR_ENDPOINT" in str(err.value)
    s = backup_settings(PICLUSTER_BACKUP_KEY="a-secret-never-kept")
    assert "a-secret-never-kept" not in repr(s)


def test_local_profile_needs_no_backup_setting(tmp_path):
    s = load_backup_settings(load_settings({"PICLUSTER_HOME": str(tmp_path)}), {})
    assert s.postgres is None and s.mirror_s3 is None
    assert s.mirror_root == tmp_path / "backup-mirror"
    resource = backups.build_defs(load_settings({"PICLUSTER_HOME": str(tmp_path)})).resources[
        "backup_key"
    ]
    assert isinstance(resource, BackupKeyResource)
    with pytest.raises(dg.Failure, match="PICLUSTER_BACKUP_KEY is not set"):
        resource.backup_key()


@pytest.mark.parametrize("profile", ["local", "cluster"])
def test_the_definitions_merge_with_the_rest(profile, monkeypatch, tmp_path):
    """The one line the code location adds: the backups beside data_assets, whose
    `object_store` the backups use, and the platform, whose inventory, SSH, K3s token and
    Kubernetes resources the etcd snapshot and the recovery jobs use."""
    env = {
        **CLUSTER_ENV,
        "PICLUSTER_PROFILE": profile,
        "PICLUSTER_HOME": str(tmp_path),
        "PICLUSTER_INVENTORY": "inventory.example.yaml",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    defs = dg.Definitions.merge(
        platform_assets.build_defs(settings),
        data_assets.build_defs(settings),
        backups.build_defs(settings, timezone="Europe/Berlin"),
    )
    dg.Definitions.validate_loadable(defs)
    job = defs.resolve_job_def("nightly_backups")
    assert job.partitions_def is not None
    graph = defs.resolve_asset_graph()
    group = {k.path[-1] for k in graph.get_all_asset_keys() if graph.get(k).group_name == "backups"}
    assert group == {"postgres_dump", "etcd_snapshot", "object_store_mirror", "backup_retention"}
    for name in ("restore_postgres", "restore_object_store", "disaster_recovery"):
        assert defs.resolve_job_def(name).name == name
