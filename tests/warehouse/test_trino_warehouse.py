"""The warehouse tables on the cluster profile: the real Trino 476 (Hive connector, file metastore)
over the real SeaweedFS S3 API, both started by the session fixtures in tests/conftest.py.

Each test module works in its own buckets and schema, so other tests on the same Trino and
SeaweedFS never see (or register) its partitions.
"""

import math
from datetime import UTC, datetime

import dagster as dg
import pytest

from data_assets import layout, warehouse_tables
from data_assets.curation import curate_batch
from data_assets.landing import is_landing_object
from data_assets.simulator import FaultRates, simulate_day
from data_assets.simulator import write_day as upload_simulated_day
from data_assets.warehouse_tables import (
    QUARANTINE,
    READINGS,
    build_device_health,
    build_hourly,
    ensure_tables,
    sql,
)
from resources.ledger import Batch, ObjectVersion, batch_id_for
from resources.object_store import LocalObjectStore, S3ObjectStore
from resources.settings import load_settings
from resources.warehouse import DuckDBWarehouse, TrinoWarehouse
from tests.integration.cluster_env import OFFLINE_CLUSTER_ENV
from tests.warehouse.curated_day import synthetic_day, write_day

pytestmark = [pytest.mark.service, pytest.mark.slow]

DAY = "2026-02-14"
BUCKETS = {role: f"wh-tests-{role}" for role in ("landing", "warehouse", "quarantine", "backups")}
SCHEMA = "warehouse_tests"


@pytest.fixture(scope="module")
def bucket_store(s3) -> S3ObjectStore:
    assert s3.make_buckets("wh-tests") == BUCKETS
    return S3ObjectStore(
        endpoint=s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        buckets=BUCKETS,
        secure=False,
        region=s3.region,
    )


def _trino_warehouse(trino, schema: str) -> TrinoWarehouse:
    return TrinoWarehouse(
        schema_name=schema,
        host=trino.host,
        port=trino.port,
        user=trino.user,
        catalog=trino.catalog,
        http_scheme="http",
        buckets={r: BUCKETS[r] for r in ("warehouse", "quarantine")},
        # the test Trino's file metastore keeps managed tables under its catalog dir
        schema_location=f"s3://{trino.bucket}/metastore/{schema}",
    )


@pytest.fixture(scope="module")
def trino_wh(trino, bucket_store):
    wh = _trino_warehouse(trino, SCHEMA)
    with wh.session():
        ensure_tables(wh)
        yield wh


def test_the_tables_are_hive_tables_over_the_buckets(trino_wh, trino):
    ddl = trino.query(f"SHOW CREATE TABLE hive.{SCHEMA}.sensor_readings")[0][0]
    assert f"external_location = 's3://{BUCKETS['warehouse']}/sensor_readings'" in ddl
    assert "partitioned_by = ARRAY['dt']" in ddl and "format = 'PARQUET'" in ddl
    columns = trino.query(f"DESCRIBE hive.{SCHEMA}.sensor_readings")
    assert [c[0] for c in columns][-1] == "dt"
    assert dict((c[0], c[1]) for c in columns)["reading_ts"] == "timestamp(3)"
    quarantine = trino.query(f"SHOW CREATE TABLE hive.{SCHEMA}.sensor_quarantine")[0][0]
    assert "format = 'JSON'" in quarantine
    assert f"external_location = 's3://{BUCKETS['quarantine']}/sensor_readings'" in quarantine


