"""The people's roles (admin, dev, guest), as one table from which everything that grants
access is generated: Kubernetes ClusterRoles and bindings (the `access_roles` release), the
gateway each role may pass (gateway.py), Grafana's role mapping, the Dagster webserver each
reaches, and the OpenBao policies and login roles (openbao.py).

A person is in a role by being in its group at the OIDC provider (its groups claim,
`PICLUSTER_OIDC_GROUPS_CLAIM`); the table never names a person. What each role can do, and how
to log in: docs/roles/.
"""

import json
from dataclasses import dataclass

from platform_assets.inventory import Inventory
from platform_assets.releases.access_settings import KUBE_API_PREFIX, load_access_settings
from platform_assets.releases.spec import Chart, Release

LABELS = {"app.kubernetes.io/managed-by": "piclusterops"}
PREFIX = "picluster"
READ = ("get", "list", "watch")

# What a reader sees (no Secrets anywhere; logs only where a role lists them).
_CLUSTER_OBJECTS = (
    ("", ("pods", "services", "endpoints", "events", "namespaces", "nodes")),
    ("", ("persistentvolumeclaims", "persistentvolumes")),
    ("apps", ("deployments", "statefulsets", "daemonsets", "replicasets")),
    ("batch", ("jobs", "cronjobs")),
    ("networking.k8s.io", ("networkpolicies",)),
    ("helm.cattle.io", ("helmcharts",)),
    ("postgresql.cnpg.io", ("clusters",)),
)
# Namespaces where developers work: their notebooks, NiFi flows, and Trino.
DEV_WORKSPACE = ("notebooks", "nifi", "query")
RESTRICTED_NAMESPACES = ("databases", "secrets")


@dataclass(frozen=True)
class Role:
    name: str
    group: str  # the value of the OIDC groups claim that puts a person in this role
    summary: str
    # Kubernetes: read the cluster's objects; also logs and ConfigMaps; the workspace rights
    # in DEV_WORKSPACE; everything (admin).
    reads_cluster: bool
    reads_logs_and_config: bool
    works_in_workspace: bool
    cluster_admin: bool
    gateways: tuple[str, ...]  # gateway.GATEWAYS this role may pass
    grafana: str  # Grafana org role
    dagster: str  # which Dagster webserver: "full" or "read-only"
    openbao_paths: tuple[tuple[str, tuple[str, ...]], ...]  # (path, capabilities); () = no login


ROLES = (
    Role(
        name="admin",
        group="picluster-admins",
        summary="everything, the secrets included",
        reads_cluster=True,
        reads_logs_and_config=True,
        works_in_workspace=True,
        cluster_admin=True,
        gateways=("ops", "lab", "dash"),
        grafana="Admin",
        dagster="full",
        openbao_paths=(("*", ("create", "read", "update", "patch", "delete", "list", "sudo")),),
    ),
    Role(
        name="dev",
        group="picluster-devs",
        summary="notebooks, Trino, NiFi flows; reads the cluster but not its Secrets",
        reads_cluster=True,
        reads_logs_and_config=True,
        works_in_workspace=True,
        cluster_admin=False,
        gateways=("lab", "dash"),
        grafana="Editor",
        dagster="read-only",
        openbao_paths=(
            ("secret/data/dev/*", ("create", "read", "update", "patch", "delete", "list")),
            ("secret/metadata/dev/*", ("read", "list", "delete")),
        ),
    ),
    Role(
        name="guest",
        group="picluster-guests",
        summary="read-only dashboards",
        reads_cluster=True,
        reads_logs_and_config=False,
        works_in_workspace=False,
        cluster_admin=False,
        gateways=("dash",),
        grafana="Viewer",
        dagster="read-only",
        openbao_paths=(),
    ),
)


def role(name: str) -> Role:
    return next(r for r in ROLES if r.name == name)


def groups_for_gateway(gateway: str) -> list[str]:
    return [r.group for r in ROLES if gateway in r.gateways]


# --- Kubernetes --------------------------------------------------------------------------------


def _meta(name: str, namespace: str | None = None) -> dict:
    meta: dict = {"name": name, "labels": dict(LABELS)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _rules(r: Role) -> list[dict]:
    if r.cluster_admin:
        return [
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"nonResourceURLs": ["*"], "verbs": ["*"]},
        ]
    rules = [
        {"apiGroups": [group], "resources": list(resources), "verbs": list(READ)}
        for group, resources in _CLUSTER_OBJECTS
    ]
    if r.reads_logs_and_config:
        rules.append(
            {"apiGroups": [""], "resources": ["pods/log", "configmaps"], "verbs": list(READ)}
        )
    return rules


