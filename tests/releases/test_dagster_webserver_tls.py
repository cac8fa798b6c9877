"""Both Dagster webservers serve HTTPS from the LAN CA, proven on the real dagster-webserver:
started as the chart starts it (`/bin/bash -c "<its command>"`, the command rendered from our
values, `--read-only` for the second one) with our image's entry first on PATH, the release's
environment and a certificate issued (by a test CA standing in for cert-manager's `lan-ca`)
from the release's own Certificate spec, in the layout the kubelet writes a Secret volume.

Changed from the pod only where a test has no cluster: `-h 127.0.0.1` for `0.0.0.0`, a free
port for 443, a workspace of one small code location for the chart's, the mount paths moved
to temporary directories, the certificate also naming 127.0.0.1 (the tests dial loopback; the
gateway dials the Service's name). The step from our values to the command is the chart's
template as read (dagster-io/dagster helm/dagster/templates/helpers/_helpers.tpl @a07d616,
`dagster.webserver.dagsterWebserverCommand`; `_deployment-webserver.tpl` @068394f runs it
under `/bin/bash -c`), written out in `chart_command`.
"""

import importlib.machinery
import importlib.util
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from platform_assets.handover import assets as handover
from platform_assets.handover import status
from platform_assets.inventory import parse_inventory
from platform_assets.releases import catalogue, gateway, lan_tls
from platform_assets.releases import dagster as release
from tests.harness.gateway import secret_volume, start_gateway
from tests.harness.lan_ca import new_ca
from tests.harness.procs import LOOPBACK, ServiceProcess, free_port

pytestmark = pytest.mark.service

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "deploy" / "image" / "bin" / "dagster-webserver"
BIN = Path(sys.executable).parent
INV = parse_inventory(yaml.safe_load((ROOT / "inventory.example.yaml").read_text()), "inv.yaml")
WORKSPACE_IN_POD = "/dagster-workspace/workspace.yaml"  # the chart's workspace ConfigMap mount


def _values() -> dict:
    (chart,) = [c for c in catalogue.dagster(INV).charts if c.name == release.HELM_RELEASE]
    return chart.values


def chart_command(values: dict, read_only: bool) -> str:
    """The webserver container's command as the chart renders it from `values`."""
    web = values["dagsterWebserver"]
    # The template's optional flags: none is set by the release, so none is written out here.
    assert not {"dbStatementTimeout", "dbPoolRecycle", "pathPrefix", "logLevel"} & set(web)
    command = f"dagster-webserver -h 0.0.0.0 -p {web['service']['port']}"
    if values["dagster-user-deployments"]["enabled"]:
        command += f" -w {WORKSPACE_IN_POD}"
    return command + (" --read-only" if read_only else "")


def _entry_module():
    loader = importlib.machinery.SourceFileLoader("dagster_webserver_entry", str(ENTRY))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lan_ca():
    return new_ca()


@pytest.fixture(scope="module")
def webservers(lan_ca, tmp_path_factory, service_registry):
    """{"admin": port, "read-only": port}, the certificate's directory (a Secret volume)."""
    root = tmp_path_factory.mktemp("dagster-webservers")
    issued = lan_ca.issue(release.WEBSERVER_CERTIFICATE, root / "issued", (LOOPBACK,))
    tls_dir = secret_volume(
        root / "webserver-tls",
        {name: (issued / name).read_bytes() for name in ("tls.crt", "tls.key", lan_tls.CA_KEY)},
    )
    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (root / "defs.py").write_text(
        "import dagster as dg\n\n\n@dg.asset\ndef tls_probe():\n    return 1\n\n\n"
        "defs = dg.Definitions(assets=[tls_probe])\n"
    )
    workspace = root / "workspace.yaml"
    workspace.write_text(yaml.safe_dump({"load_from": [{"python_file": str(root / "defs.py")}]}))
    values = _values()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICLUSTER_", "DAGSTER_"))}
    # As the pod: our entry's directory first on PATH (the image's ENV PATH), then the venv's.
    env["PATH"] = f"{ENTRY.parent}:{BIN}:/usr/bin:/bin"
    env["DAGSTER_HOME"] = str(home)
    for var in values["dagsterWebserver"]["env"]:
        env[var["name"]] = var["value"]
    (mount,) = values["dagsterWebserver"]["volumeMounts"]
    assert env[release.WEBSERVER_TLS_VARIABLE] == mount["mountPath"]
    env[release.WEBSERVER_TLS_VARIABLE] = str(tls_dir)
    ca = tls_dir / lan_tls.CA_KEY

    def starter(name: str, read_only: bool):
        def start(workdir: Path, log_dir: Path):
            port = free_port()
            command = (
                chart_command(values, read_only)
                .replace("-h 0.0.0.0", f"-h {LOOPBACK}")
                .replace(f"-p {release.WEBSERVER_PORT}", f"-p {port}")
                .replace(WORKSPACE_IN_POD, str(workspace))
            )
            proc = ServiceProcess(
                name, ["/bin/bash", "-c", command], log_dir / f"{name}.log", env=env, cwd=workdir
            ).start()
            proc.wait_ready(lambda: _server_info(port, ca).ok, 180, "serving HTTPS")
            return port, proc

        return start

    names = {"admin": "dagster-webserver-tls", "read-only": "dagster-webserver-tls-read-only"}
    ports = {
        role: service_registry.start(names[role], starter(names[role], role == "read-only"))
        for role in names
    }
    yield ports, tls_dir
    for name in names.values():
        service_registry.stop(name)


