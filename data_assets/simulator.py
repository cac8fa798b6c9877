"""Mock sensor devices: one day of the files BME280-class devices upload to `landing/`.

`simulate_day` is a pure function of its arguments (same seed, same bytes). Each device takes one
reading a minute and uploads one file an hour, as JSON Lines or CSV, gzipped or not, with a daily
temperature cycle (coolest before dawn, warmest mid-afternoon), humidity moving against it, a slow
pressure swing, and sensor noise. Fault knobs inject what real devices get wrong; the manifest
lists every injected fault with the line it is on and the rejection reason curation must give it,
so tests (and a curious user) can reconcile the quarantine against it.

The asset `mock_sensor_uploads` and `python -m data_assets.cli simulate` both call `write_day`.
"""

import gzip
import json
import math
import random
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone

import dagster as dg

from data_assets.layout import LANDING_PREFIX
from data_assets.partitions import daily_partitions
from resources.object_store import ObjectStore

# Beside the curated data, not in `landing`: the landing sensor would take it for an upload.
MANIFEST_PREFIX = "warehouse/_simulator/manifests/"
FORMATS = ("jsonl", "csv")
CSV_HEADER = "device_id,reading_ts,temperature_c,humidity_pct,pressure_hpa"
TIMESTAMP_FORMS = ("iso_utc", "iso_offset", "epoch_seconds")
_PLUS_ONE = timezone(timedelta(hours=1))


