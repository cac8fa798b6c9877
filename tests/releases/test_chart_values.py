"""The values we send the access, monitoring and dagster releases' upstream charts, held against
each chart's own values: every key path we set must be one the chart reads, with the type it
reads.
Helm ignores a misspelled key without a word, so a typo here would only show on a Pi as a
default quietly left in place.

The tables are the charts' key paths as read in their upstream files (values.yaml, the
helm-docs values table, and the templates where they read a key; docs/releases.md names each
file and commit). They are facts written down, not the upstream files: a key the chart takes
as a whole object (`resources`, `nodeSelector`, a config map) is a leaf here. A new key in the
catalogue fails this test until it is looked up in the chart and added to its table. Charts
are not rendered here (they cannot be fetched): what only a real cluster proves is in
docs/releases.md.
"""

import tomllib
from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import catalogue, gateway
from platform_assets.releases.spec import helmcharts

ROOT = Path(__file__).resolve().parents[2]


def _image(path: str, registry: bool = True) -> dict:
    keys = ("registry", "repository", "tag") if registry else ("repository", "tag")
    return {f"{path}.{k}": str for k in keys}


# openbao 0.28.0. charts/openbao/README.md @0852381 (helm-docs table of chart 0.27.0; a 0.27.2
# copy reads the same), values.schema.json @0d7bc5b, templates/_helpers.tpl @1f8434e,
# templates/server-statefulset.yaml @7cd6608.
OPENBAO = {
    "global.tlsDisable": bool,
    "injector.enabled": (bool, str),
    "injector.replicas": int,
    **_image("injector.image"),
    **_image("injector.agentImage"),
    **{
        f"injector.agentDefaults.{k}": str
        for k in ("cpuLimit", "cpuRequest", "memLimit", "memRequest")
    },
    "injector.resources": dict,
    "injector.webhook.failurePolicy": str,
    "injector.webhook.objectSelector": (dict, str),
    "injector.affinity": (dict, str),
    **_image("server.image"),
    "server.resources": dict,
    "server.nodeSelector": (dict, str),
    "server.affinity": (dict, str),
    "server.dataStorage.enabled": (bool, str),
    "server.dataStorage.size": str,
    "server.dataStorage.storageClass": str,
    "server.extraSecretEnvironmentVars": list,
    "server.extraSecretEnvironmentVars[].envName": str,
    "server.extraSecretEnvironmentVars[].secretName": str,
    "server.extraSecretEnvironmentVars[].secretKey": str,
    "server.standalone.enabled": (bool, str),
    "server.ha.enabled": bool,
    "server.ha.replicas": int,
    "server.ha.raft.enabled": bool,
    "server.ha.raft.config": (str, dict),
    "server.ha.disruptionBudget.enabled": bool,
    "ui.enabled": (bool, str),
    "csi.enabled": (bool, str),
}

# oauth2-proxy 7.1.0. helm/oauth2-proxy/values.yaml @66050bf (it has `strategy`, new in 7.1.0),
# templates/deployment.yaml @7b37bf5 (Chart.yaml there: 7.1.0), templates/service.yaml @6bc2356,
# templates/_helpers.tpl @09a307f (fullname, serviceAccountName).
OAUTH2_PROXY = {
    "fullnameOverride": str,
    **_image("image", registry=False),
    "config.clientID": str,
    "config.configFile": str,
    "proxyVarsAsSecrets": bool,
    "extraEnv": list,
    "httpScheme": str,
    "service.type": str,
    "service.portNumber": int,
    "serviceAccount.enabled": bool,
    "podLabels": dict,
    "podAnnotations": dict,
    "resources": dict,
    "extraVolumes": list,
    "extraVolumeMounts": list,
}

# oauth2-proxy 7.6.0's configuration file (TOML): docs/versioned_docs/version-7.6.x/
# configuration/overview.md @01579e7 (flag / toml field / type tables).
OAUTH2_PROXY_CONFIG = {
    "provider": str,
    "oidc_issuer_url": str,
    "client_id": str,
    "client_secret_file": str,
    "redirect_url": str,
    "scope": str,
    "oidc_groups_claim": str,
    "allowed_groups": list,
    "email_domains": list,
    "upstreams": list,
    "cookie_name": str,
    "cookie_secure": bool,
    "cookie_domains": list,
    "whitelist_domains": list,
    "tls_cert_file": str,
    "tls_key_file": str,
    "skip_provider_button": bool,
    "pass_user_headers": bool,
    "pass_authorization_header": bool,
    "cookie_refresh": str,
    "ssl_upstream_insecure_skip_verify": bool,
    "provider_ca_files": list,
    "use_system_trust_store": bool,
}

