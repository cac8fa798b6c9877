"""Where people sign in: the OIDC provider of the user's choice and the gateway's domain, from
`PICLUSTER_OIDC_*` and `PICLUSTER_GATEWAY_DOMAIN`, read with the platform's own variable reader
so a wrong value stops the load with a message naming the variable.

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
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,200}")


@dataclass(frozen=True)
class AccessSettings:
    issuer_url: str  # OIDC issuer (discovery at <issuer>/.well-known/openid-configuration)
    client_id: str
    domain: str  # the gateways are <gateway>.<domain> on the LAN's DNS

    def host(self, gateway: str) -> str:
        return f"{gateway}.{self.domain}"


def load_access_settings(environ: Mapping[str, str] | None = None) -> AccessSettings:
    read = _Reader(os.environ if environ is None else environ)
    issuer = read.text("OIDC_ISSUER_URL", DEFAULT_ISSUER).rstrip("/")
    if not _URL.fullmatch(issuer):
        raise SettingsError(
            f"{PREFIX}OIDC_ISSUER_URL={issuer!r} is not valid; expected the provider's https "
            "issuer URL, e.g. https://sso.example.lan/realms/picluster (no query, no spaces)."
        )
    client_id = read.text("OIDC_CLIENT_ID", DEFAULT_CLIENT_ID)
    if not _CLIENT_ID.fullmatch(client_id):
        raise SettingsError(
            f"{PREFIX}OIDC_CLIENT_ID={client_id!r} is not valid; expected the client id the "
            "provider issued (letters, digits, . _ : -)."
        )
    domain = read.text("GATEWAY_DOMAIN", DEFAULT_DOMAIN).lower()
    if not _DOMAIN.fullmatch(domain):
        raise SettingsError(
            f"{PREFIX}GATEWAY_DOMAIN={domain!r} is not valid; expected a DNS domain such as "
            "picluster.lan (the gateways become ops.<domain>, lab.<domain>, dash.<domain>)."
        )
    return AccessSettings(issuer, client_id, domain)
