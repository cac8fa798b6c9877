"""The `dagster` release: the platform's own Dagster on the cluster it manages.

The official chart (`dagster/dagster`, chart version == the dagster version we pin) with our
multi-arch image (deploy/image/Dockerfile) for the webserver, a read-only webserver for guests,
the daemon, the code location and the run pods. Storage on the `dagster` database of `pg-main`
(CloudNativePG); `K8sRunLauncher`; compute logs in the object store.

What every pod of the platform gets, and where (the image-contents test mounts the same paths):

- `PICLUSTER_*` settings, secrets included: Secret `piclusterops-settings`, copied on every
  apply from the settings of the process applying the release (the laptop's), as environment;
- the profile, the inventory's path and the owner of schedules and sensors: ConfigMap
  `piclusterops-env` (rendered here, applied before the charts), as environment;
- the inventory, its SSH paths pointed at the mounts: ConfigMap `piclusterops-inventory`
  (rendered here, applied before the charts) at `/run/piclusterops/inventory/inventory.yaml`;
- the SSH key and known_hosts: Secret `piclusterops-ssh`, copied on every apply from the files
  the applying process's inventory names, at `/run/piclusterops/ssh/`, read-only, mode 0440,
  group = the image's user (fsGroup);
- Dagster's PostgreSQL password: Secret `dagster-postgresql-secret`, derived on apply from the
  generated `databases/pg-dagster` (the chart reads it as `DAGSTER_PG_PASSWORD`);
- the compute logs' object store keys: Secret `dagster-compute-logs`, derived from
  `storage/s3-compute-logs`, as the `AWS_*` environment boto3 reads;
- the `object_store` resource's two key pairs: Secrets `piclusterops-s3-curation` and
  `piclusterops-s3-backups`, derived from `storage/s3-curation` and `storage/s3-backups`, as
  `PICLUSTER_S3_ACCESS_KEY`/`_SECRET_KEY` and `PICLUSTER_S3_BACKUPS_ACCESS_KEY`/`_SECRET_KEY`
  (after the settings Secret in `envFrom`, so they win over a copy a person put there);
- the Kubernetes API: the pod's ServiceAccount `piclusterops` (rbac.py), no kubeconfig file;
- the LAN CA's certificate (`ca.crt` only, from the webservers' certificate Secret) at
  `/run/piclusterops/lan-ca/`: what `dagster_handover` verifies the webserver against.

Both webservers serve HTTPS on 443 with one LAN CA certificate (lan_tls) naming both their
Services, which the gateway verifies. The chart starts them with a fixed
`dagster-webserver -h 0.0.0.0 -p <port> ...` and dagster-webserver has no TLS option, so our
image's `dagster-webserver` (deploy/image/bin/) hands the mounted certificate to the uvicorn it
serves with when `PICLUSTER_WEBSERVER_TLS_DIR` is set: no sidecar, no plain port left on the
pod, Dagster's own arguments unchanged. One certificate, not one per Service: the chart renders
both Deployments from the same `dagsterWebserver` values, so both pods mount the same Secrets
whatever they are; two would put both keys in both pods all the same.
"""

import dataclasses
import os
from collections.abc import Mapping
from importlib.metadata import version
from pathlib import Path

import yaml

from platform_assets.inventory import Inventory
from platform_assets.releases import lan_tls, rbac
from platform_assets.releases.spec import (
    Chart,
    Container,
    GeneratedSecret,
    Image,
    Release,
    Workload,
)

NAMESPACE = "dagster"
# The chart's version is the dagster version: "used together when their version numbers match".
DAGSTER_VERSION = "1.13.27"
CHART_VERSION = DAGSTER_VERSION
CHART_REPO = "https://dagster-io.github.io/helm"
HELM_RELEASE = "dagster"
# Our image, tagged with the project's version (pyproject) and built from its uv.lock.
IMAGE = Image("registry.picluster.lan/piclusterops", version("piclusterops"))
IMAGE_USER = 10001  # the Dockerfile's `useradd --uid`; its group has the same id
CODE_LOCATION = "piclusterops"
CODE_SERVER_PORT = 3030
# The chart's Service port, which is also the port the webservers listen on (`-p`): HTTPS.
WEBSERVER_PORT = 443
WEBSERVER_SERVICE = f"{HELM_RELEASE}-dagster-webserver"
READ_ONLY_SERVICE = f"{WEBSERVER_SERVICE}-read-only"
WEBSERVER_CERTIFICATE = lan_tls.certificate(
    "dagster-webserver",
    NAMESPACE,
    [
        *lan_tls.service_dns_names(WEBSERVER_SERVICE, NAMESPACE),
        *lan_tls.service_dns_names(READ_ONLY_SERVICE, NAMESPACE),
    ],
)
WEBSERVER_TLS_SECRET = WEBSERVER_CERTIFICATE["spec"]["secretName"]
# Read by the image's webserver entry (deploy/image/bin/dagster-webserver).
WEBSERVER_TLS_VARIABLE = "PICLUSTER_WEBSERVER_TLS_DIR"

