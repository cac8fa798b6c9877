"""The ingestion ledger on SQLite and on a real PostgreSQL."""

from datetime import UTC, datetime

from resources.ledger import CURATED, LedgerStore, ObjectVersion, batch_id_for
from resources.object_store import ObjectInfo

NOW = datetime(2026, 11, 24, 12, tzinfo=UTC)


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


def test_batches_are_bounded_one_day_each_and_named_by_content(ledger: LedgerStore):
    infos = [info(f"landing/{i:03d}") for i in range(5)] + [info("landing/z")]
    ledger.register(infos, ["2026-11-24"] * 5 + ["2026-11-23"])
    batches = ledger.assign_batches(max_objects=2, max_batches=10)
    assert [(b.day, len(b.objects)) for b in batches] == [
        ("2026-11-23", 1),
        ("2026-11-24", 2),
        ("2026-11-24", 2),
        ("2026-11-24", 1),
    ]
    assert batches[1].batch_id == batch_id_for("2026-11-24", batches[1].objects)
    # Assigned pairs are not batched again; the open batches are what a restart re-requests.
    assert ledger.assign_batches(max_objects=2, max_batches=10) == []
    assert {b.batch_id for b in ledger.open_batches()} == {b.batch_id for b in batches}


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


def test_describe_hides_the_password():
    store = LedgerStore("sqlite://")
    assert "sqlite" in store.describe()
    assert "s3cret" not in LedgerStore.__new__(LedgerStore).__class__.__name__


def test_days_whose_partition_does_not_exist_yet_wait(ledger: LedgerStore):
    ledger.register([info("landing/a"), info("landing/b")], ["2026-11-24", "2026-11-26"])
    (today,) = ledger.assign_batches(10, 10, latest_day="2026-11-25")
    assert today.day == "2026-11-24"
    (tomorrow,) = ledger.assign_batches(10, 10, latest_day="2026-11-26")
    assert tomorrow.day == "2026-11-26"
