"""Warehouse tables over the curated readings: the external table, hourly aggregates, device health.

The SQL lives in `data_assets/sql/`, written once in Trino's dialect; the `warehouse` resource
runs it on Trino (cluster) or translates it for DuckDB (local).

Rejected rows are read from the quarantine prefix as a second external table,
`sensor_quarantine` (JSON Lines, partitioned by `dt` like the curated table): Trino reads it with
the Hive connector's JSON format, DuckDB with `read_json`. Only `source_object`, `reason` and, when
curation could read one, `device_id` are declared; other fields of a record are ignored.
"""

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from pathlib import Path

import dagster as dg

from data_assets import layout
from data_assets.partitions import daily_partitions
from resources.object_store import ObjectStore
from resources.settings import Settings
from resources.warehouse import ExternalTable, QueryResult, Warehouse, check_day

SQL_DIR = Path(__file__).parent / "sql"
CURATED_READINGS = dg.AssetKey("curated_sensor_readings")
QUARANTINE_TABLE = "sensor_quarantine"
UNATTRIBUTED = "(unknown)"  # device_health's device for rejects no device can be tied to

READINGS = ExternalTable(
    name=layout.READINGS_TABLE,
    prefix=layout.CURATED_PREFIX,
    columns=tuple((name, trino_type) for name, _, trino_type in layout.CURATED_COLUMNS),
    file_format="PARQUET",
    partition_column=layout.PARTITION_COLUMN,
)
QUARANTINE = ExternalTable(
    name=QUARANTINE_TABLE,
    prefix=layout.QUARANTINE_PREFIX,
    columns=(("source_object", "varchar"), ("reason", "varchar"), ("device_id", "varchar")),
    file_format="JSON",
    partition_column=layout.PARTITION_COLUMN,
)


@cache
def sql(name: str) -> str:
    """The text of `data_assets/sql/<name>.sql` (Trino dialect, `:name` parameters)."""
    return (SQL_DIR / f"{name}.sql").read_text()


def ensure_tables(warehouse: Warehouse) -> None:
    """Schema, both external tables and both aggregate tables; safe to repeat."""
    warehouse.ensure_schema()
    warehouse.ensure_external_table(READINGS)
    warehouse.ensure_external_table(QUARANTINE)
    warehouse.execute(sql("sensor_readings_hourly.ddl"))
    warehouse.execute(sql("device_health.ddl"))


def build_hourly(warehouse: Warehouse, day: str) -> int:
    """Replaces the day's hourly aggregates; returns the number of (device, hour) rows."""
    return warehouse.replace_partition(
        layout.HOURLY_TABLE, sql("sensor_readings_hourly"), check_day(day)
    )