SETTINGS_SECRET = "piclusterops-settings"  # noqa: S105 (a Secret's name)
SSH_SECRET = "piclusterops-ssh"  # noqa: S105
SSH_KEY_FILE = "id_ed25519"
KNOWN_HOSTS_FILE = "known_hosts"
ENV_CONFIGMAP = "piclusterops-env"
INVENTORY_CONFIGMAP = "piclusterops-inventory"
INVENTORY_FILE = "inventory.yaml"
PG_SECRET = "dagster-postgresql-secret"  # noqa: S105 (the chart's global.postgresqlSecretName)
COMPUTE_LOGS_SECRET = "dagster-compute-logs"  # noqa: S105
COMPUTE_LOGS_BUCKET = "compute-logs"
# The object_store release's identities the code location signs with (catalogue.S3_PURPOSES):
# secret name -> (source Secret, the settings' variable prefix).
S3_KEY_SECRETS = {
    "piclusterops-s3-curation": ("storage/s3-curation", "PICLUSTER_S3"),
    "piclusterops-s3-backups": ("storage/s3-backups", "PICLUSTER_S3_BACKUPS"),
}

# Under /run (a tmpfs in every container): nothing of ours on the image's disk.
MOUNT_ROOT = "/run/piclusterops"
INVENTORY_DIR = f"{MOUNT_ROOT}/inventory"
SSH_DIR = f"{MOUNT_ROOT}/ssh"
WEBSERVER_TLS_DIR = f"{MOUNT_ROOT}/webserver-tls"
LAN_CA_DIR = f"{MOUNT_ROOT}/lan-ca"
LAN_CA_FILE = f"{LAN_CA_DIR}/{lan_tls.CA_KEY}"
INVENTORY_PATH = f"{INVENTORY_DIR}/{INVENTORY_FILE}"
# Secret files readable by the image's group only (fsGroup below), never writable.
SECRET_FILE_MODE = 0o440

DAGSTER_NODE = {"picluster.io/dagster": "true"}
# Run pods prefer the control node (the Dagster node has no room for them beside the
# object store); run_placement.py keeps an infrastructure run off the node it touches.
RUN_NODE = {"picluster.io/zone": "control"}
# Infrastructure runs carry this tag; the run queue lets one of them run at a time.
INFRASTRUCTURE_TAG = "picluster/infrastructure"
MAX_CONCURRENT_RUNS = 2  # two run pods of 1 GiB: what the Dagster node holds beside the rest
RUN_START_TIMEOUT_S = 300  # an image pull on a Pi's SD card takes minutes
RUN_CANCEL_TIMEOUT_S = 180

# Sized to share the Dagster node with SeaweedFS and keep 20 % free (the capacity plan).
WEBSERVER = Container("dagster-webserver", IMAGE, 384, 640, "100m", "1")
DAEMON = Container("dagster-daemon", IMAGE, 256, 512, "100m", "1")
CODE_SERVER = Container("piclusterops", IMAGE, 384, 768, "100m", "1")
RUN = Container("dagster", IMAGE, 1024, 1536, "250m", "2")
# The chart's init container that waits for the database (the chart gives it no resources).
WAIT_FOR_DB_IMAGE = Image("ghcr.io/cloudnative-pg/postgresql", "17.6")


def mounted_inventory(inv: Inventory) -> str:
    """The inventory as the pods read it: the same plan, its SSH files at the Secret's mount."""
    data = inv.model_dump(mode="json", exclude_none=True)
    data["ssh"]["private_key_path"] = f"{SSH_DIR}/{SSH_KEY_FILE}"
    data["ssh"]["known_hosts_path"] = f"{SSH_DIR}/{KNOWN_HOSTS_FILE}"
    return yaml.safe_dump(data, sort_keys=False)


