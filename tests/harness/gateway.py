"""A real oauth2-proxy of the `gateway` release's version (tests.harness.oauth2_proxy_dist) run
with one gateway's configuration file as rendered, its environment and its CA directory as the
chart values give them, changed only where a test has no cluster: its upstreams dialled on
loopback, no identity provider (discovery skipped, the upstreams' routes let through
unauthenticated), its own certificate from the test CA."""

import os
import socket
import tomllib
from pathlib import Path

from platform_assets.releases import gateway, lan_tls
from platform_assets.releases.access_settings import load_access_settings
from tests.harness import oauth2_proxy_dist
from tests.harness.procs import LOOPBACK, ServiceProcess, free_port

COOKIE_SECRET = "0123456789abcdef0123456789abcdef"  # noqa: S105 (a test value)


def secret_volume(directory: Path, files: dict[str, bytes]) -> Path:
    """`directory` laid out as the kubelet writes a Secret volume: the files in a timestamped
    directory, `..data` linking to it, each key a link through `..data` (what Go reads)."""
    stamp = directory / "..2026_12_01_00_00_00.000000001"
    stamp.mkdir(parents=True)
    for name, data in files.items():
        (stamp / name).write_bytes(data)
    (directory / "..data").symlink_to(stamp.name)
    for name in files:
        (directory / name).symlink_to(f"..data/{name}")
    return directory


def route(upstream: str) -> str:
    """The path of a rendered upstream URL: its route at the gateway."""
    return "/" + upstream.removeprefix("https://").split("/", 1)[1]


def rendered(name: str, inv) -> tuple[dict, dict]:
    """The gateway's configuration file (parsed) and chart values, as the release renders them."""
    (g,) = [g for g in gateway.gateways(inv) if g.name == name]
    access = load_access_settings()
    return tomllib.loads(gateway.config_file(g, access)), gateway.chart_values(g, access)


def start_gateway(
    tmp: Path, lan_ca, trust: bytes, name: str, inv, upstreams: dict[str, int], log_dir: Path
) -> tuple[ServiceProcess, int, Path]:
    """oauth2-proxy as gateway `name` trusting `trust` (PEM) for its upstreams; `upstreams`:
    the rendered upstream URLs kept, each with the loopback port now serving it (the others
    are dropped). Returns the process, its HTTPS port and its own certificate's directory."""
    config, values = rendered(name, inv)
    assert config["ssl_upstream_insecure_skip_verify"] is False
    env_values = {e["name"]: e.get("value") for e in values["extraEnv"]}
    assert env_values["SSL_CERT_DIR"] == gateway.CA_DIR
    (g,) = [g for g in gateway.gateways(inv) if g.name == name]
    own = lan_ca.issue(gateway.certificate(g, load_access_settings()), tmp / "tls", (LOOPBACK,))
    ca_dir = secret_volume(tmp / "lan-ca", {lan_tls.CA_KEY: trust})
    (tmp / "client-secret").write_text("test-client-secret")
    kept = [u for u in config["upstreams"] if u in upstreams]
    assert kept == list(upstreams), (config["upstreams"], upstreams)
    config.update(
        upstreams=[f"https://{LOOPBACK}:{upstreams[u]}{route(u)}" for u in kept],
        tls_cert_file=str(own / "tls.crt"),
        tls_key_file=str(own / "tls.key"),
        client_secret_file=str(tmp / "client-secret"),
        skip_oidc_discovery=True,
        login_url="https://127.0.0.1:9/authorize",
        redeem_url="https://127.0.0.1:9/token",
        oidc_jwks_url="https://127.0.0.1:9/jwks",
        skip_auth_routes=[f"^{route(u)}" for u in kept],
    )
    (tmp / "oauth2-proxy.cfg").write_text(
        "".join(f"{k} = {gateway._toml(v)}\n" for k, v in config.items())
    )
    https_port, http_port = free_port(), free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    # As in the pod: SSL_CERT_DIR from the chart values, SSL_CERT_FILE unset (the image's
    # bundle, and this host's, is the default file Go reads beside the directory).
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SSL_CERT", "OAUTH2_PROXY"))}
    env.update(SSL_CERT_DIR=str(ca_dir), OAUTH2_PROXY_COOKIE_SECRET=COOKIE_SECRET)
    proc = ServiceProcess(
        "oauth2-proxy",
        [
            str(oauth2_proxy_dist.ensure()),
            f"--config={tmp / 'oauth2-proxy.cfg'}",
            f"--https-address={LOOPBACK}:{https_port}",
            f"--http-address={LOOPBACK}:{http_port}",
        ],
        log_dir / "oauth2-proxy.log",
        env=env,
        cwd=tmp,
    ).start()

    def probe() -> bool:
        with socket.create_connection((LOOPBACK, https_port), timeout=2):
            return True

    proc.wait_ready(probe, 30, "listening")
    return proc, https_port, own
