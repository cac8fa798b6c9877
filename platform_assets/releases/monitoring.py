"""The `monitoring` release: kube-prometheus-stack, Pi-sized, plus the platform's own rules,
dashboards and the Pushgateway Dagster's asset-check results arrive through.

Two HelmCharts:

- `kube-prometheus-stack` (prometheus-community, pinned): the Prometheus operator and its CRDs,
  one Prometheus (60 s scrapes, retention by size), one Alertmanager, kube-state-metrics,
  node_exporter on every node, Grafana with the Prometheus and Loki data sources and the
  dashboard sidecar. `failurePolicy: abort`: the chart owns the monitoring.coreos.com CRDs, and
  a reinstall would delete every PrometheusRule and ServiceMonitor with them.
- `monitoring-config` (our manifests): the Pushgateway (Deployment, Service, ServiceMonitor), the
  platform's alert rules (alerts.py, one PrometheusRule) and the dashboards
  (deploy/monitoring/dashboards, one ConfigMap each with the sidecar's label). Its CRs need the
  first chart's CRDs: its install Job retries until they exist (spec.Chart.back_off_limit).

Placement by inventory labels: `picluster.io/monitoring=true` (Prometheus, Alertmanager, the
operator, kube-state-metrics, the Pushgateway), `picluster.io/dashboards=true` (Grafana);
node_exporter runs on every node. K3s components other than etcd are not scraped (K3s runs the
scheduler and controller-manager in its own process, bound to localhost).
"""

import contextvars
import dataclasses
import json
from pathlib import Path

from platform_assets.inventory import Inventory
from platform_assets.releases import alert_receiver, alerts, lan_tls, roles
from platform_assets.releases.access_settings import AccessSettings, load_access_settings
from platform_assets.releases.spec import (
    MANAGED_BY,
    Chart,
    Container,
    GeneratedSecret,
    Image,
    Release,
    Workload,
)

NAMESPACE = "monitoring"
CHART_REPO = "https://prometheus-community.github.io/helm-charts"
CHART = "kube-prometheus-stack"
# 88.5.0 runs prometheus-operator v0.93.1 (the chart's own rendering, linode/apl-core#3555).
CHART_VERSION = "88.5.0"
FULLNAME = "kps"  # short object names: kps-operator, prometheus-kps-prometheus, ...
STORAGE_CLASS = "local-path"

MONITORING_NODE = {"picluster.io/monitoring": "true"}
DASHBOARDS_NODE = {"picluster.io/dashboards": "true"}

OPERATOR_VERSION = "v0.93.1"
PROMETHEUS_IMAGE = Image("quay.io/prometheus/prometheus", "v3.13.2")  # 3.13: an LTS line
ALERTMANAGER_IMAGE = Image("quay.io/prometheus/alertmanager", "v0.32.1")
OPERATOR_IMAGE = Image("quay.io/prometheus-operator/prometheus-operator", OPERATOR_VERSION)
RELOADER_IMAGE = Image("quay.io/prometheus-operator/prometheus-config-reloader", OPERATOR_VERSION)
KSM_IMAGE = Image("registry.k8s.io/kube-state-metrics/kube-state-metrics", "v2.18.0")
NODE_EXPORTER_IMAGE = Image("quay.io/prometheus/node-exporter", "v1.12.0")
# Grafana 12.4, not 13: 13 saves dashboards in its v2 JSON, which file provisioning (the sidecar
# writes files) rejects (grafana/grafana#122663); 12.4 gets security fixes until May 2027.
GRAFANA_IMAGE = Image("docker.io/grafana/grafana", "12.4.3")
SIDECAR_IMAGE = Image("quay.io/kiwigrid/k8s-sidecar", "1.26.1")
PUSHGATEWAY_IMAGE = Image("quay.io/prometheus/pushgateway", "v1.11.2")