def pod_environment() -> dict[str, str]:
    """The non-secret settings every pod gets (ConfigMap `piclusterops-env`)."""
    return {
        "PICLUSTER_PROFILE": "cluster",
        "PICLUSTER_INVENTORY": INVENTORY_PATH,
        # The cluster's Dagster owns the schedules and sensors once the hand-over ran; until
        # the laptop's copies are off, the landing sensor's ledger keeps batches exactly once.
        "PICLUSTER_SCHEDULES_OWNER": "cluster",
        # A run pod's home: the image's own, writable by its user.
        "PICLUSTER_HOME": "/tmp/piclusterops",  # noqa: S108 (per-pod, not shared)
    }


# The settings every pod needs that only a person can give (docs/dagster-on-cluster.md): the
# cluster profile's required ones. Any other PICLUSTER_* setting of the applying process goes
# along too (ports, buckets, users), except those the ConfigMap sets and the laptop's own.
REQUIRED_SETTINGS = (
    "PICLUSTER_S3_ENDPOINT",
    "PICLUSTER_TRINO_HOST",
    "PICLUSTER_PG_HOST",
    "PICLUSTER_PG_PASSWORD",
    "PICLUSTER_BACKUP_MIRROR_ENDPOINT",
    "PICLUSTER_BACKUP_MIRROR_ACCESS_KEY",
    "PICLUSTER_BACKUP_MIRROR_SECRET_KEY",
    "PICLUSTER_BACKUP_KEY",
)
# Where this process keeps its own files, and how it reaches the API: nothing a pod can use.
NOT_COPIED = (
    # The release derives the pods' S3 key pairs from the object store's identities
    # (S3_KEY_SECRETS): the laptop's own pair (often the admin's) never goes into the cluster.
    "PICLUSTER_S3_ACCESS_KEY",
    "PICLUSTER_S3_SECRET_KEY",
    "PICLUSTER_S3_BACKUPS_ACCESS_KEY",
    "PICLUSTER_S3_BACKUPS_SECRET_KEY",
    "PICLUSTER_KUBECONFIG",
    "PICLUSTER_OBJECT_STORE_ROOT",
    "PICLUSTER_DUCKDB_PATH",
    "PICLUSTER_LEDGER_SQLITE_PATH",
    "PICLUSTER_BACKUP_MIRROR_ROOT",
)


def pod_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The applying process's settings as Secret `piclusterops-settings` holds them."""
    environ = os.environ if environ is None else environ
    skip = {*pod_environment(), *NOT_COPIED}
    return {
        k: v
        for k, v in sorted(environ.items())
        if k.startswith("PICLUSTER_") and k not in skip and v.strip()
    }


def ssh_files(inv: Inventory) -> dict[str, str]:
    """The SSH key and known_hosts the inventory names, as Secret `piclusterops-ssh` holds
    them (the pods read them at the Secret's mount)."""
    out = {}
    for key, field_name in (
        (SSH_KEY_FILE, "private_key_path"),
        (KNOWN_HOSTS_FILE, "known_hosts_path"),
    ):
        path = Path(getattr(inv.ssh, field_name)).expanduser()
        try:
            out[key] = path.read_text()
        except OSError as exc:
            raise RuntimeError(
                f"Secret {NAMESPACE}/{SSH_SECRET}: cannot read ssh.{field_name} {path}: "
                f"{exc.strerror}"
            ) from None
    return out


def volumes() -> list[dict]:
    return [
        {"name": "inventory", "configMap": {"name": INVENTORY_CONFIGMAP}},
        {
            "name": "ssh",
            "secret": {
                "secretName": SSH_SECRET,
                "defaultMode": SECRET_FILE_MODE,
                "items": [
                    {"key": SSH_KEY_FILE, "path": SSH_KEY_FILE},
                    {"key": KNOWN_HOSTS_FILE, "path": KNOWN_HOSTS_FILE},
                ],
            },
        },
        lan_ca_volume(),
    ]


def lan_ca_volume() -> dict:
    """Only the CA's certificate of the webservers' Secret, never their key. Optional: a run
    other than the hand-over never waits for cert-manager (the hand-over names the missing
    file)."""
    volume = lan_tls.ca_volume("lan-ca", WEBSERVER_TLS_SECRET)
    volume["secret"]["optional"] = True
    return volume


