"""The platform's ServiceAccount `piclusterops` against the real API server's RBAC: what its
role lets it do and what it refuses, asked as the ServiceAccount itself (a real bound token, as
a pod has); and the dagster release's HelmCharts accepted by the real HelmChart CRD."""

import json

import pytest

from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue, rbac
from platform_assets.releases.spec import FIELD_MANAGER, helmcharts
from resources.kubernetes import KubernetesResource
from resources.settings import PROJECT_ROOT
from tests.kube.test_access import token_for

pytestmark = pytest.mark.service

DAGSTER = catalogue.dagster(load_inventory(PROJECT_ROOT / "inventory.example.yaml"))


@pytest.fixture(scope="module")
def platform_sa(kube_control_plane, tmp_path_factory):
    """A KubernetesResource authenticated as the pod of ServiceAccount dagster/piclusterops."""
    admin = kube_control_plane.resource()
    (rbac_chart,) = [c for c in DAGSTER.charts if c.name == "dagster-rbac"]
    namespaces = {m["metadata"].get("namespace") for m in rbac_chart.manifests} - {None}
    for ns in sorted(namespaces):
        admin.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            field_manager=FIELD_MANAGER,
        )
    for manifest in rbac_chart.manifests:
        admin.apply(dict(manifest), field_manager=FIELD_MANAGER)
    mount = tmp_path_factory.mktemp("serviceaccount")
    (mount / "token").write_text(token_for(admin, rbac.NAMESPACE, rbac.SERVICE_ACCOUNT))
    (mount / "ca.crt").write_bytes(kube_control_plane.ca_cert.read_bytes())
    (mount / "namespace").write_text(rbac.NAMESPACE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        patch.setenv("KUBERNETES_SERVICE_PORT", str(kube_control_plane.port))
        yield KubernetesResource(service_account_dir=str(mount))


# (verb, resource, subresource, group, namespace, name, allowed)
REVIEWS = [
    ("get", "nodes", "", "", None, "", True),
    ("patch", "nodes", "", "", None, "", True),
    ("delete", "nodes", "", "", None, "", False),
    ("list", "pods", "", "", "databases", "", True),
    ("create", "pods", "eviction", "", "query", "", True),
    ("delete", "pods", "", "", "query", "", False),
    ("create", "pods", "", "", "databases", "", False),
    ("create", "helmcharts", "", "helm.cattle.io", "kube-system", "", True),
    ("create", "helmcharts", "", "helm.cattle.io", "default", "", False),
    ("get", "secrets", "", "", "databases", "pg-dagster", True),
    ("get", "secrets", "", "", "databases", "someone-elses", False),
    ("get", "secrets", "", "", "kube-system", "k3s-serving", False),
    ("get", "secrets", "", "", "dagster", "piclusterops-settings", True),
    ("patch", "secrets", "", "", "dagster", "piclusterops-ssh", True),
    ("patch", "configmaps", "", "", "dagster", "piclusterops-inventory", True),
    ("patch", "configmaps", "", "", "dagster", "dagster-instance", False),
    ("patch", "configmaps", "", "", "kube-system", "coredns", False),
    ("create", "jobs", "", "batch", "dagster", "", True),
    ("create", "jobs", "", "batch", "kube-system", "", False),
    ("create", "clusterrolebindings", "", "rbac.authorization.k8s.io", None, "", False),
    ("escalate", "clusterroles", "", "rbac.authorization.k8s.io", None, "", False),
    ("create", "serviceaccounts", "token", "", "kube-system", "", False),
]


@pytest.mark.parametrize(
    ("verb", "resource", "subresource", "group", "namespace", "name", "allowed"),
    REVIEWS,
    ids=lambda v: str(v),
)
def test_the_platform_role_allows_what_its_assets_do_and_nothing_else(
    platform_sa, verb, resource, subresource, group, namespace, name, allowed
):
    assert (
        platform_sa.can_i(
            verb, resource, group=group, namespace=namespace, subresource=subresource, name=name
        )
        is allowed
    )


def test_the_dagster_helmcharts_are_accepted_by_the_real_crd_with_no_secret(kube_control_plane):
    admin = kube_control_plane.resource()
    for manifest in helmcharts(DAGSTER):
        answered = admin.apply(manifest, field_manager=FIELD_MANAGER, dry_run=True)
        # Nothing pruned by the CRD's schema: the server keeps every field we send (and
        # adds its defaults, e.g. driver).
        sent = manifest["spec"]
        assert {k: answered["spec"].get(k) for k in sent} == sent
    (chart,) = [h for h in helmcharts(DAGSTER) if h["spec"].get("chart") == "dagster"]
    values = json.dumps(chart["spec"]["values"])
    for secret_key in ("postgresqlPassword", "secretKey", "accessKey", 'password": "'):
        assert secret_key not in values