def _workspace_rules() -> list[dict]:
    """What a developer may do in DEV_WORKSPACE: restart and exec into pods, scale and restart
    workloads, read and write that namespace's Secrets and ConfigMaps (their own flows' and
    notebooks' credentials). Never in the restricted zone."""
    return [
        {"apiGroups": [""], "resources": ["pods"], "verbs": [*READ, "delete"]},
        {
            "apiGroups": [""],
            "resources": ["pods/exec", "pods/portforward"],
            "verbs": ["create", "get"],
        },
        {
            "apiGroups": [""],
            "resources": ["secrets", "configmaps"],
            "verbs": [*READ, "create", "update", "patch", "delete"],
        },
        {
            "apiGroups": ["apps"],
            "resources": ["deployments", "statefulsets", "deployments/scale", "statefulsets/scale"],
            "verbs": [*READ, "patch", "update"],
        },
    ]


def kubernetes_group(r: Role) -> str:
    """The role's group as the API server presents it (the K3s server's oidc-groups-prefix)."""
    return KUBE_API_PREFIX + r.group


def _group_subject(group: str) -> dict:
    return {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}


def workspace(inv: Inventory) -> tuple[str, ...]:
    """DEV_WORKSPACE as this inventory has it (nifi's namespace exists only with NiFi on)."""
    return tuple(ns for ns in DEV_WORKSPACE if ns != "nifi" or inv.nifi)


def kubernetes_manifests(namespaces: tuple[str, ...] = DEV_WORKSPACE) -> list[dict]:
    """One ClusterRole and ClusterRoleBinding per role, and the developers' workspace role
    bound in each of `namespaces`."""
    out: list[dict] = []
    for r in ROLES:
        name = f"{PREFIX}-{r.name}"
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": _meta(name),
                "rules": _rules(r),
            }
        )
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": _meta(name),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": name,
                },
                "subjects": [_group_subject(kubernetes_group(r))],
            }
        )
    workspace = f"{PREFIX}-workspace"
    out.append(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(workspace),
            "rules": _workspace_rules(),
        }
    )
    workers = [kubernetes_group(r) for r in ROLES if r.works_in_workspace and not r.cluster_admin]
    for namespace in namespaces:
        out.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "RoleBinding",
                "metadata": _meta(workspace, namespace),
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": workspace,
                },
                "subjects": [_group_subject(g) for g in workers],
            }
        )
    return out


def access_roles(inv: Inventory) -> Release:
    return Release(
        name="access_roles",
        namespace="kube-system",
        description="The admin, dev and guest roles as ClusterRoles bound to the OIDC groups "
        f"as the API presents them ({', '.join(kubernetes_group(r) for r in ROLES)}), and the "
        f"developers' workspace role in {', '.join(workspace(inv))} (docs/roles/).",
        charts=(Chart(name="access-roles", manifests=tuple(kubernetes_manifests(workspace(inv)))),),
        workloads=(),
        needs=("network_zones",),  # the workspace namespaces
    )


# --- Grafana -----------------------------------------------------------------------------------


def grafana_role_attribute_path(groups_claim: str) -> str:
    """Grafana's `auth.jwt.role_attribute_path` (JMESPath over the ID token's claims):
    the most privileged role whose group the person is in; anyone else is refused
    (`role_attribute_strict`)."""
    ordered = sorted(ROLES, key=lambda r: ("Admin", "Editor", "Viewer").index(r.grafana))
    # Quoted (a JSON string is a JMESPath quoted identifier): a claim such as cognito:groups
    # is no bare identifier.
    claim = json.dumps(groups_claim)
    terms = [f"contains({claim}[*], '{r.group}') && '{r.grafana}'" for r in ordered]
    return " || ".join(terms)


def grafana_role_settings() -> dict:
    """The role mapping of Grafana's `grafana.ini` `auth.jwt` section, which the monitoring
    release merges beside the token's checks (monitoring.grafana_login_values; the groups
    claim from settings)."""
    return {
        "role_attribute_path": grafana_role_attribute_path(load_access_settings().groups_claim),
        "role_attribute_strict": True,
        "allow_assign_grafana_admin": False,
    }


# --- OpenBao -----------------------------------------------------------------------------------


def openbao_policy(r: Role) -> str:
    """The role's OpenBao ACL policy, in its JSON form (HCL's superset: one line, no escapes
    that HCL parsers read differently); "" for a role with no OpenBao login."""
    if not r.openbao_paths:
        return ""
    return policy_json(r.openbao_paths)


def policy_json(paths) -> str:
    return json.dumps({"path": {p: {"capabilities": list(c)} for p, c in paths}})
