"""The curated readings asset: landing objects -> curated Parquet + quarantine, one day a partition.

Launched by the landing sensor with a batch from the ledger, or by hand (UI, `dg launch`) with no
batch: then it first hands every unregistered landing object to the ledger and curates what is
pending for the day and in no open batch. Either way under the day's lease (`curation_run.py`);
see `curation.py` for what happens to each row.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from data_assets.curation import CurationResult
from data_assets.curation_run import BatchNotFound, curate_day
from data_assets.layout import curated_day_prefix
from data_assets.partitions import daily_partitions
from data_assets.simulator import mock_sensor_uploads
from resources.ledger import LeaseHeld, Ledger
from resources.object_store import ObjectStore

CHECKS = {
    "schema_and_ranges": "Curated files have the curated schema; every measure is inside the "
    "sensor's physical range and every reading_ts inside the partition's day.",
    "unique_device_reading_ts": "No (device_id, reading_ts) pair appears twice in the day.",
    "reconciliation": "Rows read = rows curated + rows quarantined + duplicates dropped, counted "
    "from the batch's files as staged in the object store, before they are published.",
}


class CurateConfig(dg.Config):
    batch_id: str | None = None
    """The ledger batch to curate (set by the landing sensor). Empty: everything pending for the
    partition's day that no open batch holds, after registering landing objects the ledger has
    not seen."""


def _unpublished(result: CurationResult, empty: str) -> str:
    return f"(none: {empty})" if result.passed else "(none published: the checks failed)"


def _ms(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%H:%M:%S")


def device_table(result: CurationResult) -> str:
    lines = [
        "| device | curated | rejected | duplicates | first | last | temp min / mean / max (°C) "
        "| humidity mean (%) | pressure mean (hPa) |",
        "| --- | ---: | ---: | ---: | --- | --- | --- | ---: | ---: |",
    ]
    for device, s in sorted(result.devices.items()):
        if s.rows:
            temps = f"{s.temp_min:.1f} / {s.temp_sum / s.rows:.1f} / {s.temp_max:.1f}"
            humidity = f"{s.humidity_sum / s.rows:.1f}"
            pressure = f"{s.pressure_sum / s.rows:.1f}"
        else:
            temps, humidity, pressure = "-", "-", "-"
        lines.append(
            f"| {device} | {s.rows} | {s.rejected} | {s.duplicates} | {_ms(s.first_ms)} "
            f"| {_ms(s.last_ms)} | {temps} | {humidity} | {pressure} |"
        )
    if len(lines) == 2:
        lines.append("| (no readings in this batch) | 0 | 0 | 0 | - | - | - | - | - |")
    return "\n".join(lines)


def summary_markdown(result: CurationResult) -> str:
    reasons = (
        ", ".join(f"{reason} {count}" for reason, count in result.rejected_by_reason.most_common())
        or "none"
    )
    other = (
        ", ".join(f"{day}: {n}" for day, n in sorted(result.rows_for_other_days.items())) or "none"
    )
    verdict = "holds" if result.checks["reconciliation"].passed else "**does not hold**"
    return (
        f"**Batch `{result.batch_id}`**: {result.objects} objects, {result.rows_read} rows read "
        f"for {result.day} -> {result.rows_curated} curated, {result.rows_quarantined} "
        f"quarantined, {result.duplicates_dropped} duplicates dropped "
        f"(reconciliation {verdict}).\n\n"
        f"Rejected by reason: {reasons}.  \n"
        f"Rows for other days (left for those days' runs): {other}.  \n"
        f"The day now holds {result.day_rows} curated rows in {result.day_files} files.\n\n"
        f"{device_table(result)}\n"
    )


@dg.asset(
    group_name="sensor_data",
    kinds={"python", "parquet"},
    partitions_def=daily_partitions,
    deps=[mock_sensor_uploads],
    check_specs=[
        dg.AssetCheckSpec(name, asset="curated_sensor_readings", description=text, blocking=True)
        for name, text in CHECKS.items()
    ],
    # Devices upload every hour; two hours without a new curated batch means something upstream
    # (devices, sensor, daemon) has stopped.
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(hours=6), warn_window=timedelta(hours=2)
    ),
)
def curated_sensor_readings(
    context: dg.AssetExecutionContext,
    config: CurateConfig,
    object_store: ObjectStore,
    ledger: Ledger,
) -> dg.MaterializeResult:
    """Sensor readings that passed validation, as Parquet under
    `warehouse/sensor_readings/dt=<day>/<batch>.parquet` (one file per batch), with every rejected
    row in `quarantine/sensor_readings/dt=<day>/<batch>.jsonl` (source object, line, reason, raw
    text). A batch's files are staged, checked and published only when the blocking checks pass.
    Re-running a curated batch changes nothing; a reading already curated for the day is counted
    as a duplicate, never written twice."""
    day = context.partition_key
    store = ledger.store()
    try:
        curation = curate_day(object_store, store, day, context.run.run_id, config.batch_id)
    except (BatchNotFound, LeaseHeld) as exc:
        raise dg.Failure(str(exc)) from exc
    result = curation.result
    if curation.registered:
        context.log.info(
            f"registered {curation.registered} landing objects the ledger had not seen"
        )
    if curation.already_curated:
        context.log.info(
            f"batch {result.batch_id} was already curated by an earlier run: nothing to do"
        )
    elif not result.passed:
        context.log.error(
            f"batch {result.batch_id} failed its checks; its files stay unpublished under "
            f"{', '.join(result.staged_keys) or 'staging/'} and the ledger marks it failed: "
            "re-execute this run after the fix (or launch the day by hand) to curate it again"
        )

    check_results = [
        dg.AssetCheckResult(
            check_name=name,
            passed=outcome.passed,
            description=outcome.description,
            metadata={
                k: dg.MetadataValue.json(v) if isinstance(v, dict | list) else v
                for k, v in outcome.metadata.items()
            },
        )
        for name, outcome in result.checks.items()
    ]
    metadata = {
        "dagster/row_count": result.day_rows,
        "batch_id": result.batch_id,
        "objects": result.objects,
        "rows_read": result.rows_read,
        "rows_curated": result.rows_curated,
        "rows_quarantined": result.rows_quarantined,
        "duplicates_dropped": result.duplicates_dropped,
        "rejected_by_reason": dg.MetadataValue.json(dict(result.rejected_by_reason)),
        "rows_for_other_days": dg.MetadataValue.json(dict(result.rows_for_other_days)),
        "curated_object": result.curated_key or _unpublished(result, "no new readings"),
        "quarantine_object": result.quarantine_key or _unpublished(result, "nothing rejected"),
        "location": object_store.table_location(curated_day_prefix(day)),
        "summary": dg.MetadataValue.md(summary_markdown(result)),
    }
    return dg.MaterializeResult(metadata=metadata, check_results=check_results)
