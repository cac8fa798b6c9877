"""`dagster_handover` against a real Dagster: `dagster-webserver` and `dagster-daemon` started
here on a free 127.0.0.1 port, loading this code location on the cluster profile with the
release's ConfigMap settings and `PICLUSTER_SCHEDULES_OWNER=cluster`, as in a pod. The
webserver is our image's entry serving HTTPS with the release's certificate (from a test CA,
naming only the Services, not 127.0.0.1): the handover verifies it as through a port-forward.

What is not a pod: the "pod" is this machine with `KUBERNETES_SERVICE_HOST` set (what makes
the code location know it is the cluster's) and the settings' endpoints on closed loopback
ports (nothing is contacted at load; a sensor tick that tries gets a refused connection). The
webserver, the daemon, their heartbeats, the GraphQL answers and the code location are real.
"""

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from platform_assets.handover import assets as handover
from platform_assets.handover import status
from platform_assets.releases import dagster as release
from platform_assets.releases import lan_tls
from resources.settings import PROJECT_ROOT
from tests.harness.gateway import secret_volume
from tests.harness.lan_ca import new_ca
from tests.harness.procs import LOOPBACK, ServiceProcess, free_port

pytestmark = [pytest.mark.service, pytest.mark.slow]

BIN = Path(sys.executable).parent
ENTRY_DIR = PROJECT_ROOT / "deploy" / "image" / "bin"  # first on the image's PATH
CLOSED = f"{LOOPBACK}:9"  # discard: nothing listens here


def _graphql(dagster, query: str, variables: dict | None = None, timeout_s=30.0) -> dict:
    # The handover's own HTTPS client, verifying the webserver as the handover does.
    body = status.post_json(
        dagster.url + "/graphql",
        {"query": query, "variables": variables or {}},
        status.lan_ca_context(str(dagster.ca_file)),
        handover.SERVER_NAME,
        timeout_s,
    )
    assert not body.get("errors"), body
    return body["data"]


def _location_state(dagster) -> str:
    data = _graphql(
        dagster,
        "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
        "locationOrLoadError { __typename } } } } }",
    )
    (entry,) = data["workspaceOrError"]["locationEntries"]
    return f"{entry['loadStatus']}:{entry['locationOrLoadError']['__typename']}"


