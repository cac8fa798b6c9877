"""The monitoring release as rendered: the pinned kube-prometheus-stack HelmChart with Pi-sized
values, and our `monitoring-config` chart (Pushgateway, rules, dashboards). Pure; the real
control plane's part is in test_observability_control_plane.py.

kube-prometheus-stack's own templates are not rendered here (charts cannot be fetched): the
values' keys are held against the chart's own values in test_chart_values.py.
"""

import json
import urllib.parse
from pathlib import Path

import jmespath
import kubernetes_validate
import pytest

from platform_assets.inventory import load_inventory
from platform_assets.releases import catalogue, gateway, monitoring, roles
from platform_assets.releases.access_settings import load_access_settings
from platform_assets.releases.spec import helmcharts, secret_manifests
from tests.releases.test_rendering import K8S_SCHEMA, own_manifests

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(ROOT / "inventory.example.yaml")
RELEASE = next(r for r in catalogue.releases(INV) if r.name == "monitoring")
CHARTS = {h["metadata"]["name"]: h for h in helmcharts(RELEASE)}
STACK = CHARTS["kube-prometheus-stack"]["spec"]
VALUES = STACK["values"]
CONFIG = own_manifests(CHARTS["monitoring-config"])


def test_kube_prometheus_stack_is_pinned_and_never_reinstalled():
    assert (STACK["repo"], STACK["chart"], STACK["version"]) == (
        "https://prometheus-community.github.io/helm-charts",
        "kube-prometheus-stack",
        "88.5.0",
    )
    assert STACK["targetNamespace"] == "monitoring"
    # It owns the monitoring.coreos.com CRDs: a reinstall would delete every rule with them.
    assert STACK["failurePolicy"] == "abort"
    assert VALUES["crds"] == {"enabled": True}


def test_prometheus_keeps_data_by_size_and_scrapes_at_a_pace_a_pi_holds():
    spec = VALUES["prometheus"]["prometheusSpec"]
    assert spec["retentionSize"] == "6GB"
    volume = spec["storageSpec"]["volumeClaimTemplate"]["spec"]
    assert volume["resources"]["requests"]["storage"] == "10Gi"
    assert volume["storageClassName"] == "local-path"
    assert spec["scrapeInterval"] == spec["evaluationInterval"] == "60s"
    # Every PrometheusRule and ServiceMonitor of the cluster, ours included.
    assert spec["ruleSelectorNilUsesHelmValues"] is False
    assert spec["serviceMonitorSelectorNilUsesHelmValues"] is False


def test_images_are_set_explicitly_with_their_registry():
    assert VALUES["prometheus"]["prometheusSpec"]["image"] == {
        "registry": "quay.io",
        "repository": "prometheus/prometheus",
        "tag": "v3.13.2",
    }
    assert VALUES["prometheusOperator"]["image"]["tag"] == "v0.93.1"
    assert VALUES["grafana"]["image"] == {
        "registry": "docker.io",
        "repository": "grafana/grafana",
        "tag": "12.4.3",
    }


# (values path, node selector)
PLACED = [
    (("prometheus", "prometheusSpec"), {"picluster.io/monitoring": "true"}),
    (("alertmanager", "alertmanagerSpec"), {"picluster.io/monitoring": "true"}),
    (("prometheusOperator",), {"picluster.io/monitoring": "true"}),
    (("kube-state-metrics",), {"picluster.io/monitoring": "true"}),
    (("grafana",), {"picluster.io/dashboards": "true"}),
]


@pytest.mark.parametrize(
    ("path", "selector"), PLACED, ids=lambda p: ".".join(p) if isinstance(p, tuple) else ""
)
def test_placement_comes_from_the_inventory_labels(path, selector):
    block = VALUES
    for key in path:
        block = block[key]
    assert block["nodeSelector"] == selector
    # node_exporter: every node, no selector.
    assert "nodeSelector" not in VALUES["prometheus-node-exporter"]


def test_etcd_is_scraped_on_the_inventory_servers():
    etcd = VALUES["kubeEtcd"]
    assert etcd["endpoints"] == ["192.168.0.120"]
    assert etcd["service"]["port"] == 2381
    # K3s runs these in its own process, on localhost: nothing to scrape, no alerts about them.
    for component in ("kubeControllerManager", "kubeScheduler", "kubeProxy"):
        assert VALUES[component] == {"enabled": False}


