"""Prometheus's own tools for the monitoring tests, from the Go module proxy into a cache outside
the repo: `promtool` (the version the monitoring release runs) and the prometheus-operator CRDs
(PrometheusRule, ServiceMonitor) of the operator version the chart runs.

    uv run python -m tests.harness.prometheus_dist      # builds (or reuses), prints the directory

promtool is built from github.com/prometheus/prometheus at the Go module version of the release
(v3.13.2 is module v0.313.2) through a wrapper module (its go.mod has a replace directive, which
`go install pkg@version` refuses); about 20 minutes of compiling on 2 busy cores, ~1.5 GB of Go
caches (removed after), a ~100 MB binary kept. The CRDs are read out of the operator's module
(`example/prometheus-operator-crd/`), downloaded with `go mod download` (seconds).
`${PICLUSTER_CACHE:-~/.cache/piclusterops}/prometheus-<version>/`; a marker written after the
binary answered its version query says the directory is complete.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from platform_assets.releases import monitoring
from tests.harness import go_build
from tests.harness.trino_dist import cache_root

PROMETHEUS_VERSION = monitoring.PROMETHEUS_IMAGE.tag  # v3.13.2
# Prometheus 3.x's Go module is tagged v0.3<minor>.<patch>.
_MAJOR, _MINOR, _PATCH = (int(p) for p in PROMETHEUS_VERSION[1:].split("."))
PROMETHEUS_MODULE_VERSION = f"v0.{_MAJOR}{_MINOR:02d}.{_PATCH}"
OPERATOR_VERSION = monitoring.OPERATOR_VERSION
CRDS = ("prometheusrules", "servicemonitors")


def directory() -> Path:
    return cache_root() / f"prometheus-{PROMETHEUS_VERSION}"


def _marker_text() -> str:
    return f"prometheus={PROMETHEUS_VERSION} operator={OPERATOR_VERSION}\n"


def is_complete(where: Path) -> bool:
    return go_build.is_complete(where, _marker_text())


def promtool() -> Path:
    return directory() / "bin" / "promtool"


def crd(name: str) -> Path:
    return directory() / "crds" / f"monitoring.coreos.com_{name}.yaml"


def _directives(go_mod: str) -> list[str]:
    """The replace and exclude directives of a go.mod, single lines and blocks alike."""
    out, block = [], False
    for line in go_mod.splitlines():
        stripped = line.split("//", 1)[0].rstrip()
        if block:
            out.append(line)
            block = stripped.strip() != ")"
        elif stripped.startswith(("replace", "exclude")):
            out.append(line)
            block = stripped.endswith("(")
    return out


def _wrapper_go_mod(module_go_mod: str) -> str:
    # `go install promtool@version` refuses a module whose go.mod has replace directives
    # (prometheus's pins cloud.google.com/go): a wrapper module requires it and repeats them.
    return "\n".join(
        [
            "module piclusterops.local/promtool",
            "",
            "go 1.24.0",
            "",
            f"require github.com/prometheus/prometheus {PROMETHEUS_MODULE_VERSION}",
            "",
            *_directives(module_go_mod),
            "",
        ]
    )


_TOOLS = """//go:build tools

package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
"""


def _download(module: str, env: dict, scratch: Path, log) -> dict:
    return json.loads(
        go_build.run_logged(
            ["go", "mod", "download", "-json", module], cwd=scratch, env=env, log=log
        )
    )


def _build(target: Path, scratch: Path, log) -> None:
    env = go_build.go_env(scratch)
    (target / "bin").mkdir(parents=True)
    (target / "crds").mkdir()
    prometheus = _download(
        f"github.com/prometheus/prometheus@{PROMETHEUS_MODULE_VERSION}", env, scratch, log
    )
    wrapper = scratch / "wrapper"
    shutil.rmtree(wrapper, ignore_errors=True)
    wrapper.mkdir()
    (wrapper / "go.mod").write_text(_wrapper_go_mod(Path(prometheus["GoMod"]).read_text()))
    (wrapper / "tools.go").write_text(_TOOLS)
    go_build.run_logged(["go", "mod", "tidy"], cwd=wrapper, env=env, log=log)
    go_build.run_logged(
        [
            "go",
            "build",
            "-trimpath",
            "-ldflags",
            f"-s -w -X github.com/prometheus/common/version.Version={PROMETHEUS_VERSION[1:]}",
            "-o",
            str(target / "bin" / "promtool"),
            "github.com/prometheus/prometheus/cmd/promtool",
        ],
        cwd=wrapper,
        env=env,
        log=log,
    )
    operator = _download(
        f"github.com/prometheus-operator/prometheus-operator@{OPERATOR_VERSION}", env, scratch, log
    )
    source = Path(operator["Dir"]) / "example" / "prometheus-operator-crd"
    for name in CRDS:
        file = f"monitoring.coreos.com_{name}.yaml"
        shutil.copyfile(source / file, target / "crds" / file)
    answer = subprocess.run(
        [str(target / "bin" / "promtool"), "--version"], capture_output=True, text=True, timeout=30
    )
    if f"version {PROMETHEUS_VERSION[1:]}" not in answer.stdout + answer.stderr:
        raise go_build.GoBuildError(
            f"promtool answered {answer.stdout.strip()!r}, expected {PROMETHEUS_VERSION}"
        )


def ensure() -> Path:
    """Build promtool and fetch the CRDs unless the cache already holds this exact set."""
    return go_build.build_once(directory(), _marker_text(), _build, what="promtool")


if __name__ == "__main__":
    try:
        print(ensure())
    except go_build.GoBuildError as error:
        print(f"prometheus_dist: {error}", file=sys.stderr)
        sys.exit(1)