# The agent injector's annotations (vault-k8s, agent-inject/agent/annotations.go @c51bed4):
# exact names, and the per-secret prefixes.
INJECTOR_ANNOTATIONS = {"agent-inject", "agent-pre-populate-only", "service", "role"}
INJECTOR_PREFIXES = ("agent-inject-secret-", "agent-inject-template-")

# kube-prometheus-stack 88.5.0. charts/kube-prometheus-stack/values.yaml @6e36075 (an older
# one: its Alertmanager default is v0.28.1), templates/exporters/kubelet/servicemonitor.yaml
# @0edb0ef; subcharts: kube-state-metrics values.yaml @b1e058b and _helpers.tpl @0288864,
# prometheus-node-exporter values.yaml @44d9fcb, grafana (grafana-community/helm-charts)
# values.yaml @309f281 and _helpers.tpl @1f39891.
KUBE_PROMETHEUS_STACK = {
    "fullnameOverride": str,
    "crds.enabled": bool,
    "defaultRules.create": bool,
    **{
        f"defaultRules.rules.{rule}": bool
        for rule in (
            "kubeControllerManager",
            "kubeSchedulerAlerting",
            "kubeSchedulerRecording",
            "kubeProxy",
            "windows",
        )
    },
    "kubeControllerManager.enabled": bool,
    "kubeScheduler.enabled": bool,
    "kubeProxy.enabled": bool,
    "coreDns.enabled": bool,
    "kubelet.serviceMonitor.interval": str,
    "kubeEtcd.enabled": bool,
    "kubeEtcd.endpoints": list,
    "kubeEtcd.service.enabled": bool,
    "kubeEtcd.service.port": int,
    "kubeEtcd.service.targetPort": int,
    **_image("prometheusOperator.image"),
    "prometheusOperator.resources": dict,
    "prometheusOperator.admissionWebhooks.enabled": bool,
    "prometheusOperator.tls.enabled": bool,
    **_image("prometheusOperator.prometheusConfigReloader.image"),
    "prometheusOperator.prometheusConfigReloader.resources": dict,
    "prometheusOperator.nodeSelector": dict,
    **_image("prometheus.prometheusSpec.image"),
    "prometheus.prometheusSpec.resources": dict,
    "prometheus.prometheusSpec.scrapeInterval": str,
    "prometheus.prometheusSpec.evaluationInterval": str,
    "prometheus.prometheusSpec.retention": str,
    "prometheus.prometheusSpec.retentionSize": str,
    "prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues": bool,
    "prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues": bool,
    "prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues": bool,
    "prometheus.prometheusSpec.storageSpec.volumeClaimTemplate.spec": dict,
    "prometheus.prometheusSpec.nodeSelector": dict,
    "alertmanager.config": dict,
    "alertmanager.stringConfig": str,
    "alertmanager.tplConfig": bool,
    "alertmanager.templateFiles": dict,
    **_image("alertmanager.alertmanagerSpec.image"),
    "alertmanager.alertmanagerSpec.resources": dict,
    "alertmanager.alertmanagerSpec.retention": str,
    "alertmanager.alertmanagerSpec.nodeSelector": dict,
    "alertmanager.alertmanagerSpec.secrets": list,
    "alertmanager.alertmanagerSpec.useExistingSecret": bool,
    "kube-state-metrics.fullnameOverride": str,
    **_image("kube-state-metrics.image"),
    "kube-state-metrics.resources": dict,
    "kube-state-metrics.nodeSelector": dict,
    "prometheus-node-exporter.fullnameOverride": str,
    **_image("prometheus-node-exporter.image"),
    "prometheus-node-exporter.resources": dict,
    "grafana.fullnameOverride": str,
    **_image("grafana.image"),
    "grafana.resources": dict,
    "grafana.admin.existingSecret": str,
    "grafana.admin.userKey": str,
    "grafana.admin.passwordKey": str,
    "grafana.datasources": dict,
    'grafana."grafana.ini"': dict,
    "grafana.env": dict,
    "grafana.envValueFrom": dict,
    "grafana.envFromSecret": str,
    "grafana.extraSecretMounts": list,
    "grafana.extraVolumes": list,
    "grafana.extraVolumeMounts": list,
    # Grafana over HTTPS (lan_tls): the grafana chart's values.yaml (service.port, the probes,
    # serviceMonitor.scheme/tlsConfig) and its sidecar template (dashboards.skipReload).
    "grafana.service.port": int,
    "grafana.readinessProbe": dict,
    "grafana.livenessProbe": dict,
    # Grafana under the `dash` gateway's sub-path: grafana.ini is a map the chart writes out
    # whole; serviceMonitor.path is in the grafana chart's values.yaml (@0396812: /metrics).
    "grafana.serviceMonitor.path": str,
    "grafana.serviceMonitor.scheme": str,
    "grafana.serviceMonitor.tlsConfig": dict,
    "grafana.sidecar.dashboards.skipReload": bool,
    **_image("grafana.sidecar.image"),
    "grafana.sidecar.resources": dict,
    "grafana.sidecar.dashboards.enabled": bool,
    "grafana.sidecar.dashboards.label": str,
    "grafana.sidecar.dashboards.labelValue": str,
    "grafana.sidecar.dashboards.searchNamespace": (str, list),
    "grafana.sidecar.datasources.enabled": bool,
    "grafana.testFramework.enabled": bool,
    "grafana.nodeSelector": dict,
}

