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
PROJECT = ("definitions.py", "platform_assets", "data_assets", "resources", "sensors")


BYTECODE_NOTE = (
    "Measured with the environment's bytecode compiled, as `make dev`/`make test` leave it "
    "(`uv sync --compile-bytecode`; the benchmark also compiles the project's own modules): "
    "without it, where `PYTHONDONTWRITEBYTECODE=1` is set (as on this machine) or the "
    "environment is read-only, every process compiles every module from source again (several "
    "seconds of CPU for Dagster alone)."
)


def compile_bytecode() -> None:
    """What Python does on a module's first import (and `uv sync --compile-bytecode` up front):
    later processes read `__pycache__` instead of compiling the sources again. An environment
    where PYTHONDONTWRITEBYTECODE is set never gets those files, and every process pays for it."""
    import sysconfig

    paths = [sysconfig.get_paths()["purelib"], *(str(ROOT / p) for p in PROJECT)]
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", *paths],
        check=True,
        capture_output=True,
        env={k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
    )


def _time(code: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system) of one fresh interpreter running `code`."""
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    before = os.times()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True)
    wall = time.perf_counter() - started
    after = os.times()
    return wall, (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )


def measure(samples: int = SAMPLES) -> dict[str, tuple[float, float]]:
    """Per command: the median wall time and the median CPU time."""
    compile_bytecode()
    for code in (BARE, LOAD):  # warm the OS page cache once for both
        _time(code)
    times: dict[str, list[tuple[float, float]]] = {BARE: [], LOAD: [], EMPTY: []}
    for _ in range(samples):
        for code in (BARE, LOAD, EMPTY):
            times[code].append(_time(code))
    return {
        code: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for code, values in times.items()
    }


def main() -> None:
    medians = measure()
    (bare, bare_cpu), (load, load_cpu), (empty, _) = medians[BARE], medians[LOAD], medians[EMPTY]
    ratio, cpu_ratio = load / bare, load_cpu / bare_cpu
    net_ratio = (load - empty) / (bare - empty)
    load_average = os.getloadavg()[0]
    body = f"""
Target: load <= 1.5x a bare `import dagster` (issue 2). Median of {SAMPLES} fresh interpreters each,
commands alternated. Wall time is what a person waits for; CPU time (user + system of the
process) is the same work without the waiting for a core, which is what a shared machine adds
(load average {load_average:.1f} on {os.cpu_count()} cores at the end of this run).

| what | wall | ratio | CPU | ratio |
| --- | ---: | ---: | ---: | ---: |
| `python -c "{BARE}"` (baseline) | {bare:.3f} s | 1.00 | {bare_cpu:.3f} s | 1.00 |
| `python -c "{LOAD}"` | {load:.3f} s | **{ratio:.2f}** | {load_cpu:.3f} s | **{cpu_ratio:.2f}** |
| the same, interpreter start-up ({empty:.3f} s) taken off both | | {net_ratio:.2f} | | |

{BYTECODE_NOTE}

Heavy clients (kubernetes, trino, minio, paramiko, pyarrow, duckdb, sqlglot, sqlalchemy, psycopg2,
boto3) and the cluster profile's Dagster libraries (dagster-k8s, dagster-aws, dagster-postgres) are
imported where they are used, not at load; `tests/test_code_location.py` fails if loading the
code location imports any of them.
"""
    write_section(
        "Code location load time", "uv run python -m benchmarks bench_code_location_load", body
    )
    print(f"load/import dagster = {ratio:.2f} wall, {cpu_ratio:.2f} CPU")


if __name__ == "__main__":
    main()
