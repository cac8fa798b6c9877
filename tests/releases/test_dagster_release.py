"""The dagster release, rendered: pinned chart, no secret in the spec, the Secrets it derives,
and the least-privilege role (its rules here; access reviews need the real control plane)."""

import base64
import dataclasses
import json

import dagster as dg
import pytest

from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue, secrets
from platform_assets.releases import dagster as release
from platform_assets.releases.spec import helmcharts
from resources.settings import PROJECT_ROOT
from tests.releases.fake_kube import FakeKube
from tests.releases.test_rendering import own_manifests

INV = load_inventory(PROJECT_ROOT / "inventory.example.yaml")
DAGSTER = catalogue.dagster(INV)


def _chart(name):
    return next(h for h in helmcharts(DAGSTER) if h["metadata"]["name"] == name)


def test_the_chart_version_is_the_dagster_version_installed():
    spec = _chart("dagster")["spec"]
    assert (spec["chart"], spec["version"]) == ("dagster", dg.__version__)
    assert spec["repo"] == "https://dagster-io.github.io/helm"


def test_no_credential_in_the_spec_only_secret_names():
    text = json.dumps([h["spec"] for h in helmcharts(DAGSTER)])
    values = _chart("dagster")["spec"]["values"]
    assert "postgresqlPassword" not in values["postgresql"]
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"] == release.PG_SECRET
    for word in ("password:", "secret_key", 'AWS_SECRET_ACCESS_KEY": "'):
        assert word not in text


def test_run_pods_get_settings_inventory_and_a_read_only_ssh_mount():
    launcher = _chart("dagster")["spec"]["values"]["runLauncher"]["config"]["k8sRunLauncher"]
    assert {"name": release.SETTINGS_SECRET} in launcher["envSecrets"]
    # The derived S3 keys come after the person's settings, so theirs win (envFrom: last wins).
    names = [s["name"] for s in launcher["envSecrets"]]
    assert names.index("piclusterops-s3-curation") > names.index(release.SETTINGS_SECRET)
    assert names.index("piclusterops-s3-backups") > names.index(release.SETTINGS_SECRET)
    assert launcher["envConfigMaps"] == [{"name": release.ENV_CONFIGMAP}]
    mounts = {m["name"]: m for m in launcher["volumeMounts"]}
    assert mounts["ssh"] == {"name": "ssh", "mountPath": release.SSH_DIR, "readOnly": True}
    ssh = next(v for v in launcher["volumes"] if v["name"] == "ssh")["secret"]
    assert ssh["defaultMode"] == 0o440 and ssh["secretName"] == release.SSH_SECRET
    assert launcher["resources"]["limits"]["memory"] == "1536Mi"
    assert launcher["runK8sConfig"]["jobSpecConfig"]["backoffLimit"] == 0


def test_the_queue_runs_one_infrastructure_run_at_a_time():
    daemon = _chart("dagster")["spec"]["values"]["dagsterDaemon"]
    queue = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    assert queue["tagConcurrencyLimits"] == [{"key": release.INFRASTRUCTURE_TAG, "limit": 1}]
    assert daemon["runRetries"] == {"enabled": False}
    assert daemon["runMonitoring"]["startTimeoutSeconds"] == release.RUN_START_TIMEOUT_S
    assert daemon["runMonitoring"]["maxResumeRunAttempts"] == 0


def test_the_mounted_inventory_is_the_same_plan_with_the_ssh_files_at_the_mount(tmp_path):
    (cm,) = [m for m in DAGSTER.objects if m["metadata"]["name"] == release.INVENTORY_CONFIGMAP]
    path = tmp_path / "inventory.yaml"
    path.write_text(cm["data"]["inventory.yaml"])
    mounted = load_inventory(path)
    assert mounted.ssh.private_key_path == f"{release.SSH_DIR}/id_ed25519"
    assert [n.name for n in mounted.nodes] == [n.name for n in INV.nodes]
    assert mounted.network == INV.network


def _secret(name, namespace, **data):
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def test_the_derived_secrets_copy_the_generated_values_under_the_charts_keys():
    kube = FakeKube.new("")
    kube.apply(
        _secret("pg-dagster", "databases", username="dagster", password="pw-1"),
        field_manager="test",
    )
    for identity in ("compute-logs", "curation", "backups"):
        kube.apply(
            _secret(f"s3-{identity}", "storage", access_key=f"AK-{identity}", secret_key="SK"),
            field_manager="test",
        )
    # The Secrets copied from the applying process: tests/kube/test_dagster_secrets.py.
    derived_only = dataclasses.replace(
        DAGSTER, secrets=tuple(s for s in DAGSTER.secrets if s.derived_from)
    )
    report = secrets.ensure_secrets(kube, derived_only, s3_config=lambda c: "")
    assert report == [
        "dagster/dagster-postgresql-secret: derived from databases/pg-dagster",
        "dagster/dagster-compute-logs: derived from storage/s3-compute-logs",
        "dagster/piclusterops-s3-curation: derived from storage/s3-curation",
        "dagster/piclusterops-s3-backups: derived from storage/s3-backups",
    ]
    # The object_store resource's two key pairs, under the settings' own variable names.
    curation = kube.get("v1", "Secret", "piclusterops-s3-curation", "dagster")["data"]
    assert base64.b64decode(curation["PICLUSTER_S3_ACCESS_KEY"]).decode() == "AK-curation"
    backups = kube.get("v1", "Secret", "piclusterops-s3-backups", "dagster")["data"]
    assert base64.b64decode(backups["PICLUSTER_S3_BACKUPS_ACCESS_KEY"]).decode() == "AK-backups"
    pg = kube.get("v1", "Secret", release.PG_SECRET, "dagster")
    assert base64.b64decode(pg["data"]["postgresql-password"]).decode() == "pw-1"
    logs = kube.get("v1", "Secret", release.COMPUTE_LOGS_SECRET, "dagster")
    assert set(logs["data"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_a_missing_source_secret_is_named():
    with pytest.raises(RuntimeError, match="databases/pg-dagster.*does not exist"):
        secrets.ensure_secrets(FakeKube.new(""), DAGSTER, s3_config=lambda c: "")


def _rules(kind, name):
    objs = own_manifests(_chart("dagster-rbac"))
    return [
        r for o in objs if o["kind"] == kind and o["metadata"]["name"] == name for r in o["rules"]
    ]


def test_the_role_names_the_generated_secrets_and_no_wildcard():
    objs = own_manifests(_chart("dagster-rbac"))
    every_rule = [r for o in objs if "rules" in o for r in o["rules"]]
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in every_rule)
    secret_roles = {
        o["metadata"]["namespace"]: o["rules"][0]["resourceNames"]
        for o in objs
        if o["kind"] == "Role" and o["metadata"]["name"] == "piclusterops-secrets"
    }
    assert "pg-dagster" in secret_roles["databases"]
    assert release.PG_SECRET in secret_roles["dagster"]
    # The object_store resource's key pairs are derived from the storage namespace's Secrets.
    assert {"s3-curation", "s3-backups"} <= set(secret_roles["storage"])
    assert {"piclusterops-s3-curation", "piclusterops-s3-backups"} <= set(secret_roles["dagster"])
    nodes = _rules("ClusterRole", "piclusterops-nodes")
    assert {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]} in nodes
    assert {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]} in nodes
