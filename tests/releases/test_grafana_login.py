"""Grafana's login through the `dash` gateway, with the real oauth2-proxy 7.6 the gateway runs
(tests/harness/oauth2_proxy_dist) and a real OIDC code flow on loopback against a fake
provider (no real one runs here; it signs RS256 ID tokens and serves its key set): a person
signs in at the provider, the gateway forwards their request, and what reaches Grafana's place
is the ID token Grafana's rendered `[auth.jwt]` expects, mapped to that person's Grafana role.
Once the gateway's session is older than its `cookie_refresh`, it renews that token with the
provider's refresh token, which the provider issues (as Dex, authentik, Auth0 and Okta do) only
to a login that asked for `offline_access`.

The gateways' configuration files are the rendered ones, changed only where the test has no
cluster (as in test_backend_tls.py): addresses on loopback, the provider's endpoints given
instead of discovered, its certificate from the test CA, no cookie domain. No Grafana runs
here (none can be built or fetched): its side is its rendered `grafana.ini`, applied with PyJWT
(signature against the provider's key set, `expect_claims`, `exp`) and JMESPath
(`role_attribute_path`), as Grafana does in `pkg/services/authn/clients/jwt.go`.
"""

import http.server
import json
import threading
import time
import tomllib
import urllib.parse
from pathlib import Path

import jmespath
import jwt
import pytest
import requests

from platform_assets.releases import gateway, monitoring
from platform_assets.releases.access_settings import load_access_settings
from tests.harness import oauth2_proxy_dist
from tests.harness.kube_pki import Pki
from tests.harness.procs import LOOPBACK, ServiceProcess, free_port
from tests.platform.test_k3s_api_oidc import Issuer
from tests.releases.test_access_releases import INV

pytestmark = pytest.mark.service

CLIENT_ID = "piclusterops"  # the example settings' gateways' client
REFRESH_TOKEN = "the-refresh-token"  # noqa: S105 (the fake provider's own)


class Provider(Issuer):
    """A fake OIDC provider's side of a code flow: /authorize sends the browser straight back
    with a code (no login page), /token exchanges that code for an ID token of the person this
    provider is told to sign in, with a refresh token only when the login asked for
    `offline_access`, and exchanges that refresh token for a new ID token."""

    def __init__(self, pki: Pki):
        super().__init__(pki)
        self.person: tuple[str, list[str]] = ("", [])
        self.issued: list[str] = []
        self.scopes: list[str] = []  # each login's requested scope, in order
        self.refreshed = 0
        base = urllib.parse.urlsplit(self.url).path
        provider = self
        handler = self.server.RequestHandlerClass
        get_page = handler.do_GET

        def do_get(req):
            url = urllib.parse.urlsplit(req.path)
            if url.path != base + "authorize":
                return get_page(req)
            query = dict(urllib.parse.parse_qsl(url.query))
            provider.nonce = query.get("nonce", "")
            provider.scopes.append(query.get("scope", ""))
            back = f"{query['redirect_uri']}?code=the-code&state={query['state']}"
            req.send_response(302)
            req.send_header("Location", back)
            req.send_header("Content-Length", "0")
            req.end_headers()

        def do_post(req):
            form = urllib.parse.parse_qs(req.rfile.read(int(req.headers["Content-Length"])))
            offline = "offline_access" in provider.scopes[-1].split()
            if form.get(b"grant_type") == [b"refresh_token"]:
                good = offline and form.get(b"refresh_token") == [REFRESH_TOKEN.encode()]
                provider.refreshed += good
            else:
                good = form.get(b"code") == [b"the-code"]
            if not good:
                req.send_response(400)
                req.send_header("Content-Length", "0")
                req.end_headers()
                return
            token = provider.token(*provider.person)
            provider.issued.append(token)
            answer = {
                "access_token": "opaque",
                "token_type": "Bearer",
                "expires_in": 600,
                "id_token": token,
            }
            body = json.dumps(answer | ({"refresh_token": REFRESH_TOKEN} if offline else {}))
            body = body.encode()
            req.send_response(200)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)

        handler.do_GET = do_get
        handler.do_POST = do_post
        self.nonce = ""

    def token(self, email: str, groups: list[str], audience: str = CLIENT_ID) -> str:
        """An ID token for the gateways' client, with the nonce of the last sign-in (a provider
        echoes the one oauth2-proxy sent)."""
        claims = jwt.decode(
            self.id_token(email, groups, audience=audience, groups_claim="groups"),
            options={"verify_signature": False},
        )
        if self.nonce:
            claims["nonce"] = self.nonce
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test-key"})