class ClusterDagster:
    """The cluster's Dagster as the release runs it, here: webserver and daemon on one
    instance (a DAGSTER_HOME of its own), the code location from this checkout."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.url = f"https://{LOOPBACK}:{self.port}"
        # The webservers' Secret as the kubelet mounts it, its certificate from the release.
        issued = new_ca().issue(release.WEBSERVER_CERTIFICATE, root / "issued")
        tls_dir = secret_volume(
            root / "webserver-tls",
            {n: (issued / n).read_bytes() for n in ("tls.crt", "tls.key", lan_tls.CA_KEY)},
        )
        self.ca_file = tls_dir / lan_tls.CA_KEY
        home = root / "dagster_home"
        home.mkdir()
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        ssh = root / "ssh"
        ssh.mkdir()
        for name in (release.SSH_KEY_FILE, release.KNOWN_HOSTS_FILE):
            (ssh / name).write_text("test-made placeholder\n")
        self.inventory = root / "inventory.yaml"
        inv = yaml.safe_load((PROJECT_ROOT / "inventory.example.yaml").read_text())
        inv["ssh"]["private_key_path"] = str(ssh / release.SSH_KEY_FILE)
        inv["ssh"]["known_hosts_path"] = str(ssh / release.KNOWN_HOSTS_FILE)
        self.inventory_text = yaml.safe_dump(inv, sort_keys=False)
        self.inventory.write_text(self.inventory_text)
        (root / "workspace.yaml").write_text(
            yaml.safe_dump(
                {
                    "load_from": [
                        {
                            "python_module": {
                                "module_name": "definitions",
                                "location_name": release.CODE_LOCATION,
                                "working_directory": str(PROJECT_ROOT),
                            }
                        }
                    ]
                }
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICLUSTER_")}
        env.update(release.pod_environment())  # ConfigMap piclusterops-env, owner cluster
        env.update(
            {
                "DAGSTER_HOME": str(home),
                "PICLUSTER_HOME": str(root / "picluster"),
                "PICLUSTER_INVENTORY": str(self.inventory),
                "PICLUSTER_KUBECONFIG": str(root / "kubeconfig"),
                "KUBERNETES_SERVICE_HOST": LOOPBACK,
                # Secret piclusterops-settings, test values, every endpoint a closed port.
                "PICLUSTER_S3_ENDPOINT": CLOSED,
                "PICLUSTER_S3_SECURE": "false",
                "PICLUSTER_S3_ACCESS_KEY": "test-access-key",
                "PICLUSTER_S3_SECRET_KEY": "test-secret-key",
                "PICLUSTER_TRINO_HOST": LOOPBACK,
                "PICLUSTER_TRINO_PORT": "9",
                "PICLUSTER_PG_HOST": LOOPBACK,
                "PICLUSTER_PG_PORT": "9",
                "PICLUSTER_PG_PASSWORD": "test-password",
                "PICLUSTER_BACKUP_MIRROR_ENDPOINT": CLOSED,
                "PICLUSTER_BACKUP_MIRROR_ACCESS_KEY": "test-mirror-access-key",
                "PICLUSTER_BACKUP_MIRROR_SECRET_KEY": "test-mirror-secret-key",
                "PICLUSTER_BACKUP_KEY": "test-backup-key",
            }
        )
        workspace = ["-w", str(root / "workspace.yaml")]
        # As the chart runs it: by name, through bash, our entry first on PATH.
        command = f"dagster-webserver -h {LOOPBACK} -p {self.port} {' '.join(workspace)}"
        self.webserver = ServiceProcess(
            "dagster-webserver",
            ["/bin/bash", "-c", command],
            root / "logs" / "webserver.log",
            env={
                **env,
                "PATH": f"{ENTRY_DIR}:{BIN}:/usr/bin:/bin",
                release.WEBSERVER_TLS_VARIABLE: str(tls_dir),
            },
            cwd=root,
        )
        self.daemon = ServiceProcess(
            "dagster-daemon",
            [str(BIN / "dagster-daemon"), "run", *workspace],
            root / "logs" / "daemon.log",
            env=env,
            cwd=root,
        )

    def start_webserver(self) -> None:
        self.webserver.start()
        self.webserver.wait_ready(
            lambda: _location_state(self) == "LOADED:RepositoryLocation",
            300,
            "serving the loaded code location",
        )

    def reload(self) -> str:
        _graphql(
            self,
            "mutation($name: String!) { reloadRepositoryLocation(repositoryLocationName: $name)"
            " { __typename } }",
            {"name": release.CODE_LOCATION},
            # The answer comes once the code location has loaded again: a minute on a busy
            # machine.
            timeout_s=300.0,
        )
        return _location_state(self)

    def stop_sensor(self, name: str) -> None:
        data = _graphql(
            self,
            "{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {"
            " ... on RepositoryLocation { repositories { sensors { id name } } } } } } } }",
        )
        (entry,) = data["workspaceOrError"]["locationEntries"]
        (repo,) = entry["locationOrLoadError"]["repositories"]
        (sensor_id,) = [s["id"] for s in repo["sensors"] if s["name"] == name]
        answer = _graphql(
            self,
            "mutation($id: String) { stopSensor(id: $id) { __typename } }",
            {"id": sensor_id},
        )
        assert answer["stopSensor"]["__typename"] == "StopSensorMutationResult", answer

    def stop(self) -> None:
        self.daemon.stop()
        self.webserver.stop()


@pytest.fixture
def cluster_dagster(tmp_path):
    dagster = ClusterDagster(tmp_path)
    yield dagster  # its logs stay in tmp_path/logs (pytest keeps the last runs' tmp_path)
    dagster.stop()


def _handover(dagster, wait_s: float = 0.0):
    """`dagster_handover` run in this checkout's code location (the laptop's, local profile
    here): what it expects is what this code defines."""
    import definitions

    job = definitions.defs.resolve_implicit_global_asset_job_def()
    config = {"url": dagster.url, "ca_file": str(dagster.ca_file), "wait_s": wait_s}
    return job.execute_in_process(
        asset_selection=[dg.AssetKey("dagster_handover")],
        run_config={"ops": {"dagster_handover": {"config": config}}},
    )


def _fails(dagster, wait_s: float = 0.0) -> str:
    with pytest.raises(dg.Failure) as failed:
        _handover(dagster, wait_s)
    return failed.value.description


def test_the_handover_passes_only_once_the_clusters_dagster_runs_everything(cluster_dagster):
    cluster_dagster.start_webserver()

    # The webserver alone: the code location is loaded, but no daemon runs the schedules.
    problem = _fails(cluster_dagster)
    assert "daemons not running" in problem
    assert "SCHEDULER" in problem and "SENSOR" in problem

    cluster_dagster.daemon.start()
    result = _handover(cluster_dagster, wait_s=180)
    (done,) = result.get_asset_materialization_events()
    meta = done.step_materialization_data.materialization.metadata
    table = meta["automation"].value
    automation = (
        "landing_files",
        "asset_check_metrics",
        "nightly_backups",
        "backup_freshness",
        "weekly_patches",
        "node_health_readings",
    )
    for name in automation:
        assert f"| {name} | RUNNING | cluster |" in table
    assert meta["dagster/row_count"].value == len(automation)

    # Someone stops a sensor in the cluster's UI: not handed over any more, and it says which.
    cluster_dagster.stop_sensor("landing_files")
    problem = _fails(cluster_dagster)
    assert "sensor landing_files is STOPPED, not RUNNING" in problem
    assert "nightly_backups" not in problem

    # A broken inventory ConfigMap: the code location does not load; the error is named.
    cluster_dagster.inventory.write_text(cluster_dagster.inventory_text.replace("nodes:", "n0des:"))
    assert cluster_dagster.reload() == "LOADED:PythonError"
    problem = _fails(cluster_dagster)
    assert f"code location '{release.CODE_LOCATION}' failed to load" in problem
    assert "inventory.yaml: nodes: is required" in problem


@dataclass
class _Nowhere:
    url: str
    ca_file: Path


def test_a_dagster_that_does_not_answer_is_named(tmp_path):
    nowhere = _Nowhere(f"https://{LOOPBACK}:{free_port()}", new_ca().write_ca(tmp_path / "ca.crt"))
    problem = _fails(nowhere)
    assert f"{nowhere.url}/graphql did not answer" in problem
    assert "port-forward" in problem


def test_a_missing_lan_ca_certificate_is_named_before_anything_is_asked(tmp_path):
    problem = _fails(_Nowhere(f"https://{LOOPBACK}:{free_port()}", tmp_path / "lan-ca.crt"))
    assert f"cannot read the LAN CA's certificate {tmp_path / 'lan-ca.crt'}" in problem
    assert "config `ca_file`" in problem


# --- the verdict on recorded answers (the shapes the real webserver gave above) ---------------


def _answer(sensors=(("landing_files", "RUNNING", "cluster"),), daemons=True) -> dict:
    def entries(owner):
        return [{"label": "owner", "text": owner}, {"label": "runs_here", "text": "yes"}]

    return {
        "instance": {
            "daemonHealth": {
                "allDaemonStatuses": [
                    {"daemonType": "SENSOR", "required": True, "healthy": daemons},
                    {"daemonType": "BACKFILL", "required": False, "healthy": False},
                ]
            }
        },
        "workspaceOrError": {
            "__typename": "Workspace",
            "locationEntries": [
                {
                    "name": "piclusterops",
                    "loadStatus": "LOADED",
                    "locationOrLoadError": {
                        "__typename": "RepositoryLocation",
                        "repositories": [
                            {
                                "name": "__repository__",
                                "schedules": [],
                                "sensors": [
                                    {
                                        "name": n,
                                        "sensorState": {"status": s},
                                        "metadataEntries": entries(o),
                                    }
                                    for n, s, o in sensors
                                ],
                            }
                        ],
                    },
                }
            ],
        },
    }


def test_a_sensor_the_cluster_lacks_or_the_laptop_still_owns_is_named():
    found = status.verdict(_answer(), "piclusterops", set(), {"landing_files", "new_sensor"})
    assert found.problems == [
        "sensors missing from the cluster's 'piclusterops' (an older image?): new_sensor"
    ]
    found = status.verdict(
        _answer(sensors=(("landing_files", "STOPPED", "laptop"),)),
        "piclusterops",
        set(),
        {"landing_files"},
    )
    assert found.problems == [
        "sensor landing_files is STOPPED, not RUNNING",
        "sensor landing_files is owned by 'laptop', not the cluster: "
        "PICLUSTER_SCHEDULES_OWNER in ConfigMap piclusterops-env",
    ]
    assert status.verdict(_answer(), "piclusterops", set(), {"landing_files"}).passed
    # Only required daemons count.
    assert status.verdict(_answer(daemons=False), "piclusterops", set(), set()).daemons == {
        "SENSOR": False
    }
