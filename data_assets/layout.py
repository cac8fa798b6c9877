"""Where sensor data lives in the object store, and the curated Parquet schema.

Three of the `object_store` release's buckets (on the cluster; locally, one directory each
under `<home>/object-store`). A key's first segment is its bucket (resources/object_store.py):

    landing/...                                          raw uploads (.jsonl, .csv, optionally .gz)
    warehouse/sensor_readings/dt=YYYY-MM-DD/<batch>.parquet  curated rows, a file per batch and day
    warehouse/<schema>.db/...                            Trino's managed tables (the aggregates)
    warehouse/_staging/sensor_readings/...               a batch's curated file until it passes
    warehouse/_simulator/manifests/dt=YYYY-MM-DD.json    what the mock devices wrote (simulator.py)
    quarantine/sensor_readings/dt=YYYY-MM-DD/<batch>.jsonl   rejected rows, one JSON record each
    quarantine/_staging/sensor_readings/...              a batch's rejects until it passes

Staging sits in the bucket the batch is published to, so publishing is a copy inside one bucket
(server-side on S3: the bytes never travel back through the run) and the staged and the published
file share one identity's rights. No table reads `_staging/` (Hive and DuckDB read only the
table's own prefix, and Hive skips `_` names anyway).

The curated table is partitioned Hive-style by `dt` (the UTC day of the reading); `dt` lives only in
the path, never as a Parquet column, so Trino and DuckDB both read it as a partition key.
"""

LANDING_PREFIX = "landing/"
CURATED_PREFIX = "warehouse/sensor_readings/"
QUARANTINE_PREFIX = "quarantine/sensor_readings/"
# Write-audit-publish: a batch is written under `_staging/` of the bucket it goes to, audited,
# and copied to the prefixes the tables read only when its blocking checks pass.
STAGING = "_staging/"
STAGING_PREFIXES = ("warehouse/" + STAGING, "quarantine/" + STAGING)

READINGS_TABLE = "sensor_readings"
HOURLY_TABLE = "sensor_readings_hourly"
DEVICE_HEALTH_TABLE = "device_health"

# (column, pyarrow type name, Trino/Hive type). Timestamps are UTC, stored without a zone.
CURATED_COLUMNS = (
    ("device_id", "string", "varchar"),
    ("reading_ts", "timestamp[ms]", "timestamp(3)"),
    ("temperature_c", "double", "double"),
    ("humidity_pct", "double", "double"),
    ("pressure_hpa", "double", "double"),
    ("source_object", "string", "varchar"),
    ("source_line", "int64", "bigint"),
    ("ingested_at", "timestamp[ms]", "timestamp(3)"),
)
PARTITION_COLUMN = "dt"  # 'YYYY-MM-DD', varchar in Trino


def curated_day_prefix(day: str) -> str:
    return f"{CURATED_PREFIX}{PARTITION_COLUMN}={day}/"


def quarantine_day_prefix(day: str) -> str:
    return f"{QUARANTINE_PREFIX}{PARTITION_COLUMN}={day}/"


def staged(key: str) -> str:
    """Where a batch's file waits for its checks: `<bucket>/_staging/<key in the bucket>`."""
    bucket, _, rest = key.partition("/")
    return f"{bucket}/{STAGING}{rest}"