def test_a_day_is_visible_once_its_partition_is_registered(trino_wh, trino, bucket_store):
    day = "2026-02-10"
    rows = synthetic_day(day, ["pi-a", "pi-b"])
    write_day(bucket_store, day, rows, quarantine=[{"source_object": "x", "reason": "malformed"}])
    count = sql("sensor_readings_count")
    assert trino_wh.query(count, {"day": day}).rows == [(0,)]
    assert trino_wh.register_partition(READINGS, day) is True
    assert trino_wh.register_partition(READINGS, day) is False  # once only
    assert trino_wh.register_partition(QUARANTINE, day) is True
    assert trino_wh.query(count, {"day": day}).rows == [(len(rows),)]
    rejected = trino_wh.query("SELECT reason FROM sensor_quarantine WHERE dt = :day", {"day": day})
    assert rejected.rows == [("malformed",)]

    # re-building a day replaces it
    assert build_hourly(trino_wh, day) == 48
    assert build_hourly(trino_wh, day) == 48
    total = trino_wh.query(
        "SELECT sum(readings) FROM sensor_readings_hourly WHERE dt = :day", {"day": day}
    )
    assert total.rows == [(len(rows),)]

    # where the files are: the curated day's folder, and the aggregates under the schema
    paths = trino_wh.query(
        'SELECT DISTINCT "$path" FROM sensor_readings WHERE dt = :day', {"day": day}
    ).rows
    assert paths == [(f"s3://{BUCKETS['warehouse']}/sensor_readings/dt={day}/batch-0001.parquet",)]
    paths = trino_wh.query(
        'SELECT DISTINCT "$path" FROM sensor_readings_hourly WHERE dt = :day', {"day": day}
    ).rows
    assert len(paths) >= 1
    hourly_folder = f"s3://{trino.bucket}/metastore/{SCHEMA}/sensor_readings_hourly/dt={day}/"
    assert all(p[0].startswith(hourly_folder) for p in paths), paths

    # a day that shrinks keeps nothing of its old rows; a day left empty has no rows at all
    write_day(bucket_store, day, synthetic_day(day, ["pi-a"]))
    assert build_hourly(trino_wh, day) == 24
    devices = trino_wh.query(
        "SELECT DISTINCT device_id FROM sensor_readings_hourly WHERE dt = :day", {"day": day}
    )
    assert devices.rows == [("pi-a",)]
    bucket_store.delete(f"{layout.curated_day_prefix(day)}batch-0001.parquet")
    assert build_hourly(trino_wh, day) == 0


def test_the_assets_materialize_on_trino(trino, bucket_store):
    day = "2026-02-11"
    write_day(bucket_store, day, synthetic_day(day, ["pi-a"], silent_from={"pi-a": "12:00"}))
    settings = load_settings(OFFLINE_CLUSTER_ENV)
    defs = warehouse_tables.build_defs(settings)
    assets = list(defs.assets)
    assert all(a.specs_by_key[k].kinds == {"trino"} for a in assets for k in a.keys)
    resources = {"warehouse": _trino_warehouse(trino, "assets_test"), "object_store": bucket_store}
    result = dg.materialize(assets, partition_key=day, resources=resources)
    assert result.success
    table = result.asset_materializations_for_node("sensor_readings_table")[0].metadata
    assert table["dagster/row_count"].value == 12 * 60
    assert table["partitions_registered"].value == "sensor_readings"
    health = result.asset_materializations_for_node("device_health")[0].metadata
    assert health["silent"].value == "pi-a"
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {
        "hourly_counts_match_readings": True,
        "no_silent_devices": False,
        "rejected_share_within_limit": True,
    }


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _assert_same_rows(local, cluster, what: str):
    assert local.columns == cluster.columns, what
    assert len(local.rows) == len(cluster.rows), what
    for left, right in zip(local.rows, cluster.rows, strict=True):
        diffs = [
            (column, x, y)
            for column, x, y in zip(local.columns, left, right, strict=True)
            if not _close(x, y)
        ]
        assert not diffs, f"{what}: DuckDB and Trino differ on {left[0]}: {diffs}"


