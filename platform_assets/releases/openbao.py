"""The `secrets` release: OpenBao (the open-source Vault) holding the platform's secrets, its agent
injector putting them into the pods that ask, in the restricted zone.

Unseal without a person: OpenBao's `static` seal (2.4+) with a 32-byte key the platform
generates once into the Secret `secrets/openbao-seal` and hands the server as an environment
variable. A reboot, a rescheduled pod or a K3s restart unseal by themselves. The cost: the key
sits in the cluster's own etcd (and so in every etcd snapshot), beside the data it protects. It
stops someone holding only OpenBao's volume (a stolen SD card of the node it runs on), not
someone who can read Secrets in `secrets` or holds an etcd snapshot; those are admins only
(roles.py) and the backups leave the cluster sealed (docs/backups.md). A KMS or a transit seal
on another machine would keep the key off the cluster; a home lab has neither.

Configuration as code: the server's first start runs OpenBao's self-initialization (the
`initialize` stanza rendered below from roles.py): the KV store `secret/`, the policies, the
Kubernetes login for the platform's pods and the OIDC login for people, one OIDC role per
person role bound to its group (so only the admins' group ever gets the admin policy). The
root token of that first start is revoked by OpenBao itself; nobody ever holds one.
"""

import json
import re

from platform_assets.inventory import Inventory
from platform_assets.releases import roles
from platform_assets.releases.access_settings import AccessSettings, load_access_settings
from platform_assets.releases.spec import (
    AdminSecret,
    Chart,
    Container,
    GeneratedSecret,
    Image,
    Release,
    Workload,
)

NAMESPACE = "secrets"
CHART_REPO = "https://openbao.github.io/openbao-helm"
CHART_VERSION = "0.28.0"  # appVersion v2.5.3 (the chart's Chart.yaml)
REGISTRY = "quay.io"
OPENBAO_IMAGE = Image("quay.io/openbao/openbao", "2.5.3")
# The injector is HashiCorp's vault-k8s, which the OpenBao chart deploys: the tag is the chart's
# own default (its values table at chart 0.27.x, docs/releases.md), the version its templates
# are written for.
INJECTOR_IMAGE = Image("docker.io/hashicorp/vault-k8s", "1.7.2")
ADDRESS = f"http://openbao.{NAMESPACE}.svc:8200"
# Restricted zone's node: beside PostgreSQL (the capacity plan, docs/releases.md).
NODE = {"picluster.io/postgres": "true"}
STORAGE_CLASS = "local-path"

# A Go server holding a handful of KV secrets: no published Pi figure; sized from Vault's
# small-cluster guidance scaled down and the facts note (k8s-releases-day2-facts.md §5).
SERVER = Container("openbao", OPENBAO_IMAGE, 96, 192, "50m", "500m")
INJECTOR = Container("sidecar-injector", INJECTOR_IMAGE, 32, 96, "10m", "200m")
# The injected agent runs as an init container only (pre-populate-only): its memory never
# adds to a pod's (the larger of init and main containers counts).
AGENT = {"memRequest": "32Mi", "memLimit": "64Mi", "cpuRequest": "10m", "cpuLimit": "200m"}

SEAL_SECRET = "openbao-seal"  # noqa: S105 (a Secret's name)
SEAL_KEY = "seal_key"
SEAL_ENV = "BAO_SEAL_KEY"
OIDC_SECRET = "openbao-oidc"  # noqa: S105 (made by a person: docs/roles/admin.md)
OIDC_ENV = "BAO_OIDC_CLIENT_SECRET"
# Only pods carrying this label go through the injector's webhook, so its failurePolicy can be
# Fail (a pod that needs a secret never starts without it) without touching any other pod.
INJECT_LABEL = {"picluster.io/inject-secrets": "true"}
CLI_REDIRECT = "http://localhost:8250/oidc/callback"  # `bao login -method=oidc`
_HCL_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")

