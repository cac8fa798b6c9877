"""The landing sensor over a real listing: cursor, late files, bounded batches, run keys, ledger."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from data_assets.curated import curated_sensor_readings
from data_assets.curation import STAT_KEYS
from data_assets.simulator import FaultRates, simulate_day
from resources.ledger import SqliteLedger
from sensors.landing import (
    RUN_ACTIVE,
    RUN_FAILED,
    LandingCursor,
    evaluate_tick,
    landing_files,
    run_request,
)

DAY = "2026-11-24"
T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
LINE = (
    '{{"device_id":"env-01","reading_ts":"{day}T10:{m:02d}:00Z","temperature_c":21.5,'
    '"humidity_pct":45.0,"pressure_hpa":1013.2}}\n'
)


def put_files(store, names, day=DAY):
    for i, name in enumerate(names):
        store.put(f"landing/env-01/{day}/{name}", LINE.format(day=day, m=i % 60).encode())


def test_first_tick_hands_everything_over_then_only_what_is_new(store, ledger):
    put_files(store, [f"f{i:03d}.jsonl" for i in range(5)])
    first = evaluate_tick(store, ledger, LandingCursor(), T0)
    assert (first.listed, first.registered, len(first.batches)) == (5, 5, 1)
    assert first.cursor.after == f"landing/env-01/{DAY}/f004.jsonl"
    # Quiet bucket: the incremental listing sees nothing, and the open batch is re-requested
    # with the same run key (Dagster starts it once).
    quiet = evaluate_tick(store, ledger, first.cursor, T0 + timedelta(minutes=1))
    assert (quiet.listed, quiet.registered) == (0, 0)
    assert [b.batch_id for b in quiet.batches] == [b.batch_id for b in first.batches]
    put_files(store, ["f100.jsonl"])
    new = evaluate_tick(store, ledger, quiet.cursor, T0 + timedelta(minutes=2))
    # Handed over, but it waits: the day's first batch is still in flight.
    assert (new.listed, new.registered, len(new.batches)) == (1, 1, 1)
    assert ledger.counts()["pending"] == 6
    # A restarted daemon that lost its cursor re-scans, hands over nothing twice.
    restart = evaluate_tick(store, ledger, LandingCursor(), T0 + timedelta(minutes=3))
    assert (restart.listed, restart.registered) == (6, 0)
    assert ledger.counts()["objects"] == 6


def test_late_files_and_re_uploads_are_caught_by_the_periodic_re_scan(store, ledger):
    put_files(store, ["f050.jsonl", "f060.jsonl"])
    tick = evaluate_tick(store, ledger, LandingCursor(), T0)
    # A late file sorts before the cursor; a re-upload keeps its key but changes its etag.
    put_files(store, ["f010.jsonl"])
    store.put(f"landing/env-01/{DAY}/f050.jsonl", LINE.format(day=DAY, m=59).encode())
    incremental = evaluate_tick(store, ledger, tick.cursor, T0 + timedelta(minutes=1))
    assert incremental.registered == 0 and not incremental.rescanned
    rescan = evaluate_tick(store, ledger, incremental.cursor, T0 + timedelta(minutes=11))
    assert rescan.rescanned and rescan.registered == 2
    assert ledger.counts()["objects"] == 4


def test_batches_are_bounded_one_per_day_in_flight_and_redelivery_safe(store, ledger):
    put_files(store, [f"f{i:03d}.jsonl" for i in range(25)])
    put_files(store, ["g.jsonl"], day="2026-11-23")
    cursor = LandingCursor()
    first = evaluate_tick(store, ledger, cursor, T0, max_batch_objects=10)
    assert sorted((b.day, len(b.objects)) for b in first.batches) == [
        ("2026-11-23", 1),
        (DAY, 10),
    ]
    # The daemon lost the tick's result and evaluates again from the old cursor.
    again = evaluate_tick(store, ledger, cursor, T0, max_batch_objects=10)
    assert [b.batch_id for b in again.batches] == [b.batch_id for b in first.batches]
    assert ledger.counts()["objects"] == 26
    # While a day's batch is in flight its other objects wait; then the next batch follows.
    for batch in first.batches:
        ledger.finish_batch(batch.batch_id, "run", dict.fromkeys(STAT_KEYS, 0))
    later = evaluate_tick(store, ledger, first.cursor, T0, max_batch_objects=10)
    assert [(b.day, len(b.objects)) for b in later.batches] == [(DAY, 10)]


def test_sensor_says_why_it_skips_and_requests_one_run_per_batch(local_store, tmp_path):
    ledger = SqliteLedger(path=str(tmp_path / "ledger.sqlite"))
    resources = {"object_store": local_store, "ledger": ledger}
    with dg.build_sensor_context(resources=resources) as context:
        result = landing_files(context)
    # The first tick is a re-scan of the whole (empty) prefix.
    assert result.skip_reason.skip_message == (
        "re-scan finished: the last 0 objects found nothing new"
    )

    for upload in simulate_day(DAY, devices=2, seed=1, faults=FaultRates.typical()).uploads:
        local_store.put(upload.key, upload.data)
    with dg.build_sensor_context(cursor=None, resources=resources) as context:
        result = landing_files(context)
    (request,) = result.run_requests
    assert request.partition_key == DAY
    assert request.run_key == request.tags["piclusterops/batch"]
    assert request.tags["piclusterops/objects"] == "48"

    # The requested run curates exactly that batch; its checks pass; a second tick re-requests
    # nothing new once the batch is curated.
    outcome = dg.materialize(
        [curated_sensor_readings],
        partition_key=DAY,
        run_config=request.run_config,
        resources=resources,
    )
    assert outcome.success
    (materialization,) = outcome.asset_materializations_for_node("curated_sensor_readings")
    meta = materialization.metadata
    assert meta["batch_id"].value == request.run_key
    assert meta["rows_read"].value == (
        meta["rows_curated"].value
        + meta["rows_quarantined"].value
        + meta["duplicates_dropped"].value
    )
    assert "| env-01 |" in meta["summary"].value
    checks = outcome.get_asset_check_evaluations()
    assert {c.check_name for c in checks if c.passed} == {
        "schema_and_ranges",
        "unique_device_reading_ts",
        "reconciliation",
    }
    with dg.build_sensor_context(cursor=result.cursor, resources=resources) as context:
        assert landing_files(context).run_requests == []


def test_time_first_uploads_that_overtake_each_other_are_caught_without_a_re_scan(store, ledger):
    def upload(hour: int, device: str):
        key = f"landing/{DAY}/{hour:02d}/{device}-20261124T{hour:02d}00Z.jsonl"
        store.put(key, LINE.format(day=DAY, m=hour).encode())

    upload(9, "env-01")
    upload(10, "env-02")
    tick = evaluate_tick(store, ledger, LandingCursor(), T0)
    assert tick.cursor.after.endswith("10/env-02-20261124T1000Z.jsonl")
    # env-01's 10:00 file arrives after env-02's: it sorts before the cursor.
    upload(10, "env-01")
    upload(11, "env-03")
    quiet = evaluate_tick(store, ledger, tick.cursor, T0 + timedelta(minutes=1))
    assert not quiet.rescanned
    assert quiet.registered == 2
    assert quiet.listed == 4  # from the hour before the cursor's hour on, not the whole bucket


def test_a_manual_run_curates_what_is_pending_and_a_second_one_finds_nothing_new(
    local_store, tmp_path
):
    for upload in simulate_day(DAY, devices=1, seed=2).uploads:
        local_store.put(upload.key, upload.data)
    resources = {
        "object_store": local_store,
        "ledger": SqliteLedger(path=str(tmp_path / "ledger.sqlite")),
    }
    runs = [
        dg.materialize([curated_sensor_readings], partition_key=DAY, resources=resources)
        for _ in range(2)
    ]
    first, second = (r.asset_materializations_for_node("curated_sensor_readings")[0] for r in runs)
    assert first.metadata["rows_curated"].value == 24 * 60
    assert second.metadata["rows_read"].value == 0
    assert second.metadata["dagster/row_count"].value == 24 * 60


def _curated_idents(store, day=DAY) -> list[tuple[str, int]]:
    import io

    import pyarrow.parquet as pq

    from data_assets.layout import curated_day_prefix

    idents = []
    for info in store.list(curated_day_prefix(day)):
        table = pq.read_table(io.BytesIO(store.get(info.key)), columns=["device_id", "reading_ts"])
        idents += list(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
    return idents


def test_a_manual_run_between_a_tick_and_its_run_curates_every_reading_once(local_store, tmp_path):
    """Issue 7: a tick creates a batch, one more file lands, a run by hand of the day runs, then
    the sensor's run: every good reading once, the batch finished, the next tick quiet."""
    ledger = SqliteLedger(path=str(tmp_path / "ledger.sqlite"))
    resources = {"object_store": local_store, "ledger": ledger}
    for upload in simulate_day(DAY, devices=2, seed=4).uploads:  # no faults: 2 x 1440 readings
        local_store.put(upload.key, upload.data)
    tick = evaluate_tick(local_store, ledger.store(), LandingCursor(), T0, max_batch_objects=40)
    (batch,) = tick.batches
    assert len(batch.objects) == 40  # of 48 files: the other 8 wait for the day to be free
    local_store.put(
        f"landing/{DAY}/23/env-07-20261124T2300Z.jsonl",
        "".join(LINE.format(day=DAY, m=m).replace("env-01", "env-07") for m in range(5)).encode(),
    )
    manual = dg.materialize([curated_sensor_readings], partition_key=DAY, resources=resources)
    (by_hand,) = manual.asset_materializations_for_node("curated_sensor_readings")
    # Only what no open batch holds: the 8 files the tick left and the one that landed since.
    assert by_hand.metadata["objects"].value == 9
    sensor_run = dg.materialize(
        [curated_sensor_readings],
        partition_key=DAY,
        run_config=run_request(batch).run_config,
        resources=resources,
    )
    (from_sensor,) = sensor_run.asset_materializations_for_node("curated_sensor_readings")
    assert from_sensor.metadata["objects"].value == 40

    idents = _curated_idents(local_store)
    assert len(idents) == len(set(idents)) == 2 * 24 * 60 + 5
    assert by_hand.metadata["rows_curated"].value + from_sensor.metadata["rows_curated"].value == (
        len(idents)
    )
    assert ledger.store().batch(batch.batch_id).status == "curated"
    assert ledger.store().counts()["pending"] == 0
    later = evaluate_tick(local_store, ledger.store(), tick.cursor, T0 + timedelta(hours=2))
    assert (later.batches, later.failed_batches, later.stuck_batches) == ([], [], [])
    assert "failed" not in later.skip_reason(tick.cursor)
    assert "pending" not in later.skip_reason(tick.cursor)


