"""What every tool the tests build from the Go module proxy shares (the control plane in
kube_dist, promtool in prometheus_dist, etcdutl in tests/recovery/etcd): the Go environment, a
logged build step, and the cache dance around a build.

A build goes into a staging directory beside its cache entry and is renamed into place only
after it finished and wrote its marker, under a lock: a second pytest or `scripts/bootstrap.sh`
waits and then reuses it, and an interrupted build never looks complete.
"""

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

# The oldest Go that builds all of them: KWOK v0.8.0's go.mod says `go 1.26.0` (GOTOOLCHAIN is
# local: the build never downloads another toolchain).
MIN_GO = (1, 26)
MARKER = ".piclusterops-complete"


class GoBuildError(RuntimeError):
    """A tool could not be built; the message says what to do."""


def min_go() -> str:
    return ".".join(map(str, MIN_GO))


def go_version() -> tuple[int, ...] | None:
    """The (major, minor) of the `go` on PATH, or None without one."""
    if shutil.which("go") is None:
        return None
    said = subprocess.run(
        ["go", "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout
    match = re.match(r"go(\d+)\.(\d+)", said.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def go_env(scratch: Path) -> dict[str, str]:
    """Go's build and module caches in `scratch` (gigabytes, removed after the build); static
    binaries; the toolchain on PATH, never a downloaded one."""
    return dict(
        os.environ,
        GOCACHE=str(scratch / "go-build"),
        GOMODCACHE=str(scratch / "go-mod"),
        GOPATH=str(scratch / "gopath"),
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
    )


def run_logged(argv: list[str], *, cwd: Path, env: dict[str, str], log: TextIO) -> str:
    """Runs one build step, its progress (stderr) streamed into the build log; returns its
    stdout, also logged."""
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    result = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    log.write(result.stdout)
    log.flush()
    if result.returncode != 0:
        raise GoBuildError(
            f"`{' '.join(argv)}` failed (exit {result.returncode}); see {log.name}. The Go module "
            f"proxy must be reachable and `go` ({min_go()} or newer) on PATH."
        )
    return result.stdout


def is_complete(directory: Path, marker_text: str) -> bool:
    marker = directory / MARKER
    return marker.is_file() and marker.read_text() == marker_text


def build_once(
    directory: Path,
    marker_text: str,
    build: Callable[[Path, Path, TextIO], None],
    *,
    what: str,
    keep_scratch: Path | None = None,
) -> Path:
    """`directory`, built by `build(staging, scratch, log)` unless the cache already holds it
    with this marker. `keep_scratch` keeps Go's caches at that fixed place for the next build
    instead of a temporary folder removed afterwards."""
    if is_complete(directory, marker_text):
        return directory
    found = go_version()
    if found is None or found < MIN_GO:
        have = "no `go` on PATH" if found is None else f"found go {'.'.join(map(str, found))}"
        raise GoBuildError(
            f"the Go toolchain ({min_go()} or newer; {have}) is needed once to build {what} "
            "from the Go module proxy: install it (https://go.dev/dl/) and run "
            "`scripts/bootstrap.sh test` again"
        )
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    with (parent / f".{directory.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second pytest or bootstrap waits, then reuses
        if is_complete(directory, marker_text):
            return directory
        if keep_scratch is not None:
            scratch = keep_scratch
            scratch.mkdir(parents=True, exist_ok=True)
        else:
            scratch = Path(tempfile.mkdtemp(prefix="go-", dir=parent))
        staging = parent / f"{directory.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        started = time.monotonic()
        try:
            with (parent / f"{directory.name}.build.log").open("w") as log:
                build(staging, scratch, log)
            (staging / MARKER).write_text(marker_text)
            shutil.rmtree(directory, ignore_errors=True)
            staging.rename(directory)
        finally:
            if keep_scratch is None:
                with contextlib.suppress(OSError):  # Go writes its module cache read-only
                    subprocess.run(["chmod", "-R", "u+w", str(scratch)], check=False)
                shutil.rmtree(scratch, ignore_errors=True)
        print(f"[go_build] built {what} in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return directory
