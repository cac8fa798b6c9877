"""The roles table against the real API server's RBAC (SubjectAccessReviews for a person in each
role's OIDC group), and its Grafana and OpenBao renderings evaluated by what reads them:
JMESPath (Grafana's role_attribute_path language) and OpenBao's path rules."""

import jmespath
import pytest

from platform_assets.releases import roles
from platform_assets.releases.spec import FIELD_MANAGER

# As the API server presents them: the K3s server's oidc-groups-prefix before the provider's
# group (tests/platform/test_k3s_api_oidc.py logs in through it).
GROUP = {r.name: f"oidc:{r.group}" for r in roles.ROLES}

# (role, verb, resource, subresource, api group, namespace, allowed) — written out by hand.
REVIEWS = [
    # guest reads, but cannot write, exec, read logs or read any Secret
    ("guest", "list", "pods", "", "", "query", True),
    ("guest", "get", "deployments", "", "apps", "dagster", True),
    ("guest", "list", "nodes", "", "", None, True),
    ("guest", "create", "pods", "", "", "notebooks", False),
    ("guest", "delete", "pods", "", "", "query", False),
    ("guest", "patch", "deployments", "", "apps", "query", False),
    ("guest", "create", "pods", "exec", "", "notebooks", False),
    ("guest", "get", "pods", "log", "", "query", False),
    ("guest", "get", "secrets", "", "", "notebooks", False),
    ("guest", "list", "secrets", "", "", "databases", False),
    ("guest", "create", "helmcharts", "", "helm.cattle.io", "kube-system", False),
    # dev works in the workspace, reads the cluster, never the restricted zone's Secrets
    ("dev", "create", "pods", "exec", "", "notebooks", True),
    ("dev", "get", "secrets", "", "", "notebooks", True),
    ("dev", "patch", "statefulsets", "", "apps", "nifi", True),
    ("dev", "get", "pods", "log", "", "query", True),
    ("dev", "get", "secrets", "", "", "databases", False),
    ("dev", "list", "secrets", "", "", "secrets", False),
    ("dev", "get", "secrets", "", "", "kube-system", False),
    ("dev", "create", "pods", "exec", "", "databases", False),
    ("dev", "delete", "pods", "", "", "secrets", False),
    ("dev", "create", "helmcharts", "", "helm.cattle.io", "kube-system", False),
    ("dev", "create", "clusterrolebindings", "", "rbac.authorization.k8s.io", None, False),
    # admin can, the restricted zone included
    ("admin", "get", "secrets", "", "", "databases", True),
    ("admin", "list", "secrets", "", "", "secrets", True),
    ("admin", "create", "pods", "exec", "", "secrets", True),
    ("admin", "create", "helmcharts", "", "helm.cattle.io", "kube-system", True),
    ("admin", "create", "clusterrolebindings", "", "rbac.authorization.k8s.io", None, True),
]


@pytest.fixture(scope="module")
def admin_api(kube_control_plane):
    kube = kube_control_plane.resource()
    for namespace in {*roles.DEV_WORKSPACE, *roles.RESTRICTED_NAMESPACES}:
        kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            field_manager=FIELD_MANAGER,
        )
    for manifest in roles.kubernetes_manifests():
        answered = kube.apply(manifest, field_manager=FIELD_MANAGER)
        assert answered.get("rules", answered.get("subjects")) == manifest.get(
            "rules", manifest.get("subjects")
        )
    return kube


@pytest.mark.service
@pytest.mark.parametrize(
    ("role", "verb", "resource", "subresource", "group", "namespace", "allowed"),
    REVIEWS,
    ids=lambda v: str(v),
)
def test_each_role_may_do_what_the_table_says_and_no_more(
    admin_api, role, verb, resource, subresource, group, namespace, allowed
):
    person = f"someone-{role}"
    assert (
        admin_api.access_review(
            person,
            verb,
            resource,
            groups=(GROUP[role], "system:authenticated"),
            group=group,
            namespace=namespace,
            subresource=subresource,
        )
        is allowed
    )


@pytest.mark.service
def test_the_providers_group_names_unprefixed_get_nothing(admin_api):
    # Only the API's presentation (oidc:<group>) is bound; a client certificate or another
    # authenticator naming `picluster-admins` is not an admin.
    for r in roles.ROLES:
        assert not admin_api.access_review(
            "someone", "list", "pods", groups=(r.group, "system:authenticated"), namespace="query"
        )


@pytest.mark.service
def test_someone_in_no_role_group_gets_nothing(admin_api):
    for namespace in ("query", "notebooks"):
        assert not admin_api.access_review(
            "stranger", "list", "pods", groups=("system:authenticated",), namespace=namespace
        )


# Grafana evaluates role_attribute_path with JMESPath over the token's claims.
GRAFANA = [
    (["picluster-admins", "picluster-devs"], "Admin"),
    (["picluster-devs"], "Editor"),
    (["picluster-guests", "other"], "Viewer"),
    (["other"], None),  # role_attribute_strict refuses the login
    ([], None),
]


@pytest.mark.parametrize(("groups", "grafana_role"), GRAFANA)
@pytest.mark.parametrize("claim", ["groups", "cognito:groups"])
def test_grafana_maps_the_most_privileged_group(claim, groups, grafana_role):
    found = jmespath.search(roles.grafana_role_attribute_path(claim), {claim: groups})
    assert (found or None) == grafana_role


def test_only_admins_get_an_openbao_policy_on_everything_and_guests_none():
    import json

    admin = json.loads(roles.openbao_policy(roles.role("admin")))["path"]
    assert list(admin) == ["*"] and "sudo" in admin["*"]["capabilities"]
    dev = json.loads(roles.openbao_policy(roles.role("dev")))["path"]
    assert sorted(dev) == ["secret/data/dev/*", "secret/metadata/dev/*"]
    assert roles.openbao_policy(roles.role("guest")) == ""


def test_the_gateways_let_each_role_through_only_where_the_table_says():
    assert roles.groups_for_gateway("ops") == ["picluster-admins"]
    assert roles.groups_for_gateway("lab") == ["picluster-admins", "picluster-devs"]
    assert roles.groups_for_gateway("dash") == [
        "picluster-admins",
        "picluster-devs",
        "picluster-guests",
    ]
