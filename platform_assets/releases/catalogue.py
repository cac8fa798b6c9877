"""The platform's releases: charts, pinned versions, images, Pi-sized resources and placement.

Each release is declared once here, as a function of the inventory (only MetalLB's address pool
comes from it; placement is by node labels the inventory gives its nodes). Where a chart or image
version comes from, and what was confirmed about it, is in docs/releases.md.

Placement (the inventory decides which node carries which label):

| label | release | example node |
| --- | --- | --- |
| `picluster.io/postgres=true` | postgres | pi-agent-2 |
| `picluster.io/object-store=true` | object_store | pi-agent-3 |
| `picluster.io/metastore=true` | metastore | pi-agent-1 |
| `picluster.io/trino=coordinator` / `worker` | trino | pi-agent-1 / pi-agent-2 |
| `picluster.io/operators=true` | metallb controller, cert_manager, postgres_operator | pi-server |
| (the same) | | pi-agent-3 |
| `picluster.io/monitoring=true` | monitoring (Prometheus, Alertmanager, ...) | pi-agent-1 |
| `picluster.io/dashboards=true` | monitoring (Grafana) | pi-agent-2 |
| `picluster.io/logging=true` | logging (Loki) | pi-agent-2 |

DaemonSets (MetalLB's speaker, node_exporter, Fluent Bit) run on every node and are counted on
each.
"""

import json

from platform_assets.inventory import Inventory
from platform_assets.releases import lan_tls
from platform_assets.releases.gateway import gateway
from platform_assets.releases.nifi import nifi
from platform_assets.releases.notebooks import notebooks
from platform_assets.releases.openbao import secrets
from platform_assets.releases.roles import access_roles
from platform_assets.releases.spec import (
    Chart,
    Container,
    GeneratedSecret,
    Image,
    PlannedRelease,
    Release,
    Workload,
)
from platform_assets.releases.zones import network_zones

POSTGRES_NODE = {"picluster.io/postgres": "true"}
OBJECT_STORE_NODE = {"picluster.io/object-store": "true"}
METASTORE_NODE = {"picluster.io/metastore": "true"}
TRINO_COORDINATOR_NODE = {"picluster.io/trino": "coordinator"}
TRINO_WORKER_NODE = {"picluster.io/trino": "worker"}
DAGSTER_NODE = {"picluster.io/dagster": "true"}
CONTROL_NODE = {"picluster.io/zone": "control"}
# The cluster's single-replica operators (MetalLB's controller, cert-manager, CloudNativePG):
# on the nodes carrying this label only, so the plan counts them there and not on all four
# (unpinned, each counted ~1 GiB on every node: room monitoring and logging need).
OPERATORS_NODE = {"picluster.io/operators": "true"}

# K3s's bundled local-path provisioner: volumes on the node's own disk (the pods are pinned to a
# node anyway, so nothing is lost by not having networked storage).
STORAGE_CLASS = "local-path"

METALLB = "0.15.3"
METALLB_IMAGE_TAG = "v0.15.3"
CERT_MANAGER = "v1.21.1"
CNPG_CHART = "0.29.0"
CNPG_OPERATOR = "1.30.0"
POSTGRES_IMAGE = Image("ghcr.io/cloudnative-pg/postgresql", "17.6")
SEAWEEDFS_IMAGE = Image("chrislusf/seaweedfs", "4.48")  # the version the tests run
HIVE_IMAGE = Image("apache/hive", "4.0.0")
BUSYBOX_IMAGE = Image("busybox", "1.37.0")
TRINO_CHART = "1.42.2"
TRINO_IMAGE = Image("trinodb/trino", "476")  # the version the tests run (DESIGN.md)

# The metastore's PostgreSQL JDBC driver is not in the Hive image: the init container fetches it
# from Maven Central and refuses it unless the checksum matches (sha256 of the file Maven
# Central serves, taken with `mvn dependency:get` for org.postgresql:postgresql:42.7.8).
PG_JDBC_URL = (
    "https://repo1.maven.org/maven2/org/postgresql/postgresql/42.7.8/postgresql-42.7.8.jar"
)
PG_JDBC_SHA256 = "2a32a9dcbc42d67a50ad3a0de5efd102c8d2be46720045f2cbd6689f160ab7c7"