# dagster 1.13.27 (issue 9 checked these against the chart's schema, docs/releases.md):
# helm/dagster/schema/schema/charts/dagster/values.py @0f2d9d8, subschema/daemon.py @0070107,
# subschema/global_.py @53ff29f, dagster_user_deployments/subschema/user_deployments.py
# @0070107. The webservers' HTTPS keys (`service.port`, `env` as a list, `volumes`,
# `volumeMounts`, `readinessProbe`): subschema/webserver.py @0070107 and @288c611 (both have
# them, `extra = forbid`), utils/kubernetes.py @0070107 (Service: `port`, `type`; the probe a
# core/v1 Probe), and where the templates read them: templates/helpers/_deployment-webserver.tpl
# @068394f (`service.port` is the container port, `env` rendered when a list, `volumes`,
# `volumeMounts`, `readinessProbe` as written), _service-webserver.tpl @a07d616 (the Service's
# port), _helpers.tpl @a07d616 (`-p {{ service.port }}`). Below `postgresql`, `runLauncher.config`
# and `computeLogManager.config` the subschemas were not re-read: leaves here.
DAGSTER = {
    "global.serviceAccountName": str,
    "global.postgresqlSecretName": str,
    "serviceAccount.create": bool,
    "serviceAccount.name": str,
    # Not in the current schema; DagsterHelmValues allows extra top-level keys (docs/releases.md).
    "rbacEnabled": bool,
    **{
        f"dagsterWebserver.{k}": types
        for k, types in {
            "image": dict,
            "replicaCount": int,
            "resources": dict,
            "enableReadOnly": bool,
            "envSecrets": list,
            "envConfigMaps": list,
            "nodeSelector": dict,
            "podSecurityContext": dict,
            "securityContext": dict,
            "service.port": int,
            "env": list,
            "volumes": list,
            "volumeMounts": list,
            "readinessProbe": dict,
        }.items()
    },
    **{
        f"dagsterDaemon.{k}": types
        for k, types in {
            "image": dict,
            "resources": dict,
            "envSecrets": list,
            "envConfigMaps": list,
            "nodeSelector": dict,
            "podSecurityContext": dict,
            "securityContext": dict,
            "runCoordinator.enabled": bool,
            "runCoordinator.type": str,
            "runCoordinator.config": dict,
            "runMonitoring": dict,
            "runRetries": dict,
        }.items()
    },
    "dagster-user-deployments.enabled": bool,
    "dagster-user-deployments.enableSubchart": bool,
    "dagster-user-deployments.deployments": list,
    **{
        f"dagster-user-deployments.deployments[].{k}": types
        for k, types in {
            "name": str,
            "image": dict,
            "dagsterApiGrpcArgs": list,
            "port": int,
            "envSecrets": list,
            "envConfigMaps": list,
            "volumes": list,
            "volumeMounts": list,
            "resources": dict,
            "includeConfigInLaunchedRuns.enabled": bool,
            "nodeSelector": dict,
            "podSecurityContext": dict,
            "securityContext": dict,
        }.items()
    },
    "runLauncher.type": str,
    "runLauncher.config": dict,
    "postgresql": dict,
    "generatePostgresqlPasswordSecret": bool,
    "computeLogManager.type": str,
    "computeLogManager.config": dict,
    "rabbitmq.enabled": bool,
    "redis.enabled": bool,
    "flower.enabled": bool,
    "telemetry.enabled": bool,
}

