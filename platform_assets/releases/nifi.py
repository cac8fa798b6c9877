"""The `nifi` release: Apache NiFi 2, only when the inventory says `nifi: true`.

No maintained NiFi chart exists (cetic/helm-nifi is archived), so these are our own manifests:
one NiFi node as a StatefulSet with its repositories on a volume, HTTPS on 8443 with the image's
own self-signed certificate (inside the internal zone; people reach it through the `lab`
gateway at /nifi/), and single-user login with generated credentials (`nifi/nifi-login`, read by
a developer with `kubectl get secret`, docs/roles/dev.md). Placed on the server as in the
seed; the capacity plan says that does not fit beside the rest (docs/releases.md), which is why
the switch is off by default. Switching it off again does not uninstall it: delete the
HelmChart `nifi` (its volume stays) or leave it.
"""

from platform_assets.inventory import Inventory
from platform_assets.releases.access_settings import load_access_settings
from platform_assets.releases.spec import (
    Chart,
    Container,
    GeneratedSecret,
    Image,
    Release,
    Workload,
)

NAMESPACE = "nifi"
IMAGE = Image("apache/nifi", "2.0.0")
NODE = {"picluster.io/zone": "control"}  # the server, as in the seed
PORT = 8443
HEAP = "1g"  # the old chart's 2g is a quarter of a Pi; a single-node flow editor runs in 1g
# A JVM with a 1 GiB heap plus metaspace, direct buffers and the Jetty UI.
NIFI = Container("nifi", IMAGE, 1536, 2048, "250m", "2")
LOGIN_SECRET = "nifi-login"  # noqa: S105 (a Secret's name)
LABELS = {"app.kubernetes.io/name": "nifi"}
STORAGE_CLASS = "local-path"


def _from_secret(name: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": LOGIN_SECRET, "key": key}}}


def manifests(proxy_host: str) -> tuple[dict, ...]:
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "nifi", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "serviceName": "nifi",
            "replicas": 1,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "nodeSelector": dict(NODE),
                    "automountServiceAccountToken": False,
                    "containers": [
                        {
                            "name": NIFI.name,
                            "image": IMAGE.ref,
                            "env": [
                                {"name": "NIFI_WEB_HTTPS_PORT", "value": str(PORT)},
                                {"name": "NIFI_WEB_HTTPS_HOST", "value": "0.0.0.0"},  # noqa: S104
                                # The gateway's host, so NiFi accepts requests it forwards.
                                {"name": "NIFI_WEB_PROXY_HOST", "value": proxy_host},
                                {"name": "NIFI_JVM_HEAP_INIT", "value": "512m"},
                                {"name": "NIFI_JVM_HEAP_MAX", "value": HEAP},
                                _from_secret("SINGLE_USER_CREDENTIALS_USERNAME", "username"),
                                _from_secret("SINGLE_USER_CREDENTIALS_PASSWORD", "password"),
                                _from_secret("NIFI_SENSITIVE_PROPS_KEY", "sensitive_props_key"),
                            ],
                            "ports": [{"name": "https", "containerPort": PORT}],
                            "readinessProbe": {
                                "tcpSocket": {"port": PORT},
                                "initialDelaySeconds": 60,
                                "periodSeconds": 10,
                            },
                            "resources": NIFI.resources(),
                            "volumeMounts": [
                                {
                                    "name": "data",
                                    "mountPath": f"/opt/nifi/nifi-current/{d}",
                                    "subPath": d,
                                }
                                for d in (
                                    "conf",
                                    "database_repository",
                                    "flowfile_repository",
                                    "content_repository",
                                    "provenance_repository",
                                    "state",
                                )
                            ],
                        }
                    ],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "storageClassName": STORAGE_CLASS,
                        "resources": {"requests": {"storage": "5Gi"}},
                    },
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "nifi", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {"selector": LABELS, "ports": [{"name": "https", "port": PORT}]},
    }
    return (statefulset, service)


def nifi(inv: Inventory) -> Release:
    if not inv.nifi:
        return Release(
            name="nifi",
            namespace=NAMESPACE,
            description="Apache NiFi: off (`nifi: false` in the inventory); nothing is applied.",
            charts=(),
            workloads=(),
        )
    access = load_access_settings()
    return Release(
        name="nifi",
        namespace=NAMESPACE,
        description=f"Apache NiFi {IMAGE.tag} ({HEAP} heap), single-user login from a generated "
        "Secret, behind the `lab` gateway at /nifi/; on the server as in the seed.",
        charts=(Chart(name="nifi", manifests=manifests(access.host("lab")), owns_data=True),),
        workloads=(Workload("StatefulSet", "nifi", (NIFI,), node_selector=NODE),),
        needs=("object_store", "trino"),
        secrets=(
            GeneratedSecret(
                name=LOGIN_SECRET,
                namespace=NAMESPACE,
                keys=("username", "password", "sensitive_props_key"),
                username="admin",
            ),
        ),
    )