# The names are the code's defaults (resources/settings.py BUCKET_SETTINGS: a key's first segment
# is its bucket's role); `compute-logs` is Dagster's own (the dagster release).
BUCKETS = ("landing", "warehouse", "quarantine", "backups", "compute-logs")
# Who gets which S3 access (SeaweedFS identities; actions scoped to buckets): each purpose has
# its own key pair, so a leaked device key can only write uploads. What uses which:
# - ingest: the devices' uploads;
# - curation: Dagster's `object_store` resource (PICLUSTER_S3_ACCESS_KEY): the landing sensor,
#   curation (staging and publishing inside warehouse and quarantine), and the nightly mirror's
#   reads of the three data buckets;
# - backups: the same resource's `backups` bucket (PICLUSTER_S3_BACKUPS_ACCESS_KEY): the dumps;
# - query: Trino and the Hive Metastore: the tables in warehouse (the aggregates are written
#   there) and the `sensor_quarantine` table over quarantine (read only).
S3_PURPOSES = {
    "ingest": ("Write:landing", "List:landing"),
    "curation": (
        "Read:landing",
        "List:landing",
        "Read:warehouse",
        "Write:warehouse",
        "List:warehouse",
        "Read:quarantine",
        "Write:quarantine",
        "List:quarantine",
    ),
    "query": (
        "Read:warehouse",
        "Write:warehouse",
        "List:warehouse",
        "Read:quarantine",
        "List:quarantine",
    ),
    "backups": ("Read:backups", "Write:backups", "List:backups"),
    # Dagster's S3ComputeLogManager (the dagster release): run logs after the pod is gone.
    "compute-logs": ("Read:compute-logs", "Write:compute-logs", "List:compute-logs"),
}
S3_PORT = 8333
S3_ENDPOINT = f"http://seaweedfs.storage.svc:{S3_PORT}"
METASTORE_URI = "thrift://metastore.query.svc:9083"
PG_SERVICE = "pg-main-rw.databases.svc"


def _c(name, image, request, limit, cpu_request="50m", cpu_limit="500m") -> Container:
    return Container(name, image, request, limit, cpu_request, cpu_limit)


def _image_values(image: Image) -> dict:
    return {"repository": image.repository, "tag": image.tag}


# --- metallb -----------------------------------------------------------------------------------

METALLB_CONTROLLER = _c(
    "controller", Image("quay.io/metallb/controller", METALLB_IMAGE_TAG), 96, 192, "25m", "200m"
)
METALLB_SPEAKER = _c(
    "speaker", Image("quay.io/metallb/speaker", METALLB_IMAGE_TAG), 96, 192, "25m", "200m"
)


def metallb(inv: Inventory) -> Release:
    pool = inv.network.metallb_pool
    pool_manifests = (
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": "lan", "namespace": "metallb-system"},
            "spec": {"addresses": [f"{pool.start}-{pool.end}"]},
        },
        {
            "apiVersion": "metallb.io/v1beta1",
            "kind": "L2Advertisement",
            "metadata": {"name": "lan", "namespace": "metallb-system"},
            "spec": {"ipAddressPools": ["lan"]},
        },
    )
    return Release(
        name="metallb",
        namespace="metallb-system",
        description="LoadBalancer addresses on the LAN: MetalLB in L2 mode with the inventory's "
        f"pool {pool.start}-{pool.end} (K3s's ServiceLB is disabled).",
        charts=(
            Chart(
                name="metallb",
                repo="https://metallb.github.io/metallb",
                chart="metallb",
                version=METALLB,
                owns_data=True,  # its CRDs: a reinstall would delete every pool
                values={
                    "crds": {"enabled": True},
                    "controller": {
                        "image": _image_values(METALLB_CONTROLLER.image),
                        "resources": METALLB_CONTROLLER.resources(),
                        "nodeSelector": dict(OPERATORS_NODE),
                    },
                    "speaker": {
                        "image": _image_values(METALLB_SPEAKER.image),
                        "resources": METALLB_SPEAKER.resources(),
                        # L2 only: no BGP router on a home LAN, and FRR would add a container.
                        "frr": {"enabled": False},
                    },
                    # Nor the frr-k8s BGP backend (a DaemonSet with containers of its own that
                    # the capacity plan would not see): the chart's newer values enable it by
                    # default (metallb/metallb charts/metallb/values.yaml @017774f).
                    "frrk8s": {"enabled": False},
                },
            ),
            Chart(name="metallb-pool", manifests=pool_manifests),
        ),
        workloads=(
            Workload(
                "Deployment",
                "metallb-controller",
                (METALLB_CONTROLLER,),
                node_selector=OPERATORS_NODE,
            ),
            Workload("DaemonSet", "metallb-speaker", (METALLB_SPEAKER,)),
        ),
    )


