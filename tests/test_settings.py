"""Settings are validated at load: a wrong deployment stops with the variable's name and form."""

import pytest

from resources.settings import PROJECT_ROOT, SettingsError, load_settings

CLUSTER = {
    "PICLUSTER_PROFILE": "cluster",
    "PICLUSTER_S3_ENDPOINT": "seaweedfs.storage.svc:8333",
    "PICLUSTER_S3_ACCESS_KEY": "lake-writer",
    "PICLUSTER_S3_SECRET_KEY": "s3cr3t-value-never-shown",
    "PICLUSTER_TRINO_HOST": "trino.data.svc",
    "PICLUSTER_PG_HOST": "pg-rw.db.svc",
    "PICLUSTER_PG_PASSWORD": "pg-secret-value-never-shown",
}


def test_local_is_the_default_and_needs_nothing():
    settings = load_settings({})
    assert settings.profile == "local"
    assert settings.home == PROJECT_ROOT / ".picluster"
    assert settings.inventory_path == PROJECT_ROOT / "inventory.example.yaml"
    assert settings.object_store_root == settings.home / "object-store"
    assert settings.s3 is None and settings.trino is None


def test_home_moves_every_local_store(tmp_path):
    settings = load_settings({"PICLUSTER_HOME": str(tmp_path)})
    assert settings.duckdb_path == tmp_path / "warehouse.duckdb"
    assert settings.ledger_sqlite_path == tmp_path / "ledger.sqlite"


def test_cluster_profile_reads_every_setting():
    settings = load_settings(CLUSTER)
    assert settings.s3.endpoint == "seaweedfs.storage.svc:8333"
    assert settings.s3.secure is True
    assert settings.trino.port == 8080
    assert settings.postgres.password_var == "PICLUSTER_PG_PASSWORD"
    assert settings.inventory_path == PROJECT_ROOT / "inventory.yaml"


def test_the_buckets_default_to_the_object_store_releases_names():
    from platform_assets.releases.catalogue import BUCKETS

    settings = load_settings(CLUSTER)
    assert settings.s3.buckets == {
        "landing": "landing",
        "warehouse": "warehouse",
        "quarantine": "quarantine",
        "backups": "backups",
    }
    assert set(settings.s3.buckets.values()) <= set(BUCKETS)  # the release creates each
    # One key pair unless the backups bucket is given its own (the release's backups identity).
    assert settings.s3.backups_access_key_var == "PICLUSTER_S3_ACCESS_KEY"
    own = load_settings(
        {
            **CLUSTER,
            "PICLUSTER_S3_LANDING_BUCKET": "home-landing",
            "PICLUSTER_S3_BACKUPS_ACCESS_KEY": "backups-id",
            "PICLUSTER_S3_BACKUPS_SECRET_KEY": "backups-secret-never-shown",
        }
    )
    assert own.s3.buckets["landing"] == "home-landing"
    assert own.s3.backups_access_key_var == "PICLUSTER_S3_BACKUPS_ACCESS_KEY"
    assert own.s3.backups_secret_key_var == "PICLUSTER_S3_BACKUPS_SECRET_KEY"
    assert "backups-secret-never-shown" not in repr(own)


def test_each_bucket_reaches_the_store_and_the_warehouse(tmp_path):
    from resources.object_store import object_store_for
    from resources.warehouse import warehouse_for

    settings = load_settings(
        {**CLUSTER, "PICLUSTER_HOME": str(tmp_path), "PICLUSTER_S3_QUARANTINE_BUCKET": "rejects"}
    )
    store = object_store_for(settings)
    assert store.table_location("quarantine/sensor_readings/") == "s3://rejects/sensor_readings/"
    assert store.table_location("landing/") == "s3://landing/"
    assert warehouse_for(settings).location("quarantine/x/") == "s3://rejects/x/"
    local = object_store_for(load_settings({"PICLUSTER_HOME": str(tmp_path)}))
    assert (
        local.table_location("warehouse/sensor_readings/")
        == str(tmp_path / "object-store" / "warehouse" / "sensor_readings") + "/"
    )


