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

import json
import shutil
import subprocess
import sys
from pathlib import Path

from platform_assets.releases import monitoring
from tests.harness import go_build
from tests.harness.trino_dist import cache_root

VERSION = monitoring.ALERTMANAGER_IMAGE.tag  # v0.32.1
COMMANDS = ("alertmanager", "amtool")


def directory() -> Path:
    return cache_root() / f"alertmanager-{VERSION}"


def binary(name: str) -> Path:
    return directory() / "bin" / name


def _marker_text() -> str:
    return f"{'+'.join(COMMANDS)}={VERSION}\n"


def is_complete(where: Path) -> bool:
    return go_build.is_complete(where, _marker_text())


def _build(target: Path, scratch: Path, log) -> None:
    env = go_build.go_env(scratch)
    module = f"github.com/prometheus/alertmanager@{VERSION}"
    downloaded = json.loads(
        go_build.run_logged(
            ["go", "mod", "download", "-json", module], cwd=scratch, env=env, log=log
        )
    )
    source = scratch / "alertmanager"
    shutil.copytree(downloaded["Dir"], source)
    subprocess.run(["chmod", "-R", "u+w", str(source)], check=True)
    dist = source / "ui" / "app" / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "index.html").write_text("<p>Alertmanager's UI is not built in this test copy.</p>\n")
    (target / "bin").mkdir(parents=True)
    for name in COMMANDS:
        go_build.run_logged(
            [
                "go",
                "build",
                "-trimpath",
                f"-ldflags=-s -w -X github.com/prometheus/common/version.Version={VERSION[1:]}",
                "-o",
                str(target / "bin" / name),
                f"./cmd/{name}",
            ],
            cwd=source,
            env=env,
            log=log,
        )
    for name in COMMANDS:
        answer = subprocess.run(
            [str(target / "bin" / name), "--version"], capture_output=True, text=True, timeout=30
        )
        said = answer.stdout + answer.stderr
        if f"version {VERSION[1:]}" not in said:
            raise go_build.GoBuildError(f"{name} answered {said.strip()!r}, expected {VERSION}")


def ensure() -> Path:
    """Build both unless the cache already holds this version; returns the folder."""
    return go_build.build_once(directory(), _marker_text(), _build, what="alertmanager and amtool")


if __name__ == "__main__":
    try:
        print(ensure())
    except go_build.GoBuildError as error:
        print(f"alertmanager_dist: {error}", file=sys.stderr)
        sys.exit(1)