# Sizes for four nodes at 60 s scrapes with cAdvisor's per-container series trimmed: ~40k
# active series, a few hundred MiB of head block; the limit leaves room for WAL replay.
PROMETHEUS = Container("prometheus", PROMETHEUS_IMAGE, 512, 768, "100m", "1")
# The operator's reloader runs beside Prometheus and Alertmanager (and as their init container),
# all from one values block.
RELOADER = Container("config-reloader", RELOADER_IMAGE, 24, 48, "10m", "100m")
ALERTMANAGER = Container("alertmanager", ALERTMANAGER_IMAGE, 32, 64, "10m", "100m")
OPERATOR = Container("kube-prometheus-stack", OPERATOR_IMAGE, 48, 96, "20m", "200m")
KSM = Container("kube-state-metrics", KSM_IMAGE, 48, 96, "20m", "200m")
NODE_EXPORTER = Container("node-exporter", NODE_EXPORTER_IMAGE, 24, 48, "20m", "200m")
GRAFANA = Container("grafana", GRAFANA_IMAGE, 128, 256, "50m", "500m")
SIDECAR = Container("grafana-sc-dashboard", SIDECAR_IMAGE, 64, 128, "10m", "100m")
PUSHGATEWAY = Container("pushgateway", PUSHGATEWAY_IMAGE, 16, 32, "10m", "100m")

SCRAPE_INTERVAL = "60s"
RETENTION_SIZE = "6GB"  # of a 10Gi volume: the TSDB's WAL and compaction need the rest
RETENTION_TIME = "30d"  # whichever comes first
PROMETHEUS_VOLUME = "10Gi"

GRAFANA_ADMIN_SECRET = "grafana-admin"  # noqa: S105 (a Secret's name)
DASHBOARD_LABEL = {"grafana_dashboard": "1"}  # the sidecar's default label and value
DASHBOARDS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "dashboards"
PUSHGATEWAY_PORT = 9091
LOKI_URL = "http://loki.logging.svc:3100"  # the logging release's Service
PROMETHEUS_URL = f"http://{FULLNAME}-prometheus.{NAMESPACE}.svc:9090"
ETCD_METRICS_PORT = 2381  # K3s with `etcd-expose-metrics: true`

# Grafana serves HTTPS itself with a LAN CA certificate for its Service (the `dash` gateway's
# upstream https://grafana.monitoring.svc:443/grafana/).
GRAFANA_SERVICE = "grafana"
GRAFANA_PORT = 443  # the Service's; Grafana listens on its own 3000
GRAFANA_TLS_DIR = "/etc/grafana/tls"
GRAFANA_CERTIFICATE = lan_tls.backend_certificate(GRAFANA_SERVICE, NAMESPACE)
# The `dash` gateway passes /grafana/... on unchanged (an upstream's path is its route), so
# Grafana serves from that sub-path and writes its links and redirects for the gateway's host.
GRAFANA_SUB_PATH = "/grafana/"
# What the sub-path does to Grafana's own endpoints: its HTTP server runs
# `middleware.SubPathRedirect` before the health and metrics handlers
# (pkg/api/http_server.go, addMiddlewaresAndStaticRoutes, in the 12.x-era copy the index holds;
# it names no commit), which answers a request outside the sub-path with a 301 to root_url,
# /api/... excepted (pkg/middleware/subpath_redirect.go @7060ee3; older copies except
# nothing); the router then strips the sub-path before any handler sees the path
# (pkg/web/macaron.go @068427f, ServeHTTP). So /metrics would answer the scrape with a 301 to
# the gateway's login, and under the sub-path every endpoint answers in every version read:
# the probes and the scrape ask there.
GRAFANA_HEALTH_PATH = GRAFANA_SUB_PATH + "api/health"  # the chart's probes: /api/health
GRAFANA_METRICS_PATH = GRAFANA_SUB_PATH + "metrics"  # the chart's serviceMonitor.path: /metrics


def _image(image: Image) -> dict:
    registry, _, repository = image.repository.partition("/")
    return {"registry": registry, "repository": repository, "tag": image.tag}


def _placed(selector: dict) -> dict:
    return {"nodeSelector": dict(selector)}


