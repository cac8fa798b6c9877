"""The K3s server's OIDC flags on a real kube-apiserver (v1.34, the K3s pin's minor): a second API
server on the session's etcd (its own key prefix) started with exactly the `kube-apiserver-arg`
list `desired_k3s_config` writes, and a real HTTPS OIDC issuer on loopback. A person's ID token
for kubectl's client then logs in (one for the gateways' client does not), and the roles'
bindings (roles.py) apply to the groups as the API presents them.

K3s itself cannot run here (no containers, no root-owned node); K3s hands each
`kube-apiserver-arg` value to its embedded kube-apiserver as `--<value>`, which is what this
does. The provider's certificate is trusted the way the Pi's API server would trust it: from the
system roots (SSL_CERT_FILE, which Go reads on Linux), since the flags set no `oidc-ca-file`.
"""

import base64
import http.client
import http.server
import json
import ssl
import threading
import time

import pytest
import yaml
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from platform_assets.k3s.plan import desired_k3s_config
from platform_assets.releases import roles
from platform_assets.releases.access_settings import load_access_settings
from platform_assets.releases.spec import FIELD_MANAGER
from tests.harness.kube import READY_TIMEOUT, _tls_get, kubeconfig_text
from tests.harness.kube_dist import bin_dir
from tests.harness.kube_pki import Pki
from tests.harness.procs import LOOPBACK, ServiceProcess, free_port
from tests.platform.test_planning import INV

