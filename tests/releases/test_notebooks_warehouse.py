"""The lab's start-up file (deploy/notebooks/00-warehouse.py), run as IPython runs it at kernel
start with the environment the notebooks release gives the pod, pointed at the tests' real
Trino 476: `warehouse` is a working connection to the `hive` catalog."""

import runpy
from pathlib import Path

import pytest

from platform_assets.releases import notebooks

pytestmark = pytest.mark.service

STARTUP = Path(__file__).resolve().parents[2] / "deploy" / "notebooks" / "00-warehouse.py"


def test_every_kernel_starts_with_a_working_warehouse_connection(trino, monkeypatch):
    schema = "notebooks_startup"
    with trino.connect() as conn:
        cursor = conn.cursor()
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS hive.{schema}")
        cursor.fetchall()
    env = notebooks.warehouse_environment()
    # The pod's environment, with only the address of Trino changed to the tests' one.
    env.update(TRINO_HOST=trino.host, TRINO_PORT=str(trino.port), TRINO_SCHEMA=schema)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    kernel = runpy.run_path(str(STARTUP))
    cursor = kernel["warehouse"].cursor()
    cursor.execute("SELECT current_catalog, current_schema, current_user")
    assert cursor.fetchall() == [["hive", schema, env["TRINO_USER"]]]
