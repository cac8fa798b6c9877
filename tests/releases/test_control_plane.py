"""The releases against the real control plane (kube-apiserver with the helm-controller's CRDs,
the helm-controller itself, KWOK as the kubelet).

What is real: the HelmChart CRD's schema admitting what we render, server-side apply with our
field manager and its dry-run diffs, the helm-controller turning each HelmChart into a
`helm-install-<name>` Job, the Job controller, the scheduler and Deployment rollouts. What is not:
no container runs (KWOK completes the Job's pod, so helm never runs and no chart is installed or
rendered). Where release_ready needs what helm would have created (the Helm release record, the
chart's Deployments), the test creates it as helm would, and says so.
"""

import base64
import json
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.assets import InventoryFile
from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue, readiness
from platform_assets.releases.assets import build_release_assets, rollback_release
from platform_assets.releases.spec import CHART_NAMESPACE, helmcharts
from tests.harness.kube import wait_until
from tests.harness.kwok_stages import K3S_STATE_ANNOTATION, KWOK_NODE_ANNOTATION

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory.example.yaml"
INV = load_inventory(EXAMPLE)
RELEASES = build_release_assets(INV)
TEST_MANAGER = "piclusterops-tests"
NODE = "releases-test-node"
HC = "helm.cattle.io/v1"


@pytest.fixture(scope="module")
def kube(kube_control_plane):
    """The admin's KubernetesResource, with one KWOK node for the helm-controller's Job pods
    (they select kubernetes.io/os=linux) and the test's stand-in workloads."""
    resource = kube_control_plane.resource()
    key, value = KWOK_NODE_ANNOTATION
    resource.apply(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE,
                "labels": {
                    "kubernetes.io/hostname": NODE,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "arm64",
                },
                "annotations": {key: value, K3S_STATE_ANNOTATION: "running"},
            },
        },
        field_manager=TEST_MANAGER,
    )
    wait_until(
        lambda: any(s.name == NODE and s.ready for s in resource.node_statuses()),
        30,
        f"{NODE} Ready",
    )
    return resource


def resources(kube, inventory=EXAMPLE):
    return {"inventory_file": InventoryFile(path=str(inventory)), "kubernetes": kube}


def run(kube, names, apply=False, instance=None, inventory=EXAMPLE, wait_s=30.0):
    return dg.materialize(
        [RELEASES],
        selection=list(names),
        resources=resources(kube, inventory),
        run_config={"ops": {"releases": {"config": {"apply": apply, "wait_s": wait_s}}}},
        instance=instance,
        raise_on_error=False,
    )


def check(result, name) -> dg.AssetCheckEvaluation:
    (c,) = [c for c in result.get_asset_check_evaluations() if c.asset_key.path == [name]]
    return c


def job_of(kube, chart):
    return wait_until(
        lambda: (
            (kube.get("batch/v1", "Job", f"helm-install-{chart}", CHART_NAMESPACE) or {})
            .get("status", {})
            .get("succeeded")
            and kube.get("batch/v1", "Job", f"helm-install-{chart}", CHART_NAMESPACE)
        ),
        60,
        f"helm-install-{chart} completed (KWOK completes its pod)",
    )


def test_the_crd_admits_every_helmchart_and_the_controller_makes_each_an_install_job(kube):
    charts = [m for r in catalogue.releases(INV) for m in helmcharts(r)]
    for manifest in charts:
        # A dry run through admission and the CRD's structural schema: an unknown or
        # mistyped field would be refused (strict field validation) or pruned (compared below).
        would_be = kube.apply(manifest, field_manager=TEST_MANAGER, dry_run=True)
        assert would_be["spec"] == manifest["spec"], manifest["metadata"]["name"]
    # The controller's part, for the charts of one release: a Job per HelmChart.
    result = run(kube, ["cert_manager"], apply=True)
    for chart in ("cert-manager", "lan-ca"):
        job = job_of(kube, chart)
        assert job["metadata"]["ownerReferences"][0]["name"] == chart
    (mat,) = result.get_asset_materialization_events()
    assert mat.materialization.metadata["changed"].value == "cert-manager, lan-ca"


