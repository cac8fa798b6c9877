"""The hops behind the gateway are HTTPS from the LAN CA, proven on a real server where one
runs here: Trino 476 started with the HTTPS properties the `trino` release renders, serving a
certificate issued (by a test CA standing in for cert-manager's `lan-ca`) from the release's
own Certificate spec and in the Secret layout cert-manager writes; the trino client, as the
gateway would, verifies it against that CA only.

What stops short: the chart's templates are not rendered here (DESIGN.md), so the step from
`server.config.https` to config.properties is the chart's template as read
(trinodb/charts, templates/configmap-coordinator.yaml), written out in `_chart_properties`.
"""

import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import requests
import trino
import yaml

from platform_assets.inventory import parse_inventory
from platform_assets.releases import catalogue, gateway, lan_tls
from tests.harness.gateway import start_gateway
from tests.harness.lan_ca import new_ca
from tests.harness.procs import LOOPBACK, free_port
from tests.harness.trino import start_trino

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
INV = parse_inventory(yaml.safe_load((ROOT / "inventory.example.yaml").read_text()), "inv.yaml")


def _trino_values() -> dict:
    (chart,) = [c for c in catalogue.trino(INV).charts if c.name == "trino"]
    return chart.values


def _chart_properties(values: dict) -> dict[str, str]:
    """config.properties lines the chart renders for the coordinator from our values."""
    https = values["server"]["config"]["https"]
    assert https["enabled"] is True
    props = {
        "http-server.https.enabled": "true",
        "http-server.https.port": str(https["port"]),
        "http-server.https.keystore.path": https["keystore"]["path"],
    }
    for line in values["additionalConfigProperties"]:
        key, _, value = line.partition("=")
        props[key] = value
    return props


@pytest.fixture(scope="module")
def lan_ca():
    return new_ca()


@pytest.fixture(scope="module")
def trino_https(service_registry, s3, lan_ca, tmp_path_factory):
    """A second Trino whose coordinator config carries the release's HTTPS properties, the
    keystore path moved from the Secret's mount to a directory holding the same files."""
    values = _trino_values()
    props = _chart_properties(values)
    (mount,) = values["coordinator"]["secretMounts"]
    secret_dir = lan_ca.issue(
        catalogue.TRINO_CERTIFICATE,
        tmp_path_factory.mktemp("trino-tls"),
        ip_addresses=(LOOPBACK,),  # the test dials loopback; the gateway dials the DNS name
    )
    keystore = props["http-server.https.keystore.path"]
    assert keystore.startswith(mount["path"] + "/"), (keystore, mount)
    props["http-server.https.keystore.path"] = str(secret_dir / keystore.split("/")[-1])
    port = free_port()
    props["http-server.https.port"] = str(port)
    service = service_registry.start(
        "trino-https",
        lambda workdir, log_dir: start_trino(
            workdir, log_dir / "trino-https", s3, bucket="warehouse-tls", extra_config=props
        ),
    )
    yield service, port, secret_dir
    service_registry.stop("trino-https")


def test_the_release_renders_https_with_a_lan_ca_certificate_for_the_gateways_name():
    cert = catalogue.TRINO_CERTIFICATE
    assert cert["metadata"]["namespace"] == "query"
    assert cert["spec"]["issuerRef"] == {
        "name": "lan-ca",
        "kind": "ClusterIssuer",
        "group": "cert-manager.io",
    }
    assert "trino.query.svc" in cert["spec"]["dnsNames"]
    assert cert["spec"]["additionalOutputFormats"] == [{"type": "CombinedPEM"}]
    values = _trino_values()
    (mount,) = values["coordinator"]["secretMounts"]
    assert mount["secretName"] == cert["spec"]["secretName"]
    assert values["coordinator"]["additionalExposedPorts"]["https"]["servicePort"] == 8443
    release = catalogue.trino(INV)
    assert [c.name for c in release.charts] == ["trino-tls", "trino"]


