"""The access releases (secrets, gateway, notebooks, nifi) and the zones and roles charts, as
rendered: pinned charts, our manifests against the Kubernetes schema, resources on every
container, OpenBao's configuration parsed as the HCL it reads, the gateways' groups from the
roles table, the NiFi switch, and no secret value anywhere. Charts are not fetched here, so an
upstream chart's own templates are not rendered (docs/releases.md says what only a Pi proves)."""

import json
from pathlib import Path

import hcl
import kubernetes_validate
import pytest
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import catalogue, gateway, openbao, roles
from platform_assets.releases.access_settings import load_access_settings
from platform_assets.releases.spec import helmcharts
from resources.settings import SettingsError
from tests.releases.test_rendering import K8S_SCHEMA, _containers, own_manifests

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())


def inventory(nifi: bool):
    return parse_inventory({**EXAMPLE, "nifi": nifi}, "inventory.yaml")


INV = inventory(nifi=True)
RELEASES = {r.name: r for r in catalogue.releases(INV)}
ACCESS = ("network_zones", "access_roles", "secrets", "gateway", "notebooks", "nifi")
CHARTS = {m["metadata"]["name"]: m for name in ACCESS for m in helmcharts(RELEASES[name])}
OWN = [name for name, hc in CHARTS.items() if "chartContent" in hc["spec"]]


# (HelmChart, target namespace, repo, chart, version, failurePolicy)
UPSTREAM = [
    ("openbao", "secrets", "https://openbao.github.io/openbao-helm", "openbao", "0.28.0", "abort"),
    *(
        (
            f"gateway-{g}",
            "gateway",
            "https://oauth2-proxy.github.io/manifests",
            "oauth2-proxy",
            "7.1.0",
            "reinstall",
        )
        for g in ("ops", "lab", "dash")
    ),
]


@pytest.mark.parametrize(("name", "namespace", "repo", "chart", "version", "policy"), UPSTREAM)
def test_upstream_charts_are_pinned(name, namespace, repo, chart, version, policy):
    spec = CHARTS[name]["spec"]
    assert (spec["targetNamespace"], spec["repo"], spec["chart"], spec["version"]) == (
        namespace,
        repo,
        chart,
        version,
    )
    assert spec["failurePolicy"] == policy


def test_our_charts_are_the_expected_ones():
    assert OWN == ["network-zones", "access-roles", "gateway-tls", "jupyterlab", "nifi"]


@pytest.mark.parametrize(
    "manifest",
    [
        m
        for n in OWN
        for m in own_manifests(CHARTS[n])
        if m["kind"] not in ("Certificate",)  # cert-manager's CRDs: test_certificates_control_plane
    ],
    ids=lambda m: f"{m['kind']}/{m['metadata'].get('namespace', '')}/{m['metadata']['name']}",
)
def test_our_manifests_pass_the_kubernetes_schema(manifest):
    kubernetes_validate.validate(manifest, K8S_SCHEMA, strict=True)


@pytest.mark.parametrize("name", OWN)
def test_our_manifests_hold_no_helm_template_syntax_and_every_container_its_resources(name):
    manifests = own_manifests(CHARTS[name])
    assert "{{" not in json.dumps(manifests)
    for c in _containers(manifests):
        assert c["resources"]["requests"]["memory"] and c["resources"]["limits"]["memory"], c
        assert c["resources"]["requests"]["cpu"] and c["resources"]["limits"]["cpu"], c


# --- secrets (OpenBao) -------------------------------------------------------------------------


def _config() -> dict:
    values = CHARTS["openbao"]["spec"]["values"]
    return hcl.loads(values["server"]["ha"]["raft"]["config"])


def _requests() -> dict:
    return {k: v for r in _config()["initialize"]["platform"]["request"] for k, v in r.items()}


def test_openbao_unseals_itself_from_the_generated_key_given_as_environment():
    config = _config()
    assert config["seal"]["static"]["current_key"] == f"env://{openbao.SEAL_ENV}"
    server = CHARTS["openbao"]["spec"]["values"]["server"]
    assert {
        e["envName"]: (e["secretName"], e["secretKey"])
        for e in server["extraSecretEnvironmentVars"]
        if e["envName"] == openbao.SEAL_ENV
    } == {openbao.SEAL_ENV: (openbao.SEAL_SECRET, openbao.SEAL_KEY)}
    (seal,) = [s for s in RELEASES["secrets"].secrets if s.name == openbao.SEAL_SECRET]
    assert seal.keys == (openbao.SEAL_KEY,)
    assert config["storage"]["raft"]["path"] == server["dataStorage"].get(
        "mountPath", "/openbao/data"
    )