def test_a_second_apply_changes_nothing(kube):
    first = run(kube, ["metallb"], apply=True)
    (mat,) = first.get_asset_materialization_events()
    assert mat.materialization.metadata["changed"].value == "metallb, metallb-pool"
    generations = {
        c: kube.get(HC, "HelmChart", c, CHART_NAMESPACE)["metadata"]["generation"]
        for c in ("metallb", "metallb-pool")
    }
    again = run(kube, ["metallb"], apply=True)
    (mat,) = again.get_asset_materialization_events()
    assert mat.materialization.metadata["changed"].value == "none"
    assert {
        c: kube.get(HC, "HelmChart", c, CHART_NAMESPACE)["metadata"]["generation"]
        for c in generations
    } == generations
    plan = run(kube, ["metallb"])  # plan mode: the dry-run diff against the live HelmCharts
    (obs,) = [e for e in plan.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    metadata = obs.asset_observation_data.asset_observation.metadata
    assert metadata["changes"].value == 0
    assert "HelmChart kube-system/metallb-pool: unchanged" in metadata["plan"].value


def _helm_release_record(kube, release, chart, namespace, config_hash, status="deployed"):
    # What helm itself writes when it installs (type and labels as Helm 3's secret driver);
    # the helm-controller adds the configHash label. Created by the test: helm never runs here.
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": readiness.HELM_RELEASE_TYPE,
            "metadata": {
                "name": f"sh.helm.release.v1.{chart}.v1",
                "namespace": namespace,
                "labels": {
                    "owner": "helm",
                    "name": chart,
                    "version": "1",
                    "status": status,
                    readiness.CONFIG_HASH: config_hash,
                },
            },
            "data": {"release": base64.b64encode(b"(test stand-in)").decode()},
        },
        field_manager=TEST_MANAGER,
    )


def _deployment(name, namespace, node_selector):
    # The chart's Deployment as it would render it, made by the test (no chart renders here).
    labels = {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": node_selector,
                    "containers": [{"name": "main", "image": "trinodb/trino:476"}],
                },
            },
        },
    }


def test_release_ready_names_what_is_missing_until_the_release_is_ready(kube):
    run(kube, ["trino"], apply=True)
    # Two charts: the coordinator's certificate (trino-tls) and Trino itself; the apply's own
    # check may come before the second's install Job completes, so a second apply (a no-op) is
    # the one read.
    tls_job, job = job_of(kube, "trino-tls"), job_of(kube, "trino")
    first = check(run(kube, ["trino"], apply=True), "trino")
    assert not first.passed and first.severity == dg.AssetCheckSeverity.ERROR
    assert (
        "trino: HelmChart trino: job helm-install-trino completed but there is no Helm release "
        "record for trino" in first.description
    )
    assert "last lines of job helm-install-trino" in first.description

    # What `helm install --create-namespace` would have made first.
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "query"}},
        field_manager=TEST_MANAGER,
    )
    # An older install's record: the hash is not the applied spec's.
    _helm_release_record(kube, "trino", "trino", "query", "0" * 63)
    stale = check(run(kube, ["trino"]), "trino")
    assert "was installed from other values (configHash 000" in stale.description

    _helm_release_record(kube, "trino", "trino", "query", readiness.job_config_hash(job))
    _helm_release_record(kube, "trino", "trino-tls", "query", readiness.job_config_hash(tls_job))
    missing = check(run(kube, ["trino"]), "trino")
    assert "trino: Deployment trino-coordinator does not exist" in missing.description
    assert "trino: Deployment trino-worker does not exist" in missing.description

    linux = {"kubernetes.io/os": "linux"}
    kube.apply(_deployment("trino-coordinator", "query", linux), field_manager=TEST_MANAGER)
    # No node carries this label: the worker's pod stays Pending, the rollout unready.
    nowhere = {"picluster.io/trino": "nowhere"}
    kube.apply(_deployment("trino-worker", "query", nowhere), field_manager=TEST_MANAGER)
    wait_until(
        lambda: kube.rollout_status("Deployment", "trino-coordinator", "query").ready,
        30,
        "trino-coordinator rolled out",
    )
    unready = check(run(kube, ["trino"]), "trino")
    assert "trino: Deployment trino-worker is not ready" in unready.description
    assert "trino-coordinator" not in unready.description

    kube.apply(_deployment("trino-worker", "query", linux), field_manager=TEST_MANAGER)
    wait_until(
        lambda: kube.rollout_status("Deployment", "trino-worker", "query").ready,
        30,
        "trino-worker rolled out",
    )
    ready = check(run(kube, ["trino"]), "trino")
    assert ready.passed, ready.description