def test_grafana_reads_its_admin_login_from_the_generated_secret():
    admin = VALUES["grafana"]["admin"]
    assert admin == {
        "existingSecret": "grafana-admin",
        "userKey": "username",
        "passwordKey": "password",
    }
    (secret,) = secret_manifests(RELEASE)
    assert secret["metadata"]["namespace"] == "monitoring"
    assert secret["metadata"]["annotations"]["picluster.io/generated-keys"] == "password,username"
    assert "data" not in secret and "stringData" not in secret
    # No password anywhere in what is sent: only the Secret's name.
    assert "adminPassword" not in json.dumps(CHARTS)


def test_grafana_serves_https_with_its_lan_ca_certificate_and_its_scrape_verifies_it():
    (cert,) = own_manifests(CHARTS["grafana-tls"])
    assert cert["kind"] == "Certificate" and cert["metadata"]["namespace"] == "monitoring"
    assert cert["spec"]["issuerRef"]["name"] == "lan-ca"
    assert "grafana.monitoring.svc" in cert["spec"]["dnsNames"]
    grafana = VALUES["grafana"]
    (mount,) = grafana["extraSecretMounts"]
    assert mount["secretName"] == cert["spec"]["secretName"]
    server = grafana["grafana.ini"]["server"]
    assert (server["protocol"], server["cert_file"], server["cert_key"]) == (
        "https",
        f"{mount['mountPath']}/tls.crt",
        f"{mount['mountPath']}/tls.key",
    )
    assert grafana["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert grafana["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    monitor = grafana["serviceMonitor"]
    assert monitor["scheme"] == "https"
    assert monitor["tlsConfig"]["serverName"] in cert["spec"]["dnsNames"]
    assert monitor["tlsConfig"]["ca"]["secret"] == {
        "name": cert["spec"]["secretName"],
        "key": "ca.crt",
    }
    # The sidecar's reload call would be plain HTTP to localhost.
    assert grafana["sidecar"]["dashboards"]["skipReload"] is True
    assert [c.name for c in RELEASE.charts][0] == "grafana-tls"


def _grafana_hands_on(request_path: str, server: dict) -> str | None:
    """The path Grafana's handlers see for a request, or None when it answers with a redirect:
    a model (Grafana cannot run here) of the rules in grafana/grafana as read, for the [server]
    settings given. With `serve_from_sub_path`, `SubPathRedirect` sends a request outside the
    sub-path, /api/... excepted, to root_url (pkg/middleware/subpath_redirect.go @7060ee3),
    and the router strips the sub-path (pkg/web/macaron.go @068427f); the sub-path is root_url's
    path without its last slash (AppSubURL)."""
    if not server.get("serve_from_sub_path"):
        return request_path
    sub = urllib.parse.urlsplit(server["root_url"]).path.rstrip("/")
    if not request_path.startswith(sub) and not request_path.startswith("/api"):
        return None
    return request_path.removeprefix(sub)


def test_grafana_serves_under_the_dash_gateways_route_and_its_probes_and_scrape_follow():
    grafana = VALUES["grafana"]
    server = grafana["grafana.ini"]["server"]
    root = urllib.parse.urlsplit(server["root_url"])
    # Its links and redirects name the gateway's host and the route the gateway forwards as is.
    route = urllib.parse.urlsplit(gateway.GRAFANA).path
    assert (root.scheme, root.netloc, root.path) == ("https", "dash.picluster.lan", route)
    assert server["serve_from_sub_path"] is True
    # Every path the pod is asked on reaches the handler the chart meant: the probes Grafana's
    # health, the scrape its metrics (the chart's defaults, values.yaml @0396812).
    asked = {
        "readiness": grafana["readinessProbe"]["httpGet"]["path"],
        "liveness": grafana["livenessProbe"]["httpGet"]["path"],
        "scrape": grafana["serviceMonitor"]["path"],
    }
    assert {k: _grafana_hands_on(v, server) for k, v in asked.items()} == {
        "readiness": "/api/health",
        "liveness": "/api/health",
        "scrape": "/metrics",
    }
    # And what the gateway forwards reaches Grafana's pages, not a redirect back to itself.
    assert _grafana_hands_on(route + "d/cluster", server) == "/d/cluster"


def test_the_model_of_grafanas_sub_path_redirects_the_charts_own_scrape_path():
    # The chart's default serviceMonitor.path under a sub-path: the 301 the scrape would get.
    server = {"root_url": "https://dash.example.lan/grafana/", "serve_from_sub_path": True}
    assert _grafana_hands_on("/metrics", server) is None
    assert _grafana_hands_on("/api/health", server) == "/api/health"
    assert _grafana_hands_on("/metrics", {}) == "/metrics"


def test_grafana_lets_people_in_only_by_the_dash_gateways_id_token():
    ini = VALUES["grafana"]["grafana.ini"]
    jwt = ini["auth.jwt"]
    # The token oauth2-proxy passes (pass_authorization_header), checked against the example
    # provider's keys, issuer and the gateways' client id.
    assert jwt["enabled"] is True
    assert jwt["header_name"] == "Authorization"
    assert jwt["jwk_set_url"] == (
        "https://sso.picluster.lan/realms/picluster/protocol/openid-connect/certs"
    )
    assert json.loads(jwt["expect_claims"]) == {
        "iss": "https://sso.picluster.lan/realms/picluster",
        "aud": "piclusterops",
    }
    assert (jwt["username_claim"], jwt["email_claim"], jwt["auto_sign_up"]) == (
        "email",
        "email",
        True,
    )
    # The roles table's mapping; nobody becomes a Grafana server admin through it.
    assert jwt["role_attribute_path"] == roles.grafana_role_attribute_path("groups")
    assert jwt["role_attribute_strict"] is True
    assert jwt["allow_assign_grafana_admin"] is False
    # No other way in.
    assert ini["auth"]["disable_login_form"] is True
    assert ini["auth"]["signout_redirect_url"] == "https://dash.picluster.lan/oauth2/sign_out"
    assert ini["auth.basic"] == {"enabled": False}
    assert ini["auth.anonymous"] == {"enabled": False}
    assert not VALUES["grafana"]["sidecar"]["datasources"]["enabled"]
    # The TLS settings of `server` survive the merge of the two grafana.ini blocks.
    assert ini["server"]["protocol"] == "https"
    # The LAN CA, for a provider on the LAN, beside the image's roots.
    assert VALUES["grafana"]["env"] == {"SSL_CERT_DIR": monitoring.GRAFANA_TLS_DIR}


def test_grafana_ini_values_pass_the_chart_and_grafana_unchanged():
    """The chart renders every string value through `tpl`, and Grafana expands `$__env{...}`
    and `${...}` in grafana.ini: neither may find anything to expand in ours."""
    for section in VALUES["grafana"]["grafana.ini"].values():
        for value in section.values():
            assert "{{" not in str(value) and "$" not in str(value), value


def _sample_id_token(groups: list[str] | None) -> dict:
    """The claims of an ID token as the example provider would issue it to one person."""
    claims = {
        "iss": "https://sso.picluster.lan/realms/picluster",
        "aud": "piclusterops",
        "sub": "4b1c0d6e",
        "email": "ada@picluster.lan",
        "exp": 1_900_000_000,
    }
    return claims if groups is None else {**claims, "groups": groups}


@pytest.mark.parametrize(
    ("groups", "grafana_role"),
    [
        (["picluster-admins"], "Admin"),
        (["picluster-devs", "picluster-guests"], "Editor"),
        (["picluster-guests"], "Viewer"),
        (["staff"], None),
        ([], None),
        (None, None),  # the provider sent no groups claim at all
    ],
    ids=["admin", "dev", "guest", "other-group", "no-group", "no-claim"],
)
def test_the_rendered_role_mapping_gives_each_role_its_grafana_role(groups, grafana_role):
    path = VALUES["grafana"]["grafana.ini"]["auth.jwt"]["role_attribute_path"]
    try:
        found = jmespath.search(path, _sample_id_token(groups))
    except jmespath.exceptions.JMESPathTypeError:  # Grafana's search errs too: no role
        found = None
    # None or false: no role, which role_attribute_strict turns into a refused login.
    assert (found or None) == grafana_role


def test_grafana_checks_the_token_of_the_provider_in_the_settings(monkeypatch):
    monkeypatch.setenv("PICLUSTER_OIDC_ISSUER_URL", "https://auth.home.example/application/o/pi/")
    monkeypatch.setenv(
        "PICLUSTER_OIDC_JWKS_URL", "https://auth.home.example/application/o/pi/jwks/"
    )
    monkeypatch.setenv("PICLUSTER_OIDC_CLIENT_ID", "pi-gateway")
    monkeypatch.setenv("PICLUSTER_OIDC_GROUPS_CLAIM", "cognito:groups")
    monkeypatch.setenv("PICLUSTER_GATEWAY_DOMAIN", "home.example")
    ini = monitoring.chart_values(INV)["grafana"]["grafana.ini"]
    jwt = ini["auth.jwt"]
    assert jwt["jwk_set_url"] == "https://auth.home.example/application/o/pi/jwks/"
    assert json.loads(jwt["expect_claims"]) == {
        "iss": "https://auth.home.example/application/o/pi/",
        "aud": "pi-gateway",
    }
    assert jmespath.search(jwt["role_attribute_path"], {"cognito:groups": ["picluster-devs"]}) == (
        "Editor"
    )
    assert ini["auth"]["signout_redirect_url"] == "https://dash.home.example/oauth2/sign_out"
    assert load_access_settings().jwks_url == jwt["jwk_set_url"]


def test_grafana_has_prometheus_and_loki_with_the_uids_the_dashboards_use():
    sources = VALUES["grafana"]["datasources"]["datasources.yaml"]["datasources"]
    assert {(s["uid"], s["type"], s["url"]) for s in sources} == {
        ("prometheus", "prometheus", "http://kps-prometheus.monitoring.svc:9090"),
        ("loki", "loki", "http://loki.logging.svc:3100"),
    }
    assert VALUES["grafana"]["sidecar"]["dashboards"]["label"] == "grafana_dashboard"
    assert VALUES["grafana"]["sidecar"]["datasources"] == {"enabled": False}


def test_config_chart_holds_the_pushgateway_rules_and_a_configmap_per_dashboard():
    kinds = [(m["kind"], m["metadata"]["name"]) for m in CONFIG]
    dashboards = sorted(p.stem for p in monitoring.DASHBOARDS_DIR.glob("*.json"))
    assert kinds == [
        ("Deployment", "pushgateway"),
        ("Service", "pushgateway"),
        ("ServiceMonitor", "pushgateway"),
        ("ServiceMonitor", "loki"),
        ("PrometheusRule", "piclusterops-alerts"),
        *(("ConfigMap", f"dashboard-{d}") for d in dashboards),
    ]
    for m in CONFIG:
        if m["kind"] == "ConfigMap":
            assert m["metadata"]["labels"]["grafana_dashboard"] == "1"
            (body,) = m["data"].values()
            assert json.loads(body)["uid"].startswith("pi-")
    (pushgateway_monitor,) = [
        m
        for m in CONFIG
        if m["kind"] == "ServiceMonitor" and m["metadata"]["name"] == "pushgateway"
    ]
    # The pushed series keep their own job label, which the alerts select on.
    assert pushgateway_monitor["spec"]["endpoints"][0]["honorLabels"] is True


def test_config_chart_holds_no_helm_template_syntax():
    # Helm renders templates/*.yaml as Go templates: a `{{` in a rule annotation or a dashboard
    # legend would be executed (and fail the install).
    assert "{{" not in json.dumps(CONFIG)


@pytest.mark.parametrize(
    "manifest",
    [m for m in CONFIG if m["kind"] in {"Deployment", "Service", "ConfigMap"}],
    ids=lambda m: f"{m['kind']}/{m['metadata']['name']}",
)
def test_config_core_manifests_pass_the_kubernetes_schema(manifest):
    kubernetes_validate.validate(manifest, K8S_SCHEMA, strict=True)


def test_the_release_depends_on_nothing_and_is_in_the_catalogue_after_dagster():
    names = [r.name for r in catalogue.releases(INV)]
    assert names.index("monitoring") > names.index("dagster")
    assert RELEASE.needs == ()