def test_trino_serves_https_with_the_certificate_and_a_client_verifying_the_ca_queries(
    trino_https, monkeypatch
):
    # requests lets these override a session's own `verify` (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    _, port, secret_dir = trino_https
    conn = trino.dbapi.connect(
        host=LOOPBACK,
        port=port,
        user="gateway-test",
        http_scheme="https",
        verify=str(secret_dir / lan_tls.CA_KEY),
    )
    try:
        cur = conn.cursor()
        cur.execute("SELECT 1")
        assert cur.fetchall() == [[1]]
    finally:
        conn.close()
    # The certificate served is the one issued from the release's Certificate spec.
    context = ssl.create_default_context(cafile=str(secret_dir / lan_tls.CA_KEY))
    with context.wrap_socket(
        socket.create_connection((LOOPBACK, port), timeout=10), server_hostname=LOOPBACK
    ) as tls:
        sans = {v for k, v in tls.getpeercert()["subjectAltName"] if k == "DNS"}
    assert sans == set(catalogue.TRINO_CERTIFICATE["spec"]["dnsNames"])


def test_a_client_trusting_another_ca_refuses_the_connection(trino_https, tmp_path):
    _, port, _ = trino_https
    other = new_ca("some other CA").write_ca(tmp_path / "other-ca.crt")
    with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
        requests.get(f"https://{LOOPBACK}:{port}/v1/info", verify=str(other), timeout=10)


def test_the_web_ui_answers_a_request_forwarded_as_the_gateway_forwards_it(trino_https, trino):
    _, port, secret_dir = trino_https
    forwarded = {
        "X-Forwarded-For": "192.168.1.50",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "lab.example.lan",
    }
    answer = requests.get(
        f"https://{LOOPBACK}:{port}/ui/",
        headers=forwarded,
        verify=str(secret_dir / lan_tls.CA_KEY),
        timeout=10,
        allow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["Location"] == "https://lab.example.lan/ui/login.html"
    # Without `http-server.process-forwarded` (the session's Trino) the same request is refused.
    request = urllib.request.Request(f"{trino.url}/ui/", headers=forwarded)  # noqa: S310
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)  # noqa: S310
    assert refused.value.code == 406


# --- the gateway's hop: a real oauth2-proxy of the release's version in front of that Trino ----


def _through_gateway(port: int, own: Path) -> requests.Response:
    return requests.get(
        f"https://{LOOPBACK}:{port}/ui/",
        verify=str(own / lan_tls.CA_KEY),
        timeout=20,
        allow_redirects=False,
    )


def test_the_gateway_reaches_trinos_ui_over_https_verifying_the_lan_ca(
    trino_https, lan_ca, tmp_path, service_registry
):
    _, port, _ = trino_https
    proc, gateway_port, own = start_gateway(
        tmp_path,
        lan_ca,
        lan_ca.pem(),
        "lab",
        INV,
        {gateway.TRINO_UI: port},
        service_registry.log_dir / "gateway-trusted",
    )
    try:
        answer = _through_gateway(gateway_port, own)
    finally:
        proc.stop()
    # Trino's own answer (its UI's login page), addressed to the gateway: it took the host and
    # scheme from the headers the gateway forwarded.
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["Location"] == f"https://{LOOPBACK}:{gateway_port}/ui/login.html"


def test_a_gateway_trusting_another_ca_refuses_the_upstream(
    trino_https, lan_ca, tmp_path, service_registry
):
    _, port, _ = trino_https
    other = new_ca("some other CA").pem()
    proc, gateway_port, own = start_gateway(
        tmp_path,
        lan_ca,
        other,
        "lab",
        INV,
        {gateway.TRINO_UI: port},
        service_registry.log_dir / "gateway-untrusted",
    )
    try:
        answer = _through_gateway(gateway_port, own)
    finally:
        proc.stop()
    assert answer.status_code == 502
    assert "certificate signed by unknown authority" in proc.log_path.read_text()
