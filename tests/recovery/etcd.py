"""Helpers for the etcd tests: a real snapshot of the test control plane's etcd (its
Maintenance.Snapshot stream, through etcd's JSON gateway: the bytes `k3s etcd-snapshot save`
writes) and `etcdutl`, built once from the Go module proxy beside the control plane's cache."""

import base64
import json
import os
import subprocess
import urllib.request
from pathlib import Path

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


def etcdutl() -> Path | None:
    """The cached etcdutl of the control plane's etcd version, or None when it was never built
    (`python -m tests.recovery.etcd` builds it: about a minute with the control plane's Go
    module cache warm)."""
    path = cache_root() / f"etcdutl-{ETCD_VERSION}" / "bin" / "etcdutl"
    return path if os.access(path, os.X_OK) else None


def build_etcdutl() -> Path:
    import tempfile

    go_cache = cache_root() / "kube-v1.34.4" / "go-cache"
    target = cache_root() / f"etcdutl-{ETCD_VERSION}" / "bin"
    env = dict(
        os.environ,
        GOCACHE=str(go_cache / "go-build"),
        GOMODCACHE=str(go_cache / "go-mod"),
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
    )
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "go.mod").write_text(ETCDUTL_WRAPPER.format(version=ETCD_VERSION))
        (Path(tmp) / "main.go").write_text(ETCDUTL_MAIN)
        subprocess.run(["go", "mod", "tidy"], cwd=tmp, env=env, check=True)
        target.mkdir(parents=True, exist_ok=True)
        out = target / "etcdutl"
        subprocess.run(
            ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(out), "."],
            cwd=tmp,
            env=env,
            check=True,
        )
    return out


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
