"""The Kubernetes control plane the tests run, built once from the Go module proxy into a cache
outside the repo.

    uv run python -m tests.harness.kube_dist      # builds (or reuses) and prints the bin directory

Every version the control plane uses is pinned here and nowhere else; the K3s pin in the
inventory must name the same Kubernetes minor (a test holds them together).

`go install` refuses `k8s.io/kubernetes` (its go.mod replaces the staging modules with local
paths), so a small wrapper module is written that requires it and replaces every `k8s.io/<staging>`
module with its published `v0.<minor>.<patch>` twin; the commands are then built by package path.
etcd is built from the same wrapper (its server is already in Kubernetes' module graph, so one
download serves both). KWOK and K3s's helm-controller have ordinary go.mod files and go through
`go install`.

The cache is `${PICLUSTER_CACHE:-~/.cache/piclusterops}/kube-<k8s>/bin`. A marker written after
every binary built and answered its version query says the directory is usable. The Go build and
module caches (about 6-8 GB) live in a scratch folder removed after a successful build unless
PICLUSTER_KEEP_GO_CACHE=1; the binaries (about 450 MB) are what is kept.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TextIO

from tests.harness import go_build
from tests.harness.trino_dist import cache_root

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.4"  # the etcd server Kubernetes v1.34.4 itself requires
KWOK_VERSION = "v0.8.0"
HELM_CONTROLLER_VERSION = "v0.17.7"  # the helm-controller K3s embeds on its v1.34 line

# k8s.io/kubernetes' go.mod replaces these with ./staging/src/...; each is published on its own.
STAGING_MODULES = [
    "api",
    "apiextensions-apiserver",
    "apimachinery",
    "apiserver",
    "cli-runtime",
    "client-go",
    "cloud-provider",
    "cluster-bootstrap",
    "code-generator",
    "component-base",
    "component-helpers",
    "controller-manager",
    "cri-api",
    "cri-client",
    "csi-translation-lib",
    "dynamic-resource-allocation",
    "endpointslice",
    "externaljwt",
    "kms",
    "kube-aggregator",
    "kube-controller-manager",
    "kube-proxy",
    "kube-scheduler",
    "kubectl",
    "kubelet",
    "metrics",
    "mount-utils",
    "pod-security-admission",
    "sample-apiserver",
    "sample-cli-plugin",
    "sample-controller",
]

KUBE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl")
BINARIES = (*KUBE_COMMANDS, "etcd", "kwok", "helm-controller")


def bin_dir() -> Path:
    return cache_root() / f"kube-{KUBERNETES_VERSION}" / "bin"


def _marker_text() -> str:
    return (
        f"kubernetes={KUBERNETES_VERSION} etcd={ETCD_VERSION} kwok={KWOK_VERSION} "
        f"helm-controller={HELM_CONTROLLER_VERSION}\n"
    )


def is_complete(directory: Path) -> bool:
    return go_build.is_complete(directory, _marker_text())


def _staging_version() -> str:
    # v1.34.4 -> v0.34.4: the staging modules are published with major 0.
    return "v0" + KUBERNETES_VERSION[2:][KUBERNETES_VERSION[2:].index(".") :]


def _wrapper_go_mod() -> str:
    staging = _staging_version()
    lines = [
        "module piclusterops.local/controlplane",
        "",
        "go 1.24.0",
        "",
        "require (",
        f"\tk8s.io/kubernetes {KUBERNETES_VERSION}",
        f"\tgo.etcd.io/etcd/server/v3 {ETCD_VERSION}",
        ")",
        "",
        "replace (",
    ]
    lines += [f"\tk8s.io/{name} => k8s.io/{name} {staging}" for name in STAGING_MODULES]
    lines += [")", ""]
    return "\n".join(lines)


# etcd's own main is one line around etcdmain.Main; building it here keeps etcd on the version
# Kubernetes was tested with.
_ETCD_MAIN = """package main

