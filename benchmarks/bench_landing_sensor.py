"""The landing sensor's tick cost on a real SeaweedFS holding 100,000 objects: 0 or 1,000 new,
against a full listing of the bucket compared with the ledger (what a tick would cost without a
cursor, and what the periodic re-scan for late files costs) measured in the same run.

`uv run python -m benchmarks bench_landing_sensor` (PICLUSTER_BENCH_OBJECTS sets the bucket size).
Starts SeaweedFS with the test harness (loopback, telemetry off) and stops it afterwards; the
ledger is SQLite (local profile) and PostgreSQL (cluster profile) when its binaries are present.
Writes the "Landing sensor tick" section of BENCHMARKS.md.
"""

import io
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.report import write_section

OBJECTS = int(os.environ.get("PICLUSTER_BENCH_OBJECTS", "100000"))
DEVICES = 100
NEW = 1000
START = datetime(2026, 1, 1, tzinfo=UTC)
BODY = (
    b'{"device_id":"env-001","reading_ts":"2026-01-01T00:00:00Z","temperature_c":21.5,'
    b'"humidity_pct":45.0,"pressure_hpa":1013.2}\n'
)


class RequestCounter(io.StringIO):
    """Counts HTTP requests from the MinIO SDK's trace output (`Minio.trace_on`)."""

    def __init__(self):
        super().__init__()
        self.requests = 0

    def write(self, text: str) -> int:
        self.requests += text.count("---------START-HTTP---------")
        return len(text)


def object_keys(first_slot: int, count: int) -> list[str]:
    """Time-first keys as devices name them: `landing/<day>/<HH>/<device>-<day>T<HH>00Z.jsonl`."""
    keys = []
    slot = first_slot
    while len(keys) < count:
        hour = START + timedelta(hours=slot)
        for device in range(1, DEVICES + 1):
            if len(keys) == count:
                break
            keys.append(
                f"landing/{hour:%Y-%m-%d}/{hour:%H}/env-{device:03d}-{hour:%Y%m%dT%H}00Z.jsonl"
            )
        slot += 1
    return keys


def upload(client, bucket: str, keys: list[str]) -> None:
    def put(key: str) -> None:
        client.put_object(bucket, key, io.BytesIO(BODY), len(BODY))

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(put, keys))


def measure(store, ledger, cursor, counter, now, **kwargs):
    from sensors.landing import evaluate_tick

    before = counter.requests
    start = time.perf_counter()
    outcome = evaluate_tick(store, ledger, cursor, now, **kwargs)
    return time.perf_counter() - start, counter.requests - before, outcome


def settle(ledger) -> None:
    """Steady state: every batch handed over so far has been curated."""
    import sqlalchemy as sa

    with ledger.engine.begin() as conn:
        conn.execute(sa.update(ledger.t["object_days"]).values(status="curated"))
        conn.execute(sa.update(ledger.t["batches"]).values(status="curated"))


