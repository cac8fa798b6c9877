"""Session fixtures that start real services on free loopback ports, only when a test asks for
them: `postgres`, `s3`, `nas`, `trino`, `dagster_pg_home` / `dagster_pg_instance`,
`kube_control_plane`.

Each service runs from a per-session temp dir with its log in `<dir>/logs/`. If any test that
used a service fails, the dir is kept and its path plus the logs' tails are printed in the test
report and the terminal summary; otherwise it is deleted when the session ends. Set
PICLUSTER_KEEP_SERVICE_LOGS=1 to keep it always.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.postgres import PostgresService, start_postgres
from tests.harness.registry import ServiceRegistry
from tests.harness.seaweedfs import S3Service, start_seaweedfs

# The fake-Pi cluster's fixtures (sshd per node) for every test directory: pytest only takes
# `pytest_plugins` from the top-level conftest.
pytest_plugins = ["tests.fake_pi.fixtures"]

# Fixtures whose users get the service logs in their failure report.
SERVICE_FIXTURES = frozenset(
    {
        "postgres",
        "s3",
        "nas",
        "trino",
        "dagster_pg_home",
        "dagster_pg_instance",
        "kube_control_plane",
        "fake_cluster",
        "fresh_cluster",
        "service_registry",
    }
)
_REGISTRY = pytest.StashKey[ServiceRegistry]()


def _registry(config: pytest.Config) -> ServiceRegistry | None:
    return config.stash.get(_REGISTRY, None)


@pytest.fixture(scope="session")
def service_registry(pytestconfig: pytest.Config) -> Iterator[ServiceRegistry]:
    registry = ServiceRegistry()
    pytestconfig.stash[_REGISTRY] = registry
    yield registry
    registry.stop_all()


@pytest.fixture(scope="session")
def postgres(service_registry: ServiceRegistry) -> PostgresService:
    """PostgreSQL 15 on a free loopback port. Use `postgres.create_database(name)` for a clean
    database per test module."""
    return service_registry.start("postgres", start_postgres)


@pytest.fixture(scope="session")
def s3(service_registry: ServiceRegistry) -> S3Service:
    """SeaweedFS S3 API on a free loopback port, auth on. `s3.client()` is a minio.Minio."""
    return service_registry.start("seaweedfs", start_seaweedfs)


@pytest.fixture(scope="session")
def nas(service_registry: ServiceRegistry) -> S3Service:
    """A second SeaweedFS standing for the NAS off the cluster (the backups' mirror; its log:
    logs/nas/). Here, once for the session: tests/backups and tests/recovery both use it."""
    return service_registry.start(
        "seaweedfs-nas", lambda workdir, log_dir: start_seaweedfs(workdir, log_dir / "nas")
    )


@pytest.fixture(scope="session")
def trino(service_registry: ServiceRegistry, s3: S3Service):
    """Trino 476 with catalog `hive` (file metastore in the `warehouse` bucket of the `s3`
    service, as the cluster keeps its managed tables in its `warehouse` bucket)."""
    from tests.harness.trino import start_trino

    return service_registry.start(
        "trino", lambda workdir, log_dir: start_trino(workdir, log_dir, s3, bucket="warehouse")
    )


@pytest.fixture(scope="session")
def kube_control_plane(service_registry: ServiceRegistry):
    """A real Kubernetes control plane (etcd, API server, controller-manager, scheduler, KWOK,
    helm-controller) on free loopback ports. `.admin_kubeconfig`, `.resource()` (a
    KubernetesResource as admin), `.kubeconfig_for(user, groups)`."""
    from tests.harness.kube import KubeBinariesMissing, binaries, start_control_plane

    try:
        binaries()
    except KubeBinariesMissing as exc:
        pytest.fail(str(exc))
    return service_registry.start("kube", start_control_plane)


@pytest.fixture(scope="session")
def dagster_pg_home(service_registry: ServiceRegistry, postgres: PostgresService) -> Path:
    """A DAGSTER_HOME-style dir whose dagster.yaml puts all storage in the test PostgreSQL
    (database `dagster`). Open extra instances on it with
    `tests.harness.dagster_instance.open_instance(dagster_pg_home)`."""
    from tests.harness.dagster_instance import write_instance_config

    postgres.create_database("dagster")
    home = service_registry.workdir("dagster_home")
    write_instance_config(home, postgres, "dagster")
    return home


@pytest.fixture(scope="session")
def dagster_pg_instance(dagster_pg_home: Path):
    """A `dg.DagsterInstance` with run, event-log and schedule storage on the test PostgreSQL."""
    from tests.harness.dagster_instance import open_instance

    instance = open_instance(dagster_pg_home)
    yield instance
    instance.dispose()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    if report.failed and SERVICE_FIXTURES & set(getattr(item, "fixturenames", ())):
        registry = _registry(item.config)
        if registry is not None:
            registry.failed_tests.append(item.nodeid)
            report.sections.append(("service logs", registry.log_report()))
    return report


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    registry = _registry(config)
    if registry is None:
        return
    if registry.ready_seconds:
        timings = ", ".join(f"{name} {sec:.1f}s" for name, sec in registry.ready_seconds.items())
        terminalreporter.write_line(f"services ready after: {timings}")
    if registry.keep:
        terminalreporter.section("service logs")
        if registry.failed_tests:
            terminalreporter.write_line(
                "tests that used a service failed: " + ", ".join(registry.failed_tests)
            )
        terminalreporter.write_line(registry.log_report())


def pytest_unconfigure(config: pytest.Config) -> None:
    registry = _registry(config)
    if registry is not None:
        registry.cleanup()