# Platform pods that read from OpenBao: (kubernetes auth role, service accounts, policy paths).
SERVICE_LOGINS = {
    "gateway": (
        ("gateway", ("gateway-ops", "gateway-lab", "gateway-dash")),
        (("secret/data/gateway/*", ("read",)),),
    ),
}


def _hcl_key(key: str) -> str:
    # A bound claim's name may be no HCL identifier (cognito:groups): such a key is quoted.
    return key if _HCL_IDENTIFIER.fullmatch(key) else json.dumps(key)


def _hcl_value(value) -> str:
    if isinstance(value, dict):
        items = " ".join(f"{_hcl_key(k)} = {_hcl_value(v)}" for k, v in value.items())
        return "{ " + items + " }"
    return json.dumps(value)  # strings, numbers, booleans and lists are valid HCL as JSON


def _request(name: str, path: str, data: dict) -> str:
    # `data = { ... }`, the form of OpenBao's self-initialization docs (configuration/self-init).
    body = "\n".join(f"      {k} = {_hcl_value(v)}" for k, v in data.items())
    return (
        f'  request "{name}" {{\n    operation = "update"\n    path = "{path}"\n'
        f"    data = {{\n{body}\n    }}\n  }}"
    )


def initialize_stanza(access: AccessSettings) -> str:
    """OpenBao's self-initialization, from the roles table and SERVICE_LOGINS."""
    requests = [
        _request("kv", "sys/mounts/secret", {"type": "kv", "options": {"version": "2"}}),
        _request("kubernetes-auth", "sys/auth/kubernetes", {"type": "kubernetes"}),
        _request(
            "kubernetes-auth-config",
            "auth/kubernetes/config",
            {"kubernetes_host": "https://kubernetes.default.svc"},
        ),
    ]
    for name, ((role, accounts), paths) in SERVICE_LOGINS.items():
        requests.append(
            _request(
                f"policy-{name}", f"sys/policies/acl/{name}", {"policy": roles.policy_json(paths)}
            )
        )
        requests.append(
            _request(
                f"kubernetes-role-{role}",
                f"auth/kubernetes/role/{role}",
                {
                    "bound_service_account_names": list(accounts),
                    "bound_service_account_namespaces": [name],
                    "token_policies": [name],
                    "token_ttl": "1h",
                },
            )
        )
    requests.append(_request("oidc-auth", "sys/auth/oidc", {"type": "oidc"}))
    requests.append(
        _request(
            "oidc-auth-config",
            "auth/oidc/config",
            {
                "oidc_discovery_url": access.issuer_url,
                "oidc_client_id": access.client_id,
                # Read from the server's environment (the person-made Secret), never rendered.
                "oidc_client_secret": {
                    "eval_type": "string",
                    "eval_source": "env",
                    "env_var": OIDC_ENV,
                },
            },
        )
    )
    for r in roles.ROLES:
        if not r.openbao_paths:
            continue  # no OpenBao login at all (guest)
        requests.append(
            _request(
                f"policy-{r.name}",
                f"sys/policies/acl/{r.name}",
                {"policy": roles.openbao_policy(r)},
            )
        )
        requests.append(
            _request(
                f"oidc-role-{r.name}",
                f"auth/oidc/role/{r.name}",
                {
                    "role_type": "oidc",
                    "user_claim": "sub",
                    "groups_claim": access.groups_claim,
                    "oidc_scopes": [access.groups_scope],
                    "bound_claims": {access.groups_claim: [r.group]},
                    "allowed_redirect_uris": [CLI_REDIRECT],
                    "token_policies": [r.name],
                    "token_ttl": "8h",
                },
            )
        )
    return 'initialize "platform" {\n' + "\n".join(requests) + "\n}\n"


