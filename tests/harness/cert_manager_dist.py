"""cert-manager's own CRDs for the tests, from the Go module proxy into a cache outside the repo:
`deploy/crds/` of github.com/cert-manager/cert-manager at the version the `cert_manager`
release pins (the chart installs the same files, which cannot be fetched here). `go mod
download` only, no compiling: seconds, ~20 MB of module, a few CRD files kept.

    uv run python -m tests.harness.cert_manager_dist     # fetches (or reuses), prints the directory

`${PICLUSTER_CACHE:-~/.cache/piclusterops}/cert-manager-<version>/crds/`; a marker written after
every file is in place says the directory is complete.
"""

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from platform_assets.releases.catalogue import CERT_MANAGER
from tests.harness.kube_dist import MIN_GO, KubeDistError, go_version
from tests.harness.trino_dist import cache_root

MODULE = "github.com/cert-manager/cert-manager"
CRDS = ("certificates", "clusterissuers")
MARKER = ".piclusterops-complete"


def directory() -> Path:
    return cache_root() / f"cert-manager-{CERT_MANAGER}"


def crd(name: str) -> Path:
    return directory() / "crds" / f"cert-manager.io_{name}.yaml"


def _fetch(target: Path, scratch: Path) -> None:
    env = {
        **os.environ,
        "GOMODCACHE": str(scratch / "go-mod"),
        "GOPATH": str(scratch / "gopath"),
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": "local",
    }
    argv = ["go", "mod", "download", "-json", f"{MODULE}@{CERT_MANAGER}"]
    answer = subprocess.run(argv, cwd=scratch, env=env, capture_output=True, text=True)
    if answer.returncode != 0:
        raise KubeDistError(
            f"`{' '.join(argv)}` failed (exit {answer.returncode}): {answer.stderr.strip()[-500:]}"
            " — the Go module proxy must be reachable and `go` on PATH."
        )
    source = Path(json.loads(answer.stdout)["Dir"]) / "deploy" / "crds"
    (target / "crds").mkdir(parents=True)
    for name in CRDS:
        file = f"cert-manager.io_{name}.yaml"
        shutil.copyfile(source / file, target / "crds" / file)


def ensure() -> Path:
    """Fetch the CRDs unless the cache already holds them for the pinned version."""
    where = directory()
    if (where / MARKER).is_file():
        return where
    found = go_version()
    if found is None or found < MIN_GO:
        raise KubeDistError(
            "the Go toolchain is needed once to fetch cert-manager's CRDs from the Go module "
            "proxy: install it (https://go.dev/dl/)"
        )
    where.parent.mkdir(parents=True, exist_ok=True)
    with (where.parent / f".cert-manager-{CERT_MANAGER}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second pytest waits, then reuses
        if (where / MARKER).is_file():
            return where
        scratch = Path(tempfile.mkdtemp(prefix="go-cert-manager-", dir=where.parent))
        staging = where.parent / f"cert-manager-{CERT_MANAGER}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _fetch(staging, scratch)
            (staging / MARKER).write_text(f"{MODULE}@{CERT_MANAGER}\n")
            shutil.rmtree(where, ignore_errors=True)
            staging.rename(where)
        finally:
            # The module cache is written read-only.
            subprocess.run(["chmod", "-R", "u+w", str(scratch)], check=False)
            shutil.rmtree(scratch, ignore_errors=True)
    return where


if __name__ == "__main__":
    try:
        print(ensure())
    except KubeDistError as error:
        print(f"cert_manager_dist: {error}", file=sys.stderr)
        sys.exit(1)
