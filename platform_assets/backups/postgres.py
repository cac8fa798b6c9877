"""PostgreSQL dumps and their restore check, with Debian's pg_dump and pg_restore.

A dump and its row counts come from one snapshot: a read-only REPEATABLE READ transaction exports
its snapshot, `pg_dump --snapshot` dumps exactly that state, and the same transaction counts every
table while the dump streams. The Dagster database is written to while it is dumped (this very
run logs into it), so counts taken any other way would not match the dump.

The password reaches the child processes only through a private PGPASSFILE (mode 0600, deleted
afterwards): never on a command line (`ps` shows those to every user) and never in the child's
environment (`/proc/<pid>/environ`).
"""

import contextlib
import hashlib
import os
import secrets
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

READ_CHUNK = 1 << 20
STDERR_LIMIT = 4000  # characters of a tool's stderr quoted in an error

# Every ordinary table and partition, as `schema.table`; views and foreign tables hold no rows
# of their own, and partitioned parents are counted through their partitions.
_TABLES_SQL = """
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1, 2
"""


class BackupError(RuntimeError):
    """A dump or restore failed; the message names the database, host or object, never a
    password."""


@dataclass
class DumpResult:
    database: str
    key: str
    size: int
    sha256: str
    server_version: str
    tables: dict[str, int] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(self.tables.values())


@dataclass
class RestoreOutcome:
    database: str
    key: str
    problems: list[str]
    tables: int = 0
    rows: int = 0
    scratch_database: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems


class PlatformPostgres(dg.ConfigurableResource):
    """The platform's PostgreSQL server as the backups see it: the databases to dump, a role
    that may read them all and create (and drop) a scratch database for the restore check."""

    host: str
    port: int = 5432
    user: str
    password: str  # always a dg.EnvVar
    databases: list[str]
    maintenance_database: str = "postgres"  # where CREATE/DROP DATABASE of the scratch run
    pg_bin: str = ""  # folder with pg_dump and pg_restore; "" means PATH
    connect_timeout_s: int = 10

    def describe(self) -> str:
        return f"PostgreSQL at {self.host}:{self.port} (user {self.user})"

    def tool(self, name: str) -> str:
        if not self.pg_bin:
            return name
        path = Path(self.pg_bin) / name
        if not path.exists():
            raise BackupError(
                f"{name} not found in {self.pg_bin} (PICLUSTER_PG_BIN): install the PostgreSQL "
                "client of the server's major version (Debian: postgresql-client-15)"
            )
        return str(path)

    def connect(self, database: str):
        import psycopg2

        try:
            conn = psycopg2.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname=database,
                connect_timeout=self.connect_timeout_s,
                application_name="piclusterops-backups",
            )
        except psycopg2.Error as exc:
            raise BackupError(
                f"{self.describe()} refused a connection to database {database!r}: "
                f"{_first_line(exc)}"
            ) from None
        return conn

    @contextlib.contextmanager
    def child_env(self) -> Iterator[dict[str, str]]:
        """The environment for pg_dump/pg_restore: the password in a private PGPASSFILE."""
        with tempfile.TemporaryDirectory(prefix="piclusterops-pgpass-") as tmp:
            passfile = Path(tmp) / "pgpass"
            fd = os.open(passfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)

            def esc(text: str) -> str:
                return text.replace("\\", "\\\\").replace(":", "\\:")

            with os.fdopen(fd, "w") as f:
                f.write(f"{esc(self.host)}:{self.port}:*:{esc(self.user)}:{esc(self.password)}\n")
            env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
            env.update(
                PGPASSFILE=str(passfile),
                PGCONNECT_TIMEOUT=str(self.connect_timeout_s),
                PGAPPNAME="piclusterops-backups",
            )
            yield env

    def connection_args(self, database: str) -> list[str]:
        # --no-password: never wait for a prompt; a missing password fails at once.
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", database, "-w"]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _stderr_text(path: Path) -> str:
    text = path.read_text(errors="replace").strip()
    return text[-STDERR_LIMIT:] or "(no message)"