def datasources() -> dict:
    """Grafana's data sources as a provisioning file (the datasource sidecar is off: one
    container less, and the uids dashboards refer to are fixed here)."""
    return {
        "datasources.yaml": {
            "apiVersion": 1,
            "datasources": [
                {
                    "name": "Prometheus",
                    "uid": "prometheus",
                    "type": "prometheus",
                    "url": PROMETHEUS_URL,
                    "access": "proxy",
                    "isDefault": True,
                    "jsonData": {"timeInterval": SCRAPE_INTERVAL},
                },
                {
                    "name": "Loki",
                    "uid": "loki",
                    "type": "loki",
                    "url": LOKI_URL,
                    "access": "proxy",
                },
            ],
        }
    }


def alertmanager_values(receiver: alert_receiver.AlertReceiver | None) -> dict:
    """The chart's `alertmanager` block: the receiver and routing from settings
    (alert_receiver.py), the receiver's Secret mounted when it holds something."""
    spec = {
        "image": _image(ALERTMANAGER_IMAGE),
        "resources": ALERTMANAGER.resources(),
        "retention": "120h",
        **_placed(MONITORING_NODE),
    }
    if alert_receiver.secret_keys(receiver):
        spec["secrets"] = [alert_receiver.SECRET]
    return {"config": alert_receiver.alertmanager_config(receiver), "alertmanagerSpec": spec}


def grafana_server_values(access: AccessSettings) -> dict:
    """The grafana subchart's values that make it serve HTTPS under the `dash` gateway's
    sub-path, and what talks to it follow."""
    secret = GRAFANA_CERTIFICATE["spec"]["secretName"]
    return {
        "grafana.ini": {
            "server": {
                "protocol": "https",
                "cert_file": f"{GRAFANA_TLS_DIR}/tls.crt",
                "cert_key": f"{GRAFANA_TLS_DIR}/tls.key",
                "root_url": f"https://{access.host('dash')}{GRAFANA_SUB_PATH}",
                "serve_from_sub_path": True,
            }
        },
        "extraSecretMounts": [
            {
                "name": "grafana-tls",
                "secretName": secret,
                "mountPath": GRAFANA_TLS_DIR,
                "readOnly": True,
            }
        ],
        "service": {"port": GRAFANA_PORT},
        # Merged into the chart's probes (their port and timings stay the chart's), the path
        # moved under the sub-path with everything else.
        "readinessProbe": {"httpGet": {"scheme": "HTTPS", "path": GRAFANA_HEALTH_PATH}},
        "livenessProbe": {"httpGet": {"scheme": "HTTPS", "path": GRAFANA_HEALTH_PATH}},
        # Prometheus scrapes the pod's address: it verifies the certificate by the Service's name.
        "serviceMonitor": {
            "path": GRAFANA_METRICS_PATH,
            "scheme": "https",
            "tlsConfig": {
                "ca": {"secret": {"name": secret, "key": lan_tls.CA_KEY}},
                "serverName": f"{GRAFANA_SERVICE}.{NAMESPACE}.svc",
            },
        },
    }


def grafana_login_values(access: AccessSettings) -> dict:
    """How a person gets into Grafana: only as the `dash` gateway vouches, with the Grafana role
    their groups give them (roles.grafana_role_settings).

    `auth.jwt`, reading the ID token the gateway passes (`Authorization: Bearer <id token>`,
    gateway.py; Grafana strips the "Bearer " itself), checked against the provider's keys, its
    issuer and our client id. Not `auth.generic_oauth`: that is a second OAuth login, with a
    client secret in Grafana and a redirect URL at the provider, behind a gateway that has
    already logged the person in. Not `auth.proxy`: it trusts a header by the sender's address,
    and maps no groups to roles. Grafana's own login form, its basic auth and anonymous access
    are off, so the mapping is the only way in; nothing of the chart logs in with the admin
    password (the dashboard sidecar makes no reload call, the datasource sidecar is off).
    """
    return {
        "grafana.ini": {
            "auth.jwt": {
                "enabled": True,
                "header_name": "Authorization",
                "jwk_set_url": access.jwks_url,
                "expect_claims": json.dumps({"iss": access.issuer_url, "aud": access.client_id}),
                "username_claim": access.username_claim,
                "email_claim": "email",
                "auto_sign_up": True,
                **roles.grafana_role_settings(),
            },
            "auth": {
                "disable_login_form": True,
                # Grafana's sign-out cannot end the gateway's session; the gateway's can.
                "signout_redirect_url": f"https://{access.host('dash')}/oauth2/sign_out",
            },
            "auth.basic": {"enabled": False},
            "auth.anonymous": {"enabled": False},
        },
        # Go verifies the provider's keys' URL with the system roots plus every certificate in
        # this directory: the LAN CA (cert-manager's ca.crt beside Grafana's own certificate),
        # for a provider on the LAN. SSL_CERT_FILE stays unset: public providers still verify.
        "env": {"SSL_CERT_DIR": GRAFANA_TLS_DIR},
    }


