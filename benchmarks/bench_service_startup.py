"""How long the test services take to become ready: what every `make test` waits for.

Readiness is what the fixtures wait for (PostgreSQL: a password login over TCP; SeaweedFS: an
authenticated ListBuckets; Trino: `/v1/info` not starting, an active node and `SELECT 1`).

No ratio: the only baseline measured earlier (the same executable printing `--version`) says
nothing a user needs, and no other start of these servers is a fair comparison, so the table
gives seconds and each service's share of the suite's start-up wait.
"""

import os
import shutil
import statistics
import tempfile
from pathlib import Path

from benchmarks.report import write_section
from tests.harness.postgres import start_postgres
from tests.harness.seaweedfs import start_seaweedfs
from tests.harness.trino import start_trino

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "3"))
TRINO_SAMPLES = int(os.environ.get("BENCH_TRINO_SAMPLES", "1"))


def _ready(name: str, start) -> float:
    root = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    procs = []
    try:
        seconds, procs = start(root)
        return seconds
    finally:
        for proc in reversed(procs):
            proc.stop()
        shutil.rmtree(root, ignore_errors=True)


def _postgres(root: Path):
    _, proc = start_postgres(root / "pg", root / "logs")
    return proc.ready_seconds, [proc]


def _seaweedfs(root: Path):
    _, proc = start_seaweedfs(root / "s3", root / "logs")
    return proc.ready_seconds, [proc]


def _trino(root: Path):
    s3, s3_proc = start_seaweedfs(root / "s3", root / "logs")
    try:
        _, proc = start_trino(root / "trino", root / "logs", s3)
    except BaseException:
        s3_proc.stop()
        raise
    return proc.ready_seconds, [s3_proc, proc]


SERVICES = [
    ("PostgreSQL 15", _postgres, SAMPLES),
    ("SeaweedFS (weed mini)", _seaweedfs, SAMPLES),
    ("Trino 476 + Hive (with its SeaweedFS)", _trino, TRINO_SAMPLES),
]


def main() -> None:
    medians = []
    for name, start, samples in SERVICES:
        ready = [_ready(name.split()[0].lower(), start) for _ in range(samples)]
        medians.append((name, statistics.median(ready), samples))
        print(f"{name}: ready {medians[-1][1]:.1f}s", flush=True)
    total = sum(seconds for _, seconds, _ in medians)
    rows = [
        f"| {name} | {seconds:.1f} s | {seconds / total:.0%} | {samples} |"
        for name, seconds, samples in medians
    ]
    body = (
        "Time from process start until the harness fixture considers the service ready, "
        "median of the samples. No ratio to a baseline: none measured here means anything "
        "to a user (an earlier one, the binary printing `--version`, was dropped); the share "
        "says which service the suite's start-up wait is spent on.\n"
        "The machine is shared (other test sessions may run at the same time).\n\n"
        "| service | ready after | share of the three | samples |\n"
        "| --- | ---: | ---: | ---: |\n" + "\n".join(rows) + "\n"
    )
    write_section(
        "Test service start-up", "uv run python -m benchmarks bench_service_startup", body
    )


if __name__ == "__main__":
    main()