def dump_database(
    pg: PlatformPostgres,
    database: str,
    key: str,
    upload: Callable[[Iterable[bytes]], Any],
) -> DumpResult:
    """Streams `pg_dump -Fc` of `database` into `upload(pieces)` (a streaming put to `key`) and
    counts every table in the dump's snapshot. A failing pg_dump aborts the upload: nothing
    partial is left under `key`."""
    conn = pg.connect(database)
    try:
        conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
        with conn.cursor() as cur:
            cur.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
            snapshot, server_version = cur.fetchone()
        digest = hashlib.sha256()
        size = 0
        with pg.child_env() as env, tempfile.TemporaryFile() as stderr:
            argv = [
                pg.tool("pg_dump"),
                "--format=custom",
                f"--snapshot={snapshot}",
                *pg.connection_args(database),
            ]
            proc = subprocess.Popen(  # noqa: S603 (argv is ours, no shell)
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, env=env
            )

            def pieces() -> Iterator[bytes]:
                nonlocal size
                assert proc.stdout is not None
                for piece in iter(lambda: proc.stdout.read(READ_CHUNK), b""):
                    digest.update(piece)
                    size += len(piece)
                    yield piece
                # Raising before the end of the stream makes the upload abort (S3 multipart
                # abort, temp file removed): a failed dump never looks like a complete one.
                if proc.wait() != 0:
                    stderr.seek(0)
                    message = stderr.read().decode(errors="replace").strip()[-STDERR_LIMIT:]
                    raise BackupError(
                        f"pg_dump of database {database!r} on {pg.describe()} failed with exit "
                        f"code {proc.returncode}: {message or '(no message)'}"
                    )

            failure: list[BaseException] = []

            def run_upload() -> None:
                try:
                    upload(pieces())
                except BaseException as exc:
                    failure.append(exc)

            # The upload streams in a thread while this one counts rows in the same snapshot:
            # pg_dump, the upload and the counts overlap instead of adding up.
            uploader = threading.Thread(target=run_upload, name=f"upload-{database}")
            uploader.start()
            try:
                tables = count_rows(conn)
            finally:
                uploader.join()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                if proc.stdout is not None:
                    proc.stdout.close()
            if failure:
                raise failure[0]
        conn.rollback()
    finally:
        conn.close()
    return DumpResult(database, key, size, digest.hexdigest(), server_version, tables)


def count_rows(conn) -> dict[str, int]:
    from psycopg2 import sql

    with conn.cursor() as cur:
        cur.execute(_TABLES_SQL)
        names = cur.fetchall()
        tables = {}
        for schema, table in names:
            cur.execute(
                sql.SQL("SELECT count(*) FROM ONLY {}.{}").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
            )
            tables[f"{schema}.{table}"] = cur.fetchone()[0]
    return tables


def scratch_name(database: str) -> str:
    # PostgreSQL identifiers are at most 63 bytes; the random tail keeps two checks apart.
    return f"restore_check_{database[:36]}_{secrets.token_hex(4)}"


def restore_check(
    pg: PlatformPostgres,
    database: str,
    key: str,
    pieces: Iterable[bytes],
    expected_sha256: str,
    expected_size: int,
    expected_tables: dict[str, int],
) -> RestoreOutcome:
    """Restores one dump into a new scratch database with `pg_restore --exit-on-error`, compares
    the bytes read with the manifest's sha256 and size and the restored tables with its row
    counts, then drops the scratch database. Every problem names `key`."""
    import psycopg2
    from psycopg2 import sql

    scratch = scratch_name(database)
    outcome = RestoreOutcome(database, key, [], scratch_database=scratch)
    admin = pg.connect(pg.maintenance_database)
    admin.autocommit = True
    try:
        try:
            with admin.cursor() as cur:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        except psycopg2.Error as exc:
            outcome.problems.append(
                f"{key}: cannot create the scratch database {scratch} on {pg.describe()}: "
                f"{_first_line(exc)} (the backup role needs CREATEDB for the restore check)"
            )
            return outcome
        try:
            _restore_and_compare(
                pg, scratch, key, pieces, expected_sha256, expected_size, expected_tables, outcome
            )
        finally:
            _drop_database(admin, scratch)
    finally:
        admin.close()
    return outcome


