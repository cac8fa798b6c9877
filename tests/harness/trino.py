"""Trino 476 with the Hive connector for one test session: the file metastore in the SeaweedFS
`warehouse` bucket (where the cluster keeps the managed tables too), external tables in any
bucket, native S3 file system, run by the launcher on Temurin 25."""

import json
import os
import urllib.request
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.harness.procs import LOOPBACK, ServiceProcess, free_port
from tests.harness.seaweedfs import S3Service
from tests.harness.trino_dist import ensure_trino

if TYPE_CHECKING:
    import trino.dbapi

JAVA_HOME = Path(os.environ.get("PICLUSTER_JAVA_HOME", "/usr/lib/jvm/temurin-25-jdk-amd64"))
# A 2-core box shared with other services: JIT, GC and class loading make the first start slow.
READY_TIMEOUT = 300.0
# The secret reaches Trino through its environment (`${ENV:...}`), never a file or the log.
SECRET_ENV = "PICLUSTER_TEST_S3_SECRET_KEY"

JVM_CONFIG = """\
-server
-Xms256M
-Xmx1G
-XX:+UseG1GC
-XX:G1HeapRegionSize=32M
-XX:+ExplicitGCInvokesConcurrent
-XX:+ExitOnOutOfMemoryError
-XX:-OmitStackTraceInFastThrow
-XX:ReservedCodeCacheSize=256M
-XX:PerMethodRecompilationCutoff=10000
-XX:PerBytecodeRecompilationCutoff=10000
-XX:ActiveProcessorCount=2
-XX:+EnableDynamicAgentLoading
--enable-native-access=ALL-UNNAMED
-Djdk.attach.allowAttachSelf=true
-Djdk.nio.maxCachedBufferSize=2000000
-Dfile.encoding=UTF-8
"""


@dataclass(frozen=True)
class TrinoService:
    host: str
    port: int
    user: str
    catalog: str
    s3: S3Service
    bucket: str

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, schema: str | None = None) -> "trino.dbapi.Connection":
        """A DB-API connection to catalog `hive` (and `schema` if given)."""
        import trino

        return trino.dbapi.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            catalog=self.catalog,
            schema=schema,
            http_scheme="http",
        )

    def query(self, sql: str, schema: str | None = None) -> list[list]:
        """Run one statement and return all rows (convenience for tests)."""
        conn = self.connect(schema)
        try:
            cur = conn.cursor()
            cur.execute(sql)
            return cur.fetchall()
        finally:
            conn.close()


def _properties(values: dict[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in values.items())


def write_etc(
    etc: Path,
    data_dir: Path,
    port: int,
    s3: S3Service,
    bucket: str,
    extra_config: Mapping[str, object] | None = None,
) -> None:
    """Trino's config for a one-node test cluster bound to loopback; `extra_config` adds to
    (or overrides) config.properties."""
    (etc / "catalog").mkdir(parents=True, exist_ok=True)
    (etc / "node.properties").write_text(
        _properties(
            {
                "node.environment": "picluster_test",
                "node.id": uuid.uuid4(),
                "node.data-dir": data_dir,
                "node.bind-ip": LOOPBACK,
                "node.internal-address": LOOPBACK,
            }
        )
    )
    (etc / "jvm.config").write_text(JVM_CONFIG)
    (etc / "config.properties").write_text(
        _properties(
            {
                "coordinator": "true",
                "node-scheduler.include-coordinator": "true",
                "http-server.http.port": port,
                "discovery.uri": f"http://{LOOPBACK}:{port}",
                "query.max-memory": "512MB",
                "query.max-memory-per-node": "256MB",
                "memory.heap-headroom-per-node": "256MB",
                "task.concurrency": 2,
                "task.max-worker-threads": 4,
                # Nothing here should phone home or wait for more workers.
                "query.min-expire-age": "5m",
                **(extra_config or {}),
            }
        )
    )
    (etc / "log.properties").write_text("io.trino=INFO\n")
    (etc / "catalog" / "hive.properties").write_text(
        _properties(
            {
                "connector.name": "hive",
                "hive.metastore": "file",
                "hive.metastore.catalog.dir": f"s3://{bucket}/metastore",
                # Managed tables (no external_location) live under metastore/<schema>/<table>
                # whatever the schema's location: the file metastore puts them there. Tables
                # the platform reads from a chosen prefix use external_location.
                "hive.metastore.user": "picluster",
                "fs.native-s3.enabled": "true",
                "s3.endpoint": s3.url,
                "s3.region": s3.region,
                "s3.path-style-access": "true",
                "s3.aws-access-key": s3.access_key,
                "s3.aws-secret-key": f"${{ENV:{SECRET_ENV}}}",
                "s3.exclusive-create": "false",
                "hive.non-managed-table-writes-enabled": "true",
                "hive.storage-format": "PARQUET",
                "hive.allow-register-partition-procedure": "true",
                "hive.recursive-directories": "false",
            }
        )
    )


def start_trino(
    workdir: Path,
    log_dir: Path,
    s3: S3Service,
    bucket: str = "warehouse",
    extra_config: Mapping[str, object] | None = None,
) -> tuple[TrinoService, ServiceProcess]:
    """Start Trino against `s3` (creating `bucket`), wait until the node is active and
    `SELECT 1` answers (over HTTP, which stays on whatever `extra_config` adds)."""
    java = JAVA_HOME / "bin" / "java"
    if not java.exists():
        raise RuntimeError(
            f"Java for Trino not found at {java}: Trino 476 needs Java 24+; install Temurin 25 "
            "(or set PICLUSTER_JAVA_HOME)"
        )
    server = ensure_trino()
    s3.make_bucket(bucket)
    etc, data_dir = workdir / "etc", workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    write_etc(etc, data_dir, port, s3, bucket, extra_config)

    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "JAVA_TOOL"))}
    env.update(
        {
            "JAVA_HOME": str(JAVA_HOME),
            "PATH": f"{JAVA_HOME / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            SECRET_ENV: s3.secret_key,
        }
    )
    proc = ServiceProcess(
        "Trino",
        [
            str(server / "bin" / "launcher"),
            "run",
            f"--etc-dir={etc}",
            f"--data-dir={data_dir}",
        ],
        log_dir / "trino.log",
        env=env,
        cwd=workdir,
    ).start()
    service = TrinoService(LOOPBACK, port, "picluster", "hive", s3, bucket)

    def probe() -> bool:
        with urllib.request.urlopen(f"{service.url}/v1/info", timeout=2) as response:  # noqa: S310
            if json.load(response).get("starting", True):
                return False
        active = service.query("SELECT count(*) FROM system.runtime.nodes WHERE state = 'active'")
        return active[0][0] >= 1 and service.query("SELECT 1") == [[1]]

    proc.wait_ready(probe, READY_TIMEOUT, "active and answering SELECT 1")
    return service, proc
