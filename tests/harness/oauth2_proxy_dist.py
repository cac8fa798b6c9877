"""oauth2-proxy for the gateway tests, built from the Go module proxy into a cache outside the
repo at the version the `gateway` release runs (its image's tag):

    uv run python -m tests.harness.oauth2_proxy_dist     # builds (or reuses), prints the binary

`go install github.com/oauth2-proxy/oauth2-proxy/v7@v<tag>` with the local Go toolchain (the
image is built with its own Go; the upstream proxy's TLS is the standard library's in both).
About ten minutes the first time, mostly the module downloads (~650 MB of Go caches, removed
after); a ~35 MB binary kept in `${PICLUSTER_CACHE:-~/.cache/piclusterops}/oauth2-proxy-<tag>/`,
with a marker written once it answered its version.
"""

import subprocess
import sys
from pathlib import Path
from typing import TextIO

from platform_assets.releases.gateway import IMAGE
from tests.harness import go_build
from tests.harness.trino_dist import cache_root

VERSION = f"v{IMAGE.tag}"
MODULE = "github.com/oauth2-proxy/oauth2-proxy/v7"


def directory() -> Path:
    return cache_root() / f"oauth2-proxy-{VERSION}"


def binary() -> Path:
    return directory() / "bin" / "oauth2-proxy"


def _build(target: Path, scratch: Path, log: TextIO) -> None:
    go_build.run_logged(
        [
            "go",
            "install",
            "-trimpath",
            "-ldflags",
            f"-s -w -X main.VERSION={VERSION}",  # version.go of the module's main package
            f"{MODULE}@{VERSION}",
        ],
        cwd=scratch,
        env=dict(go_build.go_env(scratch), GOBIN=str(target / "bin")),
        log=log,
    )
    answer = subprocess.run(
        [str(target / "bin" / "oauth2-proxy"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if VERSION not in answer.stdout + answer.stderr:
        raise go_build.GoBuildError(
            f"oauth2-proxy answered {answer.stdout.strip()!r}, expected {VERSION}"
        )


def ensure() -> Path:
    """The binary, built unless the cache already holds this version."""
    go_build.build_once(directory(), f"{MODULE}@{VERSION}\n", _build, what="oauth2-proxy")
    return binary()


if __name__ == "__main__":
    try:
        print(ensure())
    except go_build.GoBuildError as error:
        print(f"oauth2_proxy_dist: {error}", file=sys.stderr)
        sys.exit(1)