def run_scenarios(store, client, bucket, ledger, counter, label: str) -> list[str]:
    from sensors.landing import LandingCursor

    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    slots = OBJECTS // DEVICES + 1
    first, _, initial = measure(store, ledger, LandingCursor(), counter, now)
    first_requests = counter.requests
    settle(ledger)
    cursor = initial.cursor
    quiet_times, quiet_requests = [], []
    for i in range(5):
        seconds, requests, outcome = measure(
            store, ledger, cursor, counter, now + timedelta(seconds=30 * (i + 1))
        )
        assert outcome.registered == 0 and not outcome.rescanned
        quiet_times.append(seconds)
        quiet_requests.append(requests)
    new_times, new_requests = [], []
    for i in range(3):
        keys = object_keys(slots + i * (NEW // DEVICES), NEW)
        upload(client, bucket, keys)
        seconds, requests, outcome = measure(
            store, ledger, cursor, counter, now + timedelta(minutes=3 + i)
        )
        assert outcome.registered == NEW, outcome.registered
        cursor = outcome.cursor
        settle(ledger)
        new_times.append(seconds)
        new_requests.append(requests)
    full_times, full_requests = [], []
    for i in range(3):
        seconds, requests, outcome = measure(
            store, ledger, cursor, counter, now + timedelta(hours=1 + i)
        )
        assert outcome.rescanned and outcome.registered == 0
        cursor = outcome.cursor
        full_times.append(seconds)
        full_requests.append(requests)
    # Late files: 1,000 uploads for hours long past, keys far before the cursor. The next
    # incremental tick cannot see them; the re-scan ten minutes after the last one does.
    late_keys = [k.replace(".jsonl", "-late.jsonl") for k in object_keys(5, NEW)]
    upload(client, bucket, late_keys)
    last_rescan = now + timedelta(hours=3)
    _, _, missed = measure(store, ledger, cursor, counter, last_rescan + timedelta(minutes=1))
    assert not missed.rescanned
    late_seconds, late_requests, late = measure(
        store, ledger, missed.cursor, counter, last_rescan + timedelta(minutes=11)
    )
    assert late.rescanned and late.registered == NEW, late.registered
    total = OBJECTS + 3 * NEW + NEW

    full = statistics.median(full_times)
    full_req = statistics.median(full_requests)

    def row(what: str, seconds: float, requests: float) -> str:
        return (
            f"| {label} | {what} | {seconds * 1000:,.0f} ms | {requests:.0f} "
            f"| {seconds / full:.3f} | {requests / full_req:.3f} |"
        )

    return [
        row(
            f"first tick: hand over all {OBJECTS:,} objects (full listing, ledger inserts, "
            "20 batches)",
            first,
            first_requests,
        ),
        row(
            "tick, 0 new (median of 5)",
            statistics.median(quiet_times),
            statistics.median(quiet_requests),
        ),
        row(
            f"tick, {NEW:,} new after the cursor (median of 3)",
            statistics.median(new_times),
            statistics.median(new_requests),
        ),
        row(
            f"**baseline**: full listing of {OBJECTS + 3 * NEW:,} objects compared with the "
            "ledger, 0 new (the 10-minute re-scan; median of 3)",
            full,
            full_req,
        ),
        row(
            f"re-scan that finds {NEW:,} late files among {total:,} "
            f"(the incremental tick before it found {missed.registered})",
            late_seconds,
            late_requests,
        ),
    ]


def main() -> None:
    from minio import Minio

    from resources.ledger import LedgerStore
    from resources.object_store import S3ObjectStore
    from tests.harness.seaweedfs import start_seaweedfs

    lines = [
        f"A SeaweedFS bucket with {OBJECTS:,} objects under `landing/` ({DEVICES} devices, one "
        "file an hour, time-first keys), started by the test harness on loopback. Requests are "
        "HTTP requests to the S3 API counted from the MinIO SDK's trace; the ledger's SQL "
        "queries are not counted but are in the time. Ratios are against the baseline row of "
        "the same ledger.",
        "",
        "| ledger | tick | time | S3 requests | time ratio | request ratio |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    with tempfile.TemporaryDirectory(prefix="bench-sensor-") as tmp:
        workdir = Path(tmp)
        (workdir / "logs").mkdir()
        s3, weed = start_seaweedfs(workdir / "seaweedfs", workdir / "logs")
        pg_proc = None
        try:
            client = Minio(
                s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, secure=False
            )
            ledgers = [("SQLite", f"sqlite:///{workdir / 'ledger.sqlite'}")]
            try:
                from tests.harness.postgres import start_postgres

                (workdir / "pg").mkdir()
                pg, pg_proc = start_postgres(workdir / "pg", workdir / "logs")
                ledgers.append(("PostgreSQL", pg.create_database("bench_ledger")))
            except Exception as exc:  # no PostgreSQL binaries: SQLite only, and say so
                lines.insert(1, f"\n(PostgreSQL ledger skipped: {exc})")
            started = time.perf_counter()
            for index, (label, url) in enumerate(ledgers):
                bucket = f"bench-{index}"
                client.make_bucket(bucket)
                upload(client, bucket, object_keys(0, OBJECTS))
                store = S3ObjectStore(
                    endpoint=s3.endpoint,
                    access_key=s3.access_key,
                    secret_key=s3.secret_key,
                    bucket=bucket,
                    secure=False,
                )
                counter = RequestCounter()
                store.client.trace_on(counter)
                ledger = LedgerStore(url)
                try:
                    lines += run_scenarios(store, client, bucket, ledger, counter, label)
                finally:
                    ledger.dispose()
            lines += [
                "",
                f"Whole benchmark (uploads included): {time.perf_counter() - started:.0f} s. A "
                "tick lists from the hour before its cursor's hour, so its cost follows the "
                "number of devices, not the size of the bucket; late files cost one re-scan "
                "every 10 minutes.",
            ]
        finally:
            weed.stop()
            if pg_proc is not None:
                pg_proc.stop()
    write_section(
        "Landing sensor tick",
        "uv run python -m benchmarks bench_landing_sensor",
        "\n".join(lines),
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