# --- cert-manager ------------------------------------------------------------------------------

CM_CONTROLLER = _c(
    "cert-manager-controller",
    Image("quay.io/jetstack/cert-manager-controller", CERT_MANAGER),
    64,
    192,
    "20m",
    "200m",
)
CM_WEBHOOK = _c(
    "cert-manager-webhook",
    Image("quay.io/jetstack/cert-manager-webhook", CERT_MANAGER),
    32,
    96,
    "10m",
    "100m",
)
# cainjector holds every CRD and webhook configuration in its cache (observed at ~160 Mi).
CM_CAINJECTOR = _c(
    "cert-manager-cainjector",
    Image("quay.io/jetstack/cert-manager-cainjector", CERT_MANAGER),
    96,
    256,
    "10m",
    "100m",
)


def cert_manager(inv: Inventory) -> Release:
    ca = (
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": "selfsigned"},
            "spec": {"selfSigned": {}},
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "Certificate",
            # A ClusterIssuer reads its CA from cert-manager's own namespace.
            "metadata": {"name": "lan-root-ca", "namespace": "cert-manager"},
            "spec": {
                "isCA": True,
                "commonName": "PiClusterOps LAN CA",
                "secretName": "lan-root-ca",
                "duration": "87600h",
                "privateKey": {"algorithm": "ECDSA", "size": 256},
                "issuerRef": {
                    "name": "selfsigned",
                    "kind": "ClusterIssuer",
                    "group": "cert-manager.io",
                },
            },
        },
        {
            "apiVersion": "cert-manager.io/v1",
            "kind": "ClusterIssuer",
            "metadata": {"name": "lan-ca"},
            "spec": {"ca": {"secretName": "lan-root-ca"}},
        },
    )
    return Release(
        name="cert_manager",
        namespace="cert-manager",
        description="A LAN certificate authority: cert-manager, a self-signed root and the "
        "`lan-ca` ClusterIssuer every internal TLS certificate comes from.",
        charts=(
            Chart(
                name="cert-manager",
                repo="https://charts.jetstack.io",
                chart="cert-manager",
                version=CERT_MANAGER,
                owns_data=True,  # CRDs, and with them every Certificate
                values={
                    "crds": {"enabled": True, "keep": True},
                    "image": _image_values(CM_CONTROLLER.image),
                    "resources": CM_CONTROLLER.resources(),
                    "nodeSelector": dict(OPERATORS_NODE),
                    "webhook": {
                        "image": _image_values(CM_WEBHOOK.image),
                        "resources": CM_WEBHOOK.resources(),
                        "nodeSelector": dict(OPERATORS_NODE),
                    },
                    "cainjector": {
                        "image": _image_values(CM_CAINJECTOR.image),
                        "resources": CM_CAINJECTOR.resources(),
                        "nodeSelector": dict(OPERATORS_NODE),
                    },
                    # A post-install Job that only waits for the webhook: release_ready checks
                    # the webhook's rollout itself, and the Job would be a container without
                    # the resources set here.
                    "startupapicheck": {"enabled": False},
                },
            ),
            # The root CA's key lives in the Secret this chart's Certificate creates.
            Chart(name="lan-ca", manifests=ca, owns_data=True),
        ),
        workloads=(
            Workload("Deployment", "cert-manager", (CM_CONTROLLER,), node_selector=OPERATORS_NODE),
            Workload(
                "Deployment", "cert-manager-webhook", (CM_WEBHOOK,), node_selector=OPERATORS_NODE
            ),
            Workload(
                "Deployment",
                "cert-manager-cainjector",
                (CM_CAINJECTOR,),
                node_selector=OPERATORS_NODE,
            ),
        ),
    )


# --- CloudNativePG -----------------------------------------------------------------------------

CNPG_MANAGER = _c(
    "manager",
    Image("ghcr.io/cloudnative-pg/cloudnative-pg", CNPG_OPERATOR),
    128,
    256,
    "50m",
    "500m",
)


