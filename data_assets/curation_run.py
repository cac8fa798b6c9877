"""One curation run of one day, under the day's lease: the same steps for the landing sensor's
runs (a batch id) and for runs started by hand (no batch id).

1. (by hand only) hand every landing object the ledger has not seen to it; no lease needed;
2. take the day's lease (`DayLease`: wait while another run curates the day, renew while working);
3. the batch: the sensor's, as created; or, by hand, a new batch claimed from the day's pending
   objects that are in no batch or in a failed one (an open batch's objects are left to its own
   run);
4. curate it: de-duplicate against the day, stage, audit, publish (`curate_batch`), confirming
   the lease just before publishing;
5. finish the batch in the ledger while still holding the lease (or mark it failed), and give the
   lease back.

The de-duplication read (4) and the write (4, 5) of a day therefore happen under one lease, so two
runs of one day never both keep a reading. A batch already curated (a second run of the same
batch, or a failed batch a run by hand has since taken over) is not curated again: the run
reports what the day holds and 0 rows curated.
"""

from dataclasses import dataclass
from datetime import timedelta

from data_assets.curation import CurationResult, curate_batch, verify
from data_assets.landing import sync_landing
from resources.ledger import (
    CURATED,
    LEASE_TTL,
    LEASE_WAIT,
    SUPERSEDED,
    Batch,
    DayLease,
    LedgerStore,
    batch_id_for,
)
from resources.object_store import ObjectStore


class BatchNotFound(LookupError):
    """The run names a batch the ledger does not hold, or one for another day."""


@dataclass
class RunOutcome:
    result: CurationResult
    registered: int = 0  # landing objects handed to the ledger by this run
    already_curated: bool = False  # the batch was curated by an earlier run: nothing done
    finished: bool = False  # this run finished the batch in the ledger


def curate_day(
    store: ObjectStore,
    ledger: LedgerStore,
    day: str,
    run_id: str,
    batch_id: str | None = None,
    *,
    lease_ttl: timedelta = LEASE_TTL,
    lease_wait: timedelta = LEASE_WAIT,
    poll_seconds: float = 1.0,
    after_day_read=None,
) -> RunOutcome:
    """Curates `batch_id` (the sensor's) or, without one, what is pending for `day` and in no
    batch. `after_day_read` is passed to `curate_batch` (tests force interleavings with it)."""
    registered = 0 if batch_id else sync_landing(store, ledger)
    with DayLease(
        ledger, day, run_id, ttl=lease_ttl, wait=lease_wait, poll_seconds=poll_seconds
    ) as lease:
        if batch_id:
            batch = ledger.batch(batch_id)
            if batch is None:
                raise BatchNotFound(
                    f"batch {batch_id!r} is not in the {ledger.describe()}; launch the day "
                    "without a batch_id to curate everything pending for it"
                )
            if batch.day != day:
                raise BatchNotFound(f"batch {batch_id!r} is for {batch.day}, not for {day}")
            if batch.status in (CURATED, SUPERSEDED):
                result = CurationResult(day, batch_id)
                verify(store, result, as_published=True)
                return RunOutcome(result, already_curated=True)
        else:
            claimed = ledger.claim_batch(day, run_id, take_failed=True, run_id=run_id)
            # Nothing to claim: an empty batch that is never stored, so nothing is left pending.
            batch = claimed or Batch(batch_id_for(day, []), day, [])
        try:
            result = curate_batch(
                store, ledger, batch, before_publish=lease.confirm, after_day_read=after_day_read
            )
        except Exception:
            # The store or the lease failed us mid-batch: the batch must not hold its day as if
            # it were still queued (a run by hand has no sensor watching its run state).
            ledger.mark_failed([batch.batch_id])
            raise
        finished = False
        if result.passed and ledger.batch(batch.batch_id) is not None:
            # An empty batch (its objects held no reading for the day) is finished too.
            finished = ledger.finish_batch(batch.batch_id, run_id, result.stats, lease_owner=run_id)
        elif not result.passed:
            ledger.mark_failed([batch.batch_id])
    return RunOutcome(result, registered, finished=finished)