def test_the_seal_key_is_32_random_bytes():
    import base64

    from platform_assets.releases.secrets import generate

    (seal,) = [s for s in RELEASES["secrets"].secrets if s.name == openbao.SEAL_SECRET]
    keys = [base64.b64decode(generate(seal)[openbao.SEAL_KEY]) for _ in range(2)]
    assert [len(k) for k in keys] == [32, 32] and keys[0] != keys[1]


def test_only_the_admins_group_can_log_in_to_the_admin_policy_and_guests_cannot_log_in():
    requests = _requests()
    oidc_roles = {
        path.rsplit("/", 1)[1]: r["data"]
        for r in requests.values()
        if (path := r["path"]).startswith("auth/oidc/role/")
    }
    assert sorted(oidc_roles) == ["admin", "dev"]
    assert oidc_roles["admin"]["bound_claims"] == {"groups": ["picluster-admins"]}
    assert oidc_roles["admin"]["token_policies"] == ["admin"]
    assert oidc_roles["dev"]["bound_claims"] == {"groups": ["picluster-devs"]}
    assert oidc_roles["dev"]["token_policies"] == ["dev"]
    admin_policy = requests["policy-admin"]["data"]["policy"]
    assert hcl.loads(admin_policy)["path"]["*"]["capabilities"][-1] == "sudo"
    dev_policy = hcl.loads(requests["policy-dev"]["data"]["policy"])
    assert "*" not in dev_policy["path"] and "sys/*" not in dev_policy["path"]


def test_the_gateway_pods_read_only_their_own_secrets_through_kubernetes_login():
    requests = _requests()
    role = requests["kubernetes-role-gateway"]["data"]
    assert role["bound_service_account_namespaces"] == ["gateway"]
    assert role["bound_service_account_names"] == [f"gateway-{g}" for g in ("ops", "lab", "dash")]
    policy = hcl.loads(requests["policy-gateway"]["data"]["policy"])
    assert policy["path"] == {"secret/data/gateway/*": {"capabilities": ["read"]}}


def test_the_oidc_client_secret_comes_from_the_environment_never_the_config():
    data = _requests()["oidc-auth-config"]["data"]
    assert data["oidc_client_secret"] == {
        "eval_type": "string",
        "eval_source": "env",
        "env_var": openbao.OIDC_ENV,
    }


def test_the_injector_only_mutates_pods_that_ask_and_then_fails_closed():
    webhook = CHARTS["openbao"]["spec"]["values"]["injector"]["webhook"]
    assert webhook == {
        "failurePolicy": "Fail",
        "objectSelector": {"matchLabels": openbao.INJECT_LABEL},
    }


# --- gateway -----------------------------------------------------------------------------------


def _gateway_config(name: str) -> dict:
    import tomllib

    return tomllib.loads(CHARTS[f"gateway-{name}"]["spec"]["values"]["config"]["configFile"])


# (gateway, groups it lets through, upstreams)
GATEWAYS = [
    ("ops", ["picluster-admins"], [gateway.DAGSTER]),
    (
        "lab",
        ["picluster-admins", "picluster-devs"],
        [gateway.JUPYTER, gateway.TRINO_UI, *gateway.NIFI],
    ),
    (
        "dash",
        ["picluster-admins", "picluster-devs", "picluster-guests"],
        [gateway.DAGSTER_READ_ONLY, gateway.GRAFANA],
    ),
]


