"""Alertmanager and its `amtool` for the alert-routing tests, from the Go module proxy into a
cache outside the repo, at the version the monitoring release runs.

    uv run python -m tests.harness.alertmanager_dist      # builds (or reuses), prints the folder

`go build ./cmd/alertmanager ./cmd/amtool` in a copy of the module from the proxy: the
alertmanager binary embeds its web UI's built assets (`ui/app/dist`), which the module does not
ship, so the copy gets a placeholder page (the tests use the API only). About 4 minutes on 2 busy
cores, ~600 MB of Go caches (removed after), two binaries (~70 MB) kept in
`${PICLUSTER_CACHE:-~/.cache/piclusterops}/alertmanager-<version>/bin`; a marker written after
both answered their version query says the directory is complete.
"""

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from platform_assets.releases import monitoring
from tests.harness.kube_dist import MIN_GO, KubeDistError, go_version
from tests.harness.trino_dist import cache_root

VERSION = monitoring.ALERTMANAGER_IMAGE.tag  # v0.32.1
MARKER = ".piclusterops-complete"
COMMANDS = ("alertmanager", "amtool")


def directory() -> Path:
    return cache_root() / f"alertmanager-{VERSION}"


def binary(name: str) -> Path:
    return directory() / "bin" / name


def _marker_text() -> str:
    return f"{'+'.join(COMMANDS)}={VERSION}\n"


def is_complete(where: Path) -> bool:
    marker = where / MARKER
    return marker.is_file() and marker.read_text() == _marker_text()


def _run(argv: list[str], env: dict, cwd: Path, log) -> str:
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    log.write(result.stdout + result.stderr)
    if result.returncode != 0:
        raise KubeDistError(
            f"`{' '.join(argv)}` failed (exit {result.returncode}); see {log.name}. The Go "
            "module proxy must be reachable and `go` on PATH."
        )
    return result.stdout


def _build(target: Path, scratch: Path, log) -> None:
    env = dict(os.environ)
    env.update(
        GOCACHE=str(scratch / "go-build"),
        GOMODCACHE=str(scratch / "go-mod"),
        GOPATH=str(scratch / "gopath"),
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
    )
    module = f"github.com/prometheus/alertmanager@{VERSION}"
    downloaded = json.loads(_run(["go", "mod", "download", "-json", module], env, scratch, log))
    source = scratch / "alertmanager"
    shutil.copytree(downloaded["Dir"], source)
    subprocess.run(["chmod", "-R", "u+w", str(source)], check=True)
    dist = source / "ui" / "app" / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "index.html").write_text("<p>Alertmanager's UI is not built in this test copy.</p>\n")
    (target / "bin").mkdir(parents=True)
    for name in COMMANDS:
        _run(
            [
                "go",
                "build",
                "-trimpath",
                f"-ldflags=-s -w -X github.com/prometheus/common/version.Version={VERSION[1:]}",
                "-o",
                str(target / "bin" / name),
                f"./cmd/{name}",
            ],
            env,
            source,
            log,
        )
    for name in COMMANDS:
        answer = subprocess.run(
            [str(target / "bin" / name), "--version"], capture_output=True, text=True, timeout=30
        )
        said = answer.stdout + answer.stderr
        if f"version {VERSION[1:]}" not in said:
            raise KubeDistError(f"{name} answered {said.strip()!r}, expected {VERSION}")


def ensure() -> Path:
    """Build both unless the cache already holds this version; returns the folder."""
    where = directory()
    if is_complete(where):
        return where
    found = go_version()
    if found is None or found < MIN_GO:
        raise KubeDistError(
            "the Go toolchain is needed once to build amtool from the Go module proxy: "
            "install it (https://go.dev/dl/) and run `scripts/bootstrap.sh test` again"
        )
    where.parent.mkdir(parents=True, exist_ok=True)
    with (where.parent / f".alertmanager-{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second pytest or bootstrap waits, then reuses
        if is_complete(where):
            return where
        scratch = Path(tempfile.mkdtemp(prefix="go-alertmanager-", dir=where.parent))
        staging = where.parent / f"alertmanager-{VERSION}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        started = time.monotonic()
        try:
            with (where.parent / f"alertmanager-{VERSION}.build.log").open("w") as log:
                _build(staging, scratch, log)
            (staging / MARKER).write_text(_marker_text())
            shutil.rmtree(where, ignore_errors=True)
            staging.rename(where)
        finally:
            # The module cache is written read-only.
            with contextlib.suppress(OSError):
                subprocess.run(["chmod", "-R", "u+w", str(scratch)], check=False)
            shutil.rmtree(scratch, ignore_errors=True)
        print(
            f"[alertmanager_dist] built {', '.join(COMMANDS)} in "
            f"{time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    return where


if __name__ == "__main__":
    try:
        print(ensure())
    except KubeDistError as error:
        print(f"alertmanager_dist: {error}", file=sys.stderr)
        sys.exit(1)
