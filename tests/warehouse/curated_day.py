"""Curated readings written the way curation writes them, for the warehouse tests.

`write_day` lays a day of rows out as `warehouse/sensor_readings/dt=<day>/<batch>.parquet` (and
quarantine records as JSON Lines) through any `ObjectStore`, so the same bytes can go to a folder
and to the S3 bucket. The rows are synthetic: a smooth daily cycle plus seeded noise, with gaps.
"""

import json
import math
import random
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from data_assets import layout


def synthetic_day(
    day: str,
    devices: Sequence[str] = ("pi-node-1", "pi-node-2", "pi-node-3"),
    *,
    seed: int = 7,
    silent_from: dict[str, str] | None = None,
) -> list[dict]:
    """One reading a minute per device. `silent_from={device: 'HH:MM'}` stops a device then."""
    rng = random.Random(seed)
    start = datetime.combine(date.fromisoformat(day), datetime.min.time())
    rows = []
    for n, device in enumerate(devices):
        stop = None
        if silent_from and device in silent_from:
            hh, mm = map(int, silent_from[device].split(":"))
            stop = start + timedelta(hours=hh, minutes=mm)
        for minute in range(24 * 60):
            ts = start + timedelta(minutes=minute)
            if stop is not None and ts >= stop:
                break
            phase = 2 * math.pi * (minute / 1440.0)
            rows.append(
                {
                    "device_id": device,
                    "reading_ts": ts,
                    "temperature_c": 18 + n + 4 * math.sin(phase) + rng.gauss(0, 0.2),
                    "humidity_pct": 50 - 10 * math.sin(phase) + rng.gauss(0, 1),
                    "pressure_hpa": 1013 + rng.gauss(0, 0.5),
                    "source_object": f"landing/{device}/{day}.jsonl",
                    "source_line": minute + 1,
                    "ingested_at": start + timedelta(days=1),
                }
            )
    return rows


def parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.type_for_alias(t)) for name, t, _ in layout.CURATED_COLUMNS])
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


def write_day(store, day: str, rows: list[dict], *, batch: str = "batch-0001", quarantine=()):
    """Writes the day's rows (one Parquet file) and quarantine records (one JSON Lines file)."""
    store.put(f"{layout.curated_day_prefix(day)}{batch}.parquet", parquet_bytes(rows))
    if quarantine:
        text = "".join(json.dumps(record) + "\n" for record in quarantine)
        store.put(f"{layout.quarantine_day_prefix(day)}{batch}.jsonl", text.encode())


GOOD_LINE = (
    '{{"device_id":"env-01","reading_ts":"{day}T10:{m:02d}:00Z","temperature_c":21.5,'
    '"humidity_pct":45.0,"pressure_hpa":1013.2}}\n'
)
HAND_COPIED = "hand-copied"


def a_day_whose_next_batch_fails(store, day: str) -> None:
    """Three good readings and one malformed line in `landing/`, and in the curated day a
    hand-copied file with the curated schema but a temperature no sensor gives (500 °C): the
    next batch of the day fails its blocking range check."""
    rogue = synthetic_day(day, devices=("pi-node-9",))[:1]
    rogue[0]["temperature_c"] = 500.0
    write_day(store, day, rogue, batch=HAND_COPIED)
    text = "".join(GOOD_LINE.format(day=day, m=m) for m in range(3)) + "{not json\n"
    store.put(
        f"{layout.LANDING_PREFIX}{day}/10/env-01-{day.replace('-', '')}T1000Z.jsonl", text.encode()
    )


def remove_the_hand_copied_file(store, day: str) -> None:
    store.delete(f"{layout.curated_day_prefix(day)}{HAND_COPIED}.parquet")