@pytest.mark.parametrize(("name", "groups", "upstreams"), GATEWAYS)
def test_each_gateway_lets_through_its_roles_to_its_upstreams_over_lan_ca_tls(
    name, groups, upstreams
):
    config = _gateway_config(name)
    assert config["allowed_groups"] == groups
    assert config["upstreams"] == upstreams
    assert config["redirect_url"] == f"https://{name}.picluster.lan/oauth2/callback"
    assert config["oidc_issuer_url"] == "https://sso.picluster.lan/realms/picluster"
    assert config["client_secret_file"] == gateway.SECRET_FILE
    (cert,) = [
        m
        for m in own_manifests(CHARTS["gateway-tls"])
        if m["metadata"]["name"] == f"gateway-{name}"
    ]
    assert cert["spec"]["dnsNames"] == [f"{name}.picluster.lan"]
    assert cert["spec"]["issuerRef"]["name"] == "lan-ca"
    values = CHARTS[f"gateway-{name}"]["spec"]["values"]
    secret = cert["spec"]["secretName"]
    # Its own certificate, and beside it a directory holding only the LAN CA's certificate,
    # which Go's system roots add from SSL_CERT_DIR to the image's bundle.
    assert values["extraVolumes"] == [
        {"name": "tls", "secret": {"secretName": secret}},
        {
            "name": "lan-ca",
            "secret": {"secretName": secret, "items": [{"key": "ca.crt", "path": "ca.crt"}]},
        },
    ]
    assert {"name": "lan-ca", "mountPath": gateway.CA_DIR, "readOnly": True} in values[
        "extraVolumeMounts"
    ]
    assert {"name": "SSL_CERT_DIR", "value": gateway.CA_DIR} in values["extraEnv"]
    assert not any(e["name"] == "SSL_CERT_FILE" for e in values["extraEnv"])
    assert values["service"]["type"] == "LoadBalancer"


def _certificates(inv) -> list[dict]:
    return [
        m
        for r in catalogue.releases(inv)
        for c in r.charts
        for m in c.manifests
        if m["kind"] == "Certificate"
    ]


def test_every_https_upstream_presents_a_lan_ca_certificate_for_the_name_the_gateway_dials():
    certificates = _certificates(INV)
    upstreams = [u for g in gateway.gateways(INV) for u in g.upstreams if u not in gateway.NIFI]
    https = [u for u in upstreams if u.startswith("https://")]
    assert https == [
        gateway.DAGSTER,
        gateway.JUPYTER,
        gateway.TRINO_UI,
        gateway.DAGSTER_READ_ONLY,
        gateway.GRAFANA,
    ]
    for url in https:
        host = url.removeprefix("https://").split(":")[0]
        namespace = host.split(".")[1]
        (cert,) = [c for c in certificates if host in c["spec"].get("dnsNames", [])]
        assert cert["metadata"]["namespace"] == namespace, url
        assert cert["spec"]["issuerRef"] == {
            "name": "lan-ca",
            "kind": "ClusterIssuer",
            "group": "cert-manager.io",
        }


@pytest.mark.parametrize("nifi", [False, True])
def test_every_gateway_verifies_its_upstreams_with_nifi_on_or_off(nifi):
    inv = inventory(nifi=nifi)
    access = load_access_settings()
    import tomllib

    skips = {
        g.name: tomllib.loads(gateway.config_file(g, access))["ssl_upstream_insecure_skip_verify"]
        for g in gateway.gateways(inv)
    }
    assert skips == {"ops": False, "lab": False, "dash": False}


def test_nifis_upstreams_present_its_lan_ca_certificate_for_the_name_the_gateway_dials():
    (host,) = {u.removeprefix("https://").split(":")[0] for u in gateway.NIFI}
    (cert,) = [c for c in _certificates(INV) if host in c["spec"].get("dnsNames", [])]
    assert cert["metadata"]["namespace"] == host.split(".")[1] == "nifi"
    assert cert["spec"]["issuerRef"]["name"] == "lan-ca"
    assert cert in own_manifests(CHARTS["nifi"])


def test_the_gateways_carry_no_secret_value_and_the_injected_file_is_the_client_secret():
    for name in ("ops", "lab", "dash"):
        values = CHARTS[f"gateway-{name}"]["spec"]["values"]
        assert values["proxyVarsAsSecrets"] is False
        text = json.dumps(values)
        assert "client_secret =" not in text and "cookie_secret =" not in text
        annotations = values["podAnnotations"]
        assert annotations["vault.hashicorp.com/role"] == "gateway"
        assert annotations["vault.hashicorp.com/agent-pre-populate-only"] == "true"
        assert values["podLabels"] == openbao.INJECT_LABEL
    assert not RELEASES["gateway"].secrets[0].derived_from  # the cookie secret is generated


