"""`K8sRunLauncher` built as the `dagster` release configures it, launching a run against the
real API server: the Job the API server holds, and where the real scheduler puts its pod.

Real: the API server (admission, the ServiceAccount admission plugin, RBAC: the launcher
authenticates as the pod of ServiceAccount dagster/piclusterops with a real bound token), the
Job controller creating the run's pod, the scheduler placing it. Fake: the nodes' kubelets are
KWOK's (a pod is bound and reported running; no container starts).

Not the chart: charts cannot be fetched here, so the release's values are turned into the
instance's `run_launcher` config by `chart_run_launcher_config` below, a copy of the chart's
mapping (helm/dagster/templates/helpers/instance/_run-launcher.tpl, and the user deployment's
container context, charts/dagster-user-deployments/templates/helpers/_helpers.tpl, read from
dagster-io/dagster); where the version read lacked a key the 1.13 values have, the same key in
snake case. What only the real chart proves is in docs/dagster-on-cluster.md.
"""

import time

import dagster as dg
import pytest
from dagster._core.code_pointer import ModuleCodePointer
from dagster._core.launcher import LaunchRunContext
from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin

from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue, rbac
from platform_assets.releases import dagster as release
from platform_assets.releases.spec import FIELD_MANAGER
from platform_assets.run_placement import infrastructure_job_tags, run_tags
from resources.settings import PROJECT_ROOT
from tests.harness.kube import wait_until
from tests.kube.conftest import POOL_LABEL, kwok_node, ready
from tests.kube.test_access import token_for

pytestmark = pytest.mark.service

DAGSTER = catalogue.dagster(load_inventory(PROJECT_ROOT / "inventory.example.yaml"))
VALUES = next(c for c in DAGSTER.charts if c.name == release.HELM_RELEASE).values
# Two KWOK nodes of this test: the run node the run pods prefer, and one other.
CONTROL = "launch-control"
OTHER = "launch-other"
# What the chart sets beside the values (its own names for its own objects).
CHART_DAGSTER_HOME = "/opt/dagster/dagster_home"
CHART_INSTANCE_CONFIGMAP = f"{release.HELM_RELEASE}-instance"
CHART_PIPELINE_ENV = f"{release.HELM_RELEASE}-pipeline-env"

_SNAKE = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}


def chart_run_launcher_config(values: dict) -> dict:
    """dagster.yaml's run_launcher config, as the chart renders it from these values."""
    k = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {
        "load_incluster_config": k["loadInclusterConfig"],
        "job_namespace": k.get("jobNamespace") or release.NAMESPACE,
        "image_pull_policy": k["imagePullPolicy"],
        "service_account_name": values["global"]["serviceAccountName"],
        "dagster_home": CHART_DAGSTER_HOME,
        "instance_config_map": CHART_INSTANCE_CONFIGMAP,
        "postgres_password_secret": values["global"]["postgresqlSecretName"],
        "env_config_maps": [CHART_PIPELINE_ENV, *(c["name"] for c in k["envConfigMaps"])],
        "env_secrets": [s["name"] for s in k["envSecrets"]],
        "volume_mounts": k["volumeMounts"],
        "volumes": k["volumes"],
        "resources": k["resources"],
        "security_context": k["securityContext"],
        "fail_pod_on_run_failure": k["failPodOnRunFailure"],
        "run_k8s_config": {_SNAKE[key]: v for key, v in k["runK8sConfig"].items()},
    }
    if "image" in k:
        config["job_image"] = f"{k['image']['repository']}:{k['image']['tag']}"
    return config