def postgres_operator(inv: Inventory) -> Release:
    return Release(
        name="postgres_operator",
        namespace="cnpg-system",
        description="The CloudNativePG operator: runs the PostgreSQL clusters of `postgres`.",
        charts=(
            Chart(
                name="cloudnative-pg",
                repo="https://cloudnative-pg.github.io/charts",
                chart="cloudnative-pg",
                version=CNPG_CHART,
                owns_data=True,  # its CRDs: a reinstall would delete every Cluster
                values={
                    "crds": {"create": True},
                    "image": _image_values(CNPG_MANAGER.image),
                    "resources": CNPG_MANAGER.resources(),
                    "nodeSelector": dict(OPERATORS_NODE),
                },
            ),
        ),
        workloads=(
            Workload("Deployment", "cloudnative-pg", (CNPG_MANAGER,), node_selector=OPERATORS_NODE),
        ),
    )


POSTGRES = _c("postgres", POSTGRES_IMAGE, 768, 1024, "250m", "2")
# Databases: (role = database name, Secret with its password). The ledger keeps the names
# the cluster profile's defaults use (PICLUSTER_PG_DATABASE/USER = piclusterops).
PG_DATABASES = (
    ("piclusterops", "pg-ledger"),
    ("metastore", "pg-metastore"),
    ("dagster", "pg-dagster"),
)


def postgres(inv: Inventory) -> Release:
    owner, owner_secret = PG_DATABASES[0]
    cluster = {
        "apiVersion": "postgresql.cnpg.io/v1",
        "kind": "Cluster",
        "metadata": {"name": "pg-main", "namespace": "databases"},
        "spec": {
            "instances": 1,
            "imageName": POSTGRES_IMAGE.ref,
            # One instance: the operator's PDB (minAvailable 1) would block every node drain.
            "enablePDB": False,
            "storage": {"size": "10Gi", "storageClass": STORAGE_CLASS},
            "resources": POSTGRES.resources(),
            "affinity": {"nodeSelector": dict(POSTGRES_NODE)},
            "postgresql": {
                "parameters": {
                    "shared_buffers": "192MB",
                    "effective_cache_size": "512MB",
                    "max_connections": "60",
                    "work_mem": "4MB",
                }
            },
            "bootstrap": {
                "initdb": {"database": owner, "owner": owner, "secret": {"name": owner_secret}}
            },
            "managed": {
                "roles": [
                    {
                        "name": role,
                        "ensure": "present",
                        "login": True,
                        "passwordSecret": {"name": secret},
                    }
                    for role, secret in PG_DATABASES[1:]
                ]
            },
        },
    }
    databases = tuple(
        {
            "apiVersion": "postgresql.cnpg.io/v1",
            "kind": "Database",
            "metadata": {"name": role, "namespace": "databases"},
            "spec": {"name": role, "owner": role, "cluster": {"name": "pg-main"}},
        }
        for role, _ in PG_DATABASES[1:]
    )
    return Release(
        name="postgres",
        namespace="databases",
        description="PostgreSQL (CloudNativePG `pg-main`, one instance, PDB off so drains "
        "work): databases for the ingestion ledger, the metastore and Dagster.",
        charts=(Chart(name="postgres", manifests=(cluster, *databases), owns_data=True),),
        workloads=(
            Workload(
                "Cluster",
                "pg-main",
                (POSTGRES,),
                node_selector=POSTGRES_NODE,
                api_version="postgresql.cnpg.io/v1",
            ),
        ),
        needs=("postgres_operator",),
        secrets=tuple(
            GeneratedSecret(
                name=secret,
                namespace="databases",
                keys=("username", "password"),
                type="kubernetes.io/basic-auth",
                username=role,
                copies=("query",) if role == "metastore" else (),
            )
            for role, secret in PG_DATABASES
        ),
    )


# --- object store (SeaweedFS) ------------------------------------------------------------------

SEAWEEDFS = _c("seaweedfs", SEAWEEDFS_IMAGE, 512, 1536, "100m", "2")
SEAWEEDFS_BUCKETS_JOB = _c("create-buckets", SEAWEEDFS_IMAGE, 32, 128, "10m", "200m")


def _weed_server_args() -> list[str]:
    # One process (master, volume, filer, S3): the smallest SeaweedFS that serves S3, the same
    # binary and version the tests run. Flags checked against `weed server -h` of 4.48.
    return [
        "server",
        "-dir=/data",
        "-ip.bind=0.0.0.0",
        "-master.volumeSizeLimitMB=1024",  # a bucket is a collection of ~7 volumes
        "-volume.max=0",
        "-filer",
        # Every chunk encrypted with its own key, kept in the filer's metadata (at rest on disk).
        "-filer.encryptVolumeData",
        "-s3",
        f"-s3.port={S3_PORT}",
        "-s3.config=/etc/seaweedfs/s3.json",
    ]