import (
\t"os"

\t"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
"""

# Pulls the command packages into the module graph so `go mod tidy` keeps their dependencies.
_TOOLS = """//go:build tools

package tools

import (
\t_ "k8s.io/kubernetes/cmd/kube-apiserver"
\t_ "k8s.io/kubernetes/cmd/kube-controller-manager"
\t_ "k8s.io/kubernetes/cmd/kube-scheduler"
\t_ "k8s.io/kubernetes/cmd/kubectl"
)
"""


def _version_ldflags() -> str:
    major, minor, _patch = KUBERNETES_VERSION[1:].split(".")
    variables = {
        "gitVersion": KUBERNETES_VERSION,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{name}={value}" for name, value in variables.items()]
    return " ".join(flags)


def version_queries() -> dict[str, tuple[list[str], str]]:
    """Per binary: its version query and a regex for the line it must answer (as each really
    prints it)."""
    kubernetes = rf"Kubernetes {re.escape(KUBERNETES_VERSION)}$"
    return {
        "kube-apiserver": (["--version"], kubernetes),
        "kube-controller-manager": (["--version"], kubernetes),
        "kube-scheduler": (["--version"], kubernetes),
        "kubectl": (["version", "--client"], rf"Client Version: {re.escape(KUBERNETES_VERSION)}$"),
        "etcd": (["--version"], rf"etcd Version: {re.escape(ETCD_VERSION[1:])}$"),
        # kwok version v0.8.0 go1.26.8 (linux/amd64)
        "kwok": (["--version"], rf"kwok version {re.escape(KWOK_VERSION)} go"),
        # cobra's template around the version the build sets: helm-controller version v0.17.7 (HEAD)
        "helm-controller": (["--version"], rf"\S+ version {re.escape(HELM_CONTROLLER_VERSION)} \("),
    }


def _check_versions(directory: Path) -> None:
    """Each binary answers its version query with the pinned version, or the build is refused."""
    for name, (args, pattern) in version_queries().items():
        result = subprocess.run(
            [str(directory / name), *args], capture_output=True, text=True, timeout=30
        )
        said = result.stdout + result.stderr
        if not re.search(f"^{pattern}", said, re.MULTILINE):
            raise go_build.GoBuildError(f"{name} answered {said.strip()!r}, expected /{pattern}/")


def _build(target: Path, scratch: Path, log) -> None:
    env = go_build.go_env(scratch)
    wrapper = scratch / "wrapper"
    shutil.rmtree(wrapper, ignore_errors=True)  # a kept scratch folder holds the last one
    (wrapper / "etcd").mkdir(parents=True)
    (wrapper / "go.mod").write_text(_wrapper_go_mod())
    (wrapper / "etcd" / "main.go").write_text(_ETCD_MAIN)
    (wrapper / "tools.go").write_text(_TOOLS)
    go_build.run_logged(["go", "mod", "tidy"], cwd=wrapper, env=env, log=log)
    ldflags = _version_ldflags()
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMMANDS]
    go_build.run_logged(
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(target), *packages],
        cwd=wrapper,
        env=env,
        log=log,
    )
    go_build.run_logged(
        ["go", "build", "-trimpath", "-ldflags", "-s -w", "-o", str(target / "etcd"), "./etcd"],
        cwd=wrapper,
        env=env,
        log=log,
    )
    install_env = dict(env, GOBIN=str(target), GOFLAGS="")
    for module, ldflags in (
        # KWOK reads its version from the module's build info: right as it is.
        (f"sigs.k8s.io/kwok/cmd/kwok@{KWOK_VERSION}", "-s -w"),
        # The helm-controller's comes from a variable its own Makefile sets (else v0.0.0-dev).
        (
            f"github.com/k3s-io/helm-controller@{HELM_CONTROLLER_VERSION}",
            "-s -w -X github.com/k3s-io/helm-controller/pkg/version.Version="
            + HELM_CONTROLLER_VERSION,
        ),
    ):
        go_build.run_logged(
            ["go", "install", "-trimpath", "-ldflags", ldflags, module],
            cwd=scratch,
            env=install_env,
            log=log,
        )


def ensure() -> Path:
    """Build the control plane's binaries unless the cache already holds this exact set."""

    def build(staging: Path, scratch: Path, log: TextIO) -> None:
        _build(staging, scratch, log)
        _check_versions(staging)

    # Kept caches live at one fixed place, so the next build starts warm from them.
    keep = os.environ.get("PICLUSTER_KEEP_GO_CACHE") == "1"
    return go_build.build_once(
        bin_dir(),
        _marker_text(),
        build,
        what="the test control plane",
        keep_scratch=bin_dir().parent / "go-cache" if keep else None,
    )


if __name__ == "__main__":
    try:
        print(ensure())
    except go_build.GoBuildError as error:
        print(f"kube_dist: {error}", file=sys.stderr)
        sys.exit(1)
