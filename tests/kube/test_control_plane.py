"""The test control plane itself: the pinned versions, every component ready, RBAC on, only
loopback listening, and a clear message when the binaries were never built."""

from pathlib import Path

import pytest

from resources.kubernetes import ApiRefused
from tests.harness import kube_dist
from tests.harness.kube import KubeBinariesMissing, binaries

pytestmark = pytest.mark.service


def test_the_api_server_runs_the_pinned_kubernetes(kube_control_plane):
    kube = kube_control_plane.resource()
    _status, version = kube._request("GET", "/version", obj="version", action="read")
    assert version["gitVersion"] == kube_dist.KUBERNETES_VERSION
    assert set(kube_control_plane.component_seconds) == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "helm-controller",
    }


def _listening_sockets(pid: int) -> set[str]:
    """host:port of every TCP socket process `pid` listens on (from /proc, IPv4 and IPv6)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            host, port = fields[1].split(":")
            if width == 8:
                address = ".".join(str(int(host[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                address = "[" + host + "]"
            found.add(f"{address}:{int(port, 16)}")
    return found


def test_nothing_listens_beyond_loopback(kube_control_plane):
    listening = {p.name: _listening_sockets(p.proc.pid) for p in kube_control_plane.processes}
    assert f"127.0.0.1:{kube_control_plane.port}" in listening["kube-apiserver"]
    assert listening["helm-controller"] == set()  # a client only
    for name, sockets in listening.items():
        for socket in sockets:
            assert socket.startswith("127.0.0.1:"), f"{name} listens on {socket}"


def test_rbac_denies_a_user_without_bindings(kube_control_plane):
    from resources.kubernetes import KubernetesResource

    nobody = KubernetesResource(kubeconfig_path=str(kube_control_plane.kubeconfig_for("nobody")))
    with pytest.raises(ApiRefused) as refused:
        nobody.list("v1", "Pod", namespace="default")
    assert refused.value.status == 403
    assert kube_control_plane.server in str(refused.value)
    assert "Pod/default/*" in str(refused.value)
    assert not nobody.can_i("list", "pods", namespace="default")


def test_the_fixture_names_bootstrap_when_the_binaries_were_never_built(tmp_path, monkeypatch):
    monkeypatch.setenv("PICLUSTER_CACHE", str(tmp_path))
    with pytest.raises(KubeBinariesMissing, match=r"run `scripts/bootstrap.sh test`"):
        binaries()
