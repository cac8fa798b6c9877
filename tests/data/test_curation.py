"""Curating batches: what lands in the curated table and the quarantine, on the folder store with
SQLite and on real SeaweedFS with real PostgreSQL."""

import gzip
import io
import json
import random

import pyarrow.parquet as pq

from data_assets.curation import curate_batch
from data_assets.landing import sync_landing
from data_assets.layout import curated_day_prefix, quarantine_day_prefix
from data_assets.simulator import FaultRates, simulate_day, write_day
from resources.ledger import Batch, batch_id_for

DAY = "2026-11-24"
GOOD = (
    '{{"device_id":"{d}","reading_ts":"{ts}","temperature_c":21.5,"humidity_pct":45.0,'
    '"pressure_hpa":1013.2}}'
)


def pending_batch(store, ledger, day=DAY) -> Batch:
    sync_landing(store, ledger)
    pending = ledger.pending_for_day(day)
    batch = Batch(batch_id_for(day, pending), day, pending)
    ledger.save_batches([batch])
    return batch


def curate_pending(store, ledger, day=DAY):
    batch = pending_batch(store, ledger, day)
    result = curate_batch(store, ledger, batch)
    assert result.passed, {k: c.description for k, c in result.checks.items()}
    ledger.finish_batch(batch.batch_id, "test-run", result.stats)
    return result


def curated_rows(store, day=DAY) -> list[dict]:
    rows = []
    for info in store.list(curated_day_prefix(day)):
        rows += pq.read_table(io.BytesIO(store.get(info.key))).to_pylist()
    return rows


def quarantine_records(store, day=DAY) -> list[dict]:
    records = []
    for info in store.list(quarantine_day_prefix(day)):
        records += [json.loads(line) for line in store.get(info.key).splitlines()]
    return records


def test_a_faulty_day_reconciles_with_what_the_simulator_injected(store, ledger):
    simulated = simulate_day(DAY, devices=4, seed=11, faults=FaultRates.typical())
    manifest = write_day(store, simulated)
    result = curate_pending(store, ledger)
    expected = manifest["expected"]
    assert result.stats == {k: expected[k] for k in result.stats}
    assert dict(result.rejected_by_reason) == expected["rejected_by_reason"]
    # Every injected bad row is in quarantine with the reason the manifest predicts.
    records = quarantine_records(store)
    got = sorted((r["source_object"], r["source_line"], r["reason"]) for r in records)
    want = sorted((f["key"], f["line"], f["reason"]) for f in manifest["injected"] if f["reason"])
    assert got == want
    assert all(r["raw"] is not None and r["batch_id"] == result.batch_id for r in records)
    rows = curated_rows(store)
    assert len(rows) == expected["rows_curated"] == result.day_rows
    assert len({(r["device_id"], r["reading_ts"]) for r in rows}) == len(rows)
    assert set(result.devices) == {"env-01", "env-02", "env-03", "env-04"}


def test_re_running_the_same_batch_writes_nothing_twice(local_store, sqlite_ledger):
    write_day(local_store, simulate_day(DAY, devices=2, seed=3, faults=FaultRates.typical()))
    batch = pending_batch(local_store, sqlite_ledger)
    first = curate_batch(local_store, sqlite_ledger, batch)
    keys_before = [i.key for i in local_store.list("warehouse/")]
    again = curate_batch(local_store, sqlite_ledger, batch)
    assert again.passed
    assert [i.key for i in local_store.list("warehouse/")] == keys_before
    assert again.stats == first.stats
    assert len(curated_rows(local_store)) == first.rows_curated
    assert len(quarantine_records(local_store)) == first.rows_quarantined


def test_reuploads_never_double_a_reading(store, ledger):
    lines = [GOOD.format(d="env-01", ts=f"{DAY}T10:{m:02d}:00Z") for m in range(10)]
    store.put(f"landing/env-01/{DAY}/a.jsonl", ("\n".join(lines) + "\n").encode())
    assert curate_pending(store, ledger).rows_curated == 10
    # Same key, new content (two more readings): a new version; old readings are duplicates.
    more = lines + [GOOD.format(d="env-01", ts=f"{DAY}T10:{m:02d}:00Z") for m in (10, 11)]
    store.put(f"landing/env-01/{DAY}/a.jsonl", ("\n".join(more) + "\n").encode())
    second = curate_pending(store, ledger)
    assert (second.rows_curated, second.duplicates_dropped) == (2, 10)
    # Same content under a new key.
    store.put(f"landing/env-01/{DAY}/a-copy.jsonl", ("\n".join(more) + "\n").encode())
    third = curate_pending(store, ledger)
    assert (third.rows_curated, third.duplicates_dropped) == (0, 12)
    assert len(curated_rows(store)) == 12


