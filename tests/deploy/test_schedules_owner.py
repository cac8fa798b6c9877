"""One owner for each sensor and schedule: the laptop's copies stop once the cluster owns them,
and the UI says who runs them. (The cluster's side, RUNNING in a pod, is the image test's.)"""

import json
import os
import subprocess
import sys

import pytest

from resources.settings import PROJECT_ROOT
from tests.deploy.test_image_contents import DERIVED_S3_KEYS, SETTINGS_SECRET

PROBE = (
    "import json, definitions as d; "
    "print(json.dumps({s.name: [s.default_status.value, s.metadata['runs_here'].value] "
    "for s in [*d.defs.sensors, *d.defs.schedules]}))"
)


def _sensors(home, **env):
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PICLUSTER_")}
    clean.pop("KUBERNETES_SERVICE_HOST", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=PROJECT_ROOT,
        env={**clean, "PICLUSTER_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        ("laptop", ["RUNNING", "yes"]),
        ("cluster", ["STOPPED", "no: the cluster's Dagster runs it"]),
    ],
)
def test_the_laptops_sensors_follow_the_owner_setting(tmp_path, owner, expected):
    # The local profile never backs up: its backup schedules stay stopped either way.
    assert _sensors(tmp_path, PICLUSTER_SCHEDULES_OWNER=owner)["landing_files"] == expected


@pytest.mark.parametrize(
    ("owner", "expected"),
    [
        ("laptop", ["RUNNING", "yes"]),
        ("cluster", ["STOPPED", "no: the cluster's Dagster runs it"]),
    ],
)
def test_a_laptop_on_the_cluster_profile_stops_its_backups_once_the_cluster_owns_them(
    tmp_path, owner, expected
):
    seen = _sensors(
        tmp_path,
        PICLUSTER_PROFILE="cluster",
        PICLUSTER_INVENTORY=str(PROJECT_ROOT / "inventory.example.yaml"),
        PICLUSTER_KUBECONFIG=str(tmp_path / "kubeconfig"),
        PICLUSTER_SCHEDULES_OWNER=owner,
        **SETTINGS_SECRET,
        **DERIVED_S3_KEYS,
    )
    assert seen == {
        "landing_files": expected,
        "asset_check_metrics": expected,
        "nightly_backups": expected,
        "backup_freshness": expected,
        "weekly_patches": expected,
        "node_health_readings": expected,
    }