@dataclass(frozen=True)
class FaultRates:
    """Per-line rates (malformed .. duplicate) and per-file rates (late, empty), each 0..1."""

    malformed: float = 0.0
    missing_field: float = 0.0
    extra_field: float = 0.0
    out_of_range: float = 0.0
    duplicate: float = 0.0
    late_file: float = 0.0
    empty_file: float = 0.0

    @classmethod
    def typical(cls) -> "FaultRates":
        """What `--faults` injects: a few bad lines per device-day, some late and empty files."""
        return cls(
            malformed=0.003,
            missing_field=0.002,
            extra_field=0.002,
            out_of_range=0.003,
            duplicate=0.004,
            late_file=0.05,
            empty_file=0.02,
        )

    def validate(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault rate {name}={value} is not valid; expected 0..1")
        line_total = self.malformed + self.missing_field + self.extra_field + self.out_of_range
        if line_total + self.duplicate > 1.0:
            raise ValueError("the per-line fault rates add up to more than 1")


@dataclass(frozen=True)
class Upload:
    key: str
    data: bytes
    late: bool  # uploaded after files holding newer readings


@dataclass
class SimulatedDay:
    day: str
    uploads: list[Upload]  # in upload order
    manifest: dict = field(default_factory=dict)


def device_ids(count: int) -> list[str]:
    return [f"env-{i:02d}" for i in range(1, count + 1)]


def manifest_key(day: str) -> str:
    return f"{MANIFEST_PREFIX}dt={day}.json"


def _format_ts(ts: datetime, form: str) -> str | int:
    if form == "epoch_seconds":
        return int(ts.timestamp())
    if form == "iso_offset":
        return ts.astimezone(_PLUS_ONE).isoformat()
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _line(fmt: str, values: dict) -> str:
    if fmt == "jsonl":
        return json.dumps(values, separators=(",", ":"))
    return ",".join(str(values[k]) for k in values)


def simulate_day(
    day: str,
    devices: int = 8,
    seed: int = 7,
    formats: tuple[str, ...] | list[str] = FORMATS,
    gzip_files: bool = True,
    faults: FaultRates | None = None,
) -> SimulatedDay:
    """One day of uploads for `devices` devices, deterministic for (day, devices, seed, ...)."""
    faults = faults or FaultRates()
    faults.validate()
    start = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
    if devices < 1:
        raise ValueError(f"devices={devices} is not valid; expected at least 1")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats={list(formats)} is not valid; expected some of {FORMATS}")

    on_time: list[tuple[datetime, str, Upload]] = []
    late: list[tuple[datetime, str, Upload]] = []
    injected: list[dict] = []
    files: list[dict] = []
    expected_reasons: dict[str, int] = {}
    totals = {"rows_read": 0, "good_rows": 0, "duplicates": 0}

    def expect(reason: str, key: str, line: int, fault: str) -> None:
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
        injected.append({"key": key, "line": line, "fault": fault, "reason": reason})

    for index, device in enumerate(device_ids(devices)):
        rng = random.Random(f"{seed}:{day}:{device}")  # noqa: S311 - mock data, not secrets
        fmt = formats[index % len(formats)]
        compressed = gzip_files and index % 2 == 1
        ts_form = TIMESTAMP_FORMS[index % len(TIMESTAMP_FORMS)] if fmt == "jsonl" else "iso_utc"
        base_temp = rng.uniform(17.0, 23.0)
        amplitude = rng.uniform(2.0, 5.0)
        base_humidity = rng.uniform(40.0, 60.0)
        base_pressure = rng.uniform(1005.0, 1022.0)
        pressure_phase = rng.uniform(0, 2 * math.pi)
        offset_s = (index * 7) % 60  # each device's clock ticks at its own second
        drift = 0.0
        for hour in range(24):
            # Named by the hour the file covers, time first: uploads arrive in key order, so
            # the landing sensor's cursor sees them; a late file sorts before it.
            key = (
                f"{LANDING_PREFIX}{day}/{hour:02d}/{device}-{start:%Y%m%d}T{hour:02d}00Z.{fmt}"
                + (".gz" if compressed else "")
            )
            lines: list[str] = [CSV_HEADER] if fmt == "csv" else []
            duplicates: list[str] = []
            empty = rng.random() < faults.empty_file
            is_late = rng.random() < faults.late_file
            for minute in range(60):
                ts = start + timedelta(hours=hour, minutes=minute, seconds=offset_s)
                hours = (ts - start).total_seconds() / 3600
                # Coolest around 05:00, warmest around 15:00 (UTC here stands in for local time).
                cycle = -math.cos((hours - 3.0) / 24 * 2 * math.pi)
                temp = base_temp + amplitude * cycle + rng.gauss(0, 0.15)
                humidity = base_humidity - 2.2 * amplitude * cycle + rng.gauss(0, 0.8)
                drift += rng.gauss(0, 0.02)
                pressure = (
                    base_pressure
                    + 2.5 * math.sin(hours / 24 * 2 * math.pi + pressure_phase)
                    + drift
                    + rng.gauss(0, 0.05)
                )
                values = {
                    "device_id": device,
                    "reading_ts": _format_ts(ts, ts_form),
                    "temperature_c": round(temp, 2),
                    "humidity_pct": round(min(max(humidity, 1.0), 99.0), 1),
                    "pressure_hpa": round(pressure, 2),
                }
                if empty:
                    rng.random()  # keep the stream aligned with non-empty files
                    continue
                line_no = len(lines) + 1
                r = rng.random()
                bands = (
                    ("malformed", faults.malformed),
                    ("missing_field", faults.missing_field),
                    ("extra_field", faults.extra_field),
                    ("out_of_range", faults.out_of_range),
                    ("duplicate", faults.duplicate),
                )
                fault = None
                for name, rate in bands:
                    if r < rate:
                        fault = name
                        break
                    r -= rate
                if fault == "malformed":
                    text = _line(fmt, values)
                    # JSON cut in half; CSV cut after the second value: both unreadable.
                    text = (
                        text[: len(text) // 2] if fmt == "jsonl" else ",".join(text.split(",")[:2])
                    )
                    lines.append(text)
                    expect(
                        "malformed_json" if fmt == "jsonl" else "wrong_field_count",
                        key,
                        line_no,
                        fault,
                    )
                elif fault == "missing_field":
                    dropped = rng.choice(list(values))
                    del values[dropped]
                    lines.append(_line(fmt, values))
                    expect(
                        "missing_field" if fmt == "jsonl" else "wrong_field_count",
                        key,
                        line_no,
                        f"{fault}:{dropped}",
                    )
                elif fault == "extra_field":
                    values["firmware"] = "1.4.2"
                    lines.append(_line(fmt, values))
                    expect(
                        "unexpected_field" if fmt == "jsonl" else "wrong_field_count",
                        key,
                        line_no,
                        fault,
                    )
                elif fault == "out_of_range":
                    measure, bad = rng.choice(
                        [("temperature_c", 150.0), ("humidity_pct", 130.0), ("pressure_hpa", 5.0)]
                    )
                    values[measure] = bad
                    lines.append(_line(fmt, values))
                    expect("out_of_range", key, line_no, f"{fault}:{measure}")
                else:
                    text = _line(fmt, values)
                    lines.append(text)
                    totals["good_rows"] += 1
                    if fault == "duplicate":
                        # The device re-sends a reading it was not sure had arrived.
                        duplicates.append(text)
            for text in duplicates:
                lines.append(text)
                totals["duplicates"] += 1
                injected.append(
                    {"key": key, "line": len(lines), "fault": "duplicate", "reason": None}
                )
            if empty:
                data = b""
                totals["rows_read"] += 1
                expect("empty_file", key, 0, "empty_file")
            else:
                data = ("\n".join(lines) + "\n").encode()
                totals["rows_read"] += len(lines) - (1 if fmt == "csv" else 0)
            if compressed:
                data = gzip.compress(data, mtime=0)  # mtime=0: same bytes for the same seed
            upload_at = start + timedelta(hours=hour + 1, seconds=rng.randint(5, 300))
            upload = Upload(key, data, is_late)
            (late if is_late else on_time).append((upload_at, key, upload))
            files.append(
                {
                    "key": key,
                    "device_id": device,
                    "format": fmt,
                    "gzip": compressed,
                    "timestamp_form": ts_form,
                    "late": is_late,
                    "empty": empty,
                    "bytes": len(data),
                }
            )

    uploads = [u for _, _, u in sorted(on_time)] + [u for _, _, u in sorted(late)]
    manifest = {
        "day": day,
        "devices": devices,
        "seed": seed,
        "formats": list(formats),
        "gzip": gzip_files,
        "faults": asdict(faults),
        "files": files,
        "injected": injected,
        "expected": {
            "rows_read": totals["rows_read"],
            "rows_curated": totals["good_rows"],
            "rows_quarantined": sum(expected_reasons.values()),
            "duplicates_dropped": totals["duplicates"],
            "rejected_by_reason": dict(sorted(expected_reasons.items())),
        },
    }
    return SimulatedDay(day, uploads, manifest)


def write_day(store: ObjectStore, simulated: SimulatedDay, overwrite: bool = True) -> dict:
    """Uploads the day's files in upload order (late files last) and then its manifest.

    With `overwrite=False` a day that already has a manifest is left as it is. Returns the
    manifest that describes what is in the store.
    """
    key = manifest_key(simulated.day)
    if not overwrite:
        existing = store.stat(key)
        if existing is not None:
            manifest = json.loads(store.get(key))
            manifest["kept_existing"] = True
            return manifest
    for upload in simulated.uploads:
        store.put(upload.key, upload.data)
    manifest = dict(simulated.manifest)
    manifest["written_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    store.put(key, json.dumps(manifest, indent=1).encode())
    return manifest


class MockSensorConfig(dg.Config):
    """What the simulated devices upload for the partition's day."""

    devices: int = 8
    seed: int = 7
    formats: list[str] = list(FORMATS)
    gzip: bool = True
    faults: bool = True
    malformed_rate: float = FaultRates.typical().malformed
    missing_field_rate: float = FaultRates.typical().missing_field
    extra_field_rate: float = FaultRates.typical().extra_field
    out_of_range_rate: float = FaultRates.typical().out_of_range
    duplicate_rate: float = FaultRates.typical().duplicate
    late_file_rate: float = FaultRates.typical().late_file
    empty_file_rate: float = FaultRates.typical().empty_file
    overwrite: bool = False
    """Write the day again even if mock data (a manifest) for it is already in the store."""

    def fault_rates(self) -> FaultRates:
        if not self.faults:
            return FaultRates()
        return FaultRates(
            malformed=self.malformed_rate,
            missing_field=self.missing_field_rate,
            extra_field=self.extra_field_rate,
            out_of_range=self.out_of_range_rate,
            duplicate=self.duplicate_rate,
            late_file=self.late_file_rate,
            empty_file=self.empty_file_rate,
        )


def manifest_markdown(manifest: dict) -> str:
    expected = manifest["expected"]
    reasons = ", ".join(f"{r} {n}" for r, n in expected["rejected_by_reason"].items()) or "none"
    late = sum(1 for f in manifest["files"] if f["late"])
    empty = sum(1 for f in manifest["files"] if f["empty"])
    kept = (
        "Mock data for this day was already in the store; kept it (set `overwrite: true` to "
        "write it again).\n\n"
        if manifest.get("kept_existing")
        else ""
    )
    return (
        f"{kept}**{manifest['day']}**: {manifest['devices']} devices, seed {manifest['seed']}, "
        f"{len(manifest['files'])} files ({late} uploaded late, {empty} empty).\n\n"
        f"Expected after curation: {expected['rows_read']} rows read -> "
        f"{expected['rows_curated']} curated, {expected['rows_quarantined']} quarantined "
        f"({reasons}), {expected['duplicates_dropped']} duplicates dropped."
    )


@dg.asset(
    group_name="sensor_data",
    kinds={"python"},
    partitions_def=daily_partitions,
)
def mock_sensor_uploads(
    context: dg.AssetExecutionContext, config: MockSensorConfig, object_store: ObjectStore
) -> dg.MaterializeResult:
    """Simulated device uploads in the `landing` bucket for the partition's day (JSON Lines
    and CSV, some gzipped, with injected faults), plus a manifest of every injected fault under
    `warehouse/_simulator/manifests/`. Real devices write to the same bucket; this feeds the
    local demo and CI."""
    day = context.partition_key
    simulated = simulate_day(
        day,
        devices=config.devices,
        seed=config.seed,
        formats=config.formats,
        gzip_files=config.gzip,
        faults=config.fault_rates(),
    )
    manifest = write_day(object_store, simulated, overwrite=config.overwrite)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": manifest["expected"]["rows_read"],
            "files": len(manifest["files"]),
            "manifest": manifest_key(day),
            "expected": dg.MetadataValue.json(manifest["expected"]),
            "summary": dg.MetadataValue.md(manifest_markdown(manifest)),
        }
    )
