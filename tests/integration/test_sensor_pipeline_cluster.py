"""The cluster profile end to end on real services: the simulate CLI writes a day into SeaweedFS,
the landing sensor hands it to the ledger in PostgreSQL, its runs curate into the bucket and the
warehouse assets make Trino tables over it; the result matches the simulator's manifest and the
same day curated on the local profile."""

import json
import os
import shlex
import subprocess
from pathlib import Path

import dagster as dg
import pytest

import data_assets
from data_assets.curation import curate_batch
from data_assets.landing import sync_landing
from data_assets.layout import QUARANTINE_PREFIX, STAGING_PREFIXES, quarantine_day_prefix
from data_assets.simulator import manifest_key
from resources.ledger import Batch, LedgerStore, batch_id_for
from resources.object_store import LocalObjectStore, object_store_for
from resources.settings import load_settings
from sensors.landing import landing_files
from tests.integration.cluster_env import cluster_profile_env

pytestmark = [pytest.mark.service, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
DAY = "2026-03-03"
SIMULATE = f"uv run python -m data_assets.cli simulate --day {DAY} --devices 3 --seed 5 --faults"


@pytest.fixture
def cluster_env(s3, trino, postgres, monkeypatch, tmp_path):
    env = cluster_profile_env(s3, postgres, tmp_path / "home", name="sensor-it", trino=trino)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def test_cluster_profile_end_to_end(cluster_env, trino, postgres, tmp_path):
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_")}
    done = subprocess.run(
        shlex.split(SIMULATE), cwd=ROOT, env=base, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert cluster_env["PICLUSTER_S3_SECRET_KEY"] not in done.stdout + done.stderr

    settings = load_settings()
    defs = data_assets.build_defs(settings)
    store = object_store_for(settings).process_config_and_initialize()
    manifest = json.loads(store.get(manifest_key(DAY)))
    expected = manifest["expected"]

    # Every resource is the cluster profile's own (S3 store, PostgreSQL ledger, Trino), built
    # from the settings with the secrets resolved from their dg.EnvVar.
    resources = dict(defs.resources)
    with dg.build_sensor_context(resources=resources) as context:
        tick = landing_files(context)
    assert tick.run_requests, tick.skip_reason
    assets = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition)]
    selection = dg.AssetSelection.assets("curated_sensor_readings").downstream()
    for request in tick.run_requests:
        result = dg.materialize(
            assets,
            selection=selection,
            partition_key=request.partition_key,
            run_config=request.run_config,
            resources=resources,
            tags=request.tags,
        )
        assert result.success
        assert all(c.passed for c in result.get_asset_check_evaluations())
    with dg.build_sensor_context(cursor=tick.cursor, resources=resources) as context:
        assert not landing_files(context).run_requests

    ledger = LedgerStore(postgres.url(cluster_env["PICLUSTER_PG_DATABASE"]))
    try:
        assert ledger.counts() == {
            "objects": len(manifest["files"]),
            "pending": 0,
            "open_batches": 0,
        }
    finally:
        ledger.dispose()

    schema = settings.warehouse_schema
    ((curated,),) = trino.query(f"SELECT count(*) FROM {schema}.sensor_readings WHERE dt = '{DAY}'")
    assert curated == expected["rows_curated"]
    quarantined = sum(
        len(store.get(i.key).splitlines()) for i in store.list(quarantine_day_prefix(DAY))
    )
    assert quarantined == expected["rows_quarantined"]
    assert all(i.key.startswith(QUARANTINE_PREFIX) for i in store.list(QUARANTINE_PREFIX))
    # Write-audit-publish: every batch passed, so nothing is left in staging.
    assert [i.key for p in STAGING_PREFIXES for i in store.list(p)] == []
    hourly = trino.query(
        f"SELECT device_id, sum(readings) FROM {schema}.sensor_readings_hourly "
        f"WHERE dt = '{DAY}' GROUP BY device_id ORDER BY device_id"
    )

    # The same uploads curated on the local profile give the same rows per device.
    local = LocalObjectStore(root=str(tmp_path / "local-store"))
    for info in store.list("landing/"):
        local.put(info.key, store.get(info.key))
    local_ledger = LedgerStore(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    sync_landing(local, local_ledger)
    pending = local_ledger.pending_for_day(DAY)
    local_result = curate_batch(
        local, local_ledger, Batch(batch_id_for(DAY, pending), DAY, pending)
    )
    local_ledger.dispose()
    assert local_result.stats == {k: expected[k] for k in local_result.stats}
    assert [(d, s.rows) for d, s in sorted(local_result.devices.items()) if s.rows] == [
        (d, n) for d, n in hourly
    ]