def volume_mounts() -> list[dict]:
    return [
        {"name": "inventory", "mountPath": INVENTORY_DIR, "readOnly": True},
        {"name": "ssh", "mountPath": SSH_DIR, "readOnly": True},
        {"name": "lan-ca", "mountPath": LAN_CA_DIR, "readOnly": True},
    ]


def webserver_tls_values() -> dict:
    """The `dagsterWebserver` values that make both webservers serve HTTPS, and their probes
    follow. The chart uses `service.port` for the Service, the container port and `-p`."""
    probe = {
        "httpGet": {"path": "/server_info", "port": WEBSERVER_PORT, "scheme": "HTTPS"},
        "periodSeconds": 20,
        "timeoutSeconds": 10,
        "successThreshold": 1,
        "failureThreshold": 3,
    }
    return {
        "service": {"port": WEBSERVER_PORT},
        "env": [{"name": WEBSERVER_TLS_VARIABLE, "value": WEBSERVER_TLS_DIR}],
        "volumes": [
            {
                "name": "webserver-tls",
                # The image's group reads the key (fsGroup), nobody writes it.
                "secret": {"secretName": WEBSERVER_TLS_SECRET, "defaultMode": SECRET_FILE_MODE},
            }
        ],
        "volumeMounts": [
            {"name": "webserver-tls", "mountPath": WEBSERVER_TLS_DIR, "readOnly": True}
        ],
        "readinessProbe": probe,
    }


def run_affinity() -> dict:
    """Every run pod prefers the run node; run_placement.py adds the per-run rules."""
    return {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 50,
                    "preference": {
                        "matchExpressions": [
                            {"key": k, "operator": "In", "values": [v]} for k, v in RUN_NODE.items()
                        ]
                    },
                }
            ]
        }
    }