def object_store(inv: Inventory) -> Release:
    labels = {"app.kubernetes.io/name": "seaweedfs"}
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "seaweedfs", "namespace": "storage", "labels": labels},
        "spec": {
            "serviceName": "seaweedfs-peers",
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": dict(OBJECT_STORE_NODE),
                    "containers": [
                        {
                            "name": SEAWEEDFS.name,
                            "image": SEAWEEDFS.image.ref,
                            "args": _weed_server_args(),
                            "ports": [
                                {"name": "s3", "containerPort": S3_PORT},
                                {"name": "master", "containerPort": 9333},
                                {"name": "master-grpc", "containerPort": 19333},
                                {"name": "filer", "containerPort": 8888},
                                {"name": "filer-grpc", "containerPort": 18888},
                            ],
                            "readinessProbe": {
                                "httpGet": {"path": "/cluster/status", "port": 9333},
                                "periodSeconds": 10,
                            },
                            "resources": SEAWEEDFS.resources(),
                            "volumeMounts": [
                                {"name": "data", "mountPath": "/data"},
                                {"name": "s3-config", "mountPath": "/etc/seaweedfs"},
                            ],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "s3-config",
                            "secret": {
                                "secretName": "seaweedfs-s3-config",
                                "items": [{"key": "s3.json", "path": "s3.json"}],
                            },
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
                        "resources": {"requests": {"storage": "200Gi"}},
                    },
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "seaweedfs", "namespace": "storage", "labels": labels},
        "spec": {
            # On the LAN (a MetalLB address) so the sensors upload and a laptop runs Dagster.
            "type": "LoadBalancer",
            "selector": labels,
            "ports": [{"name": "s3", "port": S3_PORT, "targetPort": "s3"}],
        },
    }
    # Buckets after every install and upgrade (a hook re-run is harmless: existing buckets
    # are left as they are).
    master = "seaweedfs-0.seaweedfs-peers:9333"
    create = " && ".join(
        f"(echo 's3.bucket.create -name {b}' | weed shell -master={master})" for b in BUCKETS
    )
    buckets_job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": "seaweedfs-buckets",
            "namespace": "storage",
            "annotations": {
                "helm.sh/hook": "post-install,post-upgrade",
                "helm.sh/hook-delete-policy": "before-hook-creation",
            },
        },
        "spec": {
            "backoffLimit": 10,
            "template": {
                "spec": {
                    "restartPolicy": "OnFailure",
                    "nodeSelector": dict(OBJECT_STORE_NODE),
                    "containers": [
                        {
                            "name": SEAWEEDFS_BUCKETS_JOB.name,
                            "image": SEAWEEDFS_BUCKETS_JOB.image.ref,
                            "command": ["/bin/sh", "-c", create],
                            "resources": SEAWEEDFS_BUCKETS_JOB.resources(),
                        }
                    ],
                }
            },
        },
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "seaweedfs-peers", "namespace": "storage", "labels": labels},
        "spec": {
            "clusterIP": "None",
            "selector": labels,
            "ports": [{"name": "master", "port": 9333}],
        },
    }
    return Release(
        name="object_store",
        namespace="storage",
        description="The S3 object store: SeaweedFS (one `weed server` with filer and S3, data "
        f"encrypted at rest), buckets {', '.join(BUCKETS)}, one key pair per purpose.",
        charts=(
            Chart(
                name="seaweedfs",
                manifests=(statefulset, headless, service, buckets_job),
                owns_data=True,
            ),
        ),
        workloads=(
            Workload("StatefulSet", "seaweedfs", (SEAWEEDFS,), node_selector=OBJECT_STORE_NODE),
            Workload(
                "Job",
                "seaweedfs-buckets",
                (SEAWEEDFS_BUCKETS_JOB,),
                node_selector=OBJECT_STORE_NODE,
                api_version="batch/v1",
            ),
        ),
        needs=("metallb",),
        secrets=(
            *(
                GeneratedSecret(
                    name=f"s3-{purpose}",
                    namespace="storage",
                    keys=("access_key", "secret_key"),
                    copies=("query",) if purpose == "query" else (),
                )
                for purpose in S3_PURPOSES
            ),
            # Derived from the s3-<purpose> Secrets at apply (secrets.s3_config), not random.
            GeneratedSecret(name="seaweedfs-s3-config", namespace="storage", keys=("s3.json",)),
        ),
    )


