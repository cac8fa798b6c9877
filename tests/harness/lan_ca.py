"""A certificate authority for tests, standing in for cert-manager's `lan-ca` ClusterIssuer
(no cert-manager runs here): it issues a Certificate's spec (dnsNames, key algorithm and
encoding) and writes the files cert-manager's Secret would hold, under the same keys."""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from platform_assets.releases import lan_tls


@dataclass(frozen=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.pem())
        return path

    def issue(self, certificate: dict, directory: Path, ip_addresses: tuple[str, ...] = ()) -> Path:
        """The Secret of `certificate` (a cert-manager Certificate manifest) as files in
        `directory`: tls.crt, tls.key, ca.crt and, when asked for, tls-combined.pem.
        `ip_addresses`: SANs a test dials by address (loopback), added to the spec's names."""
        spec = certificate["spec"]
        key_spec = spec["privateKey"]
        if (key_spec["algorithm"], key_spec["size"]) != ("ECDSA", 256):
            raise ValueError(f"test CA issues ECDSA P-256 only, not {key_spec}")
        key = ec.generate_private_key(ec.SECP256R1())
        names = [x509.DNSName(n) for n in spec["dnsNames"]]
        names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
        now = datetime.datetime.now(datetime.UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=True)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        # PKCS8 when the spec says so (ours do); cert-manager's default would be SEC1.
        key_format = {
            "PKCS8": serialization.PrivateFormat.PKCS8,
            "PKCS1": serialization.PrivateFormat.TraditionalOpenSSL,
        }[key_spec.get("encoding", "PKCS1")]
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, key_format, serialization.NoEncryption()
        )
        cert_pem = leaf.public_bytes(serialization.Encoding.PEM)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "tls.crt").write_bytes(cert_pem)
        (directory / "tls.key").write_bytes(key_pem)
        (directory / lan_tls.CA_KEY).write_bytes(self.pem())
        if {"type": "CombinedPEM"} in spec.get("additionalOutputFormats", []):
            # As cert-manager joins them (internal/controller/certificates/secrets.go,
            # OutputFormatCombinedPEM): the key, a newline, the chain.
            (directory / lan_tls.COMBINED_PEM_KEY).write_bytes(key_pem + b"\n" + cert_pem)
        return directory


def new_ca(common_name: str = "PiClusterOps test LAN CA") -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(key, cert)
