#!/usr/bin/env bash
# Installs what a fresh machine lacks for `make dev` (what=dev), `make fake-cluster` (what=fake)
# or `make test` (what=test).
# Idempotent: each step checks first and does nothing when the thing is already there.
set -euo pipefail
what="${1:-dev}"
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
TEMURIN_HOME="${PICLUSTER_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
# Debian packages the fake-Pi cluster needs: sshd per node, sudo inside the nodes, unshare.
FAKE_DEBS=(openssh-server openssh-client sudo util-linux)
# ...and the other test services (see DESIGN.md "Real components in tests"): PostgreSQL's server
# binaries, Maven for the Trino download, nft for the firewall ruleset test.
TEST_DEBS=("${FAKE_DEBS[@]}" postgresql-15 maven nftables iproute2 procps)

say() { printf '[bootstrap] %s\n' "$*"; }

need_python() {
  command -v python3 >/dev/null || { say "python3 (>= 3.11) is required: install it first"; exit 1; }
  python3 - <<'PY' || { say "python3 >= 3.11 is required (found $(python3 --version))"; exit 1; }
import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY
}

need_uv() {
  if ! command -v uv >/dev/null || [ "$(uv --version | awk '{print $2}')" != "$UV_VERSION" ]; then
    say "installing uv $UV_VERSION from PyPI"
    python3 -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" 2>/dev/null \
      || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages "uv==$UV_VERSION"
    hash -r
  fi
}

need_debs() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { say "missing Debian packages: ${missing[*]} (run as root or install them)"; exit 1; }
    sudo="sudo"
  fi
  say "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  # Only the binaries are needed; the tests start their own servers in temp dirs.
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # A freshly installed package may start its system service; the tests never use it (they start
  # their own servers in temp dirs), so stop only the ones this step brought.
  case " ${missing[*]} " in *" openssh-server "*) $sudo service ssh stop >/dev/null 2>&1 || true ;; esac
  case " ${missing[*]} " in *" postgresql-15 "*) $sudo service postgresql stop >/dev/null 2>&1 || true ;; esac
}

need_java() {
  [ -x "$TEMURIN_HOME/bin/java" ] && return 0
  say "Trino 476 needs Java 24+: expected a JDK at $TEMURIN_HOME (set PICLUSTER_JAVA_HOME to another one)"
  exit 1
}

# The Kubernetes control plane of the tests and the fake cluster: kube-apiserver, etcd, KWOK,
# the helm-controller, built once from the Go module proxy into ~/.cache/piclusterops (about
# 20 minutes cold on 2 cores). Go >= 1.26 is needed for that build only; it says so if missing.
need_control_plane() {
  say "ensuring the Kubernetes control plane is built (once, from the Go module proxy)"
  uv run --frozen python -m tests.harness.kube_dist >/dev/null
}

# promtool (Prometheus v3.13.2, the monitoring release's) and the prometheus-operator CRDs for the
# monitoring tests, built once from the Go module proxy into ~/.cache/piclusterops (about 15-20
# minutes cold on 2 cores).
need_promtool() {
  say "ensuring promtool is built (once, from the Go module proxy)"
  uv run --frozen python -m tests.harness.prometheus_dist >/dev/null
}

# amtool (Alertmanager v0.32.1, the monitoring release's) for the alert-routing tests, built once
# from the Go module proxy into ~/.cache/piclusterops (about 4 minutes cold on 2 cores).
need_amtool() {
  say "ensuring amtool is built (once, from the Go module proxy)"
  uv run --frozen python -m tests.harness.alertmanager_dist >/dev/null
}

# The gateway tests' oauth2-proxy (the gateway release's v7.6.0, ~6-11 minutes cold, mostly
# module downloads) and cert-manager's CRDs (seconds), from the Go module proxy into the cache.
need_gateway_tools() {
  say "ensuring oauth2-proxy is built and cert-manager's CRDs fetched (once, from the Go module proxy)"
  uv run --frozen python -m tests.harness.oauth2_proxy_dist >/dev/null
  uv run --frozen python -m tests.harness.cert_manager_dist >/dev/null
}

need_python
need_uv
say "syncing the Python environment from uv.lock"
# --locked: fail if uv.lock is out of date with pyproject.toml. --compile-bytecode: where
# PYTHONDONTWRITEBYTECODE is set Python never writes __pycache__, and every `dg` call compiled all
# of Dagster from source again (a trivial `dg launch` on this machine: 28 s -> 14 s, 11.5 -> 5.4 s
# of CPU). Once here, not in pyproject.toml: there every `uv run` would re-check 7,800 files.
uv sync --locked --quiet --compile-bytecode
if [ "$what" = fake ]; then
  need_debs "${FAKE_DEBS[@]}"
  need_control_plane
fi
if [ "$what" = test ]; then
  need_debs "${TEST_DEBS[@]}"
  need_java
  say "ensuring Trino 476 is in the cache (downloaded once from Maven Central)"
  uv run --frozen python -m tests.harness.trino_dist
  need_control_plane
  need_promtool
  need_amtool
  need_gateway_tools
fi
