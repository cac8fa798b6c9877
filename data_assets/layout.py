"""Where sensor data lives in the object store, and the curated Parquet schema.

One bucket (`lake`, on the cluster) or one folder (`<home>/object-store`, locally) holds:

    landing/...                                       raw uploads (.jsonl, .csv, optionally .gz)
    warehouse/sensor_readings/dt=YYYY-MM-DD/<batch>.parquet   curated rows, a file per batch and day
    quarantine/sensor_readings/dt=YYYY-MM-DD/<batch>.jsonl    rejected rows, one JSON record each
    staging/<either of the two above>                 a batch's files until its checks pass
    metastore/                                        Trino's file metastore (test clusters only)

The curated table is partitioned Hive-style by `dt` (the UTC day of the reading); `dt` lives only in
the path, never as a Parquet column, so Trino and DuckDB both read it as a partition key.
"""

LANDING_PREFIX = "landing/"
CURATED_PREFIX = "warehouse/sensor_readings/"
QUARANTINE_PREFIX = "quarantine/sensor_readings/"
METASTORE_PREFIX = "metastore/"
# Write-audit-publish: a batch is written here, audited, and copied to the prefixes the tables
# read only when its blocking checks pass. No table reads below it.
STAGING_PREFIX = "staging/"

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
    """Where a batch's file waits for its checks: `staging/<key>`."""
    return f"{STAGING_PREFIX}{key}"
