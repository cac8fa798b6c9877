"""The least-privilege RBAC of the platform's ServiceAccount `piclusterops` (namespace dagster).

What the platform's assets do with the Kubernetes API, and nothing more:

- nodes: get, list, patch (cluster): readiness, capacity, cordon and uncordon;
- pods: get, list (cluster): a drain lists a node's pods in every namespace;
- pods/eviction: create (cluster): a drain evicts through the Eviction API (PDBs respected);
- namespaces: get, create, patch (cluster): a release's Secrets go in before its chart runs;
- deployments, statefulsets, daemonsets, jobs, CNPG clusters: get, list, watch (cluster):
  readiness;
- helmcharts.helm.cattle.io: get, list, watch, create, patch, update (kube-system): releases;
- pods/log: get (kube-system): a failed install Job's log in the readiness check;
- secrets: get and patch the named ones, create, list (each namespace holding a generated
  Secret): generated Secrets, and Helm's release records that readiness reads;
- jobs: create, delete; pods, pods/log, events: read (dagster): K8sRunLauncher's run Jobs;
- configmaps: get and patch the named ones, create (dagster): the dagster release's own
  ConfigMaps, applied before its charts.

Whoever may create a HelmChart holds cluster-admin: K3s's helm-controller runs each chart's
install Job as a ServiceAccount bound to `cluster-admin`. This role therefore confers
cluster-admin in effect, and is only as narrow as that allows; see docs/dagster-on-cluster.md.
`create` and `list` cannot be limited by name (Kubernetes checks resourceNames only for
requests that name one object), so they hold for every Secret of a release's namespace; `list`
is there only because readiness reads Helm's release records, and it reads every Secret there.
"""

SERVICE_ACCOUNT = "piclusterops"
NAMESPACE = "dagster"
ROLE_PREFIX = "piclusterops"
LABELS = {"app.kubernetes.io/managed-by": "piclusterops"}


def _meta(name: str, namespace: str | None = None) -> dict:
    meta = {"name": name, "labels": dict(LABELS)}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _binding(kind: str, name: str, namespace: str | None = None) -> dict:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding" if kind == "Role" else "ClusterRoleBinding",
        "metadata": _meta(name, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}],
    }


def _role(name: str, namespace: str, rules: list[dict]) -> list[dict]:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(name, namespace),
        "rules": rules,
    }
    return [role, _binding("Role", name, namespace)]


def manifests(secrets: dict[str, list[str]], configmaps: list[str] = ()) -> list[dict]:
    """The ServiceAccount, its ClusterRole and Roles, and their bindings; `secrets` is
    {namespace: [names]} of the Secrets the releases generate, derive or copy, `configmaps` the
    names of the ConfigMaps the dagster release applies in its namespace."""
    out: list[dict] = [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(SERVICE_ACCOUNT, NAMESPACE),
            "automountServiceAccountToken": True,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(f"{ROLE_PREFIX}-nodes"),
            "rules": [
                {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
                {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
                {
                    "apiGroups": [""],
                    "resources": ["namespaces"],
                    "verbs": ["get", "create", "patch"],
                },
                {
                    "apiGroups": ["apps"],
                    "resources": ["deployments", "statefulsets", "daemonsets"],
                    "verbs": ["get", "list", "watch"],
                },
                {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
                {
                    "apiGroups": ["postgresql.cnpg.io"],
                    "resources": ["clusters"],
                    "verbs": ["get", "list", "watch"],
                },
            ],
        },
        _binding("ClusterRole", f"{ROLE_PREFIX}-nodes"),
    ]
    out += _role(
        f"{ROLE_PREFIX}-releases",
        "kube-system",
        [
            {
                "apiGroups": ["helm.cattle.io"],
                "resources": ["helmcharts"],
                "verbs": ["get", "list", "watch", "create", "patch", "update"],
            },
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        ],
    )
    out += _role(
        f"{ROLE_PREFIX}-runs",
        NAMESPACE,
        [
            {
                "apiGroups": ["batch"],
                "resources": ["jobs"],
                "verbs": ["get", "list", "watch", "create", "delete"],
            },
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
            *(
                [
                    {
                        "apiGroups": [""],
                        "resources": ["configmaps"],
                        "resourceNames": sorted(configmaps),
                        "verbs": ["get", "patch"],
                    },
                    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
                ]
                if configmaps
                else []
            ),
        ],
    )
    for namespace, names in sorted(secrets.items()):
        out += _role(
            f"{ROLE_PREFIX}-secrets",
            namespace,
            [
                {
                    "apiGroups": [""],
                    "resources": ["secrets"],
                    "resourceNames": names,
                    "verbs": ["get", "patch"],
                },
                {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "list"]},
            ],
        )
    return out
