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
