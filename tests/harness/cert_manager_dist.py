"""cert-manager's own CRDs for the tests, from the Go module proxy into a cache outside the repo:
`deploy/crds/` of github.com/cert-manager/cert-manager at the version the `cert_manager`
release pins (the chart installs the same files, which cannot be fetched here). `go mod
download` only, no compiling: seconds, ~20 MB of module, a few CRD files kept.

    uv run python -m tests.harness.cert_manager_dist     # fetches (or reuses), prints the directory

`${PICLUSTER_CACHE:-~/.cache/piclusterops}/cert-manager-<version>/crds/`; a marker written after
every file is in place says the directory is complete.
"""

import json
import shutil
import sys
from pathlib import Path
from typing import TextIO

from platform_assets.releases.catalogue import CERT_MANAGER
from tests.harness import go_build
from tests.harness.trino_dist import cache_root

MODULE = "github.com/cert-manager/cert-manager"
CRDS = ("certificates", "clusterissuers")


def directory() -> Path:
    return cache_root() / f"cert-manager-{CERT_MANAGER}"


def crd(name: str) -> Path:
    return directory() / "crds" / f"cert-manager.io_{name}.yaml"


def _fetch(target: Path, scratch: Path, log: TextIO) -> None:
    downloaded = go_build.run_logged(
        ["go", "mod", "download", "-json", f"{MODULE}@{CERT_MANAGER}"],
        cwd=scratch,
        env=go_build.go_env(scratch),
        log=log,
    )
    source = Path(json.loads(downloaded)["Dir"]) / "deploy" / "crds"
    (target / "crds").mkdir(parents=True)
    for name in CRDS:
        file = f"cert-manager.io_{name}.yaml"
        shutil.copyfile(source / file, target / "crds" / file)


def ensure() -> Path:
    """Fetch the CRDs unless the cache already holds them for the pinned version."""
    return go_build.build_once(
        directory(), f"{MODULE}@{CERT_MANAGER}\n", _fetch, what="cert-manager's CRDs"
    )


if __name__ == "__main__":
    try:
        print(ensure())
    except go_build.GoBuildError as error:
        print(f"cert_manager_dist: {error}", file=sys.stderr)
        sys.exit(1)