def code_location_container_context(values: dict) -> dict | None:
    """What the code server hands every run it launches (`--container-context`) when the user
    deployment has includeConfigInLaunchedRuns; since 1.13 also its nodeSelector,
    tolerations and pod security context."""
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    if not deployment.get("includeConfigInLaunchedRuns", {}).get("enabled"):
        return None
    name = deployment["name"]
    k8s = {
        "image_pull_policy": deployment["image"]["pullPolicy"],
        "env_config_maps": [
            f"{release.HELM_RELEASE}-{name}-user-env",
            *(c["name"] for c in deployment.get("envConfigMaps", [])),
        ],
        "env_secrets": [s["name"] for s in deployment.get("envSecrets", [])],
        "volume_mounts": deployment.get("volumeMounts", []),
        "volumes": deployment.get("volumes", []),
        "resources": deployment.get("resources", {}),
        "namespace": release.NAMESPACE,
        "service_account_name": values["global"]["serviceAccountName"],
        "run_k8s_config": {
            "pod_spec_config": {
                "automount_service_account_token": True,
                **(
                    {"node_selector": deployment["nodeSelector"]}
                    if "nodeSelector" in deployment
                    else {}
                ),
                **(
                    {"security_context": deployment["podSecurityContext"]}
                    if "podSecurityContext" in deployment
                    else {}
                ),
            }
        },
    }
    return {"k8s": {key: v for key, v in k8s.items() if v not in ({}, [])}}


@pytest.fixture(scope="module")
def launcher_instance(kube_control_plane, tmp_path_factory):
    """A Dagster instance whose run launcher is the release's K8sRunLauncher, in a "pod" of
    ServiceAccount dagster/piclusterops (its real token where the kubelet mounts one)."""
    admin = kube_control_plane.resource()
    admin.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": release.NAMESPACE}},
        field_manager=FIELD_MANAGER,
    )
    (rbac_chart,) = [c for c in DAGSTER.charts if c.name == "dagster-rbac"]
    for ns in sorted({m["metadata"].get("namespace") for m in rbac_chart.manifests} - {None}):
        admin.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            field_manager=FIELD_MANAGER,
        )
    for manifest in rbac_chart.manifests:
        if manifest["kind"] != "ConfigMap":
            admin.apply(dict(manifest), field_manager=FIELD_MANAGER)
    for name, labels in ((CONTROL, dict(release.RUN_NODE)), (OTHER, {})):
        node = kwok_node(name, labels)
        # Not in the resource tests' pool: their pods must never land on these nodes.
        del node["metadata"]["labels"][POOL_LABEL]
        admin.apply(node, field_manager="piclusterops-tests")
    for name in (CONTROL, OTHER):
        wait_until(lambda n=name: ready(admin, n), 30, f"node {name} Ready")
    mount = tmp_path_factory.mktemp("serviceaccount")
    (mount / "token").write_text(token_for(admin, rbac.NAMESPACE, rbac.SERVICE_ACCOUNT))
    (mount / "ca.crt").write_bytes(kube_control_plane.ca_cert.read_bytes())
    config = chart_run_launcher_config(VALUES)
    with pytest.MonkeyPatch.context() as patch:
        import kubernetes.config.incluster_config as incluster

        # Where the kubelet mounts the token; the client reads these module paths.
        patch.setattr(incluster, "SERVICE_TOKEN_FILENAME", str(mount / "token"))
        patch.setattr(incluster, "SERVICE_CERT_FILENAME", str(mount / "ca.crt"))
        patch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        patch.setenv("KUBERNETES_SERVICE_PORT", str(kube_control_plane.port))
        with dg.instance_for_test(
            overrides={
                "run_launcher": {
                    "module": "dagster_k8s",
                    "class": "K8sRunLauncher",
                    "config": config,
                }
            },
            temp_dir=str(tmp_path_factory.mktemp("instance")),
        ) as instance:
            yield instance, admin
    for name in (CONTROL, OTHER):
        admin.delete("v1", "Node", name)


def _launch(instance, tags: dict) -> dg.DagsterRun:
    """A run of `apply_cluster` from the code location's origin, launched by the launcher."""
    origin = JobPythonOrigin(
        "apply_cluster",
        RepositoryPythonOrigin(
            executable_path="/app/.venv/bin/python",
            code_pointer=ModuleCodePointer("definitions", "defs", working_directory="/app"),
            # The chart sets DAGSTER_CURRENT_IMAGE on the code server: the run's image.
            container_image=release.IMAGE.ref,
            container_context=code_location_container_context(VALUES),
        ),
    )
    run = instance.create_run(
        job_name="apply_cluster",
        run_id=None,
        run_config={},
        resolved_op_selection=None,
        step_keys_to_execute=None,
        status=dg.DagsterRunStatus.NOT_STARTED,
        tags={**infrastructure_job_tags(), **tags},
        root_run_id=None,
        parent_run_id=None,
        job_snapshot=None,
        execution_plan_snapshot=None,
        parent_job_snapshot=None,
        remote_job_origin=None,
        job_code_origin=origin,
        asset_selection=None,
        asset_check_selection=None,
        op_selection=None,
        asset_graph=None,
    )
    instance.run_launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
    return run


