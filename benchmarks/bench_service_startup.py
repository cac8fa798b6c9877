"""How long the test services take to become ready, against starting the same binary bare.

Readiness is what the fixtures wait for (PostgreSQL: a password login over TCP; SeaweedFS: an
authenticated ListBuckets; Trino: `/v1/info` not starting, an active node and `SELECT 1`). The
baseline, measured in the same run, is the same executable doing nothing (`--version`), so the
ratio is the cost of the server's own start-up over process (or JVM) launch. Each service's
samples alternate with its baseline so drift on a busy machine hits both alike.
"""

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.report import write_section
from tests.harness.postgres import PG_BIN, start_postgres
from tests.harness.seaweedfs import start_seaweedfs, weed_binary
from tests.harness.trino import JAVA_HOME, start_trino

SAMPLES = int(os.environ.get("BENCH_SAMPLES", "3"))
TRINO_SAMPLES = int(os.environ.get("BENCH_TRINO_SAMPLES", "1"))


def _bare(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


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
    ("PostgreSQL 15", _postgres, [str(PG_BIN / "postgres"), "--version"], SAMPLES),
    ("SeaweedFS (weed mini)", _seaweedfs, [str(weed_binary()), "version"], SAMPLES),
    ("Trino 476 + Hive", _trino, [str(JAVA_HOME / "bin" / "java"), "-version"], TRINO_SAMPLES),
]


def main() -> None:
    rows = []
    for name, start, bare_argv, samples in SERVICES:
        ready, bare = [], []
        for _ in range(samples):
            bare.append(_bare(bare_argv))
            ready.append(_ready(name.split()[0].lower(), start))
        r, b = statistics.median(ready), statistics.median(bare)
        rows.append(
            f"| {name} | `{Path(bare_argv[0]).name} {' '.join(bare_argv[1:])}` {b:.3f} s "
            f"| {r:.1f} s | {r / b:.0f}x | {samples} |"
        )
        print(f"{name}: ready {r:.1f}s, bare {b:.3f}s", flush=True)
    body = (
        "Time from process start until the harness fixture considers the service ready, "
        "median of the samples; baseline is the same executable started bare in the same run.\n"
        "The machine is shared (other test sessions may run at the same time), so read the "
        "ratios as orders of magnitude.\n\n"
        "| service | baseline (bare start) | ready after | ratio | samples |\n"
        "| --- | ---: | ---: | ---: | ---: |\n" + "\n".join(rows) + "\n"
    )
    write_section(
        "Test service start-up", "uv run python -m benchmarks bench_service_startup", body
    )


if __name__ == "__main__":
    main()