def s3_identities(credentials: dict[str, tuple[str, str]]) -> str:
    """SeaweedFS's identity file for the purposes' key pairs {purpose: (access, secret)}."""
    identities = [
        {
            "name": purpose,
            "credentials": [{"accessKey": access, "secretKey": secret}],
            "actions": list(S3_PURPOSES[purpose]),
        }
        for purpose, (access, secret) in sorted(credentials.items())
    ]
    return json.dumps({"identities": identities}, indent=2)


# --- metastore ---------------------------------------------------------------------------------

METASTORE = _c("metastore", HIVE_IMAGE, 768, 1024, "100m", "1")
METASTORE_JDBC = _c("fetch-jdbc-driver", BUSYBOX_IMAGE, 16, 64, "10m", "100m")
METASTORE_HEAP = "512m"


def metastore(inv: Inventory) -> Release:
    labels = {"app.kubernetes.io/name": "metastore"}
    core_site = {
        "fs.s3a.endpoint": S3_ENDPOINT,
        "fs.s3a.path.style.access": "true",
        "fs.s3a.connection.ssl.enabled": "false",
        # Trino writes s3:// locations; the metastore resolves them with S3A.
        "fs.s3.impl": "org.apache.hadoop.fs.s3a.S3AFileSystem",
        "fs.s3a.aws.credentials.provider": (
            "com.amazonaws.auth.EnvironmentVariableCredentialsProvider"
        ),
    }
    metastore_site = {
        "metastore.warehouse.dir": "s3a://warehouse/",
        "metastore.thrift.port": "9083",
    }

    def xml(props: dict[str, str]) -> str:
        body = "".join(
            f"  <property><name>{k}</name><value>{v}</value></property>\n" for k, v in props.items()
        )
        return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'

    config = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "metastore-config", "namespace": "query"},
        "data": {"core-site.xml": xml(core_site), "metastore-site.xml": xml(metastore_site)},
    }
    jdbc_url = f"jdbc:postgresql://{PG_SERVICE}:5432/metastore"
    fetch = (
        f"wget -q -O /jdbc/postgresql.jar {PG_JDBC_URL} && "
        f"echo '{PG_JDBC_SHA256}  /jdbc/postgresql.jar' | sha256sum -c -"
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "metastore", "namespace": "query", "labels": labels},
        "spec": {
            "replicas": 1,
            # Two metastores upgrading one schema at once would corrupt it.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": dict(METASTORE_NODE),
                    "initContainers": [
                        {
                            "name": METASTORE_JDBC.name,
                            "image": METASTORE_JDBC.image.ref,
                            "command": ["/bin/sh", "-c", fetch],
                            "resources": METASTORE_JDBC.resources(),
                            "volumeMounts": [{"name": "jdbc", "mountPath": "/jdbc"}],
                        }
                    ],
                    "containers": [
                        {
                            "name": METASTORE.name,
                            "image": METASTORE.image.ref,
                            "ports": [{"name": "thrift", "containerPort": 9083}],
                            "env": [
                                {"name": "SERVICE_NAME", "value": "metastore"},
                                {"name": "DB_DRIVER", "value": "postgres"},
                                {"name": "HADOOP_HEAPSIZE", "value": "512"},
                                {
                                    "name": "HIVE_DB_PASSWORD",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "pg-metastore", "key": "password"}
                                    },
                                },
                                {
                                    "name": "AWS_ACCESS_KEY_ID",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "s3-query", "key": "access_key"}
                                    },
                                },
                                {
                                    "name": "AWS_SECRET_ACCESS_KEY",
                                    "valueFrom": {
                                        "secretKeyRef": {"name": "s3-query", "key": "secret_key"}
                                    },
                                },
                                {
                                    # $(VAR) is expanded by the kubelet from the env above: the
                                    # password never appears in the manifest.
                                    "name": "SERVICE_OPTS",
                                    "value": f"-Xmx{METASTORE_HEAP} "
                                    "-Djavax.jdo.option.ConnectionDriverName="
                                    "org.postgresql.Driver "
                                    f"-Djavax.jdo.option.ConnectionURL={jdbc_url} "
                                    "-Djavax.jdo.option.ConnectionUserName=metastore "
                                    "-Djavax.jdo.option.ConnectionPassword=$(HIVE_DB_PASSWORD)",
                                },
                                {
                                    "name": "HIVE_AUX_JARS_PATH",
                                    "value": "/opt/hadoop/share/hadoop/tools/lib",
                                },
                            ],
                            "readinessProbe": {
                                "tcpSocket": {"port": 9083},
                                "initialDelaySeconds": 20,
                                "periodSeconds": 10,
                            },
                            "resources": METASTORE.resources(),
                            "volumeMounts": [
                                {
                                    "name": "jdbc",
                                    "mountPath": "/opt/hive/lib/postgres.jar",
                                    "subPath": "postgresql.jar",
                                },
                                {
                                    "name": "config",
                                    "mountPath": "/opt/hadoop/etc/hadoop/core-site.xml",
                                    "subPath": "core-site.xml",
                                },
                                {
                                    "name": "config",
                                    "mountPath": "/opt/hive/conf/metastore-site.xml",
                                    "subPath": "metastore-site.xml",
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "jdbc", "emptyDir": {"sizeLimit": "16Mi"}},
                        {"name": "config", "configMap": {"name": "metastore-config"}},
                    ],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "metastore", "namespace": "query", "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "thrift", "port": 9083}]},
    }
    return Release(
        name="metastore",
        namespace="query",
        description="The Hive catalog's metastore: Apache Hive Metastore 4 (standalone, "
        "thrift on 9083) on the `metastore` database of `pg-main`, S3A to the object store.",
        charts=(Chart(name="metastore", manifests=(config, deployment, service)),),
        workloads=(
            Workload(
                "Deployment",
                "metastore",
                (METASTORE,),
                node_selector=METASTORE_NODE,
                init_containers=(METASTORE_JDBC,),
            ),
        ),
        needs=("postgres", "object_store"),
    )