# HelmChart name -> the table its values are held against.
TABLES = {
    "openbao": OPENBAO,
    **{f"gateway-{g}": OAUTH2_PROXY for g in ("ops", "lab", "dash")},
    "kube-prometheus-stack": KUBE_PROMETHEUS_STACK,
    "dagster": DAGSTER,
}
# Upstream charts checked by issue 9 against their upstream values (docs/releases.md).
CHECKED_BEFORE = {"metallb", "cert-manager", "cloudnative-pg", "trino"}


def _split(path: str) -> tuple[str, ...]:
    """`a."b.c".d` -> ("a", "b.c", "d"): a key with a dot in it is quoted."""
    parts, current, quoted = [], "", False
    for ch in path:
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    return (*parts, current)


def _shown(parts: tuple[str, ...]) -> str:
    return ".".join(f'"{p}"' if "." in p else p for p in parts)


def _is(value, types) -> bool:
    types = types if isinstance(types, tuple) else (types,)
    if isinstance(value, bool):  # bool is an int to Python, never to a chart
        return bool in types
    return isinstance(value, types)


def mismatches(values: dict, table: dict) -> list[str]:
    """Every key path in `values` the chart does not read, or reads as another type."""
    known = {_split(path): types for path, types in table.items()}
    found = []

    def walk(node: dict, prefix: tuple[str, ...]) -> None:
        for key, value in node.items():
            path = (*prefix, key)
            items = (*prefix, f"{key}[]")
            if path in known:
                types = known[path]
                if not _is(value, types):
                    names = "/".join(
                        t.__name__ for t in (types if isinstance(types, tuple) else (types,))
                    )
                    found.append(f"{_shown(path)}: {type(value).__name__}, the chart reads {names}")
                elif isinstance(value, list) and any(k[: len(items)] == items for k in known):
                    for item in value:
                        walk(item, items)
            elif isinstance(value, dict) and any(k[: len(path)] == path for k in known):
                walk(value, path)
            else:
                found.append(f"{_shown(path)}: not a key the chart reads")

    walk(values, ())
    return found


# NiFi on: every chart the catalogue can send.
EXAMPLE = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())
INV = parse_inventory({**EXAMPLE, "nifi": True}, "inventory.yaml")
UPSTREAM = {
    hc["metadata"]["name"]: hc["spec"]
    for release in catalogue.releases(INV)
    for hc in helmcharts(release)
    if "chartContent" not in hc["spec"]
}


def test_every_upstream_chart_in_the_catalogue_was_checked_against_its_own_values():
    unchecked = {
        name: spec["chart"]
        for name, spec in UPSTREAM.items()
        if name not in TABLES and spec["chart"] not in CHECKED_BEFORE
    }
    assert unchecked == {}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_every_value_is_a_key_the_chart_reads_with_its_type(name):
    assert mismatches(UPSTREAM[name]["values"], TABLES[name]) == []


def test_a_misspelled_or_mistyped_key_is_named():
    values = {
        "server": {
            "ha": {"replicas": True, "disruptionBudgets": {"enabled": False}},
            "extraSecretEnvironmentVars": [{"envName": "X", "secretKey": "k", "key": "k"}],
        },
        "grafana.ini": {},
    }
    assert mismatches(values, OPENBAO) == [
        "server.ha.replicas: bool, the chart reads int",
        "server.ha.disruptionBudgets: not a key the chart reads",
        "server.extraSecretEnvironmentVars[].key: not a key the chart reads",
        '"grafana.ini": not a key the chart reads',
    ]


def test_openbao_has_no_disruption_budget_that_would_block_every_drain():
    # One replica: the chart's openbao.pdb.maxUnavailable is 0 for it (_helpers.tpl @1f8434e),
    # and a rolling patch drains through the Eviction API, never forcing.
    ha = UPSTREAM["openbao"]["values"]["server"]["ha"]
    assert (ha["replicas"], ha["disruptionBudget"]) == (1, {"enabled": False})


