"""The landing sensor: new objects under `landing/` -> ledger -> one curation run per batch.

Each tick lists only the keys after the cursor (S3 `start_after`), so a quiet bucket costs one
LIST request however many objects it holds. Devices name uploads time first
(`landing/<YYYY-MM-DD>/<HH>/<device>-...`), so new files sort after the cursor; the listing starts
an hour before the cursor's hour to catch uploads that overtook each other. A late file (older
readings uploaded after newer ones), a re-upload (same key, new etag) or a file dropped by hand
under any other name can sort *before* that, so every `RESCAN_INTERVAL` a full re-scan compares
every key with the ledger page by page and hands over what it does not know. The re-scan is
paged across ticks: a tick reads at most `TICK_BUDGET` worth (and `MAX_RESCANNED_PER_TICK` keys)
of it and keeps its position in the cursor, so a bucket of any size is covered over several ticks
and no tick outgrows Dagster's sensor timeout. The cost is measured in BENCHMARKS.md (section
"Landing sensor tick").

Everything handed over goes into the ledger first; the ledger groups pending objects into batches
(one day each, at most `MAX_BATCH_OBJECTS` objects, under the day's lease) whose id is a hash of
their contents and is the run key. A re-delivered tick or a restarted daemon therefore re-requests
the same run keys, which Dagster does not start twice; a run lost between the ledger write and its
launch is requested again on the next tick. A pending batch holds its day (no second batch for
it) for as long as its run is queued or running, however long that is; once its run has failed,
the sensor marks the batch failed, names it, and the day takes new batches again.
"""

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from data_assets.landing import LIST_PAGE, pages, register_new
from data_assets.layout import LANDING_PREFIX
from platform_assets.patching import ROLLING_PATCH_JOBS
from resources.ledger import Batch, Ledger, LedgerStore
from resources.object_store import ObjectStore
from sensors.ownership import sensor_status

MAX_BATCH_OBJECTS = 200  # objects per run: a few minutes of curation on a Pi
MAX_RUNS_PER_TICK = 20
MAX_LISTED_PER_TICK = 20_000  # keys after the cursor read per tick; the rest next tick
MAX_RESCANNED_PER_TICK = 200_000  # keys of the re-scan read per tick; it resumes next tick
# Listing work per tick. Dagster gives a sensor evaluation 60 s; the ledger's batching and the
# page in hand when the budget runs out come on top, so the listing stops well before that.
TICK_BUDGET = timedelta(seconds=20)
RESCAN_INTERVAL = timedelta(minutes=10)  # from the end of one full re-scan to the next
LOOKBACK = timedelta(hours=1)  # see lookback_start
MINIMUM_INTERVAL_SECONDS = 30
BATCH_TAG = "piclusterops/batch"

curate_landing_batch = dg.define_asset_job(
    "curate_landing_batch",
    selection=dg.AssetSelection.assets("curated_sensor_readings").downstream(),
    description="Curates one ledger batch of landing objects for one day, then the tables over "
    "it. Started by the landing sensor.",
)


@dataclass
class LandingCursor:
    after: str | None = None  # the last landing key handed over
    rescanned_at: datetime | None = None  # when the last full re-scan ended
    # Where the re-scan in progress resumes: "" from the start, None when none is in progress.
    rescan_after: str | None = None

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
        return cls(
            data.get("after"),
            datetime.fromisoformat(rescanned) if rescanned else None,
            data.get("rescan_after"),
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "after": self.after,
                "rescanned_at": self.rescanned_at.isoformat() if self.rescanned_at else None,
                "rescan_after": self.rescan_after,
            }
        )


# What the sensor knows of a batch's latest run (`batch_run_states`).
RUN_ACTIVE, RUN_FAILED, RUN_SUCCEEDED = "active", "failed", "succeeded"