def test_one_day_of_mock_data_gives_the_same_aggregates_on_duckdb_and_trino(
    trino, bucket_store, tmp_path
):
    """Simulated uploads with faults -> curation -> the same files in a folder and in the
    bucket -> the same SQL on DuckDB and on Trino -> the same hourly aggregates and health."""
    day = "2026-02-14"
    local_store = LocalObjectStore(root=str(tmp_path / "object-store"))
    simulated = simulate_day(day, devices=4, seed=11, faults=FaultRates.typical())
    upload_simulated_day(local_store, simulated)
    local_store.put(f"{layout.LANDING_PREFIX}env-99/undecodable.jsonl.gz", b"\x1f\x8bnot gzip")
    objects = [
        ObjectVersion(info.key, info.etag)
        for info in local_store.list(layout.LANDING_PREFIX)
        if is_landing_object(info)
    ]
    now = datetime(2026, 2, 15, 1, 0, tzinfo=UTC)
    curated = curate_batch(
        local_store, None, Batch(batch_id_for(day, objects), day, objects), now=now
    )
    assert curated.rows_curated > 4 * 1300 and curated.rows_quarantined > 0

    copied = 0
    for prefix in (layout.CURATED_PREFIX, layout.QUARANTINE_PREFIX):
        for info in local_store.list(prefix):
            bucket_store.put(info.key, local_store.get(info.key))
            copied += 1
    assert copied == 2

    duck = DuckDBWarehouse(
        path=str(tmp_path / "warehouse.duckdb"), object_store_root=local_store.root
    )
    cluster = _trino_warehouse(trino, "equivalence")
    as_of = datetime(2026, 2, 15)
    results = {}
    for wh in (duck, cluster):
        with wh.session():
            ensure_tables(wh)
            wh.register_partition(READINGS, day)
            wh.register_partition(QUARANTINE, day)
            hourly_rows = build_hourly(wh, day)
            health_rows = build_device_health(wh, day, as_of=as_of, silent_after_minutes=15)
            results[wh.kind] = (
                hourly_rows,
                health_rows,
                wh.query(
                    "SELECT * FROM sensor_readings_hourly WHERE dt = :day "
                    "ORDER BY device_id, hour_ts",
                    {"day": day},
                ),
                wh.query(
                    "SELECT * FROM device_health WHERE dt = :day ORDER BY device_id", {"day": day}
                ),
            )

    d_hourly_n, d_health_n, d_hourly, d_health = results["duckdb"]
    t_hourly_n, t_health_n, t_hourly, t_health = results["trino"]
    assert (d_hourly_n, d_health_n) == (t_hourly_n, t_health_n)
    assert d_hourly_n > 4 * 20  # some device-hours are lost to empty uploads
    _assert_same_rows(d_hourly, t_hourly, "hourly aggregates")
    _assert_same_rows(d_health, t_health, "device health")

    # and both agree with what curation reported
    assert sum(r[2] for r in d_hourly.rows) == curated.rows_curated
    health = {r["device_id"]: r for r in d_health.dicts()}
    assert sum(r["rejected_rows"] for r in health.values()) == curated.rows_quarantined
    assert health["(unknown)"]["rejected_rows"] >= 1  # the undecodable upload


def test_a_batch_that_fails_its_checks_is_never_read_by_trino(trino_wh, bucket_store, postgres):
    """Write-audit-publish on the cluster profile: SeaweedFS, the ledger in PostgreSQL, Trino."""
    from data_assets.curation_run import curate_day
    from resources.ledger import LedgerStore
    from tests.warehouse.curated_day import (
        a_day_whose_next_batch_fails,
        remove_the_hand_copied_file,
    )

    day = "2026-02-20"
    ledger = LedgerStore(postgres.create_database("wap_trino_ledger"))
    a_day_whose_next_batch_fails(bucket_store, day)
    failed = curate_day(bucket_store, ledger, day, "run-1").result
    assert not failed.checks["schema_and_ranges"].passed
    for table in (READINGS, QUARANTINE):
        trino_wh.register_partition(table, day)
    count = "SELECT count(*) FROM sensor_readings WHERE dt = :day"
    rejected = "SELECT count(*) FROM sensor_quarantine WHERE dt = :day"
    assert trino_wh.query(count, {"day": day}).rows == [(1,)]  # the hand-copied row only
    assert trino_wh.query(rejected, {"day": day}).rows == [(0,)]

    remove_the_hand_copied_file(bucket_store, day)
    fixed = curate_day(bucket_store, ledger, day, "run-2").result
    assert fixed.passed and fixed.batch_id == failed.batch_id
    for table in (READINGS, QUARANTINE):
        trino_wh.register_partition(table, day)
    assert trino_wh.query(count, {"day": day}).rows == [(3,)]
    assert trino_wh.query(rejected, {"day": day}).rows == [(1,)]
    ledger.dispose()
