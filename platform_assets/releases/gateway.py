"""The `gateway` release: oauth2-proxy in front of every UI, in the DMZ, TLS from the LAN CA.

One oauth2-proxy per audience, because oauth2-proxy authorizes groups per instance, not per
path: `ops` (admins: the full Dagster webserver), `lab` (developers: JupyterLab, Trino's UI,
NiFi when on) and `dash` (everyone: Grafana, the read-only Dagster webserver). Which roles pass
which gateway is the roles table's (roles.py). Each gateway is a LoadBalancer address of its
own (MetalLB) with its own name, `<gateway>.<domain>`, and a certificate cert-manager issues
from the `lan-ca` ClusterIssuer. Behind it, Grafana, JupyterLab, Trino's UI, both Dagster
webservers and NiFi serve HTTPS with LAN CA certificates of their own, which the gateway verifies
(docs/zones.md).

Its secrets: the OIDC client secret is injected from OpenBao (`secret/gateway/oidc`, key
`client_secret`, written by an admin) by the agent as a file; the cookie secret is generated
by the platform (`gateway/gateway-cookie`).
"""

from dataclasses import dataclass

from platform_assets.inventory import Inventory
from platform_assets.releases import lan_tls, openbao, roles
from platform_assets.releases.access_settings import AccessSettings, load_access_settings
from platform_assets.releases.spec import (
    Chart,
    Container,
    GeneratedSecret,
    Image,
    Release,
    Workload,
)

NAMESPACE = "gateway"
CHART_REPO = "https://oauth2-proxy.github.io/manifests"
CHART_VERSION = "7.1.0"  # appVersion 7.6.0 (the chart's Chart.yaml)
# The chart prefixes the tag with "v": this pulls quay.io/oauth2-proxy/oauth2-proxy:v7.6.0.
IMAGE = Image("quay.io/oauth2-proxy/oauth2-proxy", "7.6.0")
# A Go proxy with cookie sessions: small (no published Pi figure; idle it is tens of MiB).
# One per gateway, named after it here (the chart names every one's container oauth2-proxy).
PROXY_MEMORY = (32, 64)


def proxy(gateway_name: str) -> Container:
    return Container(f"oauth2-proxy-{gateway_name}", IMAGE, *PROXY_MEMORY, "10m", "200m")


HTTPS_PORT = 4443
SECRET_FILE = "/vault/secrets/oidc-client-secret"  # noqa: S105 (a path)
TLS_DIR = "/etc/gateway-tls"
COOKIE_SECRET = "gateway-cookie"  # noqa: S105 (a Secret's name)
# Shorter than any ID token lifetime a provider is likely to be set to (Keycloak: 5 minutes).
SESSION_REFRESH = "1m"

# The LAN CA's certificate, from this namespace's own gateway certificates' Secrets (cert-manager
# writes `ca.crt` into each): oauth2-proxy 7.6 has no upstream-CA option, and its upstream
# transport verifies against Go's system roots, which read every file of SSL_CERT_DIR beside
# the image's own bundle (SSL_CERT_FILE stays unset, so public OIDC providers still verify).
CA_DIR = "/etc/lan-ca"

# Upstreams: Services as their releases name them (dagster.py, catalogue.py, notebooks.py,
# nifi.py; Grafana's is the monitoring release's). A path in an upstream URL is its route.
# HTTPS ones present a LAN CA certificate for that name (lan_tls.backend_certificate).
DAGSTER = "https://dagster-dagster-webserver.dagster.svc:443/"
DAGSTER_READ_ONLY = "https://dagster-dagster-webserver-read-only.dagster.svc:443/"
GRAFANA = "https://grafana.monitoring.svc:443/grafana/"
JUPYTER = "https://jupyterlab.notebooks.svc:8888/"
TRINO_UI = "https://trino.query.svc:8443/ui/"
NIFI = ("https://nifi.nifi.svc:8443/nifi/", "https://nifi.nifi.svc:8443/nifi-api/")


@dataclass(frozen=True)
class Gateway:
    name: str
    upstreams: tuple[str, ...]
    purpose: str


