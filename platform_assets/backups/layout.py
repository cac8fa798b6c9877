"""Where the backups live.

In the cluster's object store, the `backups` bucket (keys name their bucket first, as everywhere
in the object store: `backups/postgres/...` is `postgres/...` in the `backups` bucket):

    backups/postgres/<day>/<database>.dump    pg_dump -Fc, as pg_restore reads it
    backups/postgres/<day>/manifest.json      sha256, size, server version, rows per table
    backups/postgres/<day>/verified.json      written by the restore check when the day restored
    backups/etcd/<day>/snapshot.sealed        `k3s etcd-snapshot save`, sealed (it holds Secrets)
    backups/etcd/<day>/token.sealed           the K3s server token in force, sealed
    backups/etcd/<day>/manifest.json          sha256, size, revision, keys, K3s version, node
    backups/etcd/<day>/verified.json          written by the integrity check when it passed

On the mirror (a second S3 endpoint off the cluster, e.g. a NAS; `mirror/` is its one bucket,
`PICLUSTER_BACKUP_MIRROR_BUCKET`), everything sealed with the backup key except the verification
markers, which hold no data:

    mirror/index/<day>.sealed                 every mirrored key (`<bucket>/<key>`) -> its version,
                                              sha256, blob
    mirror/blobs/<name>                       one object version; the name reveals nothing
    mirror/verified/<day>.json                written by the mirror check when the sample re-read

A day is the backup's date in the inventory's time zone (`YYYY-MM-DD`), so keys sort by age.
"""

import re

POSTGRES_PREFIX = "backups/postgres/"
ETCD_PREFIX = "backups/etcd/"
MIRROR_INDEX_PREFIX = "mirror/index/"
MIRROR_BLOB_PREFIX = "mirror/blobs/"
MIRROR_VERIFIED_PREFIX = "mirror/verified/"

# The buckets that leave the cluster, whole: the three the data lives in and `backups`, so the
# night's verified dumps leave the same night. Not `compute-logs` (Dagster's run logs, kept by
# Dagster's own retention). The Hive Metastore's state is in PostgreSQL (the `metastore` dump).
MIRRORED_BUCKETS = ("landing", "warehouse", "quarantine", "backups")

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def is_day(text: str) -> bool:
    return bool(_DAY.fullmatch(text))


def postgres_day_prefix(day: str) -> str:
    return f"{POSTGRES_PREFIX}{day}/"


def dump_key(day: str, database: str) -> str:
    return f"{postgres_day_prefix(day)}{database}.dump"


def manifest_key(day: str) -> str:
    return f"{postgres_day_prefix(day)}manifest.json"


def postgres_verified_key(day: str) -> str:
    return f"{postgres_day_prefix(day)}verified.json"


def mirror_index_key(day: str) -> str:
    return f"{MIRROR_INDEX_PREFIX}{day}.sealed"


def mirror_verified_key(day: str) -> str:
    return f"{MIRROR_VERIFIED_PREFIX}{day}.json"


def mirror_blob_key(name: str) -> str:
    return f"{MIRROR_BLOB_PREFIX}{name}"


def etcd_day_prefix(day: str) -> str:
    return f"{ETCD_PREFIX}{day}/"


def etcd_snapshot_key(day: str) -> str:
    return f"{etcd_day_prefix(day)}snapshot.sealed"


def etcd_token_key(day: str) -> str:
    return f"{etcd_day_prefix(day)}token.sealed"


def etcd_manifest_key(day: str) -> str:
    return f"{etcd_day_prefix(day)}manifest.json"


def etcd_verified_key(day: str) -> str:
    return f"{etcd_day_prefix(day)}verified.json"
