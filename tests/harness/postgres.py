"""PostgreSQL 15 from Debian's server binaries, initialised in a temp dir for one test session."""

import os
import pwd
import secrets
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tests.harness.procs import LOOPBACK, ServiceNotReady, ServiceProcess, free_port, tail

PG_BIN = Path(os.environ.get("PICLUSTER_PG_BIN", "/usr/lib/postgresql/15/bin"))
# initdb and postgres refuse to run as root; Debian's postgresql-15 package creates this user.
UNPRIVILEGED_USER = "postgres"
READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class PostgresService:
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # kept out of assertion output and logs
    database: str = "postgres"

    def url(self, database: str | None = None) -> str:
        """SQLAlchemy URL (psycopg2) for `database`, default the service's own database."""
        return (
            f"postgresql+psycopg2://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(database or self.database, safe='')}"
        )

    def connect(self, database: str | None = None):
        """A raw psycopg2 connection (autocommit), for DDL such as CREATE DATABASE."""
        import psycopg2

        conn = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=database or self.database,
            connect_timeout=5,
        )
        conn.autocommit = True
        return conn

    def create_database(self, name: str) -> str:
        """Create an empty database `name` (dropping one left by an earlier test) and return its
        URL. Lets each test module start from a clean database on the shared server."""
        from psycopg2 import sql

        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        finally:
            conn.close()
        return self.url(name)


def _server_user() -> str | None:
    # initdb and postgres refuse to run as root; as root, run them as Debian's `postgres`.
    return UNPRIVILEGED_USER if os.geteuid() == 0 else None


def start_postgres(workdir: Path, log_dir: Path) -> tuple[PostgresService, ServiceProcess]:
    """initdb in `workdir`, start the server on a free loopback port, wait until it accepts the
    test user's password. Raises ServiceNotReady with the log tail if it does not."""
    import subprocess

    if not (PG_BIN / "initdb").exists():
        raise RuntimeError(
            f"PostgreSQL 15 server binaries not found in {PG_BIN}: install the Debian package "
            "postgresql-15 (or set PICLUSTER_PG_BIN)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    data_dir = workdir / "data"
    socket_dir = workdir / "socket"
    pwfile = workdir / "pwfile"
    user = "picluster_test"
    password = secrets.token_urlsafe(16)
    socket_dir.mkdir(exist_ok=True)
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        pw = pwd.getpwnam(UNPRIVILEGED_USER)
        # The session dir is private to root; let the server user traverse it.
        for parent in (workdir, *workdir.parents):
            if parent == Path(parent.anchor) or str(parent) in ("/tmp", "/var/tmp"):
                break
            os.chmod(parent, os.stat(parent).st_mode | 0o711)
        for path in (workdir, socket_dir, pwfile):
            os.chown(path, pw.pw_uid, pw.pw_gid)
    pwfile.chmod(0o600)

    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / "postgres.log"
    with log_path.open("ab") as log:
        initdb = subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                user,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=120,
            user=_server_user(),
            group=_server_user(),
            extra_groups=[] if _server_user() else None,
        )
    pwfile.unlink()
    if initdb.returncode != 0:
        raise ServiceNotReady(
            f"PostgreSQL initdb failed with exit code {initdb.returncode}.\n"
            f"log {log_path}:\n{tail(log_path)}"
        )

    port = free_port()
    proc = ServiceProcess(
        "PostgreSQL",
        [
            str(PG_BIN / "postgres"),
            "-D",
            str(data_dir),
            "-h",
            LOOPBACK,
            "-p",
            str(port),
            "-k",
            str(socket_dir),
            # A throwaway server: durability off makes DDL-heavy tests fast.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=100",
            "-c",
            "shared_buffers=64MB",
        ],
        log_path,
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for clients to disconnect.
        stop_signal=signal.SIGINT,
        user=_server_user(),
    ).start()
    service = PostgresService(LOOPBACK, port, user, password, "postgres")

    def probe() -> bool:
        service.connect().close()
        return True

    proc.wait_ready(probe, READY_TIMEOUT, "accepting connections")
    return service, proc


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