@pytest.mark.parametrize(
    ("env", "variable", "expected"),
    [
        ({"PICLUSTER_PROFILE": "prod"}, "PICLUSTER_PROFILE", "local, cluster"),
        ({"PICLUSTER_S3_ENDPOINT": None}, "PICLUSTER_S3_ENDPOINT", "host:port"),
        ({"PICLUSTER_S3_ENDPOINT": "http://s3:8333"}, "PICLUSTER_S3_ENDPOINT", "without a scheme"),
        ({"PICLUSTER_S3_SECRET_KEY": ""}, "PICLUSTER_S3_SECRET_KEY", "secret"),
        ({"PICLUSTER_TRINO_PORT": "80a"}, "PICLUSTER_TRINO_PORT", "TCP port"),
        ({"PICLUSTER_TRINO_PORT": "70000"}, "PICLUSTER_TRINO_PORT", "TCP port"),
        ({"PICLUSTER_S3_SECURE": "maybe"}, "PICLUSTER_S3_SECURE", "true or false"),
        ({"PICLUSTER_WAREHOUSE_SCHEMA": "drop table"}, "PICLUSTER_WAREHOUSE_SCHEMA", "identifier"),
        ({"PICLUSTER_PG_HOST": None}, "PICLUSTER_PG_HOST", "PostgreSQL host"),
        ({"PICLUSTER_PG_PASSWORD": None}, "PICLUSTER_PG_PASSWORD", "secret"),
        ({"PICLUSTER_S3_LANDING_BUCKET": "Landing"}, "PICLUSTER_S3_LANDING_BUCKET", "bucket name"),
        ({"PICLUSTER_S3_BACKUPS_BUCKET": "b"}, "PICLUSTER_S3_BACKUPS_BUCKET", "3-63"),
        ({"PICLUSTER_S3_QUARANTINE_BUCKET": "landing"}, "PICLUSTER_S3_LANDING_BUCKET", "distinct"),
        ({"PICLUSTER_S3_BUCKET": "lake"}, "PICLUSTER_S3_BUCKET", "PICLUSTER_S3_WAREHOUSE_BUCKET"),
        (
            {"PICLUSTER_S3_BACKUPS_ACCESS_KEY": "id"},
            "PICLUSTER_S3_BACKUPS_SECRET_KEY",
            "secret",
        ),
    ],
)
def test_a_wrong_setting_names_the_variable_and_the_expected_form(env, variable, expected):
    environ = {**CLUSTER, **env}
    environ = {k: v for k, v in environ.items() if v is not None}
    with pytest.raises(SettingsError) as error:
        load_settings(environ)
    assert variable in str(error.value)
    assert expected in str(error.value)


def test_secret_values_are_never_kept_in_settings():
    settings = load_settings(CLUSTER)
    text = repr(settings)
    assert "s3cr3t-value-never-shown" not in text
    assert "pg-secret-value-never-shown" not in text


# --- in a pod: the ServiceAccount, and who owns the schedules and sensors ----------------------

IN_POD = {**CLUSTER, "KUBERNETES_SERVICE_HOST": "10.43.0.1"}


def test_in_a_pod_without_a_kubeconfig_the_serviceaccount_authenticates(tmp_path, monkeypatch):
    import resources.settings as settings_module

    (tmp_path / "token").write_text("a-token-file-the-test-wrote")
    monkeypatch.setattr(settings_module, "SERVICEACCOUNT_DIR", tmp_path)
    settings = load_settings(IN_POD)
    assert settings.kube_in_cluster is True
    assert settings.kubeconfig_for_resource == ""


def test_a_kubeconfig_setting_wins_even_in_a_pod(tmp_path, monkeypatch):
    import resources.settings as settings_module

    (tmp_path / "token").write_text("a-token-file-the-test-wrote")
    monkeypatch.setattr(settings_module, "SERVICEACCOUNT_DIR", tmp_path)
    settings = load_settings({**IN_POD, "PICLUSTER_KUBECONFIG": str(tmp_path / "kc")})
    assert settings.kubeconfig_for_resource == str(tmp_path / "kc")


def test_off_a_pod_the_kubeconfig_file_under_home_is_used(tmp_path):
    settings = load_settings({**CLUSTER, "PICLUSTER_HOME": str(tmp_path)})
    assert settings.kube_in_cluster is False
    assert settings.kubeconfig_for_resource == str(tmp_path / "kubeconfig")


def test_a_pod_without_a_serviceaccount_token_is_refused_by_name(tmp_path, monkeypatch):
    import resources.settings as settings_module

    monkeypatch.setattr(settings_module, "SERVICEACCOUNT_DIR", tmp_path / "absent")
    with pytest.raises(SettingsError, match="PICLUSTER_KUBECONFIG.*ServiceAccount token"):
        load_settings(IN_POD)


@pytest.mark.parametrize(
    ("owner", "in_pod", "runs_here"),
    [
        (None, False, True),  # before the hand-over: the laptop
        (None, True, False),
        ("laptop", False, True),
        ("cluster", False, False),
        ("cluster", True, True),
        ("laptop", True, False),
    ],
)
def test_one_owner_runs_the_schedules_and_sensors(owner, in_pod, runs_here):
    from resources.settings import owns_automation

    environ = {"PICLUSTER_SCHEDULES_OWNER": owner} if owner else {}
    if in_pod:
        environ["KUBERNETES_SERVICE_HOST"] = "10.43.0.1"
    assert owns_automation(environ) is runs_here


def test_a_wrong_owner_names_the_variable():
    with pytest.raises(SettingsError, match="PICLUSTER_SCHEDULES_OWNER.*laptop, cluster"):
        load_settings({"PICLUSTER_SCHEDULES_OWNER": "both"})
