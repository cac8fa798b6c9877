"""Curating one batch of landing objects for one day: parse, validate, de-duplicate, write.

No Dagster here (the asset in `curated.py` wraps it), so tests and benchmarks call it directly.

Output keys are named by the batch id, so running the same batch again overwrites the same two
objects and writes nothing twice:
    warehouse/sensor_readings/dt=<day>/<batch_id>.parquet
    quarantine/sensor_readings/dt=<day>/<batch_id>.jsonl
A reading already curated for the day by another batch (same device and time) is dropped and
counted as a duplicate: the first batch to curate a reading keeps it.

Write-audit-publish: both files are first written under `_staging/` of their own bucket
(`warehouse/_staging/...`, `quarantine/_staging/...`), the checks read them back together with
what the day already holds, and only a batch that passes is copied, inside its bucket, to the
keys above (which the warehouse tables read). A failed batch stays in `_staging/` for inspection
and is never visible to DuckDB or Trino. The caller must hold the day's lease (`curation_run.py`):
de-duplication reads the day and publishing writes it, and no other run may write in between.
"""

import io
import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from data_assets.layout import (
    CURATED_COLUMNS,
    curated_day_prefix,
    quarantine_day_prefix,
    staged,
)
from data_assets.readings import DEVICE_ID, RANGES, Reading, Rejection, parse_object
from resources.ledger import Batch, LedgerStore, ObjectVersion
from resources.object_store import ObjectNotFound, ObjectStore, ObjectUnreadable

STAT_KEYS = ("rows_read", "rows_curated", "rows_quarantined", "duplicates_dropped")


def curated_schema():
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "double": pa.float64(),
        "int64": pa.int64(),
        "timestamp[ms]": pa.timestamp("ms"),
    }
    return pa.schema([pa.field(name, types[t]) for name, t, _ in CURATED_COLUMNS])


@dataclass
class DeviceSummary:
    rows: int = 0
    rejected: int = 0
    duplicates: int = 0
    first_ms: int | None = None
    last_ms: int | None = None
    temp_min: float = float("inf")
    temp_max: float = float("-inf")
    temp_sum: float = 0.0
    humidity_sum: float = 0.0
    pressure_sum: float = 0.0


@dataclass
class CheckOutcome:
    passed: bool
    description: str
    metadata: dict = field(default_factory=dict)


@dataclass
class CurationResult:
    day: str
    batch_id: str
    objects: int = 0
    rows_read: int = 0
    rows_curated: int = 0
    rows_quarantined: int = 0
    duplicates_dropped: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    rows_for_other_days: Counter = field(default_factory=Counter)
    devices: dict[str, DeviceSummary] = field(default_factory=dict)
    curated_key: str | None = None  # published
    quarantine_key: str | None = None  # published
    staged_keys: list[str] = field(default_factory=list)  # left in staging by a failed batch
    day_rows: int = 0
    day_files: int = 0
    checks: dict[str, CheckOutcome] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in STAT_KEYS}

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks.values())


def _read_parquet(data: bytes, columns: list[str] | None = None):
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(data), columns=columns)


_DEVICE_FILE = re.compile(r"([A-Za-z0-9][A-Za-z0-9_.:-]{0,63}?)-\d{8}T\d{4}")


def _device_in_key(key: str) -> str | None:
    # Devices name files <device_id>-<YYYYMMDD>T<HHMM>Z...: a file with no readable row (empty,
    # undecodable) is still charged to its device.
    match = _DEVICE_FILE.match(key.rsplit("/", 1)[-1])
    return match[1] if match and DEVICE_ID.fullmatch(match[1]) else None


def _day_bounds_ms(day: str) -> tuple[int, int]:
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000)


def curated_key_for(day: str, batch_id: str) -> str:
    return f"{curated_day_prefix(day)}{batch_id}.parquet"


def quarantine_key_for(day: str, batch_id: str) -> str:
    return f"{quarantine_day_prefix(day)}{batch_id}.jsonl"


