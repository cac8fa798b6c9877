"""The control plane's build cache: versions pinned in one place, checked against what the
built binaries really answer, and a cache without its marker never trusted."""

import re
from pathlib import Path

import pytest
import yaml

from tests.harness import go_build, kube_dist
from tests.harness.kube import binaries

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.service
def test_every_built_binary_answers_its_pinned_version():
    directory = binaries()
    kube_dist._check_versions(directory)  # raises naming the binary that answers otherwise


def test_a_binary_answering_another_version_is_refused(tmp_path):
    for name in kube_dist.BINARIES:
        script = tmp_path / name
        script.write_text("#!/bin/sh\necho 'Kubernetes v1.33.9'\n")
        script.chmod(0o755)
    with pytest.raises(go_build.GoBuildError, match="kube-apiserver answered 'Kubernetes v1.33.9'"):
        kube_dist._check_versions(tmp_path)


def test_a_cache_without_its_marker_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("PICLUSTER_CACHE", str(tmp_path))
    directory = kube_dist.bin_dir()
    directory.mkdir(parents=True)  # an interrupted build: files but no marker
    assert not kube_dist.is_complete(directory)
    (directory / go_build.MARKER).write_text(kube_dist._marker_text())
    assert kube_dist.is_complete(directory)


def test_without_go_the_build_says_which_version_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PICLUSTER_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(go_build.GoBuildError, match=r"Go toolchain \(1\.26 or newer; no `go`"):
        kube_dist.ensure()


def test_the_k3s_pin_runs_the_same_kubernetes_minor_as_the_tests():
    example = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())
    k3s = re.fullmatch(r"v(\d+)\.(\d+)\.\d+\+k3s\d+", example["k3s"]["version"])
    kubernetes = re.fullmatch(r"v(\d+)\.(\d+)\.\d+", kube_dist.KUBERNETES_VERSION)
    assert k3s and kubernetes
    assert k3s.groups() == kubernetes.groups(), (
        f"inventory.example.yaml pins K3s {example['k3s']['version']} but the tests' control "
        f"plane runs Kubernetes {kube_dist.KUBERNETES_VERSION}: keep their minors equal"
    )
