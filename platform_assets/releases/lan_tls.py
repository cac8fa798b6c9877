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
# The Secret keys of the PKCS#12 output (`spec.keystores.pkcs12`), for Java servers: the key
# with its chain, and the CA's certificate as a trusted entry (cert-manager v1.21.1,
# pkg/apis/certmanager/v1/types.go, PKCS12SecretKey / PKCS12TruststoreKey).
KEYSTORE_KEY = "keystore.p12"
TRUSTSTORE_KEY = "truststore.p12"
# PBES2 with AES-256-CBC and an HMAC-SHA-256 MAC, which Java 12 and newer read (NiFi runs on 21;
# tests/releases/test_nifi_tls.py opens it with keytool 17 and 25). The CRD's default,
# LegacyRC2 (40-bit RC2), it marks deprecated; Modern2026 needs Java 26 (its description).
PKCS12_PROFILE = "Modern2023"


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
    name: str,
    namespace: str,
    dns_names: list[str],
    *,
    combined_pem: bool = False,
    keystore_password: tuple[str, str] | None = None,
) -> dict:
    """A cert-manager Certificate from the LAN CA; its Secret is `secret_name(name)`.
    `combined_pem`: also the key and chain in one file, for servers that read one (Trino).
    `keystore_password`: (Secret, key) in the Certificate's namespace holding the password of
    a PKCS#12 keystore and truststore written beside the PEM files, for Java servers (NiFi)."""
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
    if keystore_password is not None:
        secret, key = keystore_password
        spec["keystores"] = {
            "pkcs12": {
                "create": True,
                "profile": PKCS12_PROFILE,
                "passwordSecretRef": {"name": secret, "key": key},
            }
        }
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


def backend_certificate(
    service: str,
    namespace: str,
    *,
    combined_pem: bool = False,
    keystore_password: tuple[str, str] | None = None,
) -> dict:
    """The certificate of a backend the gateway reaches at `https://<service>.<namespace>.svc`."""
    return certificate(
        service,
        namespace,
        service_dns_names(service, namespace),
        combined_pem=combined_pem,
        keystore_password=keystore_password,
    )


def ca_volume(volume: str, secret: str) -> dict:
    """A volume with only the LAN CA's certificate (`ca.crt`) of a cert-manager Secret: a
    directory a client can trust as a whole, with no server key beside it."""
    return {
        "name": volume,
        "secret": {"secretName": secret, "items": [{"key": CA_KEY, "path": CA_KEY}]},
    }
