"""Where people sign in: the OIDC provider of the user's choice and the gateway's domain, from
`PICLUSTER_OIDC_*` and `PICLUSTER_GATEWAY_DOMAIN`, read with the platform's own variable reader
so a wrong value stops the load with a message naming the variable. The gateways, OpenBao,
Grafana (the ID token the dash gateway passes) and the Kubernetes API (the K3s server's
`kube-apiserver-arg`) all trust this one provider.

Only names and addresses live here. The provider's client secret is never a setting of this
process: a person stores it in OpenBao (the gateway's) and in the `openbao-oidc` Secret
(OpenBao's own login), see docs/roles/admin.md.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from resources.settings import PREFIX, SettingsError, _Reader

# Example values for planning: the local profile renders the releases with them.
DEFAULT_ISSUER = "https://sso.picluster.lan/realms/picluster"
DEFAULT_CLIENT_ID = "piclusterops"
DEFAULT_DOMAIN = "picluster.lan"
# The example issuer's key set, where Keycloak publishes it (a provider's discovery document
# names it `jwks_uri`; Grafana reads no discovery document, so it is a setting of its own).
DEFAULT_JWKS_URL = DEFAULT_ISSUER + "/protocol/openid-connect/certs"
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")
_CLAIM = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,99}")
DEFAULT_USERNAME_CLAIM = "email"
# The claim the provider lists a person's groups in, and the scope that asks for it: the
# gateways, OpenBao's logins, Grafana's role mapping and the Kubernetes API all read this one.
DEFAULT_GROUPS_CLAIM = "groups"
# A top-level claim's plain name, which every one of them reads as the same claim: no "."
# (oauth2-proxy reads `a.b` as the path into nested claims, the API server as a literal name)
# and no "/" (OpenBao reads a leading one as a JSON pointer).
_GROUPS_CLAIM = re.compile(r"[A-Za-z_][A-Za-z0-9_:-]{0,99}")
# An OAuth scope-token (RFC 6749 §3.3): printable ASCII but space, `"` and `\`.
_SCOPE = re.compile(r"[!#-\[\]-~]{1,100}")
# What the Kubernetes API puts before a provider's user and group names. Without it a group
# named `system:masters` at the provider would be the API's own superuser group.
KUBE_API_PREFIX = "oidc:"


@dataclass(frozen=True)
class AccessSettings:
    issuer_url: str  # OIDC issuer, exactly as the provider writes it (its `iss`)
    client_id: str
    domain: str  # the gateways are <gateway>.<domain> on the LAN's DNS
    # False when PICLUSTER_OIDC_ISSUER_URL is unset and the example issuer stands in: the
    # releases render with it for planning, but the K3s server is not pointed at it.
    provider_chosen: bool = True
    username_claim: str = DEFAULT_USERNAME_CLAIM  # the ID token claim the API's username is
    # kubectl's own client (public: PKCE, no secret), the audience the Kubernetes API requires
    # of a token; "" means the gateways' client_id.
    kubectl_client_id: str = ""
    groups_claim: str = DEFAULT_GROUPS_CLAIM  # the ID token claim listing the person's groups
    groups_scope: str = DEFAULT_GROUPS_CLAIM  # the scope every login asks for, to get it
    # The provider's signing keys (its discovery document's `jwks_uri`): Grafana verifies the
    # ID token the dash gateway passes it against them.
    jwks_url: str = DEFAULT_JWKS_URL
    # Whether logins that renew their tokens ask for `offline_access`: Dex, authentik, Auth0 and
    # Okta issue a refresh token only for that scope (Keycloak issues one without it).
    offline_access: bool = False

    def __post_init__(self):
        if not self.kubectl_client_id:
            object.__setattr__(self, "kubectl_client_id", self.client_id)

    def host(self, gateway: str) -> str:
        return f"{gateway}.{self.domain}"


def load_access_settings(environ: Mapping[str, str] | None = None) -> AccessSettings:
    read = _Reader(os.environ if environ is None else environ)
    # Kept exactly as given: the gateway, OpenBao and the API server each require the ID
    # token's `iss` to equal it, and some providers' issuers end in "/" (authentik's do).
    issuer = read.matching(
        "OIDC_ISSUER_URL",
        _URL,
        default=DEFAULT_ISSUER,
        expected="the provider's https issuer URL, e.g. https://sso.example.lan/realms/picluster "
        "(no query, no spaces)",
    )
    client_id = read.matching(
        "OIDC_CLIENT_ID",
        _CLIENT_ID,
        default=DEFAULT_CLIENT_ID,
        expected="the client id the provider issued (letters, digits, . _ : -)",
    )
    # The gateways' client is confidential (its secret is in OpenBao); kubectl on a laptop
    # cannot keep a secret, so it gets a public client of its own. Unset, the gateways' id
    # stands in (as before the setting existed); set but empty is a mistake, not "unset".
    if read.blank("OIDC_KUBECTL_CLIENT_ID"):
        raise SettingsError(
            f"{PREFIX}OIDC_KUBECTL_CLIENT_ID is set but empty; expected the client id of "
            f"kubectl's public (PKCE) client at the provider, or unset it to use "
            f"{PREFIX}OIDC_CLIENT_ID's."
        )
    kubectl_client_id = read.matching(
        "OIDC_KUBECTL_CLIENT_ID",
        _CLIENT_ID,
        default=client_id,
        expected="the client id of kubectl's public (PKCE) client (letters, digits, . _ : -)",
    )
    domain = read.text("GATEWAY_DOMAIN", DEFAULT_DOMAIN).lower()
    if not _DOMAIN.fullmatch(domain):
        raise SettingsError(
            f"{PREFIX}GATEWAY_DOMAIN={domain!r} is not valid; expected a DNS domain such as "
            "picluster.lan (the gateways become ops.<domain>, lab.<domain>, dash.<domain>)."
        )
    username_claim = read.matching(
        "OIDC_USERNAME_CLAIM",
        _CLAIM,
        default=DEFAULT_USERNAME_CLAIM,
        expected="the name of an ID token claim (e.g. email, preferred_username, sub)",
    )
    groups_claim = read.matching(
        "OIDC_GROUPS_CLAIM",
        _GROUPS_CLAIM,
        default=DEFAULT_GROUPS_CLAIM,
        expected="the name of the top-level ID token claim listing a person's groups, e.g. "
        "groups or cognito:groups (letters, digits, _ : -; no '.' or '/', which the gateway "
        "and OpenBao would read as a path into nested claims)",
    )
    # Most providers name the scope after the claim (Dex, Keycloak's usual client scope,
    # authentik, Authelia); others give the claim under another scope, or under `profile`.
    groups_scope = read.matching(
        "OIDC_GROUPS_SCOPE",
        _SCOPE,
        default=groups_claim,
        expected="one OAuth scope, e.g. groups or profile (no spaces or quotes)",
    )
    # No default once a provider is chosen: the example's keys would verify no token of it, and
    # every Grafana login would fail with nothing naming the cause.
    provider_chosen = read.raw("OIDC_ISSUER_URL") is not None
    jwks_url = read.matching(
        "OIDC_JWKS_URL",
        _URL,
        default=None if provider_chosen else DEFAULT_JWKS_URL,
        expected="the https URL of the provider's signing keys, the `jwks_uri` of its "
        "/.well-known/openid-configuration (Grafana verifies the ID token with them)",
    )
    offline_access = read.flag("OIDC_OFFLINE_ACCESS", False)
    return AccessSettings(
        issuer,
        client_id,
        domain,
        provider_chosen=provider_chosen,
        username_claim=username_claim,
        kubectl_client_id=kubectl_client_id,
        groups_claim=groups_claim,
        groups_scope=groups_scope,
        jwks_url=jwks_url,
        offline_access=offline_access,
    )
