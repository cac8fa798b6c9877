"""What the dagster release's pods mount exists after an apply, against the real API server:
Secret `piclusterops-settings` (the applying process's settings), Secret `piclusterops-ssh`
(the SSH key and known_hosts the inventory names) and the ConfigMaps `piclusterops-env` and
`piclusterops-inventory`; and no secret value in the apply's report, the logs, the objects'
metadata (managed fields included) or the HelmCharts the API server holds."""

import base64
import json
import logging
import secrets as token

import pytest
import yaml

from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue, cluster, secrets
from platform_assets.releases import dagster as release
from platform_assets.releases.spec import CHART_NAMESPACE, HELMCHART_API, helmcharts
from resources.settings import PROJECT_ROOT

pytestmark = pytest.mark.service

MARK = "never-shown-" + token.token_hex(8)
SETTINGS = {
    "PICLUSTER_S3_ENDPOINT": "seaweedfs.storage.svc:8333",
    "PICLUSTER_S3_SECURE": "false",
    "PICLUSTER_TRINO_HOST": "trino.query.svc",
    "PICLUSTER_PG_HOST": "pg-main-rw.databases.svc",
    "PICLUSTER_PG_PASSWORD": f"{MARK}-pg",
    "PICLUSTER_BACKUP_MIRROR_ENDPOINT": "nas.lan:8333",
    "PICLUSTER_BACKUP_MIRROR_ACCESS_KEY": f"{MARK}-mirror-access",
    "PICLUSTER_BACKUP_MIRROR_SECRET_KEY": f"{MARK}-mirror-secret",
    "PICLUSTER_BACKUP_KEY": f"{MARK}-backup",
    "PICLUSTER_K3S_TOKEN": f"{MARK}-k3s",
}
# The laptop's own: where it keeps its files, how it reaches the API. Never copied.
LAPTOP_ONLY = {
    # The laptop's own S3 pair: the pods get theirs derived from the object store's identities.
    "PICLUSTER_S3_ACCESS_KEY": f"{MARK}-s3-access",
    "PICLUSTER_S3_SECRET_KEY": f"{MARK}-s3-secret",
    "PICLUSTER_KUBECONFIG": "/home/me/.picluster/kubeconfig",
    "PICLUSTER_PROFILE": "cluster",
}


@pytest.fixture
def laptop(tmp_path, monkeypatch):
    """The applying process: its settings in the environment, its SSH files, its inventory."""
    for k in [k for k in __import__("os").environ if k.startswith("PICLUSTER_")]:
        monkeypatch.delenv(k)
    for k, v in {**SETTINGS, **LAPTOP_ONLY}.items():
        monkeypatch.setenv(k, v)
    key = tmp_path / "id_ed25519"
    key.write_text(f"-----BEGIN OPENSSH PRIVATE KEY-----\n{MARK}-key\n")
    known = tmp_path / "known_hosts"
    known.write_text(f"192.168.0.120 ssh-ed25519 {MARK}-hostkey\n")
    data = yaml.safe_load((PROJECT_ROOT / "inventory.example.yaml").read_text())
    data["ssh"]["private_key_path"] = str(key)
    data["ssh"]["known_hosts_path"] = str(known)
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_inventory(path), key, known


@pytest.fixture(autouse=True)
def no_helmcharts_left(kube_control_plane):
    """The dagster HelmCharts this module applies are deleted after each test: the session's
    control plane is shared, and a later rolling patch would gate on their release_ready."""
    yield
    admin = kube_control_plane.resource()
    for chart in helmcharts(
        catalogue.dagster(load_inventory(PROJECT_ROOT / "inventory.example.yaml"))
    ):
        admin.delete(HELMCHART_API, "HelmChart", chart["metadata"]["name"], CHART_NAMESPACE)


def _decoded(secret: dict) -> dict:
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def _apply_dagster(admin, inv):
    """What `apply_releases` does for the dagster release, after the releases it needs."""
    for name in ("postgres", "object_store"):
        needed = next(r for r in catalogue.releases(inv) if r.name == name)
        for ns in secrets.namespaces(needed):
            admin.apply(ns, field_manager="piclusterops-tests")
        secrets.ensure_secrets(admin, needed, catalogue.s3_identities)
    dagster = catalogue.dagster(inv)
    _, report, _ = cluster.apply(admin, dagster, helmcharts(dagster))
    return dagster, report


def test_an_apply_creates_what_the_pods_mount_and_shows_no_value(
    kube_control_plane, laptop, caplog, capfd
):
    inv, key, known = laptop
    admin = kube_control_plane.resource()
    caplog.set_level(logging.DEBUG)
    dagster, report = _apply_dagster(admin, inv)

    settings = admin.get("v1", "Secret", release.SETTINGS_SECRET, release.NAMESPACE)
    assert _decoded(settings) == SETTINGS  # nothing of the laptop's own
    ssh = admin.get("v1", "Secret", release.SSH_SECRET, release.NAMESPACE)
    assert _decoded(ssh) == {
        release.SSH_KEY_FILE: key.read_text(),
        release.KNOWN_HOSTS_FILE: known.read_text(),
    }
    for rendered in dagster.objects:
        live = admin.get("v1", "ConfigMap", rendered["metadata"]["name"], release.NAMESPACE)
        assert live is not None and live["data"] == rendered["data"]
    assert f"{release.NAMESPACE}/{release.SETTINGS_SECRET}: copied from" in "\n".join(report)

    # No value anywhere a person or the UI reads: the report (the asset's metadata), the
    # logs, the Secrets' metadata, the HelmCharts as the API server stores them.
    shown = [
        "\n".join(report),
        caplog.text,
        *capfd.readouterr(),
        json.dumps(settings["metadata"]),
        json.dumps(ssh["metadata"]),
        *(
            json.dumps(
                admin.get(HELMCHART_API, "HelmChart", h["metadata"]["name"], CHART_NAMESPACE)
            )
            for h in helmcharts(dagster)
        ),
    ]
    assert not [text for text in shown if MARK in text]

    # A second apply rewrites nothing.
    _, again, _ = cluster.apply(admin, dagster, helmcharts(dagster))
    assert again == report
    after = admin.get("v1", "Secret", release.SETTINGS_SECRET, release.NAMESPACE)
    assert after["metadata"]["resourceVersion"] == settings["metadata"]["resourceVersion"]


def test_a_missing_setting_or_ssh_file_is_named_without_values(
    kube_control_plane, laptop, monkeypatch
):
    inv, key, _known = laptop
    admin = kube_control_plane.resource()
    monkeypatch.delenv("PICLUSTER_BACKUP_KEY")
    with pytest.raises(RuntimeError) as missing:
        _apply_dagster(admin, inv)
    assert "piclusterops-settings needs PICLUSTER_BACKUP_KEY" in str(missing.value)
    assert MARK not in str(missing.value)

    monkeypatch.setenv("PICLUSTER_BACKUP_KEY", SETTINGS["PICLUSTER_BACKUP_KEY"])
    key.unlink()
    with pytest.raises(RuntimeError) as unreadable:
        _apply_dagster(admin, inv)
    assert f"cannot read ssh.private_key_path {key}" in str(unreadable.value)
    assert MARK not in str(unreadable.value)