GATEWAY_CLIENT_ID = "piclusterops"
# kubectl's own public client: the audience the API requires, when it differs from the gateways'.
KUBECTL_CLIENT_ID = "picluster-kubectl"
# Not the default `groups`: the API must read the groups from the claim the settings name.
GROUPS_CLAIM = "picluster_groups"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Issuer:
    """An OIDC provider as far as kube-apiserver uses one: discovery, the signing keys, and ID
    tokens it signs (RS256)."""

    def __init__(self, pki: Pki):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.port = free_port()
        # A trailing "/", as authentik's issuers have: the API compares `iss` with it exactly.
        self.url = f"https://{LOOPBACK}:{self.port}/application/o/picluster/"
        numbers = self.key.public_key().public_numbers()
        jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "alg": "RS256",
                    "use": "sig",
                    "kid": "test-key",
                    "n": _b64url(numbers.n.to_bytes(256, "big")),
                    "e": _b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }
        discovery = {
            "issuer": self.url,
            "jwks_uri": self.url + "jwks",
            "authorization_endpoint": self.url + "authorize",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        pages = {
            "/application/o/picluster/.well-known/openid-configuration": discovery,
            "/application/o/picluster/jwks": jwks,
        }

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (the standard library's name)
                page = pages.get(self.path)
                body = json.dumps(page).encode() if page else b"{}"
                self.send_response(200 if page else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        serving = pki.server("issuer", ips=(LOOPBACK,), dns=("localhost",))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(serving.cert, serving.key)
        self.server = http.server.ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def id_token(
        self,
        email: str,
        groups: list[str],
        audience: str = KUBECTL_CLIENT_ID,
        groups_claim: str = GROUPS_CLAIM,
    ) -> str:
        now = int(time.time())
        claims = {
            "iss": self.url,
            "aud": audience,
            "sub": email.split("@")[0],
            "email": email,
            "email_verified": True,
            groups_claim: groups,
            "iat": now,
            "nbf": now - 5,
            "exp": now + 600,
        }
        header = {"alg": "RS256", "kid": "test-key", "typ": "JWT"}
        signed = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self.key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signed}.{_b64url(signature)}"


class Api:
    def __init__(self, port: int, ca: str):
        self.port = port
        self.context = ssl.create_default_context(cafile=ca)

    def post(self, path: str, body: dict, token: str) -> tuple[int, dict]:
        conn = http.client.HTTPSConnection(LOOPBACK, self.port, context=self.context, timeout=10)
        try:
            conn.request(
                "POST",
                path,
                json.dumps(body),
                {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"{}")
        finally:
            conn.close()

    def who(self, token: str) -> tuple[int, dict]:
        status, body = self.post(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
            token,
        )
        # 401 answers a Status object, not a review.
        return status, body["status"]["userInfo"] if status == 201 else {}

    def may(self, token: str, verb: str, resource: str, namespace: str) -> bool:
        status, body = self.post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            {
                "apiVersion": "authorization.k8s.io/v1",
                "kind": "SelfSubjectAccessReview",
                "spec": {
                    "resourceAttributes": {
                        "verb": verb,
                        "resource": resource,
                        "namespace": namespace,
                    }
                },
            },
            token,
        )
        assert status == 201, body
        return body["status"]["allowed"]


@pytest.fixture(scope="module")
def oidc_api(kube_control_plane, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("oidc-apiserver")
    pki = Pki(workdir / "pki")
    issuer = Issuer(pki)
    access = load_access_settings(
        {
            "PICLUSTER_OIDC_ISSUER_URL": issuer.url,
            "PICLUSTER_OIDC_JWKS_URL": issuer.url + "jwks",
            "PICLUSTER_OIDC_CLIENT_ID": GATEWAY_CLIENT_ID,
            "PICLUSTER_OIDC_KUBECTL_CLIENT_ID": KUBECTL_CLIENT_ID,
            "PICLUSTER_OIDC_GROUPS_CLAIM": GROUPS_CLAIM,
        }
    )
    config = yaml.safe_load(desired_k3s_config(INV, INV.server, access))
    oidc_flags = [f"--{arg}" for arg in config["kube-apiserver-arg"]]
    port = free_port()
    serving = pki.server("apiserver", ips=(LOOPBACK,), dns=("localhost",))
    admin = pki.client("admin", "system:admin", ("system:masters",))
    sa = pki.service_account_keys()
    admin_kubeconfig = workdir / "admin.kubeconfig"
    admin_kubeconfig.write_text(
        kubeconfig_text(f"https://{LOOPBACK}:{port}", pki.ca_cert, admin, "system:admin")
    )
    admin_kubeconfig.chmod(0o600)
    proc = ServiceProcess(
        "kube-apiserver-oidc",
        [
            str(bin_dir() / "kube-apiserver"),
            f"--etcd-servers={kube_control_plane.etcd_url}",
            "--etcd-prefix=/piclusterops-oidc-test",  # its own cluster beside the session's
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            f"--secure-port={port}",
            f"--cert-dir={workdir / 'certs'}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={pki.ca_cert}",
            "--endpoint-reconciler-type=none",
            "--authorization-mode=RBAC",
            "--service-cluster-ip-range=10.43.0.0/16",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--profiling=false",
            "--anonymous-auth=false",
            *oidc_flags,
        ],
        workdir / "kube-apiserver.log",
        env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "SSL_CERT_FILE": str(pki.ca_cert)},
        cwd=workdir,
        stop_grace=5.0,
    ).start()
    api = Api(port, str(pki.ca_cert))
    try:
        proc.wait_ready(
            lambda: _tls_get(port, "/readyz", pki, admin) == "ok", READY_TIMEOUT, "ready"
        )
        kube = _admin(admin_kubeconfig)
        for namespace in {*roles.DEV_WORKSPACE, *roles.RESTRICTED_NAMESPACES}:
            kube.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                field_manager=FIELD_MANAGER,
            )
        for manifest in roles.kubernetes_manifests():
            kube.apply(manifest, field_manager=FIELD_MANAGER)
        # The authenticator fetches the provider's discovery in the background after start.
        probe = issuer.id_token("probe@home.example", [])
        deadline = time.monotonic() + 60
        while api.who(probe)[0] != 201:
            assert time.monotonic() < deadline, "the API server never took the issuer's tokens"
            time.sleep(0.5)
        yield api, issuer, oidc_flags
    finally:
        proc.stop()
        issuer.server.shutdown()


def _admin(kubeconfig):
    from resources.kubernetes import KubernetesResource

    return KubernetesResource(kubeconfig_path=str(kubeconfig))


@pytest.mark.service
def test_the_server_config_gives_the_api_the_providers_logins(oidc_api):
    api, issuer, flags = oidc_api
    assert f"--oidc-issuer-url={issuer.url}" in flags
    status, user = api.who(issuer.id_token("ada@home.example", ["picluster-guests"]))
    assert status == 201
    assert user["username"] == "oidc:ada@home.example"
    assert set(user["groups"]) == {"oidc:picluster-guests", "system:authenticated"}


@pytest.mark.service
@pytest.mark.parametrize(
    ("groups", "verb", "resource", "namespace", "allowed"),
    [
        (["picluster-guests"], "list", "pods", "query", True),
        (["picluster-guests"], "get", "secrets", "notebooks", False),
        (["picluster-devs"], "get", "secrets", "notebooks", True),
        (["picluster-devs"], "get", "secrets", "databases", False),
        (["picluster-admins"], "get", "secrets", "databases", True),
        # A provider group named like the API's superusers is only `oidc:system:masters`.
        (["system:masters"], "get", "secrets", "databases", False),
        (["system:masters"], "list", "pods", "query", False),
    ],
)
def test_the_roles_bind_the_groups_as_the_api_presents_them(
    oidc_api, groups, verb, resource, namespace, allowed
):
    api, issuer, _ = oidc_api
    token = issuer.id_token("someone@home.example", groups)
    assert api.may(token, verb, resource, namespace) is allowed


@pytest.mark.service
def test_groups_in_any_other_claim_give_no_role(oidc_api):
    api, issuer, _ = oidc_api
    token = issuer.id_token("ada@home.example", ["picluster-admins"], groups_claim="groups")
    status, user = api.who(token)
    assert status == 201
    assert user["groups"] == ["system:authenticated"]
    assert not api.may(token, "list", "pods", "query")


@pytest.mark.service
def test_a_token_for_kubectls_client_logs_in_and_one_only_for_the_gateways_does_not(oidc_api):
    api, issuer, flags = oidc_api
    assert f"--oidc-client-id={KUBECTL_CLIENT_ID}" in flags
    kubectl = issuer.id_token("ada@home.example", ["picluster-admins"], audience=KUBECTL_CLIENT_ID)
    assert api.who(kubectl)[0] == 201
    assert api.may(kubectl, "get", "secrets", "databases")
    # A gateway's token (its client is confidential, its secret in OpenBao) is no kubectl login.
    gateway = issuer.id_token("ada@home.example", ["picluster-admins"], audience=GATEWAY_CLIENT_ID)
    assert api.who(gateway)[0] == 401


@pytest.mark.service
def test_a_token_for_another_client_is_refused(oidc_api):
    api, issuer, _ = oidc_api
    token = issuer.id_token("ada@home.example", ["picluster-admins"], audience="another-client")
    assert api.who(token)[0] == 401