class Upstream:
    """Grafana's place behind the gateway: records the headers of what reaches it."""

    def __init__(self):
        self.seen: list[dict[str, str]] = []
        seen = self.seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the standard library's name)
                seen.append(dict(self.headers))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def provider(tmp_path_factory):
    """The provider, and the settings naming it, as a person sets them: the gateways and
    Grafana's grafana.ini are rendered with these."""
    pki = Pki(tmp_path_factory.mktemp("grafana-login-pki"))
    issuer = Provider(pki)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("PICLUSTER_OIDC_ISSUER_URL", issuer.url)
        env.setenv("PICLUSTER_OIDC_JWKS_URL", issuer.url + "jwks")
        env.setenv("PICLUSTER_OIDC_CLIENT_ID", CLIENT_ID)
        yield issuer, pki
    issuer.server.shutdown()


def _start(
    name: str, provider: Provider, pki: Pki, upstream: Upstream, tmp: Path, log: Path, **changed
):
    (g,) = [g for g in gateway.gateways(INV) if g.name == name]
    config = tomllib.loads(gateway.config_file(g, load_access_settings()))
    own = pki.server(f"gateway-{name}", ips=(LOOPBACK,), dns=("localhost",))
    port = free_port()
    here = f"https://{LOOPBACK}:{port}"
    (tmp / "client-secret").write_text("test-client-secret")
    assert config["oidc_issuer_url"] == provider.url
    config.update(
        upstreams=[f"http://{LOOPBACK}:{upstream.port}/grafana/"],
        redirect_url=f"{here}/oauth2/callback",
        cookie_domains=[],
        whitelist_domains=[f"{LOOPBACK}:{port}"],
        tls_cert_file=str(own.cert),
        tls_key_file=str(own.key),
        client_secret_file=str(tmp / "client-secret"),
        skip_oidc_discovery=True,
        login_url=provider.url + "authorize",
        redeem_url=provider.url + "token",
        oidc_jwks_url=provider.url + "jwks",
        provider_ca_files=[str(pki.ca_cert)],
        ssl_upstream_insecure_skip_verify=False,
        **changed,
    )
    (tmp / "oauth2-proxy.cfg").write_text(
        "".join(f"{k} = {gateway._toml(v)}\n" for k, v in config.items())
    )
    proc = ServiceProcess(
        f"gateway-{name}",
        [
            str(oauth2_proxy_dist.ensure()),
            f"--config={tmp / 'oauth2-proxy.cfg'}",
            f"--https-address={LOOPBACK}:{port}",
            f"--http-address={LOOPBACK}:{free_port()}",
        ],
        log,
        env={"OAUTH2_PROXY_COOKIE_SECRET": "0123456789abcdef0123456789abcdef", "PATH": "/usr/bin"},
        cwd=tmp,
    ).start()

    def probe() -> bool:
        return requests.get(f"{here}/ping", verify=str(pki.ca_cert), timeout=2).ok

    proc.wait_ready(probe, 30, "answering /ping")
    return proc, here


def _sign_in_and_open_grafana(here: str, pki: Pki) -> requests.Response:
    """A browser's visit: to the gateway, on to the provider and back with its cookies; the
    test CA trusted (per request: the environment's CA bundle would win over a session's)."""
    browser = requests.Session()
    return browser.get(f"{here}/grafana/d/cluster", verify=str(pki.ca_cert), timeout=20)


def _headers_upstream_of(
    name: str, issuer: Provider, pki: Pki, tmp: Path, service_registry
) -> dict[str, str]:
    """Signs `issuer.person` in through gateway `name` and opens Grafana's route: the headers
    the one request that reached the upstream carried."""
    upstream = Upstream()
    proc, here = _start(name, issuer, pki, upstream, tmp, service_registry.log_dir / f"{name}.log")
    try:
        answer = _sign_in_and_open_grafana(here, pki)
    finally:
        proc.stop()
        upstream.server.shutdown()
    assert answer.status_code == 200, proc.log_path.read_text()[-2000:]
    (headers,) = upstream.seen
    return headers


def _grafana_role(token: str, pki: Pki) -> str | None:
    """What Grafana's rendered [auth.jwt] makes of the token: verified as it verifies it (the
    keys at jwk_set_url, expect_claims, exp), then the role its mapping gives (None: refused,
    role_attribute_strict)."""
    settings = monitoring.chart_values(INV)["grafana"]["grafana.ini"]["auth.jwt"]
    expect = json.loads(settings["expect_claims"])
    keys = requests.get(settings["jwk_set_url"], verify=str(pki.ca_cert), timeout=5).json()
    (jwk,) = keys["keys"]
    claims = jwt.decode(
        token,
        jwt.PyJWK(jwk).key,
        algorithms=["RS256"],
        audience=expect["aud"],
        issuer=expect["iss"],
        options={"require": ["exp", "sub"]},
    )
    assert settings["header_name"] == "Authorization"
    return jmespath.search(settings["role_attribute_path"], claims) or None


