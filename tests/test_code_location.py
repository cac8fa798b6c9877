"""The code location loads for both profiles, passes Dagster's own check, and stays light."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_settings import CLUSTER

ROOT = Path(__file__).resolve().parent.parent
# Clients of the systems the runs talk to: a run imports them where it uses them. The Dagster
# libraries for the cluster profile's storage and launcher (dagster-postgres, dagster-k8s, and
# dagster-aws with boto3) are the instance's to load, never the code location's.
HEAVY_CLIENTS = (
    "kubernetes",
    "trino",
    "minio",
    "paramiko",
    "pyarrow",
    "duckdb",
    "sqlglot",
    "sqlalchemy",
    "psycopg2",
    "boto3",
    "botocore",
    "dagster_k8s",
    "dagster_aws",
    "dagster_postgres",
)


def _env(tmp_path, extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICLUSTER_")}
    env.update({"PICLUSTER_HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path / "dagster")})
    (tmp_path / "dagster").mkdir(exist_ok=True)
    env.update(extra or {})
    return env


def test_loading_the_code_location_imports_no_heavy_client(tmp_path):
    code = (
        "import sys, json, definitions; definitions.defs.get_repository_def();"
        f"print(json.dumps([m for m in {HEAVY_CLIENTS!r} if m in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
    # Every `dg launch` loads the code location: a warning it prints, every user reads.
    assert "Warning" not in out.stderr, out.stderr


@pytest.mark.parametrize("profile", ["local", "cluster"])
def test_dagster_definitions_check_passes(tmp_path, profile):
    # The cluster profile reads inventory.yaml by default; a user without one is refused at load.
    inventory = {"PICLUSTER_INVENTORY": str(ROOT / "inventory.example.yaml")}
    backups = {
        "PICLUSTER_BACKUP_KEY": "unused",
        "PICLUSTER_BACKUP_MIRROR_ENDPOINT": "nas.lan:8333",
        "PICLUSTER_BACKUP_MIRROR_ACCESS_KEY": "unused",
        "PICLUSTER_BACKUP_MIRROR_SECRET_KEY": "unused",
    }
    extra = {**CLUSTER, **backups, **inventory} if profile == "cluster" else {}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("dg")), "check", "defs", "--no-check-yaml"],
        cwd=ROOT,
        env=_env(tmp_path, extra),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully" in result.stdout + result.stderr


def test_a_wrong_setting_stops_the_load_naming_the_variable(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", "import definitions"],
        cwd=ROOT,
        env=_env(tmp_path, {"PICLUSTER_PROFILE": "cluster"}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "PICLUSTER_S3_ENDPOINT is not set" in result.stderr