@dataclass
class TickOutcome:
    cursor: LandingCursor
    batches: list[Batch] = field(default_factory=list)
    listed: int = 0  # keys read this tick, both listings
    registered: int = 0
    rescanned: bool = False  # this tick did re-scan work
    rescan_listed: int = 0
    rescan_done: bool = False  # and the re-scan reached the end of the prefix
    failed_batches: list[str] = field(default_factory=list)
    # Pending batches whose run succeeded without finishing them: launch the day by hand.
    stuck_batches: list[str] = field(default_factory=list)

    def skip_reason(self, previous: LandingCursor) -> str:
        where = f"after {previous.after!r}" if previous.after else "in an empty landing prefix"
        if self.rescanned and self.rescan_done:
            scan = f"re-scan finished: the last {self.rescan_listed} objects found nothing new"
        elif self.rescanned:
            scan = (
                f"re-scan read {self.rescan_listed} objects up to "
                f"{self.cursor.rescan_after!r}, nothing new; it resumes there next tick"
            )
        else:
            scan = f"no new objects {where}"
        problems = ""
        if self.failed_batches:
            problems += (
                f"; {len(self.failed_batches)} batches failed and are not curated (re-execute "
                f"their runs, or launch the day by hand, after the fix): "
                f"{', '.join(self.failed_batches[:5])}"
            )
        if self.stuck_batches:
            problems += (
                f"; {len(self.stuck_batches)} batches are pending although their run succeeded "
                f"(launch the day by hand): {', '.join(self.stuck_batches[:5])}"
            )
        return f"{scan}{problems}"


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
    run_states: Mapping[str, str] | None = None,
    max_batch_objects: int = MAX_BATCH_OBJECTS,
    max_runs: int = MAX_RUNS_PER_TICK,
    rescan_interval: timedelta = RESCAN_INTERVAL,
    budget: timedelta = TICK_BUDGET,
    max_rescanned: int = MAX_RESCANNED_PER_TICK,
) -> TickOutcome:
    """One tick without Dagster: list, hand over to the ledger, batch. `run_states` is what
    Dagster knows of open batches' latest runs (batch id -> `RUN_*`). Returns the batches to
    request (every open batch; Dagster starts a run key once) and the next cursor."""
    now = now or datetime.now(UTC)
    deadline = time.monotonic() + budget.total_seconds()
    outcome = TickOutcome(LandingCursor(cursor.after, cursor.rescanned_at, cursor.rescan_after))
    next_cursor = outcome.cursor
    if next_cursor.rescan_after is None and (
        cursor.rescanned_at is None or now - cursor.rescanned_at >= rescan_interval
    ):
        next_cursor.rescan_after = ""  # a re-scan is due: it starts at the beginning
    # Until the first re-scan has been through the prefix once, it is the only listing: the
    # incremental one would read the same keys.
    if cursor.after is not None or next_cursor.rescan_after is None:
        for page in pages(store.list(LANDING_PREFIX, start_after=lookback_start(cursor.after))):
            outcome.listed += len(page)
            outcome.registered += register_new(ledger, page, now.date())
            # The last key in the server's own order: SeaweedFS lists in its filer's directory
            # order ('a/b' before 'a-b'), not S3's byte order, and resumes consistently from it.
            next_cursor.after = page[-1].key
            if outcome.listed >= MAX_LISTED_PER_TICK or time.monotonic() >= deadline:
                break
    if next_cursor.rescan_after is not None:
        outcome.rescanned = True
        position = next_cursor.rescan_after
        outcome.rescan_done = True
        # At least one page a tick, so the re-scan always moves on.
        for page in pages(store.list(LANDING_PREFIX, start_after=position or None)):
            outcome.listed += len(page)
            outcome.rescan_listed += len(page)
            outcome.registered += register_new(ledger, page, now.date())
            position = page[-1].key
            full_page = len(page) == LIST_PAGE  # a shorter page is the last one
            if full_page and (
                outcome.rescan_listed >= max_rescanned or time.monotonic() >= deadline
            ):
                outcome.rescan_done = False
                break
        if outcome.rescan_done:
            next_cursor.rescan_after = None
            next_cursor.rescanned_at = now
            if next_cursor.after is None and position:
                next_cursor.after = position
        else:
            next_cursor.rescan_after = position

    states = run_states or {}
    ledger.mark_failed([b for b, state in states.items() if state == RUN_FAILED])
    # Readings up to a day ahead of the clock are valid, but their day's partition only exists
    # from that day on: they wait in the ledger until then. A day with a pending batch (queued
    # or running, for however long) gets no second one: its run would only wait for the lease.
    ledger.assign_batches(
        max_batch_objects,
        max_runs,
        latest_day=now.date().isoformat(),
        now=now,
    )
    for batch in ledger.open_batches(limit=max_runs * 5):
        if states.get(batch.batch_id) == RUN_SUCCEEDED:
            outcome.stuck_batches.append(batch.batch_id)
        elif len(outcome.batches) < max_runs:
            outcome.batches.append(batch)
    outcome.failed_batches = [b.batch_id for b in ledger.failed_batches(limit=max_runs * 5)]
    return outcome