def _server_info(port: int, ca: Path) -> requests.Response:
    return requests.get(f"https://{LOOPBACK}:{port}/server_info", verify=str(ca), timeout=10)


@pytest.fixture(autouse=True)
def _requests_verify_only_what_it_is_given(monkeypatch):
    # requests lets these override a session's own `verify` (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)


# --- the rendered release -----------------------------------------------------------------------


def test_both_webservers_mount_one_lan_ca_certificate_naming_both_services_and_probe_https():
    cert = release.WEBSERVER_CERTIFICATE
    assert cert["metadata"]["namespace"] == release.NAMESPACE
    assert cert["spec"]["issuerRef"] == lan_tls.ISSUER
    # The names the gateway dials, and the handover verifies through a port-forward.
    for upstream in (gateway.DAGSTER, gateway.DAGSTER_READ_ONLY):
        assert upstream.startswith("https://")
        assert upstream.removeprefix("https://").split(":")[0] in cert["spec"]["dnsNames"]
    assert handover.SERVER_NAME in cert["spec"]["dnsNames"]
    web = _values()["dagsterWebserver"]
    (volume,) = web["volumes"]
    assert volume["secret"] == {
        "secretName": cert["spec"]["secretName"],
        "defaultMode": release.SECRET_FILE_MODE,
    }
    assert web["service"]["port"] == release.WEBSERVER_PORT == 443
    assert web["readinessProbe"]["httpGet"] == {
        "path": "/server_info",
        "port": release.WEBSERVER_PORT,
        "scheme": "HTTPS",
    }
    # The certificate's chart comes before the chart whose pods mount its Secret.
    names = [c.name for c in catalogue.dagster(INV).charts]
    assert names == ["dagster-rbac", "dagster-tls", release.HELM_RELEASE]


def test_run_pods_trust_the_lan_ca_and_never_get_the_webservers_key():
    launcher = _values()["runLauncher"]["config"]["k8sRunLauncher"]
    (ca,) = [v for v in launcher["volumes"] if v["name"] == "lan-ca"]
    assert ca["secret"] == {
        "secretName": release.WEBSERVER_TLS_SECRET,
        "items": [{"key": lan_tls.CA_KEY, "path": lan_tls.CA_KEY}],
        # Until cert-manager has issued it, runs start all the same (the hand-over says why
        # it cannot verify).
        "optional": True,
    }
    (mount,) = [m for m in launcher["volumeMounts"] if m["name"] == "lan-ca"]
    assert f"{mount['mountPath']}/{lan_tls.CA_KEY}" == release.LAN_CA_FILE


# --- the real webservers --------------------------------------------------------------------------


def test_both_answer_over_https_with_the_releases_certificate_and_dagsters_own_flags(
    webservers, lan_ca
):
    ports, tls_dir = webservers
    for port in ports.values():
        answer = _server_info(port, tls_dir / lan_tls.CA_KEY)
        assert answer.json()["dagster_webserver_version"] == release.DAGSTER_VERSION
        context = ssl.create_default_context(cafile=str(tls_dir / lan_tls.CA_KEY))
        with context.wrap_socket(
            socket.create_connection((LOOPBACK, port), timeout=10),
            server_hostname=handover.SERVER_NAME,
        ) as tls:
            sans = {v for k, v in tls.getpeercert()["subjectAltName"] if k == "DNS"}
        assert sans == set(release.WEBSERVER_CERTIFICATE["spec"]["dnsNames"])
    # `--read-only` reached Dagster unchanged: only the admin webserver may launch runs.
    launch = {}
    for name, port in ports.items():
        body = requests.post(
            f"https://{LOOPBACK}:{port}/graphql",
            json={"query": "{ permissions { permission value } }"},
            verify=str(tls_dir / lan_tls.CA_KEY),
            timeout=30,
        ).json()
        perms = {p["permission"]: p["value"] for p in body["data"]["permissions"]}
        launch[name] = perms["launch_pipeline_execution"]
    assert launch == {"admin": True, "read-only": False}


