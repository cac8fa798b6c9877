"""pytest fixtures for the FAKE Pi cluster. Import them into a conftest (`from
tests.fake_pi.fixtures import fake_cluster, ...`) or name this module in the top-level
conftest's `pytest_plugins` (pytest allows that only there).

- `fake_cluster`: four fake Pis (session-wide, on a free port), stopped at the end of the
  session, and if the session is killed. They are the nodes of the `kube_control_plane`: a
  node's k3s registers it there, its server's k3s.yaml is that API server's admin kubeconfig.
- `fresh_cluster`: the same cluster with every node freshly imaged first (same keys and port).
- `ssh_resource` / `ssh_targets`: an `SshResource` and `SshTarget`s (user `piadmin`) for it.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from resources.ssh import SshResource, SshTarget
from tests.fake_pi.cluster import ADMIN_USER, FakeCluster, machine_lock, missing_prerequisites


@pytest.fixture(scope="session")
def fake_cluster(
    tmp_path_factory: pytest.TempPathFactory, kube_control_plane
) -> Iterator[FakeCluster]:
    missing = missing_prerequisites()
    if missing:
        pytest.fail("the fake Pi cluster needs: " + ", ".join(missing) + " (see .ci/run)")
    state_dir: Path = tmp_path_factory.mktemp("fake-cluster")
    cluster = FakeCluster(
        state_dir,
        port=None,
        reboot_delay_s=0.5,
        die_with_parent=True,
        control_plane=kube_control_plane,
    )
    with machine_lock():
        cluster.up()
        try:
            yield cluster
        finally:
            cluster.down()


@pytest.fixture
def fresh_cluster(fake_cluster: FakeCluster) -> FakeCluster:
    """Every node freshly imaged (its namespace rebuilt), the same keys and port."""
    for node in fake_cluster.nodes:
        fake_cluster.stop_node(node.name)
    fake_cluster.restart_all()
    return fake_cluster


def targets_for(cluster: FakeCluster, user: str = ADMIN_USER) -> list[SshTarget]:
    return [SshTarget(n.name, n.address, cluster.port, user) for n in cluster.nodes]


def ssh_resource_for(cluster: FakeCluster, **overrides: object) -> SshResource:
    fields: dict[str, object] = {
        "known_hosts_path": str(cluster.known_hosts),
        "private_key_path": str(cluster.private_key),
        "connect_timeout_s": 5.0,
        "command_timeout_s": 60.0,
        "max_parallel": 4,
    }
    fields.update(overrides)
    return SshResource(**fields)


@pytest.fixture
def ssh_resource(fake_cluster: FakeCluster) -> SshResource:
    return ssh_resource_for(fake_cluster)


@pytest.fixture
def ssh_targets(fake_cluster: FakeCluster) -> list[SshTarget]:
    return targets_for(fake_cluster)
