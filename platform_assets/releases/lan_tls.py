"""Certificates from the LAN CA (catalogue.cert_manager's `lan-ca` ClusterIssuer) for the
platform's own HTTPS servers: the gateways' LAN side and every backend behind them.

A backend's certificate lives in its own namespace and names its Service (`svc`, `svc.ns`,
`svc.ns.svc`, `svc.ns.svc.cluster.local`), so a client verifies it by the name it dials. The
Secret cert-manager writes holds `tls.crt`, `tls.key` and `ca.crt`, the LAN CA's certificate:
a client trusts the CA from that key of a Secret in its own namespace, no copy needed.
"""

ISSUER = {"name": "lan-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
CLUSTER_DOMAIN = "cluster.local"  # K3s's default
# Ninety days, renewed fifteen before: a pod that mounts the Secret sees the new files.
DURATION = "2160h"
RENEW_BEFORE = "360h"
# PKCS#8, not cert-manager's default PKCS#1/SEC1: every server here reads it (Go, Python's
# ssl, Trino's PEM keystore), and tests/releases/test_backend_tls.py proves it for Trino.
PRIVATE_KEY = {"algorithm": "ECDSA", "size": 256, "encoding": "PKCS8"}
# The Secret key cert-manager writes for the CombinedPEM output: the key, then the chain.
COMBINED_PEM_KEY = "tls-combined.pem"
CA_KEY = "ca.crt"


def secret_name(name: str) -> str:
    return f"{name}-tls"


def service_dns_names(service: str, namespace: str) -> list[str]:
    return [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.{CLUSTER_DOMAIN}",
    ]


def certificate(
    name: str, namespace: str, dns_names: list[str], *, combined_pem: bool = False
) -> dict:
    """A cert-manager Certificate from the LAN CA; its Secret is `secret_name(name)`.
    `combined_pem`: also the key and chain in one file, for servers that read one (Trino)."""
    spec: dict = {
        "secretName": secret_name(name),
        "dnsNames": list(dns_names),
        "duration": DURATION,
        "renewBefore": RENEW_BEFORE,
        "privateKey": dict(PRIVATE_KEY),
        "issuerRef": dict(ISSUER),
    }
    if combined_pem:
        spec["additionalOutputFormats"] = [{"type": "CombinedPEM"}]
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def backend_certificate(service: str, namespace: str, *, combined_pem: bool = False) -> dict:
    """The certificate of a backend the gateway reaches at `https://<service>.<namespace>.svc`."""
    return certificate(
        service, namespace, service_dns_names(service, namespace), combined_pem=combined_pem
    )


def ca_volume(volume: str, secret: str) -> dict:
    """A volume with only the LAN CA's certificate (`ca.crt`) of a cert-manager Secret: a
    directory a client can trust as a whole, with no server key beside it."""
    return {
        "name": volume,
        "secret": {"secretName": secret, "items": [{"key": CA_KEY, "path": CA_KEY}]},
    }