def test_a_failed_condition_fails_release_ready_naming_release_and_job(kube):
    run(kube, ["metastore"], apply=True)
    job_of(kube, "metastore")
    # The controller sets Failed once the Job exhausts its retries; helm never runs here, so
    # the test stops the controller from managing the chart and writes the status as it would.
    kube.apply(
        {
            "apiVersion": HC,
            "kind": "HelmChart",
            "metadata": {
                "name": "metastore",
                "namespace": CHART_NAMESPACE,
                "annotations": {"helmcharts.helm.cattle.io/unmanaged": "true"},
            },
        },
        field_manager=TEST_MANAGER,
    )
    kube.apply(
        {
            "apiVersion": HC,
            "kind": "HelmChart",
            "metadata": {"name": "metastore", "namespace": CHART_NAMESPACE},
            "status": {
                "jobName": "helm-install-metastore",
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "Job failed",
                        "message": "Job has reached the specified backoff limit",
                    }
                ],
            },
        },
        field_manager="test-as-helm-controller",
        subresource="status",
        force=True,
    )
    failed = check(run(kube, ["metastore"]), "metastore")
    assert not failed.passed
    assert failed.description.startswith(
        "metastore: HelmChart metastore: Failed: Job failed Job has reached the specified "
        "backoff limit (job helm-install-metastore)"
    )
    assert "last lines of job helm-install-metastore:" in failed.description


def test_rollback_restores_the_earlier_spec(kube, tmp_path):
    data = yaml.safe_load(EXAMPLE.read_text())
    data["network"]["metallb_pool"] = {"start": "192.168.0.210", "end": "192.168.0.220"}
    moved = tmp_path / "inventory.yaml"
    moved.write_text(yaml.safe_dump(data))
    pool = ("helm.cattle.io/v1", "HelmChart", "metallb-pool", CHART_NAMESPACE)
    with dg.instance_for_test() as instance:
        run(kube, ["metallb"], apply=True, instance=instance)
        before = kube.get(*pool)["spec"]["chartContent"]
        changed = run(kube, ["metallb"], apply=True, instance=instance, inventory=moved)
        (mat,) = changed.get_asset_materialization_events()
        assert mat.materialization.metadata["changed"].value == "metallb-pool"
        assert kube.get(*pool)["spec"]["chartContent"] != before
        result = rollback_release.execute_in_process(
            run_config={
                "ops": {"rollback_release_op": {"config": {"release": "metallb", "wait_s": 30}}}
            },
            resources=resources(kube),
            instance=instance,
        )
    assert result.success
    assert kube.get(*pool)["spec"]["chartContent"] == before
    (restored,) = result.get_asset_materialization_events()
    assert restored.materialization.metadata["changed"].value == "metallb-pool"


def test_generated_secrets_reach_no_helmchart_event_log_or_dagster_record(kube, capsys):
    with dg.instance_for_test() as instance:
        result = run(kube, ["postgres", "object_store"], apply=True, instance=instance)
        records = "\n".join(dg.serialize_value(e) for e in instance.all_logs(result.run_id))
    printed = capsys.readouterr()
    ready = check(result, "postgres")
    # No CloudNativePG operator in this run: its CRD is not served, and the check says so.
    assert "postgres: Cluster pg-main does not exist (the Kubernetes API at" in ready.description
    assert "serves no kind Cluster in postgresql.cnpg.io/v1" in ready.description
    values = []
    for name, namespace in [
        ("pg-ledger", "databases"),
        ("pg-metastore", "databases"),
        ("pg-metastore", "query"),
        ("pg-dagster", "databases"),
        ("s3-query", "storage"),
        ("s3-ingest", "storage"),
        ("seaweedfs-s3-config", "storage"),
    ]:
        secret = kube.get("v1", "Secret", name, namespace)
        for key, value in secret["data"].items():
            if key != "username":
                values.append(base64.b64decode(value).decode())
    copy = kube.get("v1", "Secret", "pg-metastore", "query")["data"]
    assert copy == kube.get("v1", "Secret", "pg-metastore", "databases")["data"]
    (config,) = [v for v in values if v.startswith("{")]
    assert {i["name"] for i in json.loads(config)["identities"]} == set(catalogue.S3_PURPOSES)
    published = json.dumps(kube.list(HC, "HelmChart", CHART_NAMESPACE))
    events = json.dumps(
        [kube.list("v1", "Event", ns) for ns in (CHART_NAMESPACE, "databases", "storage")]
    )
    # Every password and S3 key on its own (the identity file is made of the S3 keys).
    for value in [v for v in values if v is not config]:
        assert value not in records
        assert value not in printed.out + printed.err
        assert value not in published
        assert value not in events