# --- trino -------------------------------------------------------------------------------------

TRINO_COORDINATOR = _c("trino-coordinator", TRINO_IMAGE, 3072, 3072, "500m", "3")
TRINO_WORKER = _c("trino-worker", TRINO_IMAGE, 3072, 3072, "500m", "3")
TRINO_HEAP = "2G"
# Trino's rule: max-memory-per-node + heap-headroom-per-node < the heap. 30 % each of 2G.
TRINO_QUERY_MEMORY_PER_NODE = "600MB"
TRINO_HEADROOM_PER_NODE = "600MB"
# The coordinator serves HTTPS with a LAN CA certificate for the gateway's hop to the web UI
# (https://trino.query.svc:8443/ui/); in-cluster clients (notebooks, Dagster, NiFi) keep HTTP on
# 8080 inside the internal zone for now. The PEM keystore is one file, key then chain, which
# cert-manager writes as the CombinedPEM output.
TRINO_SERVICE = "trino"
TRINO_HTTPS_PORT = 8443
TRINO_TLS_DIR = "/etc/trino-tls"
TRINO_CERTIFICATE = lan_tls.backend_certificate(TRINO_SERVICE, "query", combined_pem=True)


def trino_https_properties() -> dict[str, str]:
    """The coordinator's HTTPS properties, as the chart's `server.config.https` renders them
    (tests/releases/test_backend_tls.py starts a real Trino with exactly these)."""
    return {
        "http-server.https.enabled": "true",
        "http-server.https.port": str(TRINO_HTTPS_PORT),
        "http-server.https.keystore.path": f"{TRINO_TLS_DIR}/{lan_tls.COMBINED_PEM_KEY}",
    }


def trino_gateway_properties() -> list[str]:
    """The gateway forwards with X-Forwarded-* headers; Trino rejects such requests unless told
    to process them."""
    return ["http-server.process-forwarded=true"]


def hive_catalog() -> str:
    props = {
        "connector.name": "hive",
        "hive.metastore.uri": METASTORE_URI,
        "fs.native-s3.enabled": "true",
        "s3.endpoint": S3_ENDPOINT,
        "s3.region": "us-east-1",
        "s3.path-style-access": "true",
        # Resolved by Trino from the pod's environment (envFrom the s3-query Secret).
        "s3.aws-access-key": "${ENV:access_key}",
        "s3.aws-secret-key": "${ENV:secret_key}",
        "s3.exclusive-create": "false",
        "hive.non-managed-table-writes-enabled": "true",
        "hive.storage-format": "PARQUET",
        "hive.allow-register-partition-procedure": "true",
    }
    return "\n".join(f"{k}={v}" for k, v in props.items()) + "\n"