def curate_batch(
    store: ObjectStore,
    ledger: LedgerStore | None,
    batch: Batch,
    now: datetime | None = None,
    *,
    before_publish: Callable[[], None] | None = None,
    after_day_read: Callable[[], None] | None = None,
) -> CurationResult:
    """Curates `batch` for its day into staging, audits it (see `checks`) and publishes it when
    every check passes. `before_publish` runs just before publishing (the day lease's confirm:
    it raises to publish nothing); `after_day_read` right after the day's curated readings are
    read for de-duplication (tests force interleavings of two runs with it).

    Rows whose reading falls on another day are left for that day's run (recorded in the ledger
    as pending there). Rows without a usable timestamp are quarantined on the object's home day.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    now = now or datetime.now(UTC)
    day = batch.day
    result = CurationResult(day, batch.batch_id, objects=len(batch.objects))
    homes = ledger.home_days(batch.objects) if ledger is not None else {}
    candidates: list[Reading] = []
    quarantined: list[tuple[Rejection, str]] = []
    other_days: set[tuple[ObjectVersion, str]] = set()
    object_device: dict[str, str] = {}

    for version in sorted(batch.objects, key=lambda v: (v.key, v.etag)):
        home = homes.get(version, day)
        try:
            data = store.get(version.key)
        except ObjectNotFound:
            if home == day:
                quarantined.append(
                    (
                        Rejection(
                            version.key,
                            0,
                            "object_missing",
                            f"etag {version.etag} was handed over but the object is gone",
                            "",
                        ),
                        version.etag,
                    )
                )
            continue
        except ObjectUnreadable as exc:
            # Quarantined, not failed: one unreadable file must not hold up the others. Once it
            # is fixed its etag changes, so the sensor hands it over again as a new version.
            if home == day:
                rejection = Rejection(version.key, 0, "object_unreadable", str(exc), "")
                quarantined.append((rejection, version.etag))
            continue
        try:
            parsed = parse_object(version.key, data, now)
        except Exception as exc:  # a parser bug must not lose the file or fail the batch
            if home == day:
                text = data[:512].decode("utf-8", "backslashreplace")
                detail = f"whole file: {type(exc).__name__}: {exc}"
                quarantined.append(
                    (Rejection(version.key, 0, "unreadable_row", detail, text), version.etag)
                )
            continue
        for reading in parsed.readings:
            reading_day = reading.day
            if reading_day == day:
                candidates.append(reading)
                object_device.setdefault(version.key, reading.device_id)
            else:
                result.rows_for_other_days[reading_day] += 1
                other_days.add((version, reading_day))
        for rejection in parsed.rejections:
            target = rejection.day or home
            if target == day:
                quarantined.append((rejection, version.etag))
            else:
                result.rows_for_other_days[target] += 1
                other_days.add((version, target))
    result.rows_read += len(candidates) + len(quarantined)
    if ledger is not None and other_days:
        ledger.add_days(sorted(other_days, key=lambda e: (e[1], e[0].key, e[0].etag)))

    curated_key = curated_key_for(day, batch.batch_id)
    quarantine_key = quarantine_key_for(day, batch.batch_id)

    # Readings other batches already curated for this day, keyed (device, ms).
    seen: set[tuple[str, int]] = set()
    for info in store.list(curated_day_prefix(day)):
        if info.key == curated_key or not info.key.endswith(".parquet"):
            continue
        try:
            table = _read_parquet(store.get(info.key), ["device_id", "reading_ts"])
            idents = zip(
                table.column("device_id").to_pylist(),
                table.column("reading_ts").cast(pa.int64()).to_pylist(),
                strict=True,
            )
            seen.update(idents)
        except Exception:  # noqa: S112 - a foreign file: the schema check names it and fails
            continue
    if after_day_read is not None:
        after_day_read()

    kept: list[Reading] = []
    devices = result.devices
    for reading in candidates:
        summary = devices.setdefault(reading.device_id, DeviceSummary())
        ident = (reading.device_id, reading.reading_ms)
        if ident in seen:
            result.duplicates_dropped += 1
            summary.duplicates += 1
            continue
        seen.add(ident)
        kept.append(reading)
        summary.rows += 1
        if summary.first_ms is None or reading.reading_ms < summary.first_ms:
            summary.first_ms = reading.reading_ms
        if summary.last_ms is None or reading.reading_ms > summary.last_ms:
            summary.last_ms = reading.reading_ms
        summary.temp_min = min(summary.temp_min, reading.temperature_c)
        summary.temp_max = max(summary.temp_max, reading.temperature_c)
        summary.temp_sum += reading.temperature_c
        summary.humidity_sum += reading.humidity_pct
        summary.pressure_sum += reading.pressure_hpa
    for rejection, _ in quarantined:
        rejection.device_id = (
            rejection.device_id
            or object_device.get(rejection.source_object)
            or _device_in_key(rejection.source_object)
        )
        devices.setdefault(rejection.device_id or "(unknown)", DeviceSummary()).rejected += 1
        result.rejected_by_reason[rejection.reason] += 1
    result.rows_curated = len(kept)
    result.rows_quarantined = len(quarantined)

    # Sorted by device and time: small row groups per device read fast in Trino and DuckDB.
    kept.sort(key=lambda r: (r.device_id, r.reading_ms))
    ingested_ms = int(now.timestamp() * 1000)
    curated_bytes = quarantine_bytes = None
    if kept:
        table = pa.Table.from_arrays(
            [
                pa.array([r.device_id for r in kept], pa.string()),
                pa.array([r.reading_ms for r in kept], pa.timestamp("ms")),
                pa.array([r.temperature_c for r in kept], pa.float64()),
                pa.array([r.humidity_pct for r in kept], pa.float64()),
                pa.array([r.pressure_hpa for r in kept], pa.float64()),
                pa.array([r.source_object for r in kept], pa.string()),
                pa.array([r.source_line for r in kept], pa.int64()),
                pa.array([ingested_ms] * len(kept), pa.timestamp("ms")),
            ],
            schema=curated_schema(),
        )
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy")
        curated_bytes = buffer.getvalue()
    if quarantined:
        lines = []
        for rejection, etag in sorted(
            quarantined, key=lambda q: (q[0].source_object, q[0].source_line)
        ):
            record = rejection.record()
            record.update(
                {
                    "device_id": rejection.device_id,
                    "source_etag": etag,
                    "batch_id": batch.batch_id,
                    "dt": day,
                }
            )
            lines.append(json.dumps(record, ensure_ascii=False))
        # backslashreplace: a lone surrogate from a JSON line must not fail the whole batch.
        quarantine_bytes = ("\n".join(lines) + "\n").encode("utf-8", "backslashreplace")

    # Write: only under _staging/, which no table reads.
    outputs = ((curated_key, curated_bytes), (quarantine_key, quarantine_bytes))
    for key, data in outputs:
        if data is None:
            store.delete(staged(key))
        else:
            store.put(staged(key), data)
    # Audit: what is staged, read back, with what the day already holds.
    verify(
        store,
        result,
        staged(curated_key) if curated_bytes is not None else None,
        staged(quarantine_key) if quarantine_bytes is not None else None,
    )
    if not result.passed:
        result.staged_keys = [staged(key) for key, data in outputs if data is not None]
        return result
    # Publish: the audited object itself, copied inside its bucket to the key the tables read;
    # an empty output removes what a previous run of the batch published (its rows are now
    # another batch's).
    if before_publish is not None:
        before_publish()
    for key, data in outputs:
        if data is None:
            store.delete(key)
        else:
            store.copy(staged(key), key)
        store.delete(staged(key))
    result.curated_key = curated_key if curated_bytes is not None else None
    result.quarantine_key = quarantine_key if quarantine_bytes is not None else None
    return result


def verify(
    store: ObjectStore,
    result: CurationResult,
    staged_curated: str | None = None,
    staged_quarantine: str | None = None,
    *,
    as_published: bool = False,
) -> None:
    """Reads back the day as it will be once the batch is published (what the day holds, with
    the batch's staged file in place of anything it published before), or with `as_published`
    the day as it is, and fills `result.checks`: schema and physical ranges, uniqueness of
    (device_id, reading_ts), and the batch's reconciliation."""
    import pyarrow as pa
    import pyarrow.compute as pc

    day = result.day
    expected = curated_schema()
    low_ms, high_ms = _day_bounds_ms(day)
    schema_problems: list[str] = []
    range_problems: Counter = Counter()
    idents: list[tuple[str, int]] = []
    batch_rows = 0
    files = 0
    own = curated_key_for(day, result.batch_id)
    keys = [
        info.key
        for info in store.list(curated_day_prefix(day))
        if info.key.endswith(".parquet") and (as_published or info.key != own)
    ]
    if staged_curated is not None:
        keys.append(staged_curated)
    for key in keys:
        files += 1
        try:
            table = _read_parquet(store.get(key))
        except Exception as exc:
            schema_problems.append(f"{key}: not readable as Parquet: {exc}")
            continue
        if not table.schema.equals(expected, check_metadata=False):
            schema_problems.append(f"{key}: {table.schema.to_string(show_schema_metadata=False)}")
            continue
        if key == staged_curated:
            batch_rows = table.num_rows
        for name in expected.names:
            if name != "source_line" and table.column(name).null_count:
                range_problems[f"{name} is null"] += table.column(name).null_count
        for measure, (low, high) in RANGES.items():
            column = table.column(measure)
            bad = pc.sum(pc.or_(pc.less(column, low), pc.greater(column, high))).as_py() or 0
            if bad:
                range_problems[f"{measure} outside [{low:g}, {high:g}]"] += bad
        ts = table.column("reading_ts").cast(pa.int64())
        outside = pc.sum(pc.or_(pc.less(ts, low_ms), pc.greater_equal(ts, high_ms))).as_py() or 0
        if outside:
            range_problems[f"reading_ts outside {day}"] += outside
        idents.extend(zip(table.column("device_id").to_pylist(), ts.to_pylist(), strict=True))
    result.day_rows = len(idents)
    result.day_files = files
    result.checks["schema_and_ranges"] = CheckOutcome(
        not schema_problems and not range_problems,
        "every curated file has the curated schema and every value its physical range"
        if not schema_problems and not range_problems
        else "curated files break the schema or the physical ranges",
        {
            "files_checked": files,
            "rows_checked": len(idents),
            "schema_problems": schema_problems[:10],
            "range_problems": dict(range_problems),
        },
    )
    duplicates = len(idents) - len(set(idents))
    result.checks["unique_device_reading_ts"] = CheckOutcome(
        duplicates == 0,
        f"{duplicates} duplicate (device_id, reading_ts) pairs in dt={day}",
        {"rows_checked": len(idents), "duplicate_pairs": duplicates},
    )
    stored_quarantine = 0
    if staged_quarantine is not None:
        stored_quarantine = sum(1 for line in store.get(staged_quarantine).splitlines() if line)
    balance = batch_rows + stored_quarantine + result.duplicates_dropped
    result.checks["reconciliation"] = CheckOutcome(
        balance == result.rows_read,
        f"rows read {result.rows_read} = curated {batch_rows} + quarantined {stored_quarantine} "
        f"+ duplicates dropped {result.duplicates_dropped}"
        + ("" if balance == result.rows_read else f" (off by {result.rows_read - balance})"),
        {
            "rows_read": result.rows_read,
            "rows_curated_stored": batch_rows,
            "rows_quarantined_stored": stored_quarantine,
            "duplicates_dropped": result.duplicates_dropped,
        },
    )
