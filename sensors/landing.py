"""The landing sensor: new objects under `landing/` -> ledger -> one curation run per batch.

Each tick lists only the keys after the cursor (S3 `start_after`), so a quiet bucket costs one
LIST request however many objects it holds. Devices name uploads time first
(`landing/<YYYY-MM-DD>/<HH>/<device>-...`), so new files sort after the cursor; the listing starts
an hour before the cursor's hour to catch uploads that overtook each other. A late file (older
readings uploaded after newer ones), a re-upload (same key, new etag) or a file dropped by hand
under any other name can sort *before* that, so a full re-scan every `RESCAN_INTERVAL` compares
every key with the ledger page by page and hands over what it does not know. The cost of both
is measured in BENCHMARKS.md (section "Landing sensor tick").

Everything handed over goes into the ledger first; the ledger groups pending objects into batches
(one day each, at most `MAX_BATCH_OBJECTS` objects) whose id is a hash of their contents and is the
run key. A re-delivered tick or a restarted daemon therefore re-requests the same run keys, which
Dagster does not start twice; a run lost between the ledger write and its launch is requested
again on the next tick.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from data_assets.landing import pages, register_new
from data_assets.layout import LANDING_PREFIX
from resources.ledger import Batch, Ledger, LedgerStore
from resources.object_store import ObjectStore
from sensors.ownership import sensor_status

MAX_BATCH_OBJECTS = 200  # objects per run: a few minutes of curation on a Pi
MAX_RUNS_PER_TICK = 20
MAX_LISTED_PER_TICK = 20_000  # keys after the cursor read per tick; the rest next tick
RESCAN_INTERVAL = timedelta(minutes=10)
LOOKBACK = timedelta(hours=1)  # see lookback_start
REREQUEST_WINDOW = timedelta(hours=1)  # open batches younger than this are requested again
MINIMUM_INTERVAL_SECONDS = 30

curate_landing_batch = dg.define_asset_job(
    "curate_landing_batch",
    selection=dg.AssetSelection.assets("curated_sensor_readings").downstream(),
    description="Curates one ledger batch of landing objects for one day, then the tables over "
    "it. Started by the landing sensor.",
)


@dataclass
class LandingCursor:
    after: str | None = None  # the last landing key handed over
    rescanned_at: datetime | None = None

    @classmethod
    def parse(cls, text: str | None) -> "LandingCursor":
        if not text:
            return cls()
        try:
            data = json.loads(text)
        except ValueError:
            # A cursor from an older version or set by hand: treat it as the last key.
            return cls(after=text)
        rescanned = data.get("rescanned_at")
        return cls(data.get("after"), datetime.fromisoformat(rescanned) if rescanned else None)

    def dump(self) -> str:
        return json.dumps(
            {
                "after": self.after,
                "rescanned_at": self.rescanned_at.isoformat() if self.rescanned_at else None,
            }
        )


@dataclass
class TickOutcome:
    cursor: LandingCursor
    batches: list[Batch] = field(default_factory=list)
    listed: int = 0
    registered: int = 0
    rescanned: bool = False
    stale_batches: list[str] = field(default_factory=list)

    def skip_reason(self, previous: LandingCursor) -> str:
        where = f"after {previous.after!r}" if previous.after else "in an empty landing prefix"
        scan = (
            f"full re-scan of {self.listed} objects found nothing the ledger lacks"
            if self.rescanned
            else f"no new objects {where}"
        )
        stale = (
            f"; {len(self.stale_batches)} batches older than {REREQUEST_WINDOW} are still not "
            f"curated (re-execute their failed runs): {', '.join(self.stale_batches[:5])}"
            if self.stale_batches
            else ""
        )
        return f"{scan}{stale}"


_TIME_FIRST = re.compile(re.escape(LANDING_PREFIX) + r"(\d{4}-\d{2}-\d{2})/(\d{2})/")


def lookback_start(after: str | None) -> str | None:
    """Where the incremental listing starts. For time-first keys
    (`landing/<YYYY-MM-DD>/<HH>/...`) it is the start of the hour before the cursor's: devices
    upload in parallel, so a file can arrive just after one that sorts later; re-listing two
    hours (one LIST page for a few hundred devices) catches it, and the ledger drops what it has
    seen. Other keys resume right after the cursor."""
    if after is None:
        return None
    match = _TIME_FIRST.match(after)
    if not match:
        return after
    try:
        hour = datetime.fromisoformat(f"{match[1]}T{match[2]}:00:00") - LOOKBACK
    except (ValueError, OverflowError):  # not a time (hour 99), or the hour before year 1
        return after
    # With the trailing slash both S3 and SeaweedFS list that hour's keys (SeaweedFS would skip
    # the whole folder for ".../HH").
    return f"{LANDING_PREFIX}{hour:%Y-%m-%d}/{hour:%H}/"


def evaluate_tick(
    store: ObjectStore,
    ledger: LedgerStore,
    cursor: LandingCursor,
    now: datetime | None = None,
    *,
    max_batch_objects: int = MAX_BATCH_OBJECTS,
    max_runs: int = MAX_RUNS_PER_TICK,
    rescan_interval: timedelta = RESCAN_INTERVAL,
) -> TickOutcome:
    """One tick without Dagster: list, hand over to the ledger, batch. Returns the batches to
    request (new ones and open ones young enough to have been lost) and the next cursor."""
    now = now or datetime.now(UTC)
    rescan = cursor.rescanned_at is None or now - cursor.rescanned_at >= rescan_interval
    outcome = TickOutcome(LandingCursor(cursor.after, cursor.rescanned_at), rescanned=rescan)
    last_key = cursor.after
    if rescan:
        listing = store.list(LANDING_PREFIX)
    else:
        listing = store.list(LANDING_PREFIX, start_after=lookback_start(cursor.after))
    for page in pages(listing):
        outcome.listed += len(page)
        outcome.registered += register_new(ledger, page, now.date())
        # The last key in the server's own order: SeaweedFS lists in its filer's directory
        # order ('a/b' before 'a-b'), not S3's byte order, and resumes consistently from it.
        last_key = page[-1].key
        if not rescan and outcome.listed >= MAX_LISTED_PER_TICK:
            break
    outcome.cursor.after = last_key
    if rescan:
        outcome.cursor.rescanned_at = now

    def is_stale(batch: Batch) -> bool:
        return batch.created_at is not None and now - batch.created_at > REREQUEST_WINDOW

    # One batch per day in flight: a batch de-duplicates against what the day already holds, so
    # two runs of one day at once could both keep a reading. A failed batch stops holding its day
    # once it is stale. Readings up to a day ahead of the clock are valid, but their day's
    # partition only exists from that day on: they wait in the ledger until then.
    busy = {b.day for b in ledger.open_batches(limit=max_runs * 5) if not is_stale(b)}
    ledger.assign_batches(
        max_batch_objects,
        max_runs,
        latest_day=now.date().isoformat(),
        skip_days=busy,
        per_day=1,
    )
    for batch in ledger.open_batches(limit=max_runs * 5):
        if is_stale(batch):
            outcome.stale_batches.append(batch.batch_id)
        elif len(outcome.batches) < max_runs:
            outcome.batches.append(batch)
    return outcome


def run_request(batch: Batch) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=batch.batch_id,
        partition_key=batch.day,
        run_config=dg.RunConfig(
            ops={"curated_sensor_readings": {"config": {"batch_id": batch.batch_id}}}
        ),
        tags={
            "piclusterops/batch": batch.batch_id,
            "piclusterops/objects": str(len(batch.objects)),
        },
    )


@dg.sensor(
    name="landing_files",
    job=curate_landing_batch,
    minimum_interval_seconds=MINIMUM_INTERVAL_SECONDS,
    default_status=sensor_status(),
    description="Hands new objects under landing/ to the ingestion ledger and starts one "
    "curation run per batch (at most 200 objects, one day).",
)
def landing_files(
    context: dg.SensorEvaluationContext, object_store: ObjectStore, ledger: Ledger
) -> dg.SensorResult:
    previous = LandingCursor.parse(context.cursor)
    outcome = evaluate_tick(object_store, ledger.store(), previous)
    how = "full re-scan" if outcome.rescanned else "after the cursor"
    context.log.info(
        f"listed {outcome.listed} objects ({how}), {outcome.registered} new to the ledger, "
        f"{len(outcome.batches)} batches to run"
    )
    if not outcome.batches:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(outcome.skip_reason(previous)), cursor=outcome.cursor.dump()
        )
    return dg.SensorResult(
        run_requests=[run_request(b) for b in outcome.batches], cursor=outcome.cursor.dump()
    )
