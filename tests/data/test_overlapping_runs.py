"""Two curation runs of one day at once, with the bad interleaving forced: each run waits, right
after reading the day for de-duplication, until the other has read it too (a barrier). Without
the day lease both would read an empty day and both keep every reading; with it the second run
cannot read the day before the first has published and finished. On the folder store with SQLite
and on real SeaweedFS with real PostgreSQL."""

import contextlib
import io
import threading
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from data_assets.curation_run import curate_day
from data_assets.layout import curated_day_prefix
from data_assets.simulator import simulate_day
from sensors.landing import LandingCursor, evaluate_tick
from tests.data.test_landing_sensor import T0

DAY = "2026-11-24"


def curated_idents(store) -> list[tuple[str, int]]:
    idents = []
    for info in store.list(curated_day_prefix(DAY)):
        table = pq.read_table(io.BytesIO(store.get(info.key)), columns=["device_id", "reading_ts"])
        idents += zip(*(c.to_pylist() for c in table.columns), strict=True)
    return idents


def test_two_runs_of_one_day_that_both_read_first_never_both_keep_a_reading(store, ledger):
    # The sensor's batch holds one device's day; the same files, re-sent under new names (a
    # device re-sending after a reboot), are left for a run by hand: the same readings twice.
    uploads = simulate_day(DAY, devices=1, seed=9).uploads
    for upload in uploads:
        store.put(upload.key, upload.data)
    (batch,) = evaluate_tick(store, ledger, LandingCursor(), T0).batches
    for upload in uploads:
        store.put(upload.key.replace(".jsonl", "-resent.jsonl"), upload.data)
    readings = 24 * 60

    barrier = threading.Barrier(2, timeout=3)
    reads: list[tuple[str, int]] = []
    sensor_has_read = threading.Event()

    def after_day_read(run: str):
        def hook():
            # What the day held when this run read it for de-duplication.
            reads.append((run, len(curated_idents(store))))
            if run == "sensor-run":
                sensor_has_read.set()
            # Both read the day before either writes, if nothing stops it; a broken barrier
            # means the other run could not get here before this one finished.
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()

        return hook

    outcomes = {}

    def run(name: str, batch_id: str | None):
        outcomes[name] = curate_day(
            store,
            ledger,
            DAY,
            name,
            batch_id,
            lease_ttl=timedelta(seconds=3),
            poll_seconds=0.05,
            after_day_read=after_day_read(name),
        )

    sensor = threading.Thread(target=run, args=("sensor-run", batch.batch_id))
    manual = threading.Thread(target=run, args=("manual-run", None))
    sensor.start()
    assert sensor_has_read.wait(30)
    manual.start()
    sensor.join(60)
    manual.join(60)

    # The run by hand read the day only once the sensor's run had published its readings.
    assert reads == [("sensor-run", 0), ("manual-run", readings)]
    idents = curated_idents(store)
    assert len(idents) == len(set(idents)) == readings
    first, second = outcomes["sensor-run"].result, outcomes["manual-run"].result
    assert (first.rows_curated, first.duplicates_dropped) == (readings, 0)
    assert (second.rows_curated, second.duplicates_dropped) == (0, readings)
    assert first.passed and second.passed
    assert ledger.counts() == {"objects": 2 * len(uploads), "pending": 0, "open_batches": 0}
    assert ledger.lease_holder(DAY) is None


def test_a_run_that_loses_its_lease_publishes_nothing_and_frees_its_day(local_store, sqlite_ledger):
    from resources.ledger import LeaseLost

    for upload in simulate_day(DAY, devices=1, seed=9).uploads[:3]:
        local_store.put(upload.key, upload.data)

    def stall_until_taken_over():
        # The run stops renewing (a paused process) and another run takes the day over.
        assert sqlite_ledger.acquire_lease(DAY, "other-run", now=datetime.now(UTC) + timedelta(1))

    with pytest.raises(LeaseLost, match="nothing was published"):
        curate_day(
            local_store, sqlite_ledger, DAY, "slow-run", after_day_read=stall_until_taken_over
        )
    assert curated_idents(local_store) == []
    (failed,) = sqlite_ledger.failed_batches()
    assert len(failed.objects) == 3
