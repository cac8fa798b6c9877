"""Helpers for the etcd tests: a real snapshot of the test control plane's etcd (its
Maintenance.Snapshot stream, through etcd's JSON gateway: the bytes `k3s etcd-snapshot save`
writes) and `etcdutl`, built once from the Go module proxy beside the control plane's cache."""

import base64
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import TextIO

from tests.harness import go_build
from tests.harness.kube_dist import ETCD_VERSION
from tests.harness.trino_dist import cache_root

ETCDUTL_WRAPPER = """module piclusterops.local/etcdutl

go 1.24.0

require go.etcd.io/etcd/etcdutl/v3 {version}
"""
ETCDUTL_MAIN = """package main

import (
\t"os"

\t"github.com/spf13/cobra"

\t"go.etcd.io/etcd/etcdutl/v3/etcdutl"
)

func main() {
\troot := &cobra.Command{Use: "etcdutl"}
\troot.PersistentFlags().StringVarP(&etcdutl.OutputFormat, "write-out", "w", "simple", "")
\troot.AddCommand(etcdutl.NewSnapshotCommand(), etcdutl.NewVersionCommand())
\tif err := root.Execute(); err != nil {
\t\tos.Exit(1)
\t}
}
"""


def _directory() -> Path:
    return cache_root() / f"etcdutl-{ETCD_VERSION}"


def _marker_text() -> str:
    return f"etcdutl={ETCD_VERSION}\n"


def etcdutl() -> Path | None:
    """The cached etcdutl of the control plane's etcd version, or None when it was never built
    (`python -m tests.recovery.etcd` builds it: a few minutes, the Go module downloads included)."""
    complete = go_build.is_complete(_directory(), _marker_text())
    return _directory() / "bin" / "etcdutl" if complete else None


def _build(target: Path, scratch: Path, log: TextIO) -> None:
    env = go_build.go_env(scratch)
    wrapper = scratch / "wrapper"
    wrapper.mkdir()
    (wrapper / "go.mod").write_text(ETCDUTL_WRAPPER.format(version=ETCD_VERSION))
    (wrapper / "main.go").write_text(ETCDUTL_MAIN)
    go_build.run_logged(["go", "mod", "tidy"], cwd=wrapper, env=env, log=log)
    out = target / "bin" / "etcdutl"
    go_build.run_logged(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."],
        cwd=wrapper,
        env=env,
        log=log,
    )
    answer = subprocess.run([str(out), "version"], capture_output=True, text=True, timeout=30)
    if f"etcdutl version: {ETCD_VERSION[1:]}" not in answer.stdout:
        raise go_build.GoBuildError(f"etcdutl answered {answer.stdout.strip()!r}")


def build_etcdutl() -> Path:
    go_build.build_once(_directory(), _marker_text(), _build, what="etcdutl")
    return _directory() / "bin" / "etcdutl"


def etcdutl_status(path: Path) -> dict:
    binary = etcdutl()
    assert binary is not None
    out = subprocess.run(
        [str(binary), "snapshot", "status", str(path), "-w", "json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if out.returncode != 0:
        raise AssertionError(f"etcdutl snapshot status failed: {out.stderr.strip()}")
    return json.loads(out.stdout)


def take_snapshot(etcd_url: str, into: Path) -> Path:
    request = urllib.request.Request(
        etcd_url + "/v3/maintenance/snapshot", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 (loopback)
        lines = response.read().splitlines()
    into.write_bytes(
        b"".join(base64.b64decode(json.loads(line)["result"]["blob"]) for line in lines if line)
    )
    return into


if __name__ == "__main__":
    print(build_etcdutl())
