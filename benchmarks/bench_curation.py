"""Curation throughput against a plain pyarrow read-and-write of the same files, and one day of
mock data end to end.

`uv run python -m benchmarks bench_curation` (add `--no-cli` via PICLUSTER_BENCH_NO_CLI=1 to skip
the documented CLI commands). Writes the "Curation throughput" section of BENCHMARKS.md.
"""

import gzip
import io
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section

ROOT = Path(__file__).resolve().parent.parent
DAY = "2026-11-24"
DEVICES = int(os.environ.get("PICLUSTER_BENCH_DEVICES", "24"))
REPEATS = 3


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def pyarrow_read_write(store, keys: list[str]) -> int:
    """The practical limit: read every file with pyarrow's own readers and write Parquet.
    Tables of the same inferred schema are written together (devices differ in timestamp form)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    groups: dict[str, list] = {}
    rows = 0
    for key in keys:
        data = store.get(key)
        if key.endswith(".gz"):
            data = gzip.decompress(data)
        if ".csv" in key:
            table = pacsv.read_csv(io.BytesIO(data))
        else:
            table = pajson.read_json(io.BytesIO(data))
        rows += table.num_rows
        groups.setdefault(str(table.schema), []).append(table)
    for index, tables in enumerate(groups.values()):
        buffer = io.BytesIO()
        pq.write_table(pa.concat_tables(tables), buffer, compression="snappy")
        store.put(f"baseline/part-{index}.parquet", buffer.getvalue())
    return rows


def curate_all(store, workdir: Path, run: int):
    from data_assets.curation import curate_batch
    from data_assets.landing import sync_landing
    from resources.ledger import Batch, LedgerStore, batch_id_for

    for info in list(store.list("warehouse/")) + list(store.list("quarantine/")):
        store.delete(info.key)
    ledger = LedgerStore(f"sqlite:///{workdir / f'ledger-{run}.sqlite'}")
    try:
        sync_landing(store, ledger)
        pending = ledger.pending_for_day(DAY)
        batch = Batch(batch_id_for(DAY, pending), DAY, pending)
        ledger.save_batches([batch])
        seconds, result = _timed(lambda: curate_batch(store, ledger, batch))
        assert result.passed
        return seconds, result
    finally:
        ledger.dispose()


def end_to_end_in_process(workdir: Path, devices: int) -> tuple[float, int]:
    """Simulate -> landing sensor tick -> one curation per batch, as the daemon would run it."""
    from data_assets.curation import curate_batch
    from data_assets.simulator import FaultRates, simulate_day, write_day
    from resources.ledger import LedgerStore
    from resources.object_store import LocalObjectStore
    from sensors.landing import LandingCursor, evaluate_tick

    store = LocalObjectStore(root=str(workdir / "e2e-store"))
    ledger = LedgerStore(f"sqlite:///{workdir / 'e2e-ledger.sqlite'}")
    start = time.perf_counter()
    write_day(store, simulate_day(DAY, devices=devices, seed=7, faults=FaultRates.typical()))
    tick = evaluate_tick(store, ledger, LandingCursor())
    curated = 0
    for batch in tick.batches:
        result = curate_batch(store, ledger, batch)
        assert result.passed
        ledger.finish_batch(batch.batch_id, "bench", result.stats)
        curated += result.rows_curated
    seconds = time.perf_counter() - start
    ledger.dispose()
    return seconds, curated


def cli_end_to_end(workdir: Path) -> tuple[float, float, str]:
    doc = (ROOT / "docs" / "sensor-data.md").read_text()
    commands = [
        line
        for line in doc.splitlines()
        if line.startswith(("uv run python -m data_assets.cli simulate", "uv run dg launch"))
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PICLUSTER_", "DAGSTER_"))}
    env["PICLUSTER_HOME"] = str(workdir / "cli-home")
    start = time.perf_counter()
    for command in commands:
        subprocess.run(shlex.split(command), cwd=ROOT, env=env, check=True, capture_output=True)
    seconds = time.perf_counter() - start
    base, _ = _timed(
        lambda: subprocess.run(
            [sys.executable, "-c", "import dagster"], cwd=ROOT, env=env, check=True
        )
    )
    return seconds, base, " && ".join(f"`{c}`" for c in commands)


def main() -> None:
    from data_assets.simulator import FaultRates, simulate_day, write_day
    from resources.object_store import LocalObjectStore

    with tempfile.TemporaryDirectory(prefix="bench-curation-") as tmp:
        workdir = Path(tmp)
        clean = LocalObjectStore(root=str(workdir / "clean"))
        faulty = LocalObjectStore(root=str(workdir / "faulty"))
        write_day(clean, simulate_day(DAY, devices=DEVICES, seed=7))
        write_day(faulty, simulate_day(DAY, devices=DEVICES, seed=7, faults=FaultRates.typical()))
        keys = [i.key for i in clean.list("landing/")]

        base_times, ours_times, faulty_times = [], [], []
        rows = faulty_rows = 0
        for run in range(REPEATS):  # alternated, so load on the shared box hits both alike
            seconds, rows = _timed(lambda: pyarrow_read_write(clean, keys))
            base_times.append(seconds)
            seconds, result = curate_all(clean, workdir, run)
            assert result.rows_curated == rows
            ours_times.append(seconds)
            seconds, result = curate_all(faulty, workdir, 100 + run)
            faulty_rows = result.rows_read
            faulty_times.append(seconds)
        base, ours, bad = (statistics.median(t) for t in (base_times, ours_times, faulty_times))

        e2e_seconds, e2e_rows = end_to_end_in_process(workdir, 8)
        lines = [
            f"{DEVICES} simulated devices, one day: {len(keys)} files (JSON Lines and CSV, half "
            f"gzipped), {rows} rows. Median of {REPEATS} runs, alternated, on the folder store.",
            "",
            "| what | time | rows/s | ratio to pyarrow |",
            "| --- | ---: | ---: | ---: |",
            f"| plain pyarrow read (json/csv readers) + Parquet write (baseline) | {base:.2f} s "
            f"| {rows / base:,.0f} | 1.00 |",
            f"| curation: parse, validate, de-duplicate, write, read back for the checks "
            f"| {ours:.2f} s | {rows / ours:,.0f} | **{base / ours:.2f}** |",
            f"| curation of the same day with typical faults ({faulty_rows} rows read) "
            f"| {bad:.2f} s | {faulty_rows / bad:,.0f} | {faulty_rows / bad / (rows / base):.2f} |",
            "",
            "Ratio = curation rows/s divided by pyarrow rows/s (above 1: curation is faster). "
            "Curation validates row by row in Python, which pyarrow's readers cannot do (they "
            "reject a whole file for one bad line); on device-sized files (60 rows) their fixed "
            "cost per file weighs as much as our per-row work.",
            "",
            "One day of mock data end to end (8 devices, faults on):",
            "",
            "| what | time | ratio to the pyarrow baseline's time for 8 devices |",
            "| --- | ---: | ---: |",
            f"| in process: simulate + write 192 files, one landing-sensor tick, curate each "
            f"batch ({e2e_rows} rows curated) | {e2e_seconds:.2f} s "
            f"| {e2e_seconds / (base * 8 / DEVICES):.1f} |",
        ]
        if not os.environ.get("PICLUSTER_BENCH_NO_CLI"):
            cli_seconds, import_seconds, commands = cli_end_to_end(workdir)
            lines += [
                "",
                f"The documented CI commands ({commands}), local profile, fresh home, including "
                f"the warehouse tables on DuckDB: {cli_seconds:.1f} s, "
                f'{cli_seconds / import_seconds:.1f}x a bare `python -c "import dagster"` '
                f"({import_seconds:.2f} s) in the same run; the `dg launch` run starts one process "
                "per step, so most of it is interpreter and Dagster start-up.",
            ]
    write_section(
        "Curation throughput",
        "uv run python -m benchmarks bench_curation",
        "\n".join(lines),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
