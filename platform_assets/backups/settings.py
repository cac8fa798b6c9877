"""The backups' settings, from `PICLUSTER_BACKUP_*` variables on top of the platform's settings.

Read with the platform's own variable reader, so a wrong value fails at load with the same kind
of message naming the variable. Secrets (the backup key, the mirror's S3 secret, a backup role's
password) are only checked for presence; their values reach the resources as `dg.EnvVar`.
"""

from dataclasses import dataclass
from pathlib import Path

from resources.settings import PREFIX, S3Settings, Settings, SettingsError, _Reader

KEY_VAR = "BACKUP_KEY"
_DATABASE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class BackupPostgres:
    host: str
    port: int
    user: str
    password_var: str
    databases: tuple[str, ...]
    pg_bin: str  # "" means PATH


@dataclass(frozen=True)
class BackupSettings:
    key_var: str  # the variable holding the backup key
    key_is_set: bool
    postgres: BackupPostgres | None  # None on the local profile: it has no PostgreSQL
    mirror_s3: S3Settings | None  # the off-cluster S3 endpoint (cluster profile)
    mirror_root: Path  # the mirror as a folder (local profile)


def _databases(read: _Reader, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = read.raw("BACKUP_DATABASES")
    if raw is None:
        return default
    names = tuple(n.strip() for n in raw.split(","))
    bad = [n for n in names if not n or not set(n) <= _DATABASE_CHARS]
    if bad or len(set(names)) != len(names):
        raise SettingsError(
            f"{PREFIX}BACKUP_DATABASES={raw!r} is not valid; expected distinct database names "
            "separated by commas (lower-case letters, digits, '_' or '-'), e.g. "
            "dagster,metastore,ledger."
        )
    return names


def load_backup_settings(settings: Settings, environ=None) -> BackupSettings:
    import os

    read = _Reader(os.environ if environ is None else environ)
    key_is_set = read.raw(KEY_VAR) is not None
    if not settings.is_cluster:
        return BackupSettings(
            key_var=PREFIX + KEY_VAR,
            key_is_set=key_is_set,
            postgres=None,
            mirror_s3=None,
            mirror_root=read.path("BACKUP_MIRROR_ROOT", settings.home / "backup-mirror"),
        )
    pg = settings.postgres
    assert pg is not None
    # The ledger's database plus Dagster's and the Hive Metastore's, on the same server.
    default_databases = tuple(dict.fromkeys(("dagster", "metastore", pg.database)))
    postgres = BackupPostgres(
        host=pg.host,
        port=pg.port,
        # A role that may read every platform database (pg_read_all_data) and CREATEDB for the
        # restore check; the ledger's own role by default.
        user=read.text("BACKUP_PG_USER", pg.user),
        password_var=(
            read.secret_var("BACKUP_PG_PASSWORD")
            if read.raw("BACKUP_PG_USER") is not None
            else pg.password_var
        ),
        databases=_databases(read, default_databases),
        pg_bin=str(read.path("PG_BIN", Path())) if read.raw("PG_BIN") else "",
    )
    mirror = S3Settings(
        endpoint=read.host_port("BACKUP_MIRROR_ENDPOINT"),
        secure=read.flag("BACKUP_MIRROR_SECURE", True),
        # One bucket, the `mirror` of the mirror's keys (mirror/index/..., layout.py).
        buckets={"mirror": read.bucket("BACKUP_MIRROR_BUCKET", "piclusterops-mirror")},
        region=read.text("BACKUP_MIRROR_REGION", "us-east-1"),
        access_key_var=read.secret_var("BACKUP_MIRROR_ACCESS_KEY"),
        secret_key_var=read.secret_var("BACKUP_MIRROR_SECRET_KEY"),
    )
    return BackupSettings(
        key_var=read.secret_var(KEY_VAR),
        key_is_set=True,
        postgres=postgres,
        mirror_s3=mirror,
        mirror_root=settings.home / "backup-mirror",
    )