def test_a_queued_batch_holds_its_day_until_its_run_fails(store, ledger):
    put_files(store, ["f000.jsonl", "f001.jsonl"])
    first = evaluate_tick(store, ledger, LandingCursor(), T0, max_batch_objects=1)
    (queued,) = first.batches
    # Two hours in the queue (a busy daemon, a paused run queue): the day is still the queued
    # batch's, which is requested again and not called stale.
    hours_later = evaluate_tick(
        store,
        ledger,
        first.cursor,
        T0 + timedelta(hours=2),
        run_states={queued.batch_id: RUN_ACTIVE},
        max_batch_objects=1,
    )
    assert [b.batch_id for b in hours_later.batches] == [queued.batch_id]
    assert (hours_later.failed_batches, ledger.counts()["open_batches"]) == ([], 1)
    # Its run failed: the batch is marked failed and named, and the day takes its next batch.
    after_failure = evaluate_tick(
        store,
        ledger,
        hours_later.cursor,
        T0 + timedelta(hours=2, minutes=1),
        run_states={queued.batch_id: RUN_FAILED},
        max_batch_objects=1,
    )
    assert after_failure.failed_batches == [queued.batch_id]
    assert [o.key for b in after_failure.batches for o in b.objects] == [
        f"landing/env-01/{DAY}/f001.jsonl"
    ]
    assert "1 batches failed and are not curated" in after_failure.skip_reason(first.cursor)


