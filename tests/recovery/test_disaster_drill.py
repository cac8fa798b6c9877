"""The disaster-recovery drill on the FAKE Pi cluster with the real PostgreSQL, two real
SeaweedFS (the lake and the NAS) and the real control plane: a table row, an object and a
ConfigMap are written, the night is backed up (dump, etcd snapshot, mirror, their checks), then
destroyed (the database dropped, the lake emptied, the ConfigMap deleted, every node re-imaged),
and `disaster_recovery` brings all three back.

What is FAKED (tests/fake_pi/standin.py): the server's k3s. Its `etcd-snapshot save` is a real
snapshot of the control plane's etcd; its `--cluster-reset` puts that snapshot's keys back into
the same live etcd (the test session's etcd cannot be replaced under it), where a real K3s
replaces its own etcd's data. The ConfigMap coming back through the real API server is what the
drill asserts. The releases are not drilled: no chart can run here (no container engine).
"""

import uuid

import dagster as dg
import pytest

from platform_assets.inventory import load_inventory
from platform_assets.recovery.disaster import disaster_recovery
from platform_assets.resources import InventoryFile, K3sToken, ssh_resource
from resources.kubernetes import KubernetesResource
from sensors.backups import NIGHTLY
from tests.backups.conftest import (
    BACKUPS,
    failed_checks,
    fill_database,
    platform_postgres,
    resources_for,
    s3_store,
)

pytestmark = [pytest.mark.service, pytest.mark.slow]

NIGHT = "2026-03-07"
TOKEN = "K10drill-cluster-token-5e1b77"  # a test value, never a real secret
INSTALL = (
    'sudo -n sh -c \'mkdir -p /etc/rancher/k3s && printf "token: %s\\n" "$1" '
    "> /etc/rancher/k3s/config.yaml' picluster-drill "
    + TOKEN
    + " && curl -sfL https://get.k3s.io | sudo -n sh -"
)


def all_resources(cluster, tmp_path, lake, pg, nas, token=TOKEN) -> dict:
    inv = load_inventory(cluster.inventory_path)
    return {
        **resources_for(lake, pg, nas),
        "inventory_file": InventoryFile(path=str(cluster.inventory_path)),
        "ssh": ssh_resource(inv),
        "k3s_token": K3sToken(token=token),
        "kubernetes": KubernetesResource(kubeconfig_path=str(tmp_path / "kubeconfig")),
    }


def recover(resources: dict, **config) -> dg.ExecuteInProcessResult:
    return disaster_recovery.execute_in_process(
        run_config={"ops": {"recover_nodes_and_k3s": {"config": {"night": NIGHT, **config}}}},
        resources=resources,
        raise_on_error=False,
    )


def error_of(result) -> str:
    return result.get_step_failure_events()[0].event_specific_data.error.message


@pytest.fixture(scope="module")
def night(fake_cluster, kube_control_plane, postgres, s3, nas, tmp_path_factory, request):
    """A backed-up night: the server running K3s (installed by its installer, with the
    inventory's token), a database, an object and a ConfigMap written, the whole nightly run."""
    from tests.fake_pi.fixtures import ssh_resource_for, targets_for

    monkeypatch = pytest.MonkeyPatch()
    request.addfinalizer(monkeypatch.undo)
    from platform_assets.backups.sealing import generate_key

    monkeypatch.setenv("PICLUSTER_TEST_BACKUP_KEY", generate_key())
    for node in fake_cluster.nodes:  # freshly imaged: nothing of the earlier tests on them
        fake_cluster.stop_node(node.name)
    fake_cluster.restart_all()
    server = targets_for(fake_cluster)[0]
    with ssh_resource_for(fake_cluster).open([server]) as sessions:
        sessions.run(server.name, INSTALL)
    tmp_path = tmp_path_factory.mktemp("drill")
    database = "drill_" + uuid.uuid4().hex[:6]
    counts = fill_database(postgres, database, 40)
    lake, mirror = s3_store(s3, "drill-lake"), s3_store(nas, "drill-nas", ("mirror",))
    landing = "landing/2026-03-07/00/dev-drill.jsonl"
    lake.put(landing, b'{"device": "drill", "t": 19.25}\n')
    configmap = f"drill-{uuid.uuid4().hex[:6]}"
    kube = kube_control_plane.resource()
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": configmap, "namespace": "default"},
            "data": {"written": "before the disaster"},
        },
        field_manager="piclusterops-drill",
    )
    pg = platform_postgres(postgres, [database])
    resources = all_resources(fake_cluster, tmp_path, lake, pg, mirror)
    backup = dg.materialize(
        BACKUPS,
        selection=NIGHTLY,
        partition_key=NIGHT,
        resources=resources,
        raise_on_error=False,
    )
    assert backup.success, failed_checks(backup)
    assert failed_checks(backup) == {}
    return {
        "database": database,
        "counts": counts,
        "lake": lake,
        "landing": landing,
        "configmap": configmap,
        "kube": kube,
        "resources": resources,
        "pg": pg,
        "mirror": mirror,
        "tmp_path": tmp_path,
    }


def test_refused_without_the_confirmation_naming_the_field(night, fake_cluster):
    before = len(fake_cluster.commands("pi-server"))
    result = recover(night["resources"])
    assert not result.success
    assert "ops.recover_nodes_and_k3s.config.confirm" in error_of(result)
    assert len(fake_cluster.commands("pi-server")) == before  # no node was contacted


def test_refused_with_another_token_than_the_snapshots(night, fake_cluster):
    before = len(fake_cluster.commands("pi-server"))
    resources = {**night["resources"], "k3s_token": K3sToken(token="K10some-other-token-9")}
    result = recover(resources, confirm=NIGHT)
    assert not result.success
    assert "was taken with another K3s token" in error_of(result)
    assert "K10some-other-token-9" not in error_of(result)
    assert len(fake_cluster.commands("pi-server")) == before


def test_the_drill_brings_back_what_was_written(night, fake_cluster, postgres):
    kube, lake = night["kube"], night["lake"]
    # The disaster.
    conn = postgres.connect()
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE "{night["database"]}" WITH (FORCE)')
    conn.close()
    for info in [i for bucket in lake.bucket_names() for i in lake.list(f"{bucket}/")]:
        lake.delete(info.key)
    assert kube.delete("v1", "ConfigMap", night["configmap"], "default")
    for node in fake_cluster.nodes:
        fake_cluster.stop_node(node.name)
    fake_cluster.restart_all()
    assert "k3s_started" not in fake_cluster.state("pi-server")  # re-imaged: no K3s

    result = recover(night["resources"], confirm=NIGHT, reboot_timeout_s=60)
    assert result.success, error_of(result)

    configmap = kube.get("v1", "ConfigMap", night["configmap"], "default")
    assert configmap is not None and configmap["data"] == {"written": "before the disaster"}
    assert lake.get(night["landing"]) == b'{"device": "drill", "t": 19.25}\n'
    conn = postgres.connect(night["database"])
    with conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM public.runs")
        assert cur.fetchone()[0] == night["counts"]["public.runs"]
    conn.close()
    resets = [a for a in fake_cluster.commands("pi-server") if "--cluster-reset" in a]
    assert len(resets) == 1 and any(a.startswith("--token-file=") for a in resets[0])
    assert not any(TOKEN in " ".join(a) for a in fake_cluster.commands("pi-server"))