def test_a_file_spanning_midnight_feeds_both_days(local_store, sqlite_ledger):
    times = [f"{DAY}T23:58:00Z", f"{DAY}T23:59:00Z", "2026-11-25T00:00:00Z", "2026-11-25T00:01:00Z"]
    text = "\n".join(GOOD.format(d="env-03", ts=t) for t in times) + "\n{broken\n"
    local_store.put(f"landing/env-03/{DAY}/env-03-2300.jsonl", text.encode())
    first = curate_pending(local_store, sqlite_ledger)
    # The broken line has no time: it goes with the day the key names.
    assert (first.rows_read, first.rows_curated, first.rows_quarantined) == (3, 2, 1)
    assert dict(first.rows_for_other_days) == {"2026-11-25": 2}
    assert sqlite_ledger.pending_for_day("2026-11-25") != []
    second = curate_pending(local_store, sqlite_ledger, "2026-11-25")
    assert (second.rows_read, second.rows_curated, second.rows_quarantined) == (2, 2, 0)
    assert dict(second.rows_for_other_days) == {DAY: 3}
    assert len(curated_rows(local_store, "2026-11-25")) == 2


def test_an_object_deleted_after_hand_over_is_recorded_not_lost(local_store, sqlite_ledger):
    local_store.put(f"landing/env-01/{DAY}/gone.jsonl", b"{}\n")
    batch = pending_batch(local_store, sqlite_ledger)
    local_store.delete(f"landing/env-01/{DAY}/gone.jsonl")
    result = curate_batch(local_store, sqlite_ledger, batch)
    assert result.passed
    assert [r["reason"] for r in quarantine_records(local_store)] == ["object_missing"]


def _unseen_bad_files(rng: random.Random) -> dict[str, bytes]:
    good = GOOD.format(d="env-09", ts=f"{DAY}T12:00:00Z")
    files = {
        "random-bytes.jsonl": rng.randbytes(2000),
        "truncated.jsonl.gz": gzip.compress(((good + "\n") * 50).encode())[:-30],
        "utf16.csv": "device_id,reading_ts\nenv-09,x\n".encode("utf-16"),
        "array.json": b'[{"device_id": "env-09"}]\n',
        "pretty.json": json.dumps(json.loads(good), indent=2).encode(),
        "only-header.csv": b"device_id,reading_ts,temperature_c,humidity_pct,pressure_hpa\n",
        "mixed.jsonl": "\n".join(
            [good, "", "null", '"text"', "{}", good.replace("12:00", "12:01"), "\t", good]
        ).encode(),
        "quoted.csv": (
            b"device_id,reading_ts,temperature_c,humidity_pct,pressure_hpa\n"
            b'env-09,"2026-11-24T12:05:00Z","21,5",45,1013\n'
            b'env-09,"2026-11-24T12:06:00Z,21.5,45,1013\n'
            b"env-09,2026-11-24T12:07:00Z,21.5,45,1013\n"
        ),
        "deep.jsonl": b"[" * 100_000 + b"\n" + (good.replace("12:00", "12:10") + "\n").encode(),
        "no-newline-at-end.jsonl": good.replace("12:00", "12:20").encode(),
        "latin1.csv": "device_id,reading_ts,temperature_c,humidity_pct,pressure_hpa\n"
        "env-09,2026-11-24T12:30:00Z,21.5,45,1013\nenv-\xe9,2026-11-24T12:31:00Z,1,1,1000\n".encode(
            "latin-1"
        ),
        "huge-values.jsonl": good.replace("21.5", "1e400").encode(),
    }
    return {f"landing/env-09/{DAY}/{name}": data for name, data in files.items()}