def test_a_second_run_of_a_curated_batch_reports_no_rows_curated(local_store, tmp_path):
    ledger = SqliteLedger(path=str(tmp_path / "ledger.sqlite"))
    resources = {"object_store": local_store, "ledger": ledger}
    put_files(local_store, [f"f{i:03d}.jsonl" for i in range(3)])
    (batch,) = evaluate_tick(local_store, ledger.store(), LandingCursor(), T0).batches
    runs = [
        dg.materialize(
            [curated_sensor_readings],
            partition_key=DAY,
            run_config=run_request(batch).run_config,
            resources=resources,
        ).asset_materializations_for_node("curated_sensor_readings")[0]
        for _ in range(2)
    ]
    assert [m.metadata["rows_curated"].value for m in runs] == [3, 0]
    assert [m.metadata["dagster/row_count"].value for m in runs] == [3, 3]
    assert ledger.store().batch(batch.batch_id).stats["rows_curated"] == 3


def test_the_re_scan_is_paged_across_ticks_and_resumes_from_the_cursor(store, ledger):
    put_files(store, [f"f{i:04d}.jsonl" for i in range(2500)])
    cursor = LandingCursor()
    listed = []
    # No time budget at all: each tick still reads one page (1,000 keys), so it moves on.
    for minute in range(3):
        tick = evaluate_tick(
            store, ledger, cursor, T0 + timedelta(minutes=minute), budget=timedelta(0)
        )
        listed.append((tick.rescan_listed, tick.rescan_done))
        cursor = tick.cursor
    assert listed == [(1000, False), (1000, False), (500, True)]
    assert ledger.counts()["objects"] == 2500
    assert cursor.after == f"landing/env-01/{DAY}/f2499.jsonl"
    assert (cursor.rescan_after, cursor.rescanned_at) == (None, T0 + timedelta(minutes=2))
    # The next re-scan is due ten minutes after this one ended, and finds a late file.
    put_files(store, ["e-late.jsonl"])
    quiet = evaluate_tick(store, ledger, cursor, T0 + timedelta(minutes=5), budget=timedelta(0))
    assert not quiet.rescanned and quiet.registered == 0
    late = evaluate_tick(
        store, ledger, quiet.cursor, T0 + timedelta(minutes=12), max_rescanned=100_000
    )
    assert late.rescanned and late.rescan_done and late.registered == 1