def pod_security_context() -> dict:
    return {
        "runAsNonRoot": True,
        "runAsUser": IMAGE_USER,
        "runAsGroup": IMAGE_USER,
        "fsGroup": IMAGE_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


# In envFrom the last source wins: the derived S3 keys override the settings Secret's.
ENV_SECRETS = [
    {"name": SETTINGS_SECRET},
    {"name": COMPUTE_LOGS_SECRET},
    *({"name": name} for name in S3_KEY_SECRETS),
]
ENV_CONFIGMAPS = [{"name": ENV_CONFIGMAP}]


def _image_values() -> dict:
    return {"repository": IMAGE.repository, "tag": IMAGE.tag, "pullPolicy": "IfNotPresent"}


def chart_values(s3_endpoint: str, pg_host: str) -> dict:
    """Values for the official chart. Only names of Secrets, never a credential."""
    placed = {
        "nodeSelector": dict(DAGSTER_NODE),
        "podSecurityContext": pod_security_context(),
        "securityContext": container_security_context(),
    }
    return {
        "global": {"serviceAccountName": rbac.SERVICE_ACCOUNT, "postgresqlSecretName": PG_SECRET},
        # The ServiceAccount and its least-privilege roles are ours (rbac.py, chart dagster-rbac).
        "serviceAccount": {"create": False, "name": rbac.SERVICE_ACCOUNT},
        "rbacEnabled": False,
        "dagsterWebserver": {
            "image": _image_values(),
            "replicaCount": 1,
            "resources": WEBSERVER.resources(),
            # A second webserver with `--read-only` for guests, beside the admin one.
            "enableReadOnly": True,
            "envSecrets": ENV_SECRETS,
            "envConfigMaps": ENV_CONFIGMAPS,
            **webserver_tls_values(),
            **placed,
        },
        "dagsterDaemon": {
            "image": _image_values(),
            "resources": DAEMON.resources(),
            "envSecrets": ENV_SECRETS,
            "envConfigMaps": ENV_CONFIGMAPS,
            "runCoordinator": {
                "enabled": True,
                "type": "QueuedRunCoordinator",
                "config": {
                    "queuedRunCoordinator": {
                        "maxConcurrentRuns": MAX_CONCURRENT_RUNS,
                        # Two runs that cordon, drain, reboot or patch never run at once.
                        "tagConcurrencyLimits": [{"key": INFRASTRUCTURE_TAG, "limit": 1}],
                    }
                },
            },
            "runMonitoring": {
                "enabled": True,
                "startTimeoutSeconds": RUN_START_TIMEOUT_S,
                "cancelTimeoutSeconds": RUN_CANCEL_TIMEOUT_S,
                # A run whose pod died is failed, not resumed: a half-done reboot or drain is
                # for a person to look at (DESIGN.md: non-idempotent steps never retried).
                "maxResumeRunAttempts": 0,
                "pollIntervalSeconds": 60,
                "freeSlotsAfterRunEndSeconds": 300,
            },
            "runRetries": {"enabled": False},
            **placed,
        },
        "dagster-user-deployments": {
            "enabled": True,
            "enableSubchart": True,
            "deployments": [
                {
                    "name": CODE_LOCATION,
                    "image": _image_values(),
                    "dagsterApiGrpcArgs": ["-m", "definitions"],
                    "port": CODE_SERVER_PORT,
                    "envSecrets": ENV_SECRETS,
                    "envConfigMaps": ENV_CONFIGMAPS,
                    "volumes": volumes(),
                    "volumeMounts": volume_mounts(),
                    "resources": CODE_SERVER.resources(),
                    # Off: run pods would take this deployment's resources (a run pod sized
                    # like the code server) and, since 1.13, its nodeSelector (every run on
                    # the Dagster node). The run launcher below gives them everything they
                    # need itself (tests/kube/test_dagster_run_launcher.py).
                    "includeConfigInLaunchedRuns": {"enabled": False},
                    **placed,
                }
            ],
        },
        "runLauncher": {
            "type": "K8sRunLauncher",
            "config": {
                "k8sRunLauncher": {
                    # Pinned here too: the code server's image is not handed to runs.
                    "image": _image_values(),
                    "imagePullPolicy": "IfNotPresent",
                    "jobNamespace": NAMESPACE,
                    "loadInclusterConfig": True,
                    "envSecrets": ENV_SECRETS,
                    "envConfigMaps": ENV_CONFIGMAPS,
                    "volumes": volumes(),
                    "volumeMounts": volume_mounts(),
                    "resources": RUN.resources(),
                    "failPodOnRunFailure": True,
                    "securityContext": container_security_context(),
                    "runK8sConfig": {
                        "podSpecConfig": {
                            "securityContext": pod_security_context(),
                            "affinity": run_affinity(),
                        },
                        # No Kubernetes-level retry of a run pod either, and finished Jobs
                        # are cleaned up after an hour (their logs are in the object store).
                        "jobSpecConfig": {"backoffLimit": 0, "ttlSecondsAfterFinished": 3600},
                    },
                }
            },
        },
        "postgresql": {
            "enabled": False,  # the subchart's Bitnami images are gone: CloudNativePG's pg-main
            "image": {
                "repository": WAIT_FOR_DB_IMAGE.repository,
                "tag": WAIT_FOR_DB_IMAGE.tag,
                "pullPolicy": "IfNotPresent",
            },
            "postgresqlHost": pg_host,
            "postgresqlUsername": "dagster",
            "postgresqlDatabase": "dagster",
            "postgresqlParams": {},
            "service": {"port": 5432},
        },
        "generatePostgresqlPasswordSecret": False,
        "computeLogManager": {
            "type": "S3ComputeLogManager",
            "config": {
                "s3ComputeLogManager": {
                    "bucket": COMPUTE_LOGS_BUCKET,
                    "prefix": "dagster",
                    "endpointUrl": s3_endpoint,
                    "useSsl": False,
                    "region": "us-east-1",
                    "uploadInterval": 30,
                }
            },
        },
        "rabbitmq": {"enabled": False},
        "redis": {"enabled": False},
        "flower": {"enabled": False},
        "telemetry": {"enabled": False},
    }


def config_manifests(inv: Inventory) -> tuple[dict, ...]:
    return (
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": ENV_CONFIGMAP, "namespace": NAMESPACE},
            "data": pod_environment(),
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": INVENTORY_CONFIGMAP, "namespace": NAMESPACE},
            "data": {INVENTORY_FILE: mounted_inventory(inv)},
        },
    )


def generated_secrets(releases: list[Release]) -> dict[str, list[str]]:
    """{namespace: [names]} of the Secrets these releases generate or derive."""
    out: dict[str, set[str]] = {}
    for release in releases:
        for secret in release.secrets:
            for namespace in secret.namespaces:
                out.setdefault(namespace, set()).add(secret.name)
    return {ns: sorted(names) for ns, names in sorted(out.items())}