def test_openbao_config_survives_the_charts_template_and_start_script():
    # The chart renders a string config through `tpl` (openbao.config, _helpers.tpl @1f8434e),
    # and its start command seds these words into addresses (openbao.args): a policy path
    # templated with `{{identity...}}` or one of the words would be rewritten before OpenBao
    # reads it.
    config = UPSTREAM["openbao"]["values"]["server"]["ha"]["raft"]["config"]
    assert "{{" not in config
    assert [
        word
        for word in ("HOST_IP", "POD_IP", "HOSTNAME", "API_ADDR", "TRANSIT_ADDR", "RAFT_ADDR")
        if word in config
    ] == []


def test_the_injector_is_the_charts_own_default_image():
    # charts/openbao/README.md @0852381: injector.image.tag 1.7.2, registry docker.io.
    image = UPSTREAM["openbao"]["values"]["injector"]["image"]
    assert image == {"registry": "docker.io", "repository": "hashicorp/vault-k8s", "tag": "1.7.2"}


@pytest.mark.parametrize("name", ["ops", "lab", "dash"])
def test_each_gateways_configuration_file_uses_only_oauth2_proxy_options(name):
    values = UPSTREAM[f"gateway-{name}"]["values"]
    assert mismatches(tomllib.loads(values["config"]["configFile"]), OAUTH2_PROXY_CONFIG) == []


@pytest.mark.parametrize("name", ["ops", "lab", "dash"])
def test_each_gateway_reads_its_client_secret_from_the_file_the_agent_writes(name):
    values = UPSTREAM[f"gateway-{name}"]["values"]
    config = tomllib.loads(values["config"]["configFile"])
    assert "client_secret" not in config
    annotations = values["podAnnotations"]
    # The agent writes secret <name> to /vault/secrets/<name> (its default secret-volume-path).
    (secret,) = [
        k.removeprefix("vault.hashicorp.com/agent-inject-secret-")
        for k in annotations
        if k.startswith("vault.hashicorp.com/agent-inject-secret-")
    ]
    assert config["client_secret_file"] == f"/vault/secrets/{secret}" == gateway.SECRET_FILE
    # No newline around the secret: oauth2-proxy sends the file's bytes as they are
    # (oauth2-proxy#3311 documents it), and the `-` markers keep the template's own out.
    template = annotations[f"vault.hashicorp.com/agent-inject-template-{secret}"]
    assert template.startswith("{{-") and template.endswith("-}}")
    # With proxyVarsAsSecrets off the chart sets no OAUTH2_PROXY_CLIENT_SECRET of its own
    # (deployment.yaml @7b37bf5); the cookie secret is ours, by reference, and the only other
    # variable is where Go finds the LAN CA for the HTTPS upstreams.
    assert values["proxyVarsAsSecrets"] is False
    assert [e["name"] for e in values["extraEnv"]] == ["OAUTH2_PROXY_COOKIE_SECRET", "SSL_CERT_DIR"]


@pytest.mark.parametrize("name", ["ops", "lab", "dash"])
def test_each_gateway_asks_the_injector_only_with_annotations_it_knows(name):
    annotations = UPSTREAM[f"gateway-{name}"]["values"]["podAnnotations"]
    ours = [k.removeprefix("vault.hashicorp.com/") for k in annotations]
    unknown = [
        a for a in ours if a not in INJECTOR_ANNOTATIONS and not a.startswith(INJECTOR_PREFIXES)
    ]
    assert unknown == []
    secrets = {a.removeprefix("agent-inject-secret-") for a in ours if "inject-secret-" in a}
    templates = {a.removeprefix("agent-inject-template-") for a in ours if "inject-template-" in a}
    assert secrets == templates


@pytest.mark.parametrize("name", ["ops", "lab", "dash"])
def test_the_gateway_values_the_chart_templates_hold_no_template_syntax(name):
    # oauth2-proxy 7.1.0 passes configFile (its checksum) and extraEnv through `tpl`; only
    # podAnnotations, which carry the agent's own template, go through toYaml unchanged
    # (deployment.yaml @7b37bf5).
    values = UPSTREAM[f"gateway-{name}"]["values"]
    assert "{{" not in values["config"]["configFile"]
    assert "{{" not in yaml.safe_dump(values["extraEnv"])


def test_the_kubelet_is_scraped_at_the_pace_the_prometheus_sizes_assume():
    values = UPSTREAM["kube-prometheus-stack"]["values"]
    scrape = values["prometheus"]["prometheusSpec"]["scrapeInterval"]
    assert values["kubelet"]["serviceMonitor"]["interval"] == scrape == "60s"
