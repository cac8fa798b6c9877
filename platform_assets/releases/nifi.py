"""The `nifi` release: Apache NiFi 2, only when the inventory says `nifi: true`.

No maintained NiFi chart exists (cetic/helm-nifi is archived), so these are our own manifests:
one NiFi node as a StatefulSet with its repositories on a volume, HTTPS on 8443 with a LAN CA
certificate for its Service (cert-manager's PKCS#12 keystore, which the `lab` gateway verifies;
people reach it through that gateway at /nifi/), and single-user login with generated
credentials (`nifi/nifi-login`, read by a developer with `kubectl get secret`,
docs/roles/dev.md). Placed on the server as in the seed; the capacity plan says that does not
fit beside the rest (docs/releases.md), which is why the switch is off by default. Switching
it off again does not uninstall it: delete the HelmChart `nifi` (its volume stays) or leave it.
"""

from platform_assets.inventory import Inventory
from platform_assets.releases import lan_tls
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
# The conf directory lives on the volume (NiFi keeps its flow, users and policies there), and a
# Kubernetes volume starts empty, hiding the image's nifi.properties and bootstrap.conf, which
# start.sh edits in place (its first `sed -i` would fail and stop the container). So the
# image's conf is copied onto an empty volume once; a conf already there is left as it is.
CONF_SEED = Container("nifi-conf", IMAGE, 16, 64, "10m", "200m")
NIFI_HOME = "/opt/nifi/nifi-current"
SEED_DIR = "/seed"
SEED_CONF = f"[ -e {SEED_DIR}/nifi.properties ] || cp -a {NIFI_HOME}/conf/. {SEED_DIR}/"
LOGIN_SECRET = "nifi-login"  # noqa: S105 (a Secret's name)
LABELS = {"app.kubernetes.io/name": "nifi"}
STORAGE_CLASS = "local-path"

# NiFi's certificate: cert-manager writes the key and chain as a PKCS#12 keystore and the LAN
# CA as a PKCS#12 truststore into its Secret, encrypted with a password the platform generates.
KEYSTORE_SECRET = "nifi-keystore"  # noqa: S105 (a Secret's name)
KEYSTORE_PASSWORD_KEY = "password"  # noqa: S105 (a key's name)
CERTIFICATE = lan_tls.backend_certificate(
    "nifi", NAMESPACE, keystore_password=(KEYSTORE_SECRET, KEYSTORE_PASSWORD_KEY)
)
TLS_DIR = "/opt/nifi/tls"
KEYSTORE_TYPE = "PKCS12"  # what spec.keystores.pkcs12 writes


def _from_secret(name: str, key: str, secret: str = LOGIN_SECRET) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def tls_env() -> list[dict]:
    """The image's own switches for a keystore of ours, apache/nifi rel/nifi-2.0.0
    (nifi-docker/dockerhub/sh, the 2.0.0 source release): start.sh sources secure.sh only
    for AUTH tls, ldap or oidc; secure.sh writes KEYSTORE_* and TRUSTSTORE_* into
    nifi.security.keystore*/truststore* (the key's password defaults to the keystore's, as
    cert-manager encrypts both with one), and sets the authorizer and login provider from
    NIFI_SECURITY_USER_AUTHORIZER (default managed-authorizer) and
    NIFI_SECURITY_USER_LOGIN_IDENTITY_PROVIDER (default empty). Those two are set to NiFi's own
    defaults (nifi-resources/pom.xml): the login stays single-user; "tls" only selects the
    script, NiFi asks no client certificate while a login provider is set."""
    password = _from_secret("KEYSTORE_PASSWORD", KEYSTORE_PASSWORD_KEY, KEYSTORE_SECRET)
    return [
        {"name": "AUTH", "value": "tls"},
        {"name": "KEYSTORE_PATH", "value": f"{TLS_DIR}/{lan_tls.KEYSTORE_KEY}"},
        {"name": "KEYSTORE_TYPE", "value": KEYSTORE_TYPE},
        password,
        {"name": "TRUSTSTORE_PATH", "value": f"{TLS_DIR}/{lan_tls.TRUSTSTORE_KEY}"},
        {"name": "TRUSTSTORE_TYPE", "value": KEYSTORE_TYPE},
        {**password, "name": "TRUSTSTORE_PASSWORD"},
        {"name": "NIFI_SECURITY_USER_AUTHORIZER", "value": "single-user-authorizer"},
        {"name": "NIFI_SECURITY_USER_LOGIN_IDENTITY_PROVIDER", "value": "single-user-provider"},
    ]


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
                    "initContainers": [
                        {
                            "name": CONF_SEED.name,
                            "image": IMAGE.ref,
                            "command": ["/bin/sh", "-c", SEED_CONF],
                            "resources": CONF_SEED.resources(),
                            "volumeMounts": [
                                {"name": "data", "mountPath": SEED_DIR, "subPath": "conf"}
                            ],
                        }
                    ],
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
                                *tls_env(),
                            ],
                            "ports": [{"name": "https", "containerPort": PORT}],
                            "readinessProbe": {
                                "tcpSocket": {"port": PORT},
                                "initialDelaySeconds": 60,
                                "periodSeconds": 10,
                            },
                            "resources": NIFI.resources(),
                            "volumeMounts": [
                                *(
                                    {
                                        "name": "data",
                                        "mountPath": f"{NIFI_HOME}/{d}",
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
                                ),
                                {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
                            ],
                        }
                    ],
                    # Only the two stores: NiFi has no use for the PEM key beside them.
                    "volumes": [
                        {
                            "name": "tls",
                            "secret": {
                                "secretName": CERTIFICATE["spec"]["secretName"],
                                "items": [
                                    {"key": k, "path": k}
                                    for k in (lan_tls.KEYSTORE_KEY, lan_tls.TRUSTSTORE_KEY)
                                ],
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
    return (CERTIFICATE, statefulset, service)


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
        "Secret, HTTPS with a LAN CA certificate, behind the `lab` gateway at /nifi/; on the "
        "server as in the seed.",
        charts=(Chart(name="nifi", manifests=manifests(access.host("lab")), owns_data=True),),
        workloads=(
            Workload(
                "StatefulSet", "nifi", (NIFI,), node_selector=NODE, init_containers=(CONF_SEED,)
            ),
        ),
        needs=("object_store", "trino"),
        secrets=(
            GeneratedSecret(
                name=LOGIN_SECRET,
                namespace=NAMESPACE,
                keys=("username", "password", "sensitive_props_key"),
                username="admin",
            ),
            # Read by cert-manager (the Certificate's namespace) and by NiFi.
            GeneratedSecret(
                name=KEYSTORE_SECRET, namespace=NAMESPACE, keys=(KEYSTORE_PASSWORD_KEY,)
            ),
        ),
    )