def test_lab_without_nifi_has_no_nifi_upstream():
    inv = inventory(nifi=False)
    (lab,) = [g for g in gateway.gateways(inv) if g.name == "lab"]
    assert lab.upstreams == (gateway.JUPYTER, gateway.TRINO_UI)


# --- notebooks and nifi ------------------------------------------------------------------------


def test_the_lab_has_the_warehouse_connection_and_only_the_gateway_reaches_it():
    deployment = next(m for m in own_manifests(CHARTS["jupyterlab"]) if m["kind"] == "Deployment")
    (lab,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in lab["env"]}
    assert env["TRINO_HOST"] == "trino.query.svc" and env["TRINO_CATALOG"] == "hive"
    startup = (ROOT / "deploy" / "notebooks" / "00-warehouse.py").read_text()
    for name in env:
        assert f'os.environ["{name}"]' in startup
    dockerfile = (ROOT / "deploy" / "notebooks" / "Dockerfile").read_text()
    pinned = next(
        line for line in (ROOT / "pyproject.toml").read_text().splitlines() if '"trino==' in line
    )
    assert pinned.strip(' ",') in dockerfile  # the client the platform itself pins


def test_the_lab_serves_https_with_its_lan_ca_certificate():
    manifests = own_manifests(CHARTS["jupyterlab"])
    (cert,) = [m for m in manifests if m["kind"] == "Certificate"]
    assert cert["metadata"]["namespace"] == "notebooks"
    assert "jupyterlab.notebooks.svc" in cert["spec"]["dnsNames"]
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (lab,) = pod["containers"]
    (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == cert["spec"]["secretName"]
    (mount,) = [m for m in lab["volumeMounts"] if m["name"] == "tls"]
    assert f"--ServerApp.certfile={mount['mountPath']}/tls.crt" in lab["args"]
    assert f"--ServerApp.keyfile={mount['mountPath']}/tls.key" in lab["args"]
    assert lab["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"


def test_nifi_is_off_by_default_and_then_applies_nothing():
    assert EXAMPLE["nifi"] is False
    off = next(r for r in catalogue.releases(inventory(nifi=False)) if r.name == "nifi")
    assert off.charts == () and off.workloads == () and off.secrets == ()


def test_nifi_on_runs_on_the_server_with_generated_login_credentials():
    statefulset = next(m for m in own_manifests(CHARTS["nifi"]) if m["kind"] == "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"picluster.io/zone": "control"}
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    for name in ("SINGLE_USER_CREDENTIALS_PASSWORD", "NIFI_SENSITIVE_PROPS_KEY"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "nifi-login"
    assert env["NIFI_WEB_PROXY_HOST"]["value"] == "lab.picluster.lan"


def test_a_wrong_nifi_switch_is_refused_naming_the_field():
    from platform_assets.inventory import InventoryError

    with pytest.raises(InventoryError, match="nifi"):
        parse_inventory({**EXAMPLE, "nifi": "yes"}, "inventory.yaml")


# --- settings ----------------------------------------------------------------------------------

BAD_SETTINGS = [
    ({"PICLUSTER_OIDC_ISSUER_URL": "http://sso.lan"}, "PICLUSTER_OIDC_ISSUER_URL"),
    ({"PICLUSTER_OIDC_ISSUER_URL": "https://sso.lan/a b"}, "PICLUSTER_OIDC_ISSUER_URL"),
    ({"PICLUSTER_OIDC_CLIENT_ID": "has space"}, "PICLUSTER_OIDC_CLIENT_ID"),
    ({"PICLUSTER_OIDC_USERNAME_CLAIM": "e mail"}, "PICLUSTER_OIDC_USERNAME_CLAIM"),
    ({"PICLUSTER_GATEWAY_DOMAIN": "localhost"}, "PICLUSTER_GATEWAY_DOMAIN"),
    # Nested or pointer-like names: oauth2-proxy and OpenBao would read another claim than the
    # API server does.
    ({"PICLUSTER_OIDC_GROUPS_CLAIM": "realm_access.roles"}, "PICLUSTER_OIDC_GROUPS_CLAIM"),
    ({"PICLUSTER_OIDC_GROUPS_CLAIM": "https://pi/groups"}, "PICLUSTER_OIDC_GROUPS_CLAIM"),
    ({"PICLUSTER_OIDC_GROUPS_SCOPE": "groups profile"}, "PICLUSTER_OIDC_GROUPS_SCOPE"),
    # Set but empty would otherwise quietly mean the gateways' client.
    ({"PICLUSTER_OIDC_KUBECTL_CLIENT_ID": ""}, "PICLUSTER_OIDC_KUBECTL_CLIENT_ID is set but empty"),
    (
        {"PICLUSTER_OIDC_KUBECTL_CLIENT_ID": " \t"},
        "PICLUSTER_OIDC_KUBECTL_CLIENT_ID is set but empty",
    ),
    ({"PICLUSTER_OIDC_KUBECTL_CLIENT_ID": "kube ctl"}, "PICLUSTER_OIDC_KUBECTL_CLIENT_ID"),
    # A chosen provider's keys: the example's would verify none of its tokens.
    (
        {"PICLUSTER_OIDC_ISSUER_URL": "https://sso.lan/realms/pi"},
        "PICLUSTER_OIDC_JWKS_URL is not set",
    ),
    ({"PICLUSTER_OIDC_JWKS_URL": "http://sso.lan/certs"}, "PICLUSTER_OIDC_JWKS_URL"),
]


@pytest.mark.parametrize(("environ", "variable"), BAD_SETTINGS)
def test_a_wrong_access_setting_is_refused_naming_the_variable(environ, variable):
    with pytest.raises(SettingsError, match=variable):
        load_access_settings(environ)


def test_the_provider_comes_from_the_settings():
    access = load_access_settings(
        {
            "PICLUSTER_OIDC_ISSUER_URL": "https://auth.home.example/application/o/pi/",
            "PICLUSTER_OIDC_JWKS_URL": "https://auth.home.example/application/o/pi/jwks/",
            "PICLUSTER_OIDC_CLIENT_ID": "pi-gateway",
            "PICLUSTER_GATEWAY_DOMAIN": "home.example",
        }
    )
    # Kept with its "/": the ID tokens' `iss` must equal it exactly (authentik's end in "/").
    assert access.issuer_url == "https://auth.home.example/application/o/pi/"
    text = gateway.config_file(gateway.gateways(INV)[0], access)
    assert 'oidc_issuer_url = "https://auth.home.example/application/o/pi/"' in text
    assert 'redirect_url = "https://ops.home.example/oauth2/callback"' in text
    assert 'client_id = "pi-gateway"' in text


def _groups_read_by_every_verifier() -> dict[str, tuple]:
    """(claim, scope) each verifier of a login reads a person's groups from, as the K3s
    server's config and the releases render it with the process's settings."""
    import tomllib

    import jmespath

    from platform_assets.k3s.plan import desired_k3s_config

    built = {r.name: r for r in catalogue.releases(INV)}
    charts = {
        m["metadata"]["name"]: m for n in ("gateway", "secrets") for m in helmcharts(built[n])
    }
    api_args = yaml.safe_load(desired_k3s_config(INV, INV.server, load_access_settings()))
    (api_claim,) = [
        a.removeprefix("oidc-groups-claim=")
        for a in api_args["kube-apiserver-arg"]
        if a.startswith("oidc-groups-claim=")
    ]
    seen = {"kube-apiserver": (api_claim, None)}  # the API asks for no scope: kubelogin does
    for g in ("ops", "lab", "dash"):
        config = tomllib.loads(charts[f"gateway-{g}"]["spec"]["values"]["config"]["configFile"])
        seen[f"gateway-{g}"] = (config["oidc_groups_claim"], config["scope"].split()[-1])
    raft = charts["openbao"]["spec"]["values"]["server"]["ha"]["raft"]["config"]
    requests = {
        k: v for r in hcl.loads(raft)["initialize"]["platform"]["request"] for k, v in r.items()
    }
    for name in ("admin", "dev"):
        data = requests[f"oidc-role-{name}"]["data"]
        (bound,) = data["bound_claims"]
        assert bound == data["groups_claim"], name
        (scope,) = data["oidc_scopes"]
        seen[f"openbao-{name}"] = (data["groups_claim"], scope)
    # Grafana: which claim its rendered role mapping finds the admins' group in.
    (stack,) = [
        h
        for h in helmcharts(built["monitoring"])
        if h["metadata"]["name"] == "kube-prometheus-stack"
    ]
    path = stack["spec"]["values"]["grafana"]["grafana.ini"]["auth.jwt"]["role_attribute_path"]

    def admin_by(claim: str) -> bool:
        try:
            return jmespath.search(path, {claim: ["picluster-admins"]}) == "Admin"
        except jmespath.exceptions.JMESPathTypeError:  # the claim it reads is absent
            return False

    (grafana_claim,) = [c for c in ("groups", "picluster_groups", "cognito:groups") if admin_by(c)]
    seen["grafana"] = (grafana_claim, None)
    return seen


@pytest.mark.parametrize(
    ("environ", "claim", "scope"),
    [
        ({}, "groups", "groups"),
        # The scope follows the claim unless it is set.
        (
            {"PICLUSTER_OIDC_GROUPS_CLAIM": "picluster_groups"},
            "picluster_groups",
            "picluster_groups",
        ),
        (
            {
                "PICLUSTER_OIDC_GROUPS_CLAIM": "cognito:groups",
                "PICLUSTER_OIDC_GROUPS_SCOPE": "profile",
            },
            "cognito:groups",
            "profile",
        ),
    ],
    ids=["default", "claim", "claim-and-scope"],
)
def test_every_verifier_reads_the_groups_from_the_one_claim_setting(
    monkeypatch, environ, claim, scope
):
    monkeypatch.setenv("PICLUSTER_OIDC_ISSUER_URL", "https://auth.home.example/application/o/pi/")
    monkeypatch.setenv(
        "PICLUSTER_OIDC_JWKS_URL", "https://auth.home.example/application/o/pi/jwks/"
    )
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    seen = _groups_read_by_every_verifier()
    assert seen == {
        verifier: (claim, None if verifier in ("kube-apiserver", "grafana") else scope)
        for verifier in seen
    }
    assert len(seen) == 7


@pytest.mark.parametrize("name", ["ops", "lab", "dash"])
def test_only_the_dash_gateway_passes_the_id_token_grafana_logs_in_with(name):
    config = _gateway_config(name)
    assert config["pass_authorization_header"] is (name == "dash")
    # And keeps it live: renewed well inside a 5-minute ID token, so Grafana (which checks
    # `exp`) never gets an expired one during the gateway's week-long session.
    assert ("cookie_refresh" in config) is (name == "dash")
    if name == "dash":
        assert config["cookie_refresh"] == "1m"


def test_the_gateways_ask_for_each_scope_once():
    access = load_access_settings({"PICLUSTER_OIDC_GROUPS_SCOPE": "profile"})
    import tomllib

    config = tomllib.loads(gateway.config_file(gateway.gateways(INV)[0], access))
    assert config["scope"] == "openid email profile"


@pytest.mark.parametrize("offline", [False, True], ids=["unset", "offline-access"])
def test_only_the_gateway_that_renews_asks_for_offline_access_and_only_when_set(offline):
    import tomllib

    environ = {"PICLUSTER_OIDC_OFFLINE_ACCESS": "true"} if offline else {}
    access = load_access_settings(environ)
    for g in gateway.gateways(INV):
        scopes = tomllib.loads(gateway.config_file(g, access))["scope"].split()
        assert ("offline_access" in scopes) is (offline and g.name == "dash"), g.name


def test_a_bad_offline_access_setting_is_refused_naming_it():
    with pytest.raises(SettingsError, match="PICLUSTER_OIDC_OFFLINE_ACCESS='maybe' is not valid"):
        load_access_settings({"PICLUSTER_OIDC_OFFLINE_ACCESS": "maybe"})


def test_the_roles_table_and_the_gateways_agree():
    names = {g.name for g in gateway.gateways(INV)}
    assert {g for r in roles.ROLES for g in r.gateways} == names


@pytest.mark.parametrize("nifi", [True, False], ids=["nifi-on", "nifi-off"])
def test_the_zones_and_roles_charts_only_use_namespaces_that_exist_at_their_install(nifi):
    # Helm refuses an object in a namespace that does not exist: the zones chart creates its
    # namespaces itself, the roles chart applies after it.
    from platform_assets.releases import zones

    inv = inventory(nifi)
    built = {r.name: r for r in catalogue.releases(inv)}
    created = set(zones.namespaces(inv))
    for name in ("network_zones", "access_roles"):
        for hc in helmcharts(built[name]):
            used = {m["metadata"].get("namespace") for m in own_manifests(hc)} - {None}
            assert used <= created, (name, used - created)