def batch_run_states(context: dg.SensorEvaluationContext, batches: list[Batch]) -> dict[str, str]:
    """The state of each open batch's latest run, as `RUN_*`: found by the batch's tag
    `piclusterops/batch` (the sensor's runs; a re-execution keeps the tag), else by the run id
    the ledger recorded (a run by hand). Batches with no run yet are left out."""
    if not batches:
        return {}
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a context built in a test without an instance
        return {}
    failed = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

    def state(run: dg.DagsterRun) -> str:
        if run.status in failed:
            return RUN_FAILED
        return RUN_SUCCEEDED if run.status == dg.DagsterRunStatus.SUCCESS else RUN_ACTIVE

    states: dict[str, str] = {}
    tagged = dg.RunsFilter(tags={BATCH_TAG: [b.batch_id for b in batches]})
    # Newest first: the first run seen for a batch is its latest.
    for run in instance.get_runs(filters=tagged):
        batch_id = run.tags.get(BATCH_TAG)
        if batch_id and batch_id not in states:
            states[batch_id] = state(run)
    by_run = {b.run_id: b.batch_id for b in batches if b.run_id and b.batch_id not in states}
    if by_run:
        for run in instance.get_runs(filters=dg.RunsFilter(run_ids=list(by_run))):
            states[by_run[run.run_id]] = state(run)
    return states


# A patch run queued or running: from its first gate to its last uncordon, nodes are drained
# one by one, so no curation may start (the landed files wait in the ledger, nothing is lost).
PATCH_RUN_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def rolling_patch_in_progress(context: dg.SensorEvaluationContext) -> str | None:
    """The rolling patch run in progress, if any, in the platform's words."""
    try:
        instance = context.instance
    except dg.DagsterInvariantViolationError:  # a context built in a test without an instance
        return None
    for job in ROLLING_PATCH_JOBS:
        filters = dg.RunsFilter(job_name=job, statuses=PATCH_RUN_STATUSES)
        for run in instance.get_runs(filters=filters, limit=1):
            return f"{job} run {run.run_id} is {run.status.value.lower()}"
    return None


def run_request(batch: Batch) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=batch.batch_id,
        partition_key=batch.day,
        run_config=dg.RunConfig(
            ops={"curated_sensor_readings": {"config": {"batch_id": batch.batch_id}}}
        ),
        tags={
            BATCH_TAG: batch.batch_id,
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
    patching = rolling_patch_in_progress(context)
    if patching:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"{patching}: no curation starts while nodes are drained one by one; the "
                "landed files wait for the next tick after it"
            ),
            cursor=context.cursor,
        )
    store = ledger.store()
    open_batches = store.open_batches(limit=MAX_RUNS_PER_TICK * 5)
    outcome = evaluate_tick(
        object_store, store, previous, run_states=batch_run_states(context, open_batches)
    )
    how = "with re-scan" if outcome.rescanned else "after the cursor"
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