PEOPLE = [
    ("ada@picluster.lan", ["picluster-admins"], "Admin"),
    ("dev@picluster.lan", ["picluster-devs"], "Editor"),
    ("gus@picluster.lan", ["picluster-guests"], "Viewer"),
]


@pytest.mark.parametrize(("email", "groups", "grafana_role"), PEOPLE, ids=["admin", "dev", "guest"])
def test_the_dash_gateway_hands_grafana_the_id_token_of_the_person_it_signed_in(
    provider, tmp_path, service_registry, email, groups, grafana_role
):
    issuer, pki = provider
    issuer.person = (email, groups)
    headers = _headers_upstream_of("dash", issuer, pki, tmp_path, service_registry)
    scheme, _, token = headers["Authorization"].partition(" ")
    # Grafana strips exactly this prefix (jwt.go, retrieveToken).
    assert scheme == "Bearer"
    assert token == issuer.issued[-1]
    assert _grafana_role(token, pki) == grafana_role


def test_only_the_dash_gateway_sends_the_token(provider, tmp_path, service_registry):
    issuer, pki = provider
    issuer.person = ("ada@picluster.lan", ["picluster-admins"])
    headers = _headers_upstream_of("ops", issuer, pki, tmp_path, service_registry)
    assert "Authorization" not in headers
    assert headers["X-Forwarded-Email"] == "ada@picluster.lan"  # it did sign the person in


def test_grafana_refuses_a_token_of_someone_in_no_role_group(provider):
    issuer, pki = provider
    assert _grafana_role(issuer.token("eve@picluster.lan", ["staff"]), pki) is None


def test_grafana_refuses_a_token_for_another_client(provider):
    issuer, pki = provider
    token = issuer.token("ada@picluster.lan", ["picluster-admins"], audience="picluster-kubectl")
    with pytest.raises(jwt.InvalidAudienceError):
        _grafana_role(token, pki)


def _tokens_of_two_visits(issuer: Provider, pki: Pki, tmp: Path, service_registry) -> list[str]:
    """One person's browser opening Grafana's route through `dash` twice, the second time once
    the session is older than its `cookie_refresh`: the ID token each request reached Grafana's
    place with. The rendered interval (1m) is shortened to 1s, so the test need not wait a
    minute: what is under test is whether the renewal happens, not after how long."""
    upstream = Upstream()
    log = service_registry.log_dir / "dash-renewal.log"
    proc, here = _start("dash", issuer, pki, upstream, tmp, log, cookie_refresh="1s")
    try:
        browser = requests.Session()
        for _ in range(2):
            answer = browser.get(f"{here}/grafana/d/cluster", verify=str(pki.ca_cert), timeout=20)
            assert answer.status_code == 200, proc.log_path.read_text()[-2000:]
            time.sleep(2)  # the token's iat moves on by whole seconds
    finally:
        proc.stop()
        upstream.server.shutdown()
    return [h["Authorization"].removeprefix("Bearer ") for h in upstream.seen]


def test_with_offline_access_the_dash_gateway_renews_the_token_grafana_checks(
    provider, tmp_path, service_registry, monkeypatch
):
    issuer, pki = provider
    issuer.person = ("ada@picluster.lan", ["picluster-admins"])
    monkeypatch.setenv("PICLUSTER_OIDC_OFFLINE_ACCESS", "true")
    refreshed = issuer.refreshed
    first, second = _tokens_of_two_visits(issuer, pki, tmp_path, service_registry)
    assert "offline_access" in issuer.scopes[-1].split()
    assert issuer.refreshed == refreshed + 1
    assert second == issuer.issued[-1] != first  # a new ID token from the refresh token
    assert _grafana_role(second, pki) == "Admin"


def test_without_offline_access_such_a_provider_gives_nothing_to_renew_with(
    provider, tmp_path, service_registry, monkeypatch
):
    # What the setting is for: the same provider, the login asking without it, issues no
    # refresh token, so Grafana keeps getting the first ID token until it expires.
    issuer, pki = provider
    issuer.person = ("ada@picluster.lan", ["picluster-admins"])
    monkeypatch.delenv("PICLUSTER_OIDC_OFFLINE_ACCESS", raising=False)
    refreshed = issuer.refreshed
    first, second = _tokens_of_two_visits(issuer, pki, tmp_path, service_registry)
    assert "offline_access" not in issuer.scopes[-1].split()
    assert issuer.refreshed == refreshed
    assert second == first