def _drop_database(admin, name: str) -> None:
    """Drops `name` if it is there, whoever is still connected to it (`admin`: autocommit)."""
    from psycopg2 import sql

    with admin.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _restore_and_compare(
    pg: PlatformPostgres,
    database: str,
    key: str,
    pieces: Iterable[bytes],
    expected_sha256: str,
    expected_size: int,
    expected_tables: dict[str, int],
    outcome: RestoreOutcome,
) -> None:
    """Restores the dump into `database` (which exists, empty) and, if that went through,
    compares its tables' row counts with the manifest's; what differs goes to `outcome`."""
    _restore_into(pg, database, key, pieces, expected_sha256, expected_size, outcome)
    if not outcome.passed:
        return
    conn = pg.connect(database)
    try:
        restored = count_rows(conn)
    finally:
        conn.close()
    outcome.tables, outcome.rows = len(restored), sum(restored.values())
    outcome.problems.extend(compare_tables(key, expected_tables, restored))


def _restore_into(
    pg: PlatformPostgres,
    scratch: str,
    key: str,
    pieces: Iterable[bytes],
    expected_sha256: str,
    expected_size: int,
    outcome: RestoreOutcome,
) -> None:
    digest = hashlib.sha256()
    size = 0
    with pg.child_env() as env, tempfile.NamedTemporaryFile() as stderr:
        argv = [
            pg.tool("pg_restore"),
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            *pg.connection_args(scratch),
        ]
        proc = subprocess.Popen(  # noqa: S603 (argv is ours, no shell)
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=stderr, env=env
        )
        assert proc.stdin is not None
        feeding = True
        try:
            for piece in pieces:
                digest.update(piece)
                size += len(piece)
                if feeding:
                    try:
                        proc.stdin.write(piece)
                    except BrokenPipeError:
                        # pg_restore stopped at an error; read on so the checksum says whether
                        # the file itself is damaged.
                        feeding = False
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.close()
        finally:
            if proc.stdin and not proc.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()
            rc = proc.wait()
        sha = digest.hexdigest()
        if size != expected_size:
            outcome.problems.append(
                f"{key}: {size} bytes read, the manifest says {expected_size} (the dump is "
                "truncated or replaced)"
            )
        if sha != expected_sha256:
            outcome.problems.append(
                f"{key}: sha256 {sha} does not match the manifest's {expected_sha256} (the dump "
                "is corrupted)"
            )
        if rc != 0:
            outcome.problems.append(
                f"{key}: pg_restore into scratch database {scratch} failed with exit code {rc}: "
                f"{_stderr_text(Path(stderr.name))}"
            )


def compare_tables(key: str, expected: dict[str, int], restored: dict[str, int]) -> list[str]:
    problems = []
    for table in sorted(expected.keys() - restored.keys()):
        problems.append(f"{key}: table {table} is in the manifest but was not restored")
    for table in sorted(restored.keys() - expected.keys()):
        problems.append(f"{key}: table {table} was restored but is not in the manifest")
    for table in sorted(expected.keys() & restored.keys()):
        if expected[table] != restored[table]:
            problems.append(
                f"{key}: table {table} has {restored[table]} rows restored, the manifest says "
                f"{expected[table]}"
            )
    return problems


def restore_database(
    pg: PlatformPostgres,
    target: str,
    key: str,
    pieces: Iterable[bytes],
    expected_sha256: str,
    expected_size: int,
    expected_tables: dict[str, int],
    replace: bool,
) -> RestoreOutcome:
    """Restores one dump into the database `target`: a new one, or (with `replace`) the one of
    that name dropped first. Then compares it with the manifest like the restore check. A new
    database that fails is dropped again; a replaced one is left for inspection."""
    import psycopg2
    from psycopg2 import sql

    outcome = RestoreOutcome(target, key, [], scratch_database=target)
    admin = pg.connect(pg.maintenance_database)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target,))
            exists = cur.fetchone() is not None
            if exists and not replace:
                raise BackupError(
                    f"database {target!r} exists on {pg.describe()}: restore into a new name, or "
                    "set replace: true to drop and replace it"
                )
            try:
                if exists:
                    cur.execute(
                        sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(target))
                    )
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(target)))
            except psycopg2.Error as exc:
                raise BackupError(
                    f"cannot create database {target!r} on {pg.describe()}: {_first_line(exc)}"
                ) from None
        _restore_and_compare(
            pg, target, key, pieces, expected_sha256, expected_size, expected_tables, outcome
        )
        if not outcome.passed and not exists:
            _drop_database(admin, target)
    finally:
        admin.close()
    return outcome