_UNITS = {"m": 0.001, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def _quantities(resources: dict) -> dict:
    """Requests and limits as numbers: the API server writes 1024Mi back as 1Gi."""

    def number(q: str) -> float:
        unit = next((u for u in _UNITS if q.endswith(u)), "")
        return float(q.removesuffix(unit)) * _UNITS.get(unit, 1)

    return {kind: {k: number(v) for k, v in vals.items()} for kind, vals in resources.items()}


def _job(admin, run) -> dict:
    name = f"dagster-run-{run.run_id}"
    job = admin.get("batch/v1", "Job", name, release.NAMESPACE)
    assert job is not None, f"the API server holds no Job {release.NAMESPACE}/{name}"
    return job


def _scheduled_node(admin, run, timeout_s=60.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pods = admin.list(
            "v1", "Pod", release.NAMESPACE, label_selector=f"dagster/run-id={run.run_id}"
        )
        bound = [p["spec"].get("nodeName") for p in pods if p["spec"].get("nodeName")]
        if bound:
            return bound[0]
        time.sleep(0.5)
    raise AssertionError(f"the pod of run {run.run_id} was never scheduled: {pods}")


def test_a_launched_run_is_a_job_with_the_releases_image_account_mounts_and_limits(
    launcher_instance,
):
    instance, admin = launcher_instance
    run = _launch(instance, {})
    job = _job(admin, run)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == release.IMAGE.ref
    assert pod["serviceAccountName"] == rbac.SERVICE_ACCOUNT
    env_from = {
        (
            ("secret" if "secretRef" in e else "configmap"),
            (e.get("secretRef") or e["configMapRef"])["name"],
        )
        for e in container["envFrom"]
    }
    assert {
        ("secret", release.SETTINGS_SECRET),
        ("secret", release.COMPUTE_LOGS_SECRET),
        ("configmap", release.ENV_CONFIGMAP),
    } <= env_from
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["inventory"]["configMap"]["name"] == release.INVENTORY_CONFIGMAP
    assert volumes["ssh"]["secret"]["secretName"] == release.SSH_SECRET
    assert volumes["ssh"]["secret"]["defaultMode"] == release.SECRET_FILE_MODE
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["inventory"] == {
        "name": "inventory",
        "mountPath": release.INVENTORY_DIR,
        "readOnly": True,
    }
    assert mounts["ssh"] == {"name": "ssh", "mountPath": release.SSH_DIR, "readOnly": True}
    # The run pod's own size (what the capacity plan counts), not the code server's.
    assert _quantities(container["resources"]) == _quantities(release.RUN.resources())
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert pod["securityContext"]["runAsUser"] == release.IMAGE_USER
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Placement: a preference for the run node, never pinned to the Dagster node.
    preferred = pod["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred[0]["preference"]["matchExpressions"] == [
        {"key": k, "operator": "In", "values": [v]} for k, v in release.RUN_NODE.items()
    ]
    assert "picluster.io/dagster" not in (pod.get("nodeSelector") or {})
    assert _scheduled_node(admin, run)


def test_an_infrastructure_run_for_a_node_is_kept_off_it_by_the_real_scheduler(
    launcher_instance,
):
    instance, admin = launcher_instance
    run = _launch(instance, run_tags([CONTROL]))
    pod = _job(admin, run)["spec"]["template"]["spec"]
    (term,) = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert term["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [CONTROL]}
    ]
    # The run node is preferred, but it is the node this run disrupts: the pod goes elsewhere.
    assert _scheduled_node(admin, run) != CONTROL
    assert instance.get_run_by_id(run.run_id).tags["dagster/image"] == release.IMAGE.ref