def dagster(
    inv: Inventory, *, s3_endpoint: str, pg_host: str, other_releases: list[Release]
) -> Release:
    """`other_releases`: the catalogue's other releases, whose Secrets the RBAC names."""
    release = Release(
        name="dagster",
        namespace=NAMESPACE,
        description=f"Dagster {DAGSTER_VERSION} on the cluster: our image, the webserver and a "
        "read-only one for guests (both HTTPS, a LAN CA certificate), the daemon, the code "
        "location, `K8sRunLauncher` run pods (one infrastructure run at a time), storage on "
        "`pg-main`'s `dagster` database, compute logs in the object store.",
        # Applied before the charts: the pods start with their configuration in place.
        objects=config_manifests(inv),
        charts=(
            # The ServiceAccount and its roles first (manifests filled in below).
            Chart(name="dagster-rbac"),
            # Before the webservers, which mount its Secret (as trino-tls before trino).
            Chart(name="dagster-tls", manifests=(WEBSERVER_CERTIFICATE,)),
            Chart(
                name=HELM_RELEASE,
                repo=CHART_REPO,
                chart="dagster",
                version=CHART_VERSION,
                values=chart_values(s3_endpoint, pg_host),
            ),
        ),
        workloads=(
            Workload(
                "Deployment",
                WEBSERVER_SERVICE,
                (WEBSERVER,),
                node_selector=DAGSTER_NODE,
            ),
            Workload(
                "Deployment",
                READ_ONLY_SERVICE,
                # The chart renders it from dagsterWebserver's values: the same resources.
                (WEBSERVER,),
                node_selector=DAGSTER_NODE,
            ),
            Workload(
                "Deployment",
                "dagster-daemon",
                (DAEMON,),
                node_selector=DAGSTER_NODE,
            ),
            Workload(
                "Deployment",
                f"dagster-dagster-user-deployments-{CODE_LOCATION}",
                (CODE_SERVER,),
                node_selector=DAGSTER_NODE,
            ),
            # Run pods are placed per run (run_placement.py); the plan counts the queue's
            # most on the node they prefer.
            Workload(
                "Job",
                "dagster-run",
                (RUN,),
                node_selector=RUN_NODE,
                replicas=MAX_CONCURRENT_RUNS,
                api_version="batch/v1",
            ),
        ),
        # Not cert_manager, as for Trino (catalogue.trino): the runs go on whether or not
        # cert-manager does; the webservers' first start waits for their Secret.
        needs=("postgres", "object_store"),
        secrets=(
            GeneratedSecret(
                name=PG_SECRET,
                namespace=NAMESPACE,
                keys=("postgresql-password",),
                derived_from="databases/pg-dagster",
                key_map=(("postgresql-password", "password"),),
            ),
            GeneratedSecret(
                name=COMPUTE_LOGS_SECRET,
                namespace=NAMESPACE,
                keys=("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
                derived_from="storage/s3-compute-logs",
                key_map=(
                    ("AWS_ACCESS_KEY_ID", "access_key"),
                    ("AWS_SECRET_ACCESS_KEY", "secret_key"),
                ),
            ),
            *(
                GeneratedSecret(
                    name=name,
                    namespace=NAMESPACE,
                    keys=(f"{prefix}_ACCESS_KEY", f"{prefix}_SECRET_KEY"),
                    derived_from=source,
                    key_map=(
                        (f"{prefix}_ACCESS_KEY", "access_key"),
                        (f"{prefix}_SECRET_KEY", "secret_key"),
                    ),
                )
                for name, (source, prefix) in S3_KEY_SECRETS.items()
            ),
            # What only a person can give, from where the apply runs: the laptop's settings
            # and its SSH files (or, once handed over, the pod's own copies of them).
            GeneratedSecret(
                name=SETTINGS_SECRET,
                namespace=NAMESPACE,
                keys=REQUIRED_SETTINGS,
                copied_from=pod_settings,
                copied_what="the PICLUSTER_* settings of the process applying the release",
            ),
            GeneratedSecret(
                name=SSH_SECRET,
                namespace=NAMESPACE,
                keys=(SSH_KEY_FILE, KNOWN_HOSTS_FILE),
                copied_from=lambda: ssh_files(inv),
                copied_what="the SSH key and known_hosts the inventory names",
            ),
        ),
    )
    every = generated_secrets([*other_releases, release])
    configmaps = [m["metadata"]["name"] for m in release.objects]
    rbac_chart = Chart(name="dagster-rbac", manifests=tuple(rbac.manifests(every, configmaps)))
    return dataclasses.replace(release, charts=(rbac_chart, *release.charts[1:]))
