"""oauth2-proxy for the gateway tests, built from the Go module proxy into a cache outside the
repo at the version the `gateway` release runs (its image's tag):

    uv run python -m tests.harness.oauth2_proxy_dist     # builds (or reuses), prints the binary

`go install github.com/oauth2-proxy/oauth2-proxy/v7@v<tag>` with the local Go toolchain (the
image is built with its own Go; the upstream proxy's TLS is the standard library's in both).
About ten minutes the first time, mostly the module downloads (~650 MB of Go caches, removed
after); a ~35 MB binary kept in `${PICLUSTER_CACHE:-~/.cache/piclusterops}/oauth2-proxy-<tag>/`,
with a marker written once it answered its version.
"""

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from platform_assets.releases.gateway import IMAGE
from tests.harness.kube_dist import MIN_GO, KubeDistError, go_version
from tests.harness.trino_dist import cache_root

VERSION = f"v{IMAGE.tag}"
MODULE = "github.com/oauth2-proxy/oauth2-proxy/v7"
MARKER = ".piclusterops-complete"


def directory() -> Path:
    return cache_root() / f"oauth2-proxy-{VERSION}"


def binary() -> Path:
    return directory() / "bin" / "oauth2-proxy"


def _build(target: Path, scratch: Path, log) -> None:
    env = {
        **os.environ,
        "GOCACHE": str(scratch / "go-build"),
        "GOMODCACHE": str(scratch / "go-mod"),
        "GOPATH": str(scratch / "gopath"),
        "GOBIN": str(target / "bin"),
        "GOFLAGS": "-mod=mod",
        "CGO_ENABLED": "0",
        "GOTOOLCHAIN": "local",
    }
    argv = [
        "go",
        "install",
        "-trimpath",
        "-ldflags",
        f"-s -w -X main.VERSION={VERSION}",  # version.go of the module's main package
        f"{MODULE}@{VERSION}",
    ]
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    result = subprocess.run(argv, cwd=scratch, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise KubeDistError(
            f"`{' '.join(argv)}` failed (exit {result.returncode}); see {log.name}. The Go "
            "module proxy must be reachable and `go` on PATH."
        )
    answer = subprocess.run(
        [str(target / "bin" / "oauth2-proxy"), "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if VERSION not in answer.stdout + answer.stderr:
        raise KubeDistError(f"oauth2-proxy answered {answer.stdout.strip()!r}, expected {VERSION}")


def ensure() -> Path:
    """The binary, built unless the cache already holds this version."""
    where = directory()
    if (where / MARKER).is_file():
        return binary()
    found = go_version()
    if found is None or found < MIN_GO:
        raise KubeDistError(
            "the Go toolchain is needed once to build oauth2-proxy from the Go module proxy: "
            "install it (https://go.dev/dl/)"
        )
    where.parent.mkdir(parents=True, exist_ok=True)
    with (where.parent / f".oauth2-proxy-{VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second pytest waits, then reuses
        if (where / MARKER).is_file():
            return binary()
        scratch = Path(tempfile.mkdtemp(prefix="go-oauth2-proxy-", dir=where.parent))
        staging = where.parent / f"oauth2-proxy-{VERSION}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        started = time.monotonic()
        try:
            with (where.parent / f"oauth2-proxy-{VERSION}.build.log").open("w") as log:
                _build(staging, scratch, log)
            (staging / MARKER).write_text(f"{MODULE}@{VERSION}\n")
            shutil.rmtree(where, ignore_errors=True)
            staging.rename(where)
        finally:
            with contextlib.suppress(OSError):
                subprocess.run(["chmod", "-R", "u+w", str(scratch)], check=False)
            shutil.rmtree(scratch, ignore_errors=True)
        print(
            f"[oauth2_proxy_dist] built oauth2-proxy in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    return binary()


if __name__ == "__main__":
    try:
        print(ensure())
    except KubeDistError as error:
        print(f"oauth2_proxy_dist: {error}", file=sys.stderr)
        sys.exit(1)