def grafana_values(access: AccessSettings) -> dict:
    """grafana_server_values and grafana_login_values as one block: both write `grafana.ini`."""
    tls, login = grafana_server_values(access), grafana_login_values(access)
    ini = {
        section: {**tls["grafana.ini"].get(section, {}), **login["grafana.ini"].get(section, {})}
        for section in {**tls["grafana.ini"], **login["grafana.ini"]}
    }
    return {**tls, **login, "grafana.ini": ini}


def chart_values(inv: Inventory) -> dict:
    servers = [n.address for n in inv.nodes if n.role == "server"]
    reloader = {"image": _image(RELOADER_IMAGE), "resources": RELOADER.resources()}
    return {
        "fullnameOverride": FULLNAME,
        "crds": {"enabled": True},
        # The chart's stock rules for components K3s does not expose would only ever be
        # "target down"; ours (alerts.py) cover the nodes, etcd and the releases.
        "defaultRules": {
            "create": True,
            "rules": {
                "kubeControllerManager": False,
                "kubeSchedulerAlerting": False,
                "kubeSchedulerRecording": False,
                "kubeProxy": False,
                "windows": False,
            },
        },
        "kubeControllerManager": {"enabled": False},
        "kubeScheduler": {"enabled": False},
        "kubeProxy": {"enabled": False},
        "coreDns": {"enabled": True},
        # Without an interval here the chart scrapes the kubelet's cAdvisor every 10 s (its
        # cAdvisorInterval): six times the samples the Prometheus sizes above assume.
        "kubelet": {"serviceMonitor": {"interval": SCRAPE_INTERVAL}},
        # K3s's embedded etcd serves metrics on the servers' 2381 (etcd-expose-metrics).
        "kubeEtcd": {
            "enabled": True,
            "endpoints": servers,
            "service": {
                "enabled": True,
                "port": ETCD_METRICS_PORT,
                "targetPort": ETCD_METRICS_PORT,
            },
        },
        "prometheusOperator": {
            "image": _image(OPERATOR_IMAGE),
            "resources": OPERATOR.resources(),
            # The webhooks need a certificate Job (another image, no resources set here); the
            # CRDs' schemas still validate every rule the platform ships.
            "admissionWebhooks": {"enabled": False},
            "tls": {"enabled": False},
            "prometheusConfigReloader": reloader,
            **_placed(MONITORING_NODE),
        },
        "prometheus": {
            "prometheusSpec": {
                "image": _image(PROMETHEUS_IMAGE),
                "resources": PROMETHEUS.resources(),
                "scrapeInterval": SCRAPE_INTERVAL,
                "evaluationInterval": SCRAPE_INTERVAL,
                "retention": RETENTION_TIME,
                "retentionSize": RETENTION_SIZE,
                # Pick up every ServiceMonitor and PrometheusRule, not only the chart's own.
                "serviceMonitorSelectorNilUsesHelmValues": False,
                "podMonitorSelectorNilUsesHelmValues": False,
                "ruleSelectorNilUsesHelmValues": False,
                "storageSpec": {
                    "volumeClaimTemplate": {
                        "spec": {
                            "storageClassName": STORAGE_CLASS,
                            "accessModes": ["ReadWriteOnce"],
                            "resources": {"requests": {"storage": PROMETHEUS_VOLUME}},
                        }
                    }
                },
                **_placed(MONITORING_NODE),
            }
        },
        "alertmanager": alertmanager_values(alert_receiver.load_alert_receiver()),
        "kube-state-metrics": {
            "fullnameOverride": "kube-state-metrics",
            "image": _image(KSM_IMAGE),
            "resources": KSM.resources(),
            **_placed(MONITORING_NODE),
        },
        "prometheus-node-exporter": {
            "fullnameOverride": "node-exporter",
            "image": _image(NODE_EXPORTER_IMAGE),
            "resources": NODE_EXPORTER.resources(),
        },
        "grafana": {
            "fullnameOverride": "grafana",
            "image": _image(GRAFANA_IMAGE),
            "resources": GRAFANA.resources(),
            # The admin login by reference to the generated Secret: the password is never a
            # Helm value, so it is in no HelmChart and no Helm release record either.
            "admin": {
                "existingSecret": GRAFANA_ADMIN_SECRET,
                "userKey": "username",
                "passwordKey": "password",
            },
            "datasources": datasources(),
            "sidecar": {
                "image": _image(SIDECAR_IMAGE),
                "resources": SIDECAR.resources(),
                "dashboards": {
                    "enabled": True,
                    "label": next(iter(DASHBOARD_LABEL)),
                    "labelValue": DASHBOARD_LABEL["grafana_dashboard"],
                    "searchNamespace": NAMESPACE,
                    # No reload call to Grafana's API (the chart's is http://localhost:3000, with
                    # the admin login, while Grafana serves HTTPS): Grafana's file provider
                    # rereads the sidecar's files.
                    "skipReload": True,
                },
                "datasources": {"enabled": False},
            },
            "testFramework": {"enabled": False},
            **grafana_values(load_access_settings()),
            **_placed(DASHBOARDS_NODE),
        },
    }


