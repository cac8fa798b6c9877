"""Code-location load time against a bare `import dagster`, both in fresh interpreters.

The target (issue 2): loading the code location takes at most 1.5x a bare `import dagster`. Each
sample is a new `python` process, so no import cache is shared; the two commands alternate so drift
on a busy machine hits both alike, and the median of each is compared. "Load" means what the
webserver and the daemon do: import `definitions` and resolve the repository (asset graph, jobs,
sensors, schedules, resources).
"""

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.report import write_section

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = int(os.environ.get("BENCH_SAMPLES", "9"))
BARE = "import dagster"
LOAD = "import definitions; definitions.defs.get_repository_def()"
EMPTY = "pass"


def _time(code: str) -> float:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - started


def measure(samples: int = SAMPLES) -> dict[str, float]:
    for code in (BARE, LOAD):  # warm the OS page cache once for both
        _time(code)
    times: dict[str, list[float]] = {BARE: [], LOAD: [], EMPTY: []}
    for _ in range(samples):
        for code in (BARE, LOAD, EMPTY):
            times[code].append(_time(code))
    return {code: statistics.median(values) for code, values in times.items()}


def main() -> None:
    medians = measure()
    bare, load, empty = medians[BARE], medians[LOAD], medians[EMPTY]
    ratio = load / bare
    net_ratio = (load - empty) / (bare - empty)
    body = f"""
Target: load <= 1.5x a bare `import dagster` (issue 2). Median of {SAMPLES} fresh interpreters each,
commands alternated.

| what | median | ratio to `import dagster` |
| --- | ---: | ---: |
| `python -c "{BARE}"` (baseline) | {bare:.3f} s | 1.00 |
| `python -c "{LOAD}"` | {load:.3f} s | **{ratio:.2f}** |
| the same, interpreter start-up ({empty:.3f} s) taken off both | | {net_ratio:.2f} |

Heavy clients (kubernetes, trino, minio, paramiko, pyarrow, duckdb, sqlglot) are imported where
they are used, not at load; `tests/test_code_location.py` fails if loading the code location
imports any of them.
"""
    write_section(
        "Code location load time", "uv run python -m benchmarks bench_code_location_load", body
    )
    print(f"load/import dagster = {ratio:.2f} (net of start-up {net_ratio:.2f})")


if __name__ == "__main__":
    main()