def test_the_sensor_reads_a_batchs_run_state_from_dagster():
    from resources.ledger import Batch
    from sensors.landing import BATCH_TAG, RUN_SUCCEEDED, batch_run_states

    @dg.asset
    def broken() -> None:
        raise RuntimeError("the store went away")

    @dg.asset
    def fine() -> None:
        return None

    with dg.instance_for_test() as instance:

        def run(asset, **tags) -> str:
            return dg.materialize(
                [asset], instance=instance, tags=tags, raise_on_error=False
            ).run_id

        run(broken, **{BATCH_TAG: "sensor-batch"})
        run(fine, **{BATCH_TAG: "sensor-batch"})  # re-executed after the fix: latest wins
        run(broken, **{BATCH_TAG: "other-sensor-batch"})
        by_hand = run(broken)  # a run by hand carries no batch tag: found by its run id
        batches = [
            Batch("sensor-batch", DAY, []),
            Batch("other-sensor-batch", DAY, []),
            Batch("manual-batch", DAY, [], run_id=by_hand),
            Batch("queued-batch", DAY, []),
        ]
        with dg.build_sensor_context(instance=instance) as context:
            assert batch_run_states(context, batches) == {
                "sensor-batch": RUN_SUCCEEDED,
                "other-sensor-batch": RUN_FAILED,
                "manual-batch": RUN_FAILED,
            }


def test_no_curation_starts_while_a_rolling_patch_runs_and_the_files_wait(local_store, tmp_path):
    # The weekly patch's gate relies on this: while a patch run drains nodes one by one, the
    # sensor starts no run, so the gate only waits for curation runs already in progress.
    ledger = SqliteLedger(path=str(tmp_path / "ledger.sqlite"))
    resources = {"object_store": local_store, "ledger": ledger}
    put_files(local_store, ["env-01-00.jsonl", "env-02-00.jsonl"])
    with dg.instance_for_test() as instance:
        patch = dg.DagsterRun(job_name="patch_nodes", status=dg.DagsterRunStatus.STARTED)
        instance.add_run(patch)
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            held = landing_files(context)
        assert held.run_requests == []
        assert held.skip_reason.skip_message.startswith(
            f"patch_nodes run {patch.run_id} is started: no curation starts"
        )
        assert ledger.store().open_batches(limit=10) == []  # nothing claimed meanwhile

        # A finished patch holds nothing: the files that waited are handed over.
        instance.delete_run(patch.run_id)
        instance.add_run(dg.DagsterRun(job_name="patch_nodes", status=dg.DagsterRunStatus.SUCCESS))
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            (request,) = landing_files(context).run_requests
        assert request.tags["piclusterops/objects"] == "2"