def test_plain_http_gets_no_answer(webservers):
    ports, _ = webservers
    for port in ports.values():
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(f"http://{LOOPBACK}:{port}/server_info", timeout=10)


def test_a_client_trusting_another_ca_refuses_them(webservers, tmp_path):
    ports, _ = webservers
    other = new_ca("some other CA").write_ca(tmp_path / "other-ca.crt")
    for port in ports.values():
        with pytest.raises(requests.exceptions.SSLError, match="CERTIFICATE_VERIFY_FAILED"):
            _server_info(port, other)


# --- the gateway's hop: the real oauth2-proxy with the rendered `ops` and `dash` configuration


def _through(port: int, own: Path) -> requests.Response:
    return requests.get(
        f"https://{LOOPBACK}:{port}/server_info", verify=str(own / lan_tls.CA_KEY), timeout=20
    )


def _through_a_gateway(tmp_path, lan_ca, trusted_pem, name, upstreams, log_dir):
    """One request through gateway `name` trusting `trusted_pem` for its upstreams, the gateway
    stopped after it: the answer, and the stopped gateway (for its log)."""
    proc, port, own = start_gateway(tmp_path, lan_ca, trusted_pem, name, INV, upstreams, log_dir)
    try:
        return _through(port, own), proc
    finally:
        proc.stop()


# Each webserver and the gateway in front of it: the admin one behind `ops`, the read-only one
# behind `dash`.
GATEWAYS_OF_EACH_WEBSERVER = pytest.mark.parametrize(
    ("name", "upstream", "webserver"),
    [("ops", gateway.DAGSTER, "admin"), ("dash", gateway.DAGSTER_READ_ONLY, "read-only")],
)


@GATEWAYS_OF_EACH_WEBSERVER
def test_the_gateway_reaches_its_webserver_verifying_the_lan_ca(
    webservers, lan_ca, tmp_path, service_registry, name, upstream, webserver
):
    ports, _ = webservers
    log_dir = service_registry.log_dir / f"gateway-{name}-dagster"
    answer, _ = _through_a_gateway(
        tmp_path, lan_ca, lan_ca.pem(), name, {upstream: ports[webserver]}, log_dir
    )
    assert answer.status_code == 200, answer.text[:300]
    assert answer.json()["dagster_webserver_version"] == release.DAGSTER_VERSION


@GATEWAYS_OF_EACH_WEBSERVER
def test_a_gateway_trusting_another_ca_refuses_the_webserver(
    webservers, lan_ca, tmp_path, service_registry, name, upstream, webserver
):
    ports, _ = webservers
    other = new_ca("some other CA").pem()
    log_dir = service_registry.log_dir / f"gateway-{name}-dagster-untrusted"
    answer, proc = _through_a_gateway(
        tmp_path, lan_ca, other, name, {upstream: ports[webserver]}, log_dir
    )
    assert answer.status_code == 502
    assert "certificate signed by unknown authority" in proc.log_path.read_text()


# --- the handover's client, as through a port-forward (127.0.0.1, the Service's name) -----------