def dashboards() -> dict[str, dict]:
    """{file stem: dashboard JSON} of every dashboard in deploy/monitoring/dashboards."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(DASHBOARDS_DIR.glob("*.json"))}


def dashboard_configmaps() -> list[dict]:
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"dashboard-{name}",
                "namespace": NAMESPACE,
                "labels": {**MANAGED_BY, **DASHBOARD_LABEL},
            },
            "data": {f"{name}.json": json.dumps(board, indent=1, sort_keys=True)},
        }
        for name, board in dashboards().items()
    ]


def pushgateway_manifests() -> list[dict]:
    labels = {"app.kubernetes.io/name": "pushgateway"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "pushgateway", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "nodeSelector": dict(MONITORING_NODE),
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 65534,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": PUSHGATEWAY.name,
                            "image": PUSHGATEWAY.image.ref,
                            # The checks' results survive a restart of the pod (the sensor
                            # re-pushes within a minute anyway).
                            "args": [
                                "--persistence.file=/data/pushgateway.db",
                                "--persistence.interval=1m",
                            ],
                            "ports": [{"name": "http", "containerPort": PUSHGATEWAY_PORT}],
                            "readinessProbe": {
                                "httpGet": {"path": "/-/ready", "port": PUSHGATEWAY_PORT}
                            },
                            "resources": PUSHGATEWAY.resources(),
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "16Mi"}}],
                },
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "pushgateway", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": labels,
            "ports": [{"name": "http", "port": PUSHGATEWAY_PORT, "targetPort": "http"}],
        },
    }
    monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "pushgateway", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            # The pushed series keep their own `job` (piclusterops_asset_checks), not the
            # scrape's: the alerts select on it.
            "endpoints": [{"port": "http", "interval": SCRAPE_INTERVAL, "honorLabels": True}],
        },
    }
    return [deployment, service, monitor]


def loki_monitor() -> dict:
    """Loki's own metrics. Here, not in the logging release: its CRD is this release's, and
    logs keep flowing whether or not Prometheus is up."""
    labels = {"app.kubernetes.io/name": "loki"}
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "loki", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "namespaceSelector": {"matchNames": ["logging"]},
            "selector": {"matchLabels": labels},
            "endpoints": [{"port": "http", "interval": SCRAPE_INTERVAL}],
        },
    }


def config_manifests(releases: list[Release]) -> tuple[dict, ...]:
    return (
        *pushgateway_manifests(),
        loki_monitor(),
        alerts.prometheus_rule(releases, NAMESPACE),
        *dashboard_configmaps(),
    )


# Set while this module builds the other releases: the dagster release builds every release
# (for their Secrets' names), this one among them, which would build dagster again.
_BUILDING_OTHERS = contextvars.ContextVar("piclusterops_monitoring_others", default=False)


def monitoring(inv: Inventory) -> Release:
    """The catalogue's builder: the release, with readiness rules for every other release."""
    from platform_assets.releases import catalogue

    if _BUILDING_OTHERS.get():
        # Built from inside our own build (through the dagster release, which only reads
        # its Secrets): the rules are not used there.
        return build(inv, other_releases=[])
    token = _BUILDING_OTHERS.set(True)
    try:
        others = [b(inv) for b in catalogue.RELEASE_BUILDERS if b is not monitoring]
    finally:
        _BUILDING_OTHERS.reset(token)
    return build(inv, other_releases=others)


