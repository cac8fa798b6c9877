"""The local warehouse's day rebuild against a hand-written DuckDB query over the same files.

`uv run python -m benchmarks bench_warehouse`. Writes the "Warehouse tables (DuckDB)" section of
BENCHMARKS.md.

Baseline: the hourly aggregation written directly in DuckDB's dialect over `read_parquet` of the
day's folder, results fetched (no view, no translation, no table). Ours: `build_hourly` and
`build_device_health` as the assets run them (sqlglot translation of the Trino-dialect SQL, the
view over every day, DELETE + INSERT into the aggregate table in one transaction, the count).
"""

import os
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from benchmarks.report import write_section

DEVICES = int(os.environ.get("PICLUSTER_BENCH_DEVICES", "24"))
DAYS = 7
REPEATS = 7

BASELINE_SQL = """
SELECT device_id, date_trunc('hour', reading_ts) AS hour_ts, count(*) AS readings,
    min(temperature_c), avg(temperature_c), max(temperature_c),
    min(humidity_pct), avg(humidity_pct), max(humidity_pct),
    min(pressure_hpa), avg(pressure_hpa), max(pressure_hpa)
FROM read_parquet(?)
GROUP BY device_id, date_trunc('hour', reading_ts)
"""


def _median_time(fn) -> float:
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    import duckdb

    from data_assets import layout
    from data_assets.warehouse_tables import (
        QUARANTINE,
        READINGS,
        build_device_health,
        build_hourly,
        ensure_tables,
        health_as_of,
        sql,
    )
    from resources.object_store import LocalObjectStore
    from resources.warehouse import DuckDBWarehouse, translate
    from tests.warehouse.curated_day import synthetic_day, write_day

    devices = [f"env-{i:02d}" for i in range(1, DEVICES + 1)]
    first = date(2026, 3, 1)
    days = [(first + timedelta(days=n)).isoformat() for n in range(DAYS)]
    day = days[-1]
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalObjectStore(root=str(Path(tmp) / "object-store"))
        rows_per_day = 0
        for n, d in enumerate(days):
            rows = synthetic_day(d, devices, seed=n)
            rows_per_day = len(rows)
            write_day(store, d, rows)
        day_glob = str(Path(store.root) / layout.curated_day_prefix(day) / "*.parquet")

        raw = duckdb.connect()
        baseline = _median_time(lambda: raw.execute(BASELINE_SQL, [day_glob]).fetchall())
        raw.close()

        wh = DuckDBWarehouse(path=str(Path(tmp) / "warehouse.duckdb"), object_store_root=store.root)
        with wh.session():
            ensure_tables(wh)
            for d in days:
                wh.register_partition(READINGS, d)
                wh.register_partition(QUARANTINE, d)
            hourly = _median_time(lambda: build_hourly(wh, day))
            as_of = health_as_of(day)
            health = _median_time(lambda: build_device_health(wh, day, as_of=as_of))
            hourly_rows = build_hourly(wh, day)

        text = sql("device_health")

        def translate_uncached():
            translate.cache_clear()
            translate(text, "duckdb", "sensors")

        translation = _median_time(translate_uncached)

    table = [
        ("hand-written DuckDB hourly aggregation of the day's files, fetched (baseline)", baseline),
        (f"`build_hourly`: translated SQL, DELETE + INSERT {hourly_rows:,} rows, count", hourly),
        ("`build_device_health`: 7-day look-back for silent devices, quarantine join", health),
        ("sqlglot translation of `device_health.sql`, first time (then cached)", translation),
    ]
    lines = "\n".join(
        f"| {what} | {secs * 1000:.1f} ms | {secs / baseline:.2f} |" for what, secs in table
    )
    body = f"""
{DEVICES} devices, one reading a minute, {DAYS} days of curated Parquet in the local object
store ({rows_per_day:,} rows a day); the day rebuilt is the last. Median of {REPEATS} runs each.

| what | median | ratio to baseline |
| --- | ---: | ---: |
{lines}

The SQL is written once in Trino's dialect; a statement is translated once per process and
cached, so only a step's first use of it pays the translation.
"""
    write_section("Warehouse tables (DuckDB)", "uv run python -m benchmarks bench_warehouse", body)
    print(body)


if __name__ == "__main__":
    main()