def health_as_of(day: str, now: datetime | None = None) -> datetime:
    """The moment a day's health is judged at: the end of the day, or now while it runs."""
    end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), time())
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None)
    return min(end, now.replace(microsecond=(now.microsecond // 1000) * 1000))


def build_device_health(
    warehouse: Warehouse,
    day: str,
    *,
    as_of: datetime,
    silent_after_minutes: float = 15.0,
    lookback_days: int = 7,
) -> int:
    """Replaces the day's device-health rows; returns the number of devices."""
    check_day(day)
    since = (date.fromisoformat(day) - timedelta(days=lookback_days)).isoformat()
    return warehouse.replace_partition(
        layout.DEVICE_HEALTH_TABLE,
        sql("device_health"),
        day,
        {
            "since_day": since,
            "as_of": as_of,
            "silent_after_minutes": float(silent_after_minutes),
        },
    )


def _cell(value, column: str = "") -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2%}" if column.endswith("_share") else f"{value:,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value).replace("|", "\\|")


def markdown_table(result: QueryResult, limit: int = 50) -> str:
    if not result.rows:
        return "_no rows_"
    lines = [
        "| " + " | ".join(result.columns) + " |",
        "|" + "---|" * len(result.columns),
        *(
            "| " + " | ".join(_cell(v, c) for v, c in zip(row, result.columns, strict=True)) + " |"
            for row in result.rows[:limit]
        ),
    ]
    if len(result.rows) > limit:
        lines.append(f"\n_{len(result.rows) - limit} more rows not shown_")
    return "\n".join(lines)


class DeviceHealthConfig(dg.Config):
    silent_after_minutes: float = 15.0
    """A device is silent when its last reading is older than this at the day's end (or now)."""
    lookback_days: int = 7
    """How far back to look for a device's last reading, so yesterday's quiet devices show up."""
    max_rejected_share: float = 0.05
    """Above this share of rejected rows a device's check warns."""


def build_defs(settings: Settings) -> dg.Definitions:
    kind = "trino" if settings.is_cluster else "duckdb"

    @dg.asset(
        group_name="sensor_data",
        kinds={kind},
        partitions_def=daily_partitions,
        deps=[CURATED_READINGS],
    )
    def sensor_readings_table(
        context: dg.AssetExecutionContext, warehouse: Warehouse, object_store: ObjectStore
    ) -> dg.MaterializeResult:
        """The curated readings as a warehouse table, partitioned by day (`dt`).

        Ensures the schema and the external tables over the curated and quarantine prefixes,
        registers the day's partitions, and reports what the day holds per device.
        """
        day = check_day(context.partition_key)
        ensure_tables(warehouse)
        registered = []
        for table, prefix in (
            (READINGS, layout.curated_day_prefix(day)),
            (QUARANTINE, layout.quarantine_day_prefix(day)),
        ):
            has_files = next(iter(object_store.list(prefix)), None) is not None
            if has_files and warehouse.register_partition(table, day):
                registered.append(table.name)
        per_device = warehouse.query(sql("sensor_readings_day"), {"day": day})
        rows = sum(int(r[1]) for r in per_device.rows)
        context.log.info(f"{day}: {rows} readings from {len(per_device.rows)} devices")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "devices": len(per_device.rows),
                "partitions_registered": ", ".join(registered) or "none new",
                "location": dg.MetadataValue.path(warehouse.location(READINGS.prefix)),
                "per_device": dg.MetadataValue.md(markdown_table(per_device)),
            }
        )

    @dg.asset(
        group_name="sensor_data",
        kinds={kind},
        partitions_def=daily_partitions,
        deps=[sensor_readings_table],
        check_specs=[
            dg.AssetCheckSpec(
                "hourly_counts_match_readings",
                asset=layout.HOURLY_TABLE,
                description="The day's hourly counts add up to the day's curated readings.",
            )
        ],
    )
    def sensor_readings_hourly(
        context: dg.AssetExecutionContext, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        """Per device and hour: number of readings and min / mean / max of temperature,
        humidity and pressure. Re-materializing a day replaces that day's rows."""
        day = check_day(context.partition_key)
        ensure_tables(warehouse)
        rows = build_hourly(warehouse, day)
        summary = warehouse.query(sql("sensor_readings_hourly_summary"), {"day": day})
        hourly_total = sum(int(r[2]) for r in summary.rows)
        readings = warehouse.query(sql("sensor_readings_count"), {"day": day}).rows[0][0]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "devices": len(summary.rows),
                "per_device": dg.MetadataValue.md(markdown_table(summary)),
            },
            check_results=[
                dg.AssetCheckResult(
                    check_name="hourly_counts_match_readings",
                    passed=hourly_total == readings,
                    metadata={"hourly_total": hourly_total, "readings": int(readings)},
                )
            ],
        )

    @dg.asset(
        group_name="sensor_data",
        kinds={kind},
        partitions_def=daily_partitions,
        deps=[sensor_readings_table],
        check_specs=[
            dg.AssetCheckSpec(
                "no_silent_devices",
                asset=layout.DEVICE_HEALTH_TABLE,
                description="Every device seen in the look-back window reported recently.",
            ),
            dg.AssetCheckSpec(
                "rejected_share_within_limit",
                asset=layout.DEVICE_HEALTH_TABLE,
                description="No device had more than `max_rejected_share` of its rows rejected.",
            ),
        ],
    )
    def device_health(
        context: dg.AssetExecutionContext, config: DeviceHealthConfig, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        """Per device for the day: readings, rejected rows and their share, last reading,
        minutes silent at the day's end (or now), longest gap, and whether it is silent."""
        day = check_day(context.partition_key)
        ensure_tables(warehouse)
        as_of = health_as_of(day)
        rows = build_device_health(
            warehouse,
            day,
            as_of=as_of,
            silent_after_minutes=config.silent_after_minutes,
            lookback_days=config.lookback_days,
        )
        health = warehouse.query(sql("device_health_report"), {"day": day})
        silent = [r[0] for r in health.rows if r[1]]
        rejected = sum(int(r[3]) for r in health.rows)
        # Rows no device can be tied to are counted in the table, not held against a device.
        too_many_rejects = [
            f"{r[0]} ({r[4]:.1%})"
            for r in health.rows
            if r[0] != UNATTRIBUTED and r[4] is not None and r[4] > config.max_rejected_share
        ]
        # Warnings, not failures: a quiet or noisy device is news, not a reason to stop the graph.
        checks = [
            dg.AssetCheckResult(
                check_name="no_silent_devices",
                passed=not silent,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "silent": ", ".join(silent) or "none",
                    "silent_after_minutes": config.silent_after_minutes,
                },
            ),
            dg.AssetCheckResult(
                check_name="rejected_share_within_limit",
                passed=not too_many_rejects,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "over_limit": ", ".join(too_many_rejects) or "none",
                    "max_rejected_share": config.max_rejected_share,
                    "unattributed_rejects": sum(
                        int(r[3]) for r in health.rows if r[0] == UNATTRIBUTED
                    ),
                },
            ),
        ]
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": rows,
                "as_of": as_of.isoformat(timespec="seconds"),
                "silent_devices": len(silent),
                "silent": ", ".join(silent) or "none",
                "rejected_rows": rejected,
                "health": dg.MetadataValue.md(markdown_table(health)),
            },
            check_results=checks,
        )

    return dg.Definitions(assets=[sensor_readings_table, sensor_readings_hourly, device_health])