def build(inv: Inventory, *, other_releases: list[Release]) -> Release:
    """`other_releases`: the releases whose readiness the rules watch."""
    stack = Chart(
        name=CHART,
        repo=CHART_REPO,
        chart=CHART,
        version=CHART_VERSION,
        owns_data=True,  # the monitoring.coreos.com CRDs, and every CR with them
        values=chart_values(inv),
    )
    # Grafana starts once cert-manager has written this Secret; the release still needs
    # nothing, so metrics and alerts never wait on another release (cert_manager applies
    # earlier in the catalogue's order anyway).
    grafana_tls = Chart(name="grafana-tls", manifests=(GRAFANA_CERTIFICATE,))
    receiver = alert_receiver.load_alert_receiver()
    release = Release(
        name="monitoring",
        namespace=NAMESPACE,
        description=f"Metrics and alerts: kube-prometheus-stack {CHART_VERSION} (Prometheus "
        f"{PROMETHEUS_IMAGE.tag}, {SCRAPE_INTERVAL} scrapes, {RETENTION_SIZE} kept; "
        "Alertmanager; node_exporter on every node; Grafana with the platform's dashboards), "
        "the platform's alert rules and the Pushgateway Dagster's asset-check results reach "
        "it through. " + alert_receiver.describe(receiver),
        # The config chart's manifests hold the rules, which name this release's charts: it
        # is filled in below.
        charts=(grafana_tls, stack, Chart(name="monitoring-config")),
        workloads=(
            Workload(
                "StatefulSet",
                f"prometheus-{FULLNAME}-prometheus",
                (PROMETHEUS, RELOADER),
                node_selector=MONITORING_NODE,
                init_containers=(RELOADER,),
            ),
            Workload(
                "StatefulSet",
                f"alertmanager-{FULLNAME}-alertmanager",
                (ALERTMANAGER, RELOADER),
                node_selector=MONITORING_NODE,
                init_containers=(RELOADER,),
            ),
            Workload(
                "Deployment", f"{FULLNAME}-operator", (OPERATOR,), node_selector=MONITORING_NODE
            ),
            Workload("Deployment", "kube-state-metrics", (KSM,), node_selector=MONITORING_NODE),
            Workload("DaemonSet", "node-exporter", (NODE_EXPORTER,)),
            Workload("Deployment", "grafana", (GRAFANA, SIDECAR), node_selector=DASHBOARDS_NODE),
            Workload("Deployment", "pushgateway", (PUSHGATEWAY,), node_selector=MONITORING_NODE),
        ),
        secrets=(
            GeneratedSecret(
                name=GRAFANA_ADMIN_SECRET,
                namespace=NAMESPACE,
                keys=("username", "password"),
                type="kubernetes.io/basic-auth",
                username="admin",
            ),
        ),
        # Without it Alertmanager's pod would wait for the Secret and release_ready fail late.
        admin_secrets=alert_receiver.admin_secrets(receiver, NAMESPACE),
    )
    config = Chart(name="monitoring-config", manifests=config_manifests([*other_releases, release]))
    return dataclasses.replace(release, charts=(grafana_tls, stack, config))