def trino(inv: Inventory) -> Release:
    def jvm() -> dict:
        return {"maxHeapSize": TRINO_HEAP, "gcMethod": {"type": "UseG1GC"}}

    https = trino_https_properties()

    return Release(
        name="trino",
        namespace="query",
        description="Trino 476: a coordinator and one worker (2 GB heap, 3 GiB limit each), "
        "the `hive` catalog on the metastore and the object store; the web UI over HTTPS "
        "with a LAN CA certificate.",
        charts=(
            Chart(name="trino-tls", manifests=(TRINO_CERTIFICATE,)),
            Chart(
                name="trino",
                repo="https://trinodb.github.io/charts",
                chart="trino",
                version=TRINO_CHART,
                values={
                    "image": _image_values(TRINO_IMAGE),
                    "server": {
                        "workers": 1,
                        "config": {
                            "query": {"maxMemory": "1GB"},
                            "https": {
                                "enabled": True,
                                "port": TRINO_HTTPS_PORT,
                                "keystore": {"path": https["http-server.https.keystore.path"]},
                            },
                        },
                    },
                    "additionalConfigProperties": trino_gateway_properties(),
                    "coordinator": {
                        "jvm": jvm(),
                        "config": {
                            "query": {"maxMemoryPerNode": TRINO_QUERY_MEMORY_PER_NODE},
                            "memory": {"heapHeadroomPerNode": TRINO_HEADROOM_PER_NODE},
                        },
                        "resources": TRINO_COORDINATOR.resources(),
                        "nodeSelector": dict(TRINO_COORDINATOR_NODE),
                        "secretMounts": [
                            {
                                "name": "trino-tls",
                                "secretName": TRINO_CERTIFICATE["spec"]["secretName"],
                                "path": TRINO_TLS_DIR,
                            }
                        ],
                        # The container port and the Service port the gateway dials.
                        "additionalExposedPorts": {
                            "https": {
                                "servicePort": TRINO_HTTPS_PORT,
                                "name": "https",
                                "port": TRINO_HTTPS_PORT,
                                "protocol": "TCP",
                            }
                        },
                    },
                    "worker": {
                        "jvm": jvm(),
                        "config": {
                            "query": {"maxMemoryPerNode": TRINO_QUERY_MEMORY_PER_NODE},
                            "memory": {"heapHeadroomPerNode": TRINO_HEADROOM_PER_NODE},
                        },
                        "resources": TRINO_WORKER.resources(),
                        "nodeSelector": dict(TRINO_WORKER_NODE),
                    },
                    "envFrom": [{"secretRef": {"name": "s3-query"}}],
                    "catalogs": {"hive": hive_catalog()},
                },
            ),
        ),
        workloads=(
            Workload(
                "Deployment",
                "trino-coordinator",
                (TRINO_COORDINATOR,),
                node_selector=TRINO_COORDINATOR_NODE,
            ),
            Workload(
                "Deployment", "trino-worker", (TRINO_WORKER,), node_selector=TRINO_WORKER_NODE
            ),
        ),
        # Not cert_manager: Trino keeps serving queries whether or not cert-manager runs (the
        # coordinator's first start waits for its Secret; cert_manager applies earlier).
        needs=("metastore", "object_store"),
    )


# --- dagster (platform_assets/releases/dagster.py) ---------------------------------------------


def _observability_builders():
    # monitoring.py and logs.py (issue 12); imported here, after the builders above they use.
    from platform_assets.releases.logs import logging
    from platform_assets.releases.monitoring import monitoring

    return (monitoring, logging)


def dagster(inv: Inventory) -> Release:
    from platform_assets.releases import dagster as dagster_release

    others = [build(inv) for build in RELEASE_BUILDERS if build is not dagster]
    return dagster_release.dagster(
        inv, s3_endpoint=S3_ENDPOINT, pg_host=PG_SERVICE, other_releases=others
    )


RELEASE_BUILDERS = (
    network_zones,
    access_roles,
    metallb,
    cert_manager,
    postgres_operator,
    postgres,
    object_store,
    metastore,
    trino,
    dagster,
    secrets,
    gateway,
    notebooks,
    nifi,
    *_observability_builders(),
)
RELEASE_NAMES = tuple(b.__name__ for b in RELEASE_BUILDERS)


def releases(inv: Inventory) -> list[Release]:
    """The built releases, in the order they apply."""
    return [build(inv) for build in RELEASE_BUILDERS]


# Releases a later issue will build, with community figures, so the whole catalogue's fit is known
# before they exist (capacity's `full_catalogue_fits`). Every release of the seed is built now.
PLANNED: tuple[PlannedRelease, ...] = ()
