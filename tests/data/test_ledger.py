"""The ingestion ledger on SQLite and on a real PostgreSQL."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from resources.ledger import (
    CURATED,
    FAILED,
    PENDING,
    Batch,
    DayLease,
    LeaseHeld,
    LeaseLost,
    LedgerStore,
    ObjectVersion,
    batch_id_for,
)
from resources.object_store import ObjectInfo

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)
DAY = "2026-11-24"
STATS = ("rows_read", "rows_curated", "rows_quarantined", "duplicates_dropped")


def info(key: str, etag: str = "e1") -> ObjectInfo:
    return ObjectInfo(key, 10, etag, NOW)


def test_registering_is_idempotent_and_versions_are_key_plus_etag(ledger: LedgerStore):
    assert ledger.register([info("landing/a"), info("landing/b")], ["2026-11-24"] * 2) == 2
    assert ledger.register([info("landing/a"), info("landing/b")], ["2026-11-24"] * 2) == 0
    # Same key, new content: a new version to curate.
    assert ledger.register([info("landing/a", "e2")], ["2026-11-24"]) == 1
    assert ledger.known_versions(["landing/a"]) == {
        ObjectVersion("landing/a", "e1"),
        ObjectVersion("landing/a", "e2"),
    }
    assert ledger.counts() == {"objects": 3, "pending": 3, "open_batches": 0}


def test_batches_are_bounded_one_day_each_one_per_day_and_named_by_content(ledger: LedgerStore):
    infos = [info(f"landing/{i:03d}") for i in range(5)] + [info("landing/z")]
    ledger.register(infos, ["2026-11-24"] * 5 + ["2026-11-23"])
    batches = ledger.assign_batches(max_objects=2, max_batches=10)
    assert [(b.day, len(b.objects)) for b in batches] == [("2026-11-23", 1), ("2026-11-24", 2)]
    assert batches[1].batch_id == batch_id_for("2026-11-24", batches[1].objects)
    # A pending batch holds its day: no second batch for it, and assigned pairs are not batched
    # again. The open batches are what a restart re-requests.
    assert ledger.assign_batches(max_objects=2, max_batches=10) == []
    assert {b.batch_id for b in ledger.open_batches()} == {b.batch_id for b in batches}
    for batch in batches:
        ledger.finish_batch(batch.batch_id, "run", dict.fromkeys(STATS, 0))
    (following,) = ledger.assign_batches(max_objects=2, max_batches=10)
    assert (following.day, len(following.objects)) == ("2026-11-24", 2)


def test_finishing_a_batch_marks_its_objects_curated_with_counts(ledger: LedgerStore):
    ledger.register([info("landing/a"), info("landing/b")], ["2026-11-24"] * 2)
    (batch,) = ledger.assign_batches(max_objects=10, max_batches=10)
    stats = {"rows_read": 10, "rows_curated": 7, "rows_quarantined": 2, "duplicates_dropped": 1}
    ledger.finish_batch(batch.batch_id, "run-1", stats)
    done = ledger.batch(batch.batch_id)
    assert done.status == CURATED and done.stats == stats
    assert ledger.pending_for_day("2026-11-24") == []
    assert ledger.open_batches() == []


def test_other_days_found_while_parsing_become_pending_there(ledger: LedgerStore):
    ledger.register([info("landing/a")], ["2026-11-24"])
    version = ObjectVersion("landing/a", "e1")
    assert ledger.add_days([(version, "2026-11-25")]) == 1
    assert ledger.add_days([(version, "2026-11-25")]) == 0
    assert ledger.pending_for_day("2026-11-25") == [version]
    assert ledger.home_days([version]) == {version: "2026-11-24"}


@pytest.mark.service
def test_describe_names_the_database_but_never_its_password(postgres):
    store = LedgerStore(postgres.create_database("ledger_describe"))
    try:
        described = store.describe()
    finally:
        store.dispose()
    assert f"{postgres.host}:{postgres.port}/ledger_describe" in described
    assert postgres.password not in described


def test_days_whose_partition_does_not_exist_yet_wait(ledger: LedgerStore):
    ledger.register([info("landing/a"), info("landing/b")], ["2026-11-24", "2026-11-26"])
    (today,) = ledger.assign_batches(10, 10, latest_day="2026-11-25")
    assert today.day == "2026-11-24"
    (tomorrow,) = ledger.assign_batches(10, 10, latest_day="2026-11-26")
    assert tomorrow.day == "2026-11-26"


def test_a_second_run_of_a_batch_records_nothing_twice(ledger: LedgerStore):
    ledger.register([info("landing/a")], [DAY])
    (batch,) = ledger.assign_batches(max_objects=10, max_batches=10)
    first = {"rows_read": 10, "rows_curated": 10, "rows_quarantined": 0, "duplicates_dropped": 0}
    assert ledger.finish_batch(batch.batch_id, "run-1", first)
    again = {"rows_read": 10, "rows_curated": 0, "rows_quarantined": 0, "duplicates_dropped": 10}
    assert not ledger.finish_batch(batch.batch_id, "run-2", again)
    assert ledger.batch(batch.batch_id).stats == first


def test_the_day_lease_has_one_owner_until_it_expires_unrenewed(ledger: LedgerStore):
    minute = timedelta(minutes=1)
    assert ledger.acquire_lease(DAY, "run-a", minute, NOW)
    assert not ledger.acquire_lease(DAY, "run-b", minute, NOW + timedelta(seconds=30))
    assert ledger.acquire_lease("2026-11-25", "run-b", minute, NOW)  # another day is free
    assert ledger.acquire_lease(DAY, "run-a", minute, NOW + timedelta(seconds=30))  # re-entrant
    # Not renewed for longer than its ttl: another run may take it, and then the first one's
    # renewal and any change it tries under the lease are refused.
    assert ledger.acquire_lease(DAY, "run-b", minute, NOW + timedelta(minutes=2))
    assert ledger.lease_holder(DAY)[0] == "run-b"
    assert not ledger.renew_lease(DAY, "run-a")
    ledger.register([info("landing/a")], [DAY])
    with pytest.raises(LeaseLost, match="run-a does not hold the lease on 2026-11-24"):
        ledger.claim_batch(DAY, "run-a")
    assert ledger.counts()["open_batches"] == 0
    ledger.release_lease(DAY, "run-a")  # not its lease: nothing happens
    assert ledger.lease_holder(DAY)[0] == "run-b"
    ledger.release_lease(DAY, "run-b")
    assert ledger.lease_holder(DAY) is None


def test_assignment_never_re_points_an_open_batchs_objects(ledger: LedgerStore):
    ledger.register([info("landing/a"), info("landing/b")], [DAY] * 2)
    (sensor_batch,) = ledger.assign_batches(max_objects=1, max_batches=10)
    assert [o.key for o in sensor_batch.objects] == ["landing/a"]
    # A run by hand claims what is in no batch: only b.
    assert ledger.acquire_lease(DAY, "manual-run")
    manual = ledger.claim_batch(DAY, "manual-run", take_failed=True)
    assert [o.key for o in manual.objects] == ["landing/b"]
    assert ledger.claim_batch(DAY, "manual-run", take_failed=True) is None
    # Building a batch by hand over an open batch's object is refused, changing nothing.
    stolen = [ObjectVersion("landing/a", "e1"), ObjectVersion("landing/x", "e1")]
    with pytest.raises(RuntimeError, match="already belong to another batch"):
        ledger.save_batches([Batch(batch_id_for(DAY, stolen), DAY, stolen)])
    assert ledger.batch(sensor_batch.batch_id).objects == sensor_batch.objects
    assert ledger.batch(batch_id_for(DAY, stolen)) is None
    # The sensor does not batch a day while someone holds its lease.
    ledger.register([info("landing/c")], [DAY])
    ledger.finish_batch(sensor_batch.batch_id, "run", dict.fromkeys(STATS, 0))
    ledger.finish_batch(manual.batch_id, "manual-run", dict.fromkeys(STATS, 0))
    assert ledger.assign_batches(max_objects=10, max_batches=10) == []
    ledger.release_lease(DAY, "manual-run")
    (later,) = ledger.assign_batches(max_objects=10, max_batches=10)
    assert [o.key for o in later.objects] == ["landing/c"]


def test_a_failed_batch_frees_its_day_and_a_run_by_hand_takes_it_over(ledger: LedgerStore):
    ledger.register([info("landing/a")], [DAY])
    (failed,) = ledger.assign_batches(max_objects=10, max_batches=10)
    assert ledger.mark_failed([failed.batch_id]) == 1
    assert ledger.batch(failed.batch_id).status == FAILED
    assert [b.batch_id for b in ledger.failed_batches()] == [failed.batch_id]
    ledger.register([info("landing/b")], [DAY])
    (new,) = ledger.assign_batches(max_objects=10, max_batches=10)  # the day is free again
    assert [o.key for o in new.objects] == ["landing/b"]
    ledger.finish_batch(new.batch_id, "run", dict.fromkeys(STATS, 0))
    # After the fix, a run by hand claims the failed batch's objects: the same content is the
    # same batch (same id, same output keys), pending again.
    assert ledger.acquire_lease(DAY, "manual-run")
    again = ledger.claim_batch(DAY, "manual-run", take_failed=True)
    assert again.batch_id == failed.batch_id
    assert ledger.batch(failed.batch_id).status == PENDING
    assert ledger.failed_batches() == []


def test_a_day_lease_is_renewed_while_held_and_waited_for(ledger: LedgerStore):
    ttl = timedelta(seconds=0.6)
    with DayLease(ledger, DAY, "run-a", ttl=ttl):
        # Held for three times its ttl: renewed all along, so never free for another run.
        for _ in range(6):
            time.sleep(0.3)
            assert not ledger.acquire_lease(DAY, "run-b", ttl)
        with (
            pytest.raises(LeaseHeld, match="2026-11-24 is being curated by run-a"),
            DayLease(ledger, DAY, "run-b", ttl=ttl, wait=timedelta(seconds=0.3), poll_seconds=0.1),
        ):
            pass
    assert ledger.lease_holder(DAY) is None
    # A waiting run takes the day as soon as the holder gives it back.
    held = threading.Event()
    release = threading.Event()

    def holder():
        with DayLease(ledger, DAY, "run-a", ttl=ttl):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(5)
    threading.Timer(0.5, release.set).start()
    with DayLease(ledger, DAY, "run-b", ttl=ttl, poll_seconds=0.05):
        assert ledger.lease_holder(DAY)[0] == "run-b"
        assert release.is_set()
    thread.join()
