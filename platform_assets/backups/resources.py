"""The backups' resources: the backup key, the mirror (a second object store off the cluster)
and the platform's PostgreSQL as the dumps see it. The cluster's own object store is the
platform's `object_store` resource, registered by `data_assets`."""

import dagster as dg

from platform_assets.backups.postgres import PlatformPostgres
from platform_assets.backups.sealing import BackupKey
from platform_assets.backups.settings import BackupSettings
from resources.object_store import LocalObjectStore, ObjectStore, s3_object_store


class BackupKeyResource(dg.ConfigurableResource):
    """The key that seals what leaves the cluster. It lives in the environment of Dagster (a
    Kubernetes Secret on the cluster) and in the owner's password manager, never beside the
    backups."""

    key: str  # always a dg.EnvVar
    variable: str  # the variable's name, for messages

    def backup_key(self) -> BackupKey:
        if not self.key:
            raise dg.Failure(
                f"{self.variable} is not set: the mirror is sealed with it. Make one with "
                "`python -m platform_assets.backups.sealing keygen`, keep a copy off the "
                "cluster, and set it in the environment of Dagster"
            )
        return BackupKey(self.key, self.variable)


def backup_resources(backup: BackupSettings) -> dict[str, object]:
    key = BackupKeyResource(
        key=dg.EnvVar(backup.key_var) if backup.key_is_set else "", variable=backup.key_var
    )
    mirror: ObjectStore
    if backup.mirror_s3 is not None:
        mirror = s3_object_store(backup.mirror_s3)
    else:
        mirror = LocalObjectStore(root=str(backup.mirror_root), buckets=["mirror"])
    pg = backup.postgres
    postgres = (
        PlatformPostgres(
            host=pg.host,
            port=pg.port,
            user=pg.user,
            password=dg.EnvVar(pg.password_var),
            databases=list(pg.databases),
            pg_bin=pg.pg_bin,
        )
        if pg is not None
        else PlatformPostgres(host="", user="", password="", databases=[])
    )
    return {"backup_key": key, "backup_mirror": mirror, "platform_postgres": postgres}
