"""The `notebooks` release: one JupyterLab for the developers, the warehouse ready in it.

One shared lab, not JupyterHub: a hub and a pod per user (1 GiB each by z2jh's default) do not
fit beside everything else on four 8 GB Pis, and the gateway already says who may enter (the
`lab` gateway, developers and admins). Jupyter's own token is therefore off; only the gateway
reaches the lab (zones.py). Our image (deploy/notebooks/Dockerfile) adds the Trino client the
platform pins and a start-up file that connects every kernel to Trino (`warehouse`, `query()`).
Notebooks are kept on a volume of the node it runs on.
"""

from importlib.metadata import version

from platform_assets.inventory import Inventory
from platform_assets.releases import lan_tls
from platform_assets.releases.spec import Chart, Container, Image, Release, Workload

NAMESPACE = "notebooks"
# Beside Dagster: the lab and the code location are the developers' two places.
NODE = {"picluster.io/dagster": "true"}
STORAGE_CLASS = "local-path"
IMAGE = Image("registry.picluster.lan/piclusterops-notebooks", version("piclusterops"))
PORT = 8888
JOVYAN = 1000  # the docker-stacks image's user; its group is 100 (users)
# JupyterLab with a kernel holding query results as DataFrames: z2jh guarantees 1 GiB per user;
# one shared lab gets that as its limit.
LAB = Container("jupyterlab", IMAGE, 384, 1024, "100m", "2")
LABELS = {"app.kubernetes.io/name": "jupyterlab"}
# The lab serves HTTPS itself with a LAN CA certificate for its Service (the `lab` gateway's
# upstream https://jupyterlab.notebooks.svc:8888/).
SERVICE = "jupyterlab"
TLS_DIR = "/etc/jupyterlab-tls"
CERTIFICATE = lan_tls.backend_certificate(SERVICE, NAMESPACE)


def warehouse_environment() -> dict[str, str]:
    """Where the start-up file finds Trino (catalogue.py's service, the sensor tables' schema)."""
    return {
        "TRINO_HOST": "trino.query.svc",
        "TRINO_PORT": "8080",
        "TRINO_CATALOG": "hive",
        "TRINO_SCHEMA": "sensors",
        "TRINO_USER": "notebooks",
    }


def manifests() -> tuple[dict, ...]:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "jupyterlab-work", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": STORAGE_CLASS,
            "resources": {"requests": {"storage": "5Gi"}},
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "jupyterlab", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},  # one volume, one writer
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {
                    "nodeSelector": dict(NODE),
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsUser": JOVYAN,
                        "runAsGroup": 100,
                        "fsGroup": 100,
                        "runAsNonRoot": True,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": LAB.name,
                            "image": IMAGE.ref,
                            "args": [
                                "start-notebook.py",
                                "--IdentityProvider.token=",
                                "--ServerApp.password=",
                                "--ServerApp.allow_remote_access=True",
                                "--ServerApp.trust_xheaders=True",
                                f"--ServerApp.certfile={TLS_DIR}/tls.crt",
                                f"--ServerApp.keyfile={TLS_DIR}/tls.key",
                            ],
                            "env": [
                                {"name": k, "value": v} for k, v in warehouse_environment().items()
                            ],
                            "ports": [{"name": "https", "containerPort": PORT}],
                            "readinessProbe": {
                                "httpGet": {"path": "/api", "port": PORT, "scheme": "HTTPS"},
                                "periodSeconds": 10,
                            },
                            "resources": LAB.resources(),
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "work", "mountPath": "/home/jovyan/work"},
                                {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "work", "persistentVolumeClaim": {"claimName": "jupyterlab-work"}},
                        {
                            "name": "tls",
                            # The jovyan user's group reads the key (fsGroup), nobody writes it.
                            "secret": {
                                "secretName": CERTIFICATE["spec"]["secretName"],
                                "defaultMode": 0o440,
                            },
                        },
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "jupyterlab", "namespace": NAMESPACE, "labels": LABELS},
        "spec": {"selector": LABELS, "ports": [{"name": "https", "port": PORT}]},
    }
    return (CERTIFICATE, claim, deployment, service)


def notebooks(inv: Inventory) -> Release:
    return Release(
        name="notebooks",
        namespace=NAMESPACE,
        description="JupyterLab for the developers (behind the `lab` gateway) with the Trino "
        "client and the warehouse connection ready in every kernel (`warehouse`, `query()`); "
        "HTTPS with a LAN CA certificate.",
        charts=(Chart(name="jupyterlab", manifests=manifests(), owns_data=True),),
        workloads=(Workload("Deployment", "jupyterlab", (LAB,), node_selector=NODE),),
        needs=("trino",),  # not cert_manager: as for Trino (catalogue.trino)
    )