def test_unseen_bad_files_never_crash_and_every_row_is_accounted_for(store, ledger):
    files = _unseen_bad_files(random.Random(42))
    for key, data in files.items():
        store.put(key, data)
    result = curate_pending(store, ledger)
    rows = curated_rows(store)
    records = quarantine_records(store)
    # Each file appears in the output: none is skipped silently.
    seen = {r["source_object"] for r in rows} | {r["source_object"] for r in records}
    assert seen == set(files)
    # No line is both curated and quarantined.
    curated_lines = {(r["source_object"], r["source_line"]) for r in rows}
    quarantined_lines = {(r["source_object"], r["source_line"]) for r in records}
    assert not curated_lines & quarantined_lines
    assert result.rows_read == len(rows) + len(records) + result.duplicates_dropped
    assert all(r["reason"] and r["source_object"] for r in records)
    by_file = {k.rsplit("/", 1)[-1]: [] for k in files}
    for r in records:
        by_file[r["source_object"].rsplit("/", 1)[-1]].append(r["reason"])
    # 2,000 seeded random bytes hold no UTF-8 line: one record for the whole file.
    assert by_file["random-bytes.jsonl"] == ["undecodable_file"]
    assert by_file["truncated.jsonl.gz"] == ["undecodable_file"]
    assert by_file["utf16.csv"] == ["undecodable_file"]
    assert by_file["only-header.csv"] == ["empty_file"]
    assert by_file["huge-values.jsonl"] == ["invalid_number"]
    assert sorted(by_file["mixed.jsonl"]) == [
        "blank_line",
        "blank_line",
        "missing_field",
        "not_an_object",
        "not_an_object",
    ]
    assert result.duplicates_dropped == 1  # the repeated reading in mixed.jsonl


def test_a_foreign_file_in_the_curated_day_fails_the_blocking_check_and_stops_downstream(
    local_store, tmp_path
):
    import dagster as dg
    import pyarrow as pa

    from data_assets.curated import curated_sensor_readings
    from resources.ledger import SqliteLedger

    local_store.put(
        f"landing/{DAY}/10/env-01-20261124T1000Z.jsonl",
        (GOOD.format(d="env-01", ts=f"{DAY}T10:00:00Z") + "\n").encode(),
    )
    rogue = io.BytesIO()
    pq.write_table(pa.table({"device_id": ["x"], "temp": [1.0]}), rogue)
    local_store.put(f"{curated_day_prefix(DAY)}hand-copied.parquet", rogue.getvalue())

    @dg.asset(deps=[curated_sensor_readings], partitions_def=curated_sensor_readings.partitions_def)
    def downstream_table() -> None:
        raise AssertionError("must not run after a failed blocking check")

    ledger = SqliteLedger(path=str(tmp_path / "ledger.sqlite"))
    result = dg.materialize(
        [curated_sensor_readings, downstream_table],
        partition_key=DAY,
        resources={"object_store": local_store, "ledger": ledger},
        raise_on_error=False,
    )
    assert not result.success
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert not checks["schema_and_ranges"].passed
    assert "hand-copied.parquet" in str(checks["schema_and_ranges"].metadata)
    assert checks["reconciliation"].passed
    assert "downstream_table" not in {
        e.step_key for e in result.all_events if e.event_type_value == "STEP_START"
    }
    # Write-audit-publish: the failed batch's file stays in staging; the table's prefix holds
    # only the foreign file. The batch is failed, so a re-run after the fix curates it again.
    (failed,) = ledger.store().failed_batches()
    assert [i.key for i in local_store.list(curated_day_prefix(DAY))] == [
        f"{curated_day_prefix(DAY)}hand-copied.parquet"
    ]
    # Staged in the bucket it is published to, so publishing is a copy inside that bucket.
    assert [i.key for i in local_store.list("warehouse/_staging/")] == [
        f"warehouse/_staging/sensor_readings/dt={DAY}/{failed.batch_id}.parquet"
    ]
    local_store.delete(f"{curated_day_prefix(DAY)}hand-copied.parquet")
    fixed = dg.materialize(
        [curated_sensor_readings],
        partition_key=DAY,
        resources={"object_store": local_store, "ledger": ledger},
    )
    (materialization,) = fixed.asset_materializations_for_node("curated_sensor_readings")
    assert materialization.metadata["batch_id"].value == failed.batch_id
    assert materialization.metadata["rows_curated"].value == 1
    assert ledger.store().batch(failed.batch_id).status == "curated"
    assert [i.key for i in local_store.list("warehouse/_staging/")] == []
    assert [i.key for i in local_store.list(curated_day_prefix(DAY))] == [
        f"{curated_day_prefix(DAY)}{failed.batch_id}.parquet"
    ]