def test_the_handover_client_asks_over_https_verifying_the_service_name(webservers, tmp_path):
    ports, tls_dir = webservers
    url = f"https://{LOOPBACK}:{ports['admin']}"
    lan_ca = status.lan_ca_context(str(tls_dir / lan_tls.CA_KEY))
    data = status.ask(url, 30, lan_ca, handover.SERVER_NAME)
    (entry,) = data["workspaceOrError"]["locationEntries"]
    assert entry["loadStatus"] == "LOADED"
    # The certificate is from the LAN CA but names no other Service: refused.
    with pytest.raises(status.DagsterUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        status.ask(url, 30, lan_ca, "grafana.monitoring.svc")
    other = new_ca("some other CA").write_ca(tmp_path / "other-ca.crt")
    with pytest.raises(status.DagsterUnreachable, match="CERTIFICATE_VERIFY_FAILED"):
        status.ask(url, 30, status.lan_ca_context(str(other)), handover.SERVER_NAME)
    with pytest.raises(status.DagsterUnreachable, match="serves HTTPS only"):
        status.ask(url.replace("https://", "http://"), 30, lan_ca, handover.SERVER_NAME)
    with pytest.raises(status.LanCaUnreadable, match="missing.crt"):
        status.lan_ca_context(str(tmp_path / "missing.crt"))


# --- the entry itself -----------------------------------------------------------------------------


def test_a_configured_but_missing_certificate_stops_the_webserver_naming_it(tmp_path):
    env = dict(os.environ, PATH=f"{BIN}:/usr/bin:/bin")
    env[release.WEBSERVER_TLS_VARIABLE] = str(tmp_path)
    done = subprocess.run(
        [str(ENTRY), "-h", LOOPBACK, "-p", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"{release.WEBSERVER_TLS_VARIABLE}={tmp_path}" in done.stderr
    assert str(tmp_path / "tls.crt") in done.stderr


def _served_serial(context: ssl.SSLContext, ca: Path, name: str | None = None) -> int:
    """The serial of the certificate `context` presents to a new connection from a client that
    asks for `name` (SNI), or, with None, sends no name at all: one dialing an address, such as
    the kubelet's probe of the pod's IP."""
    with socket.create_server((LOOPBACK, 0)) as listener:
        port = listener.getsockname()[1]

        def accept_once():
            conn, _ = listener.accept()
            try:
                with context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client hung up once it had the certificate

        server = threading.Thread(target=accept_once)
        server.start()
        client = ssl.create_default_context(cafile=str(ca))
        client.check_hostname = name is not None  # the chain is verified either way
        with client.wrap_socket(
            socket.create_connection((LOOPBACK, port), timeout=10), server_hostname=name
        ) as tls:
            der = tls.getpeercert(binary_form=True)
        server.join(10)
    from cryptography import x509

    return x509.load_der_x509_certificate(der).serial_number


def test_a_renewed_certificate_is_served_without_a_restart(lan_ca, tmp_path):
    # The kubelet's swap of a Secret volume: a new timestamped directory, `..data` relinked.
    entry = _entry_module()
    first = lan_ca.issue(release.WEBSERVER_CERTIFICATE, tmp_path / "first")
    renewed = lan_ca.issue(release.WEBSERVER_CERTIFICATE, tmp_path / "renewed")
    files = ("tls.crt", "tls.key")
    mount = secret_volume(tmp_path / "mount", {f: (first / f).read_bytes() for f in files})
    cert, key = mount / "tls.crt", mount / "tls.key"
    loaded = entry._stamp(cert, key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    ca = first / lan_tls.CA_KEY

    def serial(directory: Path) -> int:
        from cryptography import x509

        return x509.load_pem_x509_certificate((directory / "tls.crt").read_bytes()).serial_number

    assert _served_serial(context, ca, handover.SERVER_NAME) == serial(first)
    threading.Thread(
        target=entry.reload_when_renewed, args=(context, cert, key, loaded, 0.1), daemon=True
    ).start()
    time.sleep(0.3)
    swapped = mount / "..2026_12_02_00_00_00.000000001"
    swapped.mkdir()
    for f in files:
        (swapped / f).write_bytes((renewed / f).read_bytes())
    (mount / "..data_tmp").symlink_to(swapped.name)
    os.replace(mount / "..data_tmp", mount / "..data")
    deadline = time.monotonic() + 10
    while _served_serial(context, ca, handover.SERVER_NAME) != serial(renewed):
        assert time.monotonic() < deadline, "the renewed certificate was never served"
        time.sleep(0.2)
    # The handshake's server-name callback runs for a client that names no server too
    # (OpenSSL calls it for every ClientHello), so it gets the renewed certificate as well.
    assert _served_serial(context, ca, None) == serial(renewed)


def test_the_charts_command_finds_our_entry_and_it_takes_dagsters_own_arguments():
    env = {k: v for k, v in os.environ.items() if k != release.WEBSERVER_TLS_VARIABLE}
    env["PATH"] = f"{ENTRY.parent}:{BIN}:/usr/bin:/bin"
    found = subprocess.run(
        ["/bin/bash", "-c", "command -v dagster-webserver"], env=env, capture_output=True, text=True
    )
    assert found.stdout.strip() == str(ENTRY)
    done = subprocess.run(
        ["/bin/bash", "-c", "dagster-webserver --version"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"dagster-webserver, version {release.DAGSTER_VERSION}"
