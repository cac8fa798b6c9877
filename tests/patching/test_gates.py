"""The patch gate's reads of the Dagster instance (a real SQLite instance: runs and check
evaluations) and of the warehouse and object store."""

import dagster as dg
import pytest

from platform_assets.patching.gates import (
    PatchGate,
    data_runs_busy,
    failing_blocking_checks,
    services_not_answering,
)
from resources.object_store import LocalObjectStore, S3ObjectStore
from resources.warehouse import DuckDBWarehouse


@pytest.fixture
def instance(tmp_path):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as inst:
        yield inst


def test_a_curation_run_in_progress_holds_the_patch(instance):
    gate = PatchGate()
    run = instance.add_run(
        dg.DagsterRun(job_name="curate_landing_batch", status=dg.DagsterRunStatus.STARTED)
    )
    (reason,) = data_runs_busy(instance, gate)
    assert reason == f"curation run {run.run_id} is started"
    instance.add_run(dg.DagsterRun(job_name="backups", status=dg.DagsterRunStatus.STARTED))
    instance.report_run_failed(run)  # the curation run ends; a backup run is no curation
    assert data_runs_busy(instance, gate) == []


def test_a_failing_blocking_check_holds_the_patch(instance):
    outcome = {"passed": False}

    @dg.asset(check_specs=[dg.AssetCheckSpec("rows_ok", asset="table", blocking=True)])
    def table():
        return dg.MaterializeResult(
            check_results=[dg.AssetCheckResult(check_name="rows_ok", passed=outcome["passed"])]
        )

    gate = PatchGate(blocking_checks=["table:rows_ok"])
    assert failing_blocking_checks(instance, gate) == []  # never evaluated
    failed = dg.materialize([table], instance=instance, raise_on_error=False)
    (reason,) = failing_blocking_checks(instance, gate)
    assert reason == f"blocking check table:rows_ok is failing (run {failed.run_id})"
    outcome["passed"] = True
    dg.materialize([table], instance=instance)
    assert failing_blocking_checks(instance, gate) == []


def test_services_answering_and_not(tmp_path):
    root = tmp_path / "store"
    root.mkdir()
    warehouse = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), object_store_root=str(root))
    assert services_not_answering(warehouse, LocalObjectStore(root=str(root))) == []
    # Nothing listens on the discard port: the object store is named, no credential shown.
    down = S3ObjectStore(
        endpoint="127.0.0.1:9",
        buckets={"warehouse": "warehouse"},
        access_key="fake-access-key-1",
        secret_key="fake-secret-key-2",
        secure=False,
    )
    (reason,) = services_not_answering(warehouse, down)
    assert "the object store (" in reason and "127.0.0.1:9" in reason
    assert "fake-secret-key-2" not in reason