def gateways(inv: Inventory) -> tuple[Gateway, ...]:
    return (
        Gateway("ops", (DAGSTER,), "the full Dagster webserver"),
        Gateway("lab", (JUPYTER, TRINO_UI, *(NIFI if inv.nifi else ())), "JupyterLab, Trino, NiFi"),
        Gateway("dash", (DAGSTER_READ_ONLY, GRAFANA), "Grafana, the read-only Dagster"),
    )


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_file(g: Gateway, access: AccessSettings) -> str:
    """oauth2-proxy's configuration file (TOML) for one gateway."""
    host = access.host(g.name)
    renews = g.name == "dash"  # its ID token goes to Grafana, which checks its `exp`
    settings = {
        "provider": "oidc",
        "oidc_issuer_url": access.issuer_url,
        "client_id": access.client_id,
        "client_secret_file": SECRET_FILE,
        "redirect_url": f"https://{host}/oauth2/callback",
        "scope": " ".join(dict.fromkeys(("openid", "email", "profile", access.groups_scope)))
        + (" offline_access" if renews and access.offline_access else ""),
        "oidc_groups_claim": access.groups_claim,
        "allowed_groups": roles.groups_for_gateway(g.name),
        "email_domains": ["*"],
        "upstreams": list(g.upstreams),
        "cookie_name": f"_picluster_{g.name}",
        "cookie_secure": True,
        "cookie_domains": [host],
        "whitelist_domains": [host],
        "tls_cert_file": f"{TLS_DIR}/tls.crt",
        "tls_key_file": f"{TLS_DIR}/tls.key",
        "skip_provider_button": True,
        "pass_user_headers": True,
        # Grafana logs people in from the ID token (`Authorization: Bearer`, monitoring.py's
        # grafana_login_values); no other upstream reads it, so no other gateway sends it.
        "pass_authorization_header": g.name == "dash",
        # That token must be a live one: Grafana checks its `exp`, and providers issue ID tokens
        # for minutes (Keycloak's default is 5), while the gateway's session lasts a week. So
        # `dash` renews the tokens with the refresh token once its session is older than this
        # (on the next request), and Grafana never sees an expired one.
        # The renewal needs a refresh token, which some providers issue only for the scope
        # `offline_access` (PICLUSTER_OIDC_OFFLINE_ACCESS); the other gateways never renew, so
        # they never ask for one.
        **({"cookie_refresh": SESSION_REFRESH} if renews else {}),
        # Every gateway verifies every HTTPS upstream against the LAN CA (NiFi's too: nifi.py);
        # said, not left to the default, since one upstream without a certificate of ours
        # would take the whole gateway's verification with it (the option is per gateway).
        "ssl_upstream_insecure_skip_verify": False,
    }
    return "".join(f"{k} = {_toml(v)}\n" for k, v in settings.items())


def agent_annotations() -> dict[str, str]:
    """The OpenBao agent writes the client secret into the pod before oauth2-proxy starts.
    (This chart version renders podAnnotations with toYaml, not tpl: the agent's template
    reaches the pod as written.)"""
    prefix = "vault.hashicorp.com"
    return {
        f"{prefix}/agent-inject": "true",
        f"{prefix}/agent-pre-populate-only": "true",
        f"{prefix}/service": openbao.ADDRESS,
        f"{prefix}/role": "gateway",
        f"{prefix}/agent-inject-secret-oidc-client-secret": "secret/data/gateway/oidc",
        f"{prefix}/agent-inject-template-oidc-client-secret": (
            '{{- with secret "secret/data/gateway/oidc" -}}'
            "{{ .Data.data.client_secret }}"
            "{{- end -}}"
        ),
    }


def chart_values(g: Gateway, access: AccessSettings) -> dict:
    secret = lan_tls.secret_name(f"gateway-{g.name}")
    return {
        "fullnameOverride": f"gateway-{g.name}",
        "image": {"repository": IMAGE.repository, "tag": IMAGE.tag},
        "config": {"clientID": access.client_id, "configFile": config_file(g, access)},
        # Neither secret is a chart value: the client secret is injected as a file, the
        # cookie secret comes from the generated Secret.
        "proxyVarsAsSecrets": False,
        "extraEnv": [
            {
                "name": "OAUTH2_PROXY_COOKIE_SECRET",
                "valueFrom": {"secretKeyRef": {"name": COOKIE_SECRET, "key": "cookie_secret"}},
            },
            {"name": "SSL_CERT_DIR", "value": CA_DIR},
        ],
        "httpScheme": "https",
        "service": {"type": "LoadBalancer", "portNumber": 443},
        "serviceAccount": {"enabled": True},
        "podLabels": dict(openbao.INJECT_LABEL),
        "podAnnotations": agent_annotations(),
        "resources": proxy(g.name).resources(),
        "extraVolumes": [
            {"name": "tls", "secret": {"secretName": secret}},
            lan_tls.ca_volume("lan-ca", secret),
        ],
        "extraVolumeMounts": [
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "lan-ca", "mountPath": CA_DIR, "readOnly": True},
        ],
    }


def certificate(g: Gateway, access: AccessSettings) -> dict:
    return lan_tls.certificate(f"gateway-{g.name}", NAMESPACE, [access.host(g.name)])


def gateway(inv: Inventory) -> Release:
    access = load_access_settings()
    gs = gateways(inv)
    return Release(
        name="gateway",
        namespace=NAMESPACE,
        description="Single sign-on in front of every UI: oauth2-proxy (OIDC provider "
        f"{access.issuer_url}) as ops.{access.domain} (admins: Dagster), lab.{access.domain} "
        f"(developers: JupyterLab, Trino{', NiFi' if inv.nifi else ''}) and "
        f"dash.{access.domain} (everyone: Grafana, read-only Dagster), TLS from the LAN CA. DMZ.",
        charts=(
            Chart(name="gateway-tls", manifests=tuple(certificate(g, access) for g in gs)),
            *(
                Chart(
                    name=f"gateway-{g.name}",
                    repo=CHART_REPO,
                    chart="oauth2-proxy",
                    version=CHART_VERSION,
                    values=chart_values(g, access),
                )
                for g in gs
            ),
        ),
        workloads=tuple(Workload("Deployment", f"gateway-{g.name}", (proxy(g.name),)) for g in gs),
        needs=("cert_manager", "metallb", "secrets"),
        secrets=(
            GeneratedSecret(name=COOKIE_SECRET, namespace=NAMESPACE, keys=("cookie_secret",)),
        ),
    )
