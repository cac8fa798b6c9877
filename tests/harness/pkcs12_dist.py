"""cert-manager's PKCS#12 output for the tests, built from the Go module proxy into a cache
outside the repo: `tests/harness/pkcs12/main.go`, a small program encoding a Certificate's PEM
files with `software.sslmate.com/src/go-pkcs12` at the version the pinned cert-manager's go.mod
requires, the way its issuing controller does (no cert-manager controller runs here).

    uv run python -m tests.harness.pkcs12_dist     # builds (or reuses), prints the binary

Seconds and a few MB of modules the first time; the binary is kept in
`${PICLUSTER_CACHE:-~/.cache/piclusterops}/cert-manager-pkcs12-<go-pkcs12 version>/`.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from platform_assets.releases.catalogue import CERT_MANAGER
from tests.harness import go_build
from tests.harness.trino_dist import cache_root

MODULE = "software.sslmate.com/src/go-pkcs12"
# cert-manager v1.21.1's go.mod: `software.sslmate.com/src/go-pkcs12 v0.7.2`.
VERSION = "v0.7.2"
SOURCE = Path(__file__).resolve().parent / "pkcs12" / "main.go"


def directory() -> Path:
    return cache_root() / f"cert-manager-pkcs12-{VERSION}"


def binary() -> Path:
    return directory() / "bin" / "cert-manager-pkcs12"


def _marker() -> str:
    # The source's own text: an edit to main.go rebuilds.
    return f"{MODULE}@{VERSION} for cert-manager {CERT_MANAGER}\n{SOURCE.read_text()}"


def _build(target: Path, scratch: Path, log: TextIO) -> None:
    work = scratch / "src"
    work.mkdir()
    shutil.copyfile(SOURCE, work / "main.go")
    (work / "go.mod").write_text(
        f"module piclusterops/pkcs12\n\ngo {go_build.min_go()}\n\nrequire {MODULE} {VERSION}\n"
    )
    env = go_build.go_env(scratch)
    go_build.run_logged(["go", "mod", "tidy"], cwd=work, env=env, log=log)
    (target / "bin").mkdir()
    go_build.run_logged(
        ["go", "build", "-trimpath", "-o", str(target / "bin" / "cert-manager-pkcs12"), "."],
        cwd=work,
        env=env,
        log=log,
    )


def ensure() -> Path:
    """The binary, built unless the cache already holds it for this source and version."""
    go_build.build_once(directory(), _marker(), _build, what="the PKCS#12 encoder")
    return binary()


def encode(profile: str, secret_dir: Path, password: str) -> None:
    """keystore.p12 and truststore.p12 into `secret_dir`, from its tls.key, tls.crt, ca.crt."""
    subprocess.run(
        [str(ensure()), profile, str(secret_dir)],
        env=dict(os.environ, PKCS12_PASSWORD=password),
        check=True,
        capture_output=True,
        timeout=60,
    )


if __name__ == "__main__":
    try:
        print(ensure())
    except go_build.GoBuildError as error:
        print(f"pkcs12_dist: {error}", file=sys.stderr)
        sys.exit(1)
