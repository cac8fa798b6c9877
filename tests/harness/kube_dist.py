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
module caches (about 8 GB) live in a scratch folder removed after a successful build unless
PICLUSTER_KEEP_GO_CACHE=1; the binaries (about 550 MB) are what is kept.
"""

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.trino_dist import cache_root

KUBERNETES_VERSION = "v1.34.4"
ETCD_VERSION = "v3.6.4"  # the etcd server Kubernetes v1.34.4 itself requires
KWOK_VERSION = "v0.8.0"
HELM_CONTROLLER_VERSION = "v0.17.7"  # the helm-controller K3s embeds on its v1.34 line
# The oldest Go that builds all of them: KWOK v0.8.0's go.mod says `go 1.26.0` (GOTOOLCHAIN is
# local: the build never downloads another toolchain).
MIN_GO = (1, 26)

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
MARKER = ".piclusterops-complete"


class KubeDistError(RuntimeError):
    """The control plane could not be built; the message says what to do."""


def _min_go() -> str:
    return ".".join(map(str, MIN_GO))


def go_version() -> tuple[int, ...] | None:
    """The (major, minor) of the `go` on PATH, or None without one."""
    if shutil.which("go") is None:
        return None
    said = subprocess.run(
        ["go", "env", "GOVERSION"], capture_output=True, text=True, check=False
    ).stdout
    match = re.match(r"go(\d+)\.(\d+)", said.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None


def bin_dir() -> Path:
    return cache_root() / f"kube-{KUBERNETES_VERSION}" / "bin"


def _marker_text() -> str:
    return (
        f"kubernetes={KUBERNETES_VERSION} etcd={ETCD_VERSION} kwok={KWOK_VERSION} "
        f"helm-controller={HELM_CONTROLLER_VERSION}\n"
    )


def is_complete(directory: Path) -> bool:
    marker = directory / MARKER
    return marker.is_file() and marker.read_text() == _marker_text()


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


def _go_env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        GOCACHE=str(scratch / "go-build"),
        GOMODCACHE=str(scratch / "go-mod"),
        GOPATH=str(scratch / "gopath"),
        GOFLAGS="-mod=mod",
        CGO_ENABLED="0",
        GOTOOLCHAIN="local",
    )
    return env


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], log) -> None:
    log.write(f"$ {' '.join(argv)}\n")
    log.flush()
    result = subprocess.run(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise KubeDistError(
            f"`{' '.join(argv)}` failed (exit {result.returncode}); see {log.name}. The Go module "
            f"proxy must be reachable and `go` ({_min_go()} or newer) on PATH."
        )


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
            raise KubeDistError(f"{name} answered {said.strip()!r}, expected /{pattern}/")


def _build(target: Path, scratch: Path, log) -> None:
    env = _go_env(scratch)
    wrapper = scratch / "wrapper"
    (wrapper / "etcd").mkdir(parents=True)
    (wrapper / "go.mod").write_text(_wrapper_go_mod())
    (wrapper / "etcd" / "main.go").write_text(_ETCD_MAIN)
    (wrapper / "tools.go").write_text(_TOOLS)
    _run(["go", "mod", "tidy"], cwd=wrapper, env=env, log=log)
    ldflags = _version_ldflags()
    packages = [f"k8s.io/kubernetes/cmd/{name}" for name in KUBE_COMMANDS]
    _run(
        ["go", "build", "-trimpath", "-ldflags", ldflags, "-o", str(target), *packages],
        cwd=wrapper,
        env=env,
        log=log,
    )
    _run(
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
        _run(
            ["go", "install", "-trimpath", "-ldflags", ldflags, module],
            cwd=scratch,
            env=install_env,
            log=log,
        )


def ensure() -> Path:
    """Build the control plane's binaries unless the cache already holds this exact set."""
    directory = bin_dir()
    if is_complete(directory):
        return directory
    found = go_version()
    if found is None or found < MIN_GO:
        have = "no `go` on PATH" if found is None else f"found go {'.'.join(map(str, found))}"
        raise KubeDistError(
            f"the Go toolchain ({_min_go()} or newer; {have}) is needed once to build the test "
            "control plane from the Go module proxy: install it (https://go.dev/dl/) and run "
            "`scripts/bootstrap.sh test` again"
        )
    directory.parent.mkdir(parents=True, exist_ok=True)
    lock_path = directory.parent / ".lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second pytest or bootstrap waits, then reuses
        if is_complete(directory):
            return directory
        keep = os.environ.get("PICLUSTER_KEEP_GO_CACHE") == "1"
        # Kept caches live at one fixed place, so the next build starts warm from them.
        scratch = directory.parent / "go-cache"
        if keep:
            scratch.mkdir(exist_ok=True)
            shutil.rmtree(scratch / "wrapper", ignore_errors=True)
        else:
            scratch = Path(tempfile.mkdtemp(prefix="go-", dir=directory.parent))
        staging = directory.parent / "bin.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        log_path = directory.parent / "build.log"
        started = time.monotonic()
        try:
            with log_path.open("w") as log:
                _build(staging, scratch, log)
            _check_versions(staging)
            (staging / MARKER).write_text(_marker_text())
            shutil.rmtree(directory, ignore_errors=True)
            staging.rename(directory)
        finally:
            if not keep:
                with contextlib.suppress(OSError):
                    subprocess.run(["chmod", "-R", "u+w", str(scratch)], check=False)
                shutil.rmtree(scratch, ignore_errors=True)
        print(
            f"[kube_dist] built the control plane in {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
    return directory


if __name__ == "__main__":
    try:
        print(ensure())
    except KubeDistError as error:
        print(f"kube_dist: {error}", file=sys.stderr)
        sys.exit(1)