def server_config(access: AccessSettings) -> str:
    """The server's HCL: one raft node, the static seal, metrics, self-initialization."""
    return (
        "ui = false\n"
        'listener "tcp" {\n'
        '  address = "[::]:8200"\n'
        '  cluster_address = "[::]:8201"\n'
        # Plain HTTP inside the restricted zone: only the pods of zones.FLOWS reach it.
        "  tls_disable = 1\n"
        "  telemetry { unauthenticated_metrics_access = true }\n"
        "}\n"
        'storage "raft" { path = "/openbao/data" }\n'
        'service_registration "kubernetes" {}\n'
        f'seal "static" {{\n  current_key_id = "piclusterops-1"\n  current_key = "env://{SEAL_ENV}"\n}}\n'
        'telemetry {\n  prometheus_retention_time = "30s"\n  disable_hostname = true\n}\n'
        + initialize_stanza(access)
    )


def chart_values(access: AccessSettings) -> dict:
    def image(img: Image) -> dict:
        return {
            "registry": img.repository.split("/", 1)[0],
            "repository": img.repository.split("/", 1)[1],
            "tag": img.tag,
        }

    return {
        "global": {"tlsDisable": True},
        "injector": {
            "enabled": True,
            "replicas": 1,
            "image": image(INJECTOR_IMAGE),
            "agentImage": image(OPENBAO_IMAGE),
            "agentDefaults": AGENT,
            "resources": INJECTOR.resources(),
            "webhook": {
                "failurePolicy": "Fail",
                "objectSelector": {"matchLabels": dict(INJECT_LABEL)},
            },
            "affinity": "",  # one replica: the anti-affinity rule is moot
        },
        "server": {
            "image": image(OPENBAO_IMAGE),
            "resources": SERVER.resources(),
            "nodeSelector": dict(NODE),
            "affinity": "",
            "dataStorage": {"enabled": True, "size": "1Gi", "storageClass": STORAGE_CLASS},
            "extraSecretEnvironmentVars": [
                {"envName": SEAL_ENV, "secretName": SEAL_SECRET, "secretKey": SEAL_KEY},
                {"envName": OIDC_ENV, "secretName": OIDC_SECRET, "secretKey": "client_secret"},
            ],
            "standalone": {"enabled": False},
            "ha": {
                "enabled": True,
                "replicas": 1,
                "raft": {"enabled": True, "config": server_config(access)},
                # With one replica the chart's budget allows 0 unavailable: every drain of
                # the node would wait on it forever (the rolling patch never forces).
                "disruptionBudget": {"enabled": False},
            },
        },
        "ui": {"enabled": False},
        "csi": {"enabled": False},
    }


def secrets(inv: Inventory) -> Release:
    access = load_access_settings()
    return Release(
        name="secrets",
        namespace=NAMESPACE,
        description="OpenBao: the platform's secrets (KV `secret/`), injected into the pods "
        "that ask by the agent injector; unsealed by a generated static key after any "
        "restart; configured by its self-initialization from the roles table (admin policy "
        "only for the admins' group). Restricted zone.",
        charts=(
            Chart(
                name="openbao",
                repo=CHART_REPO,
                chart="openbao",
                version=CHART_VERSION,
                owns_data=True,  # its raft volume: a reinstall would delete every secret
                values=chart_values(access),
            ),
        ),
        workloads=(
            Workload("StatefulSet", "openbao", (SERVER,), node_selector=NODE),
            Workload("Deployment", "openbao-agent-injector", (INJECTOR,)),
        ),
        needs=("network_zones",),
        secrets=(GeneratedSecret(name=SEAL_SECRET, namespace=NAMESPACE, keys=(SEAL_KEY,)),),
        # The server reads it into BAO_OIDC_CLIENT_SECRET at start: without it the pod never
        # starts (a Secret reference of a container's environment is not optional).
        admin_secrets=(
            AdminSecret(
                name=OIDC_SECRET,
                namespace=NAMESPACE,
                keys=(("client_secret", "the client secret the OIDC provider issued OpenBao"),),
                needed_by="OpenBao's server (people's OIDC logins)",
                guide="docs/roles/admin.md, 'What only an admin does, once', step 1",
            ),
        ),
    )
