"""The warehouse tables on the local profile: DuckDB over Parquet and JSON Lines in a folder.

The curated files are written with pyarrow in curation's layout (tests/warehouse/curated_day.py).
"""

import statistics
from datetime import datetime

import dagster as dg
import pytest

from data_assets import layout, warehouse_tables
from data_assets.warehouse_tables import (
    QUARANTINE,
    READINGS,
    build_device_health,
    build_hourly,
    ensure_tables,
    health_as_of,
    sql,
)
from resources.object_store import LocalObjectStore
from resources.settings import SettingsError, load_settings
from resources.warehouse import (
    DuckDBWarehouse,
    QueryResult,
    TrinoWarehouse,
    WarehouseError,
    warehouse_for,
)
from tests.warehouse.curated_day import synthetic_day, write_day

DAY = "2026-03-01"


@pytest.fixture
def store(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(root=str(tmp_path / "object-store"))


@pytest.fixture
def warehouse(tmp_path, store):
    wh = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"), object_store_root=store.root)
    with wh.session():
        yield wh


def _load_day(store, warehouse, day=DAY, rows=None, quarantine=()):
    rows = synthetic_day(day) if rows is None else rows
    write_day(store, day, rows, quarantine=quarantine)
    ensure_tables(warehouse)
    warehouse.register_partition(READINGS, day)
    warehouse.register_partition(QUARANTINE, day)
    return rows


def test_an_empty_warehouse_has_empty_tables(warehouse):
    ensure_tables(warehouse)
    ensure_tables(warehouse)  # repeating is harmless
    assert warehouse.query(sql("sensor_readings_count"), {"day": DAY}).rows == [(0,)]
    assert build_hourly(warehouse, DAY) == 0
    assert build_device_health(warehouse, DAY, as_of=health_as_of(DAY)) == 0


def test_files_written_after_the_table_exists_are_read(store, warehouse):
    ensure_tables(warehouse)
    rows = _load_day(store, warehouse)
    assert warehouse.query(sql("sensor_readings_count"), {"day": DAY}).rows == [(len(rows),)]
    # dt is the partition folder's value, read as text
    dts = warehouse.query("SELECT DISTINCT dt FROM sensor_readings").rows
    assert dts == [(DAY,)]


def test_hourly_aggregates_per_device_and_hour(store, warehouse):
    rows = _load_day(store, warehouse)
    assert build_hourly(warehouse, DAY) == 3 * 24

    hour = [r for r in rows if r["device_id"] == "pi-node-2" and r["reading_ts"].hour == 13]
    got = warehouse.query(
        "SELECT readings, temperature_c_min, temperature_c_avg, temperature_c_max, "
        "pressure_hpa_avg FROM sensor_readings_hourly "
        "WHERE dt = :day AND device_id = 'pi-node-2' AND hour_ts = :hour",
        {"day": DAY, "hour": datetime(2026, 3, 1, 13)},
    ).rows
    temps = [r["temperature_c"] for r in hour]
    assert got[0][0] == 60
    assert got[0][1] == min(temps) and got[0][3] == max(temps)
    assert got[0][2] == pytest.approx(statistics.fmean(temps), rel=1e-12)
    assert got[0][4] == pytest.approx(statistics.fmean(r["pressure_hpa"] for r in hour))


def test_rematerializing_a_day_replaces_it_and_leaves_other_days(store, warehouse):
    _load_day(store, warehouse)
    _load_day(store, warehouse, day="2026-03-02", rows=synthetic_day("2026-03-02", ["pi-node-1"]))
    build_hourly(warehouse, "2026-03-02")
    assert build_hourly(warehouse, DAY) == 72
    assert build_hourly(warehouse, DAY) == 72
    totals = dict(
        warehouse.query("SELECT dt, sum(readings) FROM sensor_readings_hourly GROUP BY dt").rows
    )
    assert totals == {DAY: 3 * 1440, "2026-03-02": 1440}


def test_device_health_flags_silent_devices_and_attributes_rejects(store, warehouse):
    rows = synthetic_day(DAY, silent_from={"pi-node-2": "20:00"})
    quarantine = [
        # attributed through the source object, whose other rows are pi-node-1's
        {
            "source_object": "landing/pi-node-1/2026-03-01.jsonl",
            "source_line": 9,
            "reason": "out_of_range",
            "raw": '{"temperature_c": 999}',
        },
        {
            "source_object": "landing/pi-node-1/2026-03-01.jsonl",
            "source_line": 10,
            "reason": "malformed",
            "raw": "{oops",
            "extra": {"nested": [1, 2]},
        },
        # curation read the device id: it wins over the object's owner
        {
            "source_object": "landing/mixed.csv",
            "source_line": 2,
            "reason": "missing_field",
            "device_id": "pi-node-3",
            "raw": "pi-node-3,,",
        },
        # an object nobody can be tied to
        {"source_object": "landing/garbage.bin", "reason": "undecodable", "raw": None},
    ]
    _load_day(store, warehouse, rows=rows, quarantine=quarantine)
    as_of = health_as_of(DAY)
    assert as_of == datetime(2026, 3, 2)
    assert build_device_health(warehouse, DAY, as_of=as_of, silent_after_minutes=15) == 4

    health = {
        r["device_id"]: r
        for r in warehouse.query(
            "SELECT * FROM device_health WHERE dt = :day", {"day": DAY}
        ).dicts()
    }
    assert set(health) == {"pi-node-1", "pi-node-2", "pi-node-3", "(unknown)"}
    assert health["pi-node-2"]["silent"] is True
    assert health["pi-node-2"]["minutes_silent"] == pytest.approx(241.0)  # 19:59 -> 24:00
    assert health["pi-node-2"]["last_reading_ts"] == datetime(2026, 3, 1, 19, 59)
    assert health["pi-node-1"]["silent"] is False
    assert health["pi-node-1"]["rejected_rows"] == 2
    assert health["pi-node-1"]["rejected_share"] == pytest.approx(2 / 1442)
    assert health["pi-node-3"]["rejected_rows"] == 1
    assert health["(unknown)"]["rejected_rows"] == 1
    assert health["(unknown)"]["rejected_share"] == 1.0
    assert health["(unknown)"]["silent"] is None
    assert health["pi-node-1"]["longest_gap_minutes"] == pytest.approx(1.0)


def test_a_device_quiet_since_yesterday_still_shows_as_silent(store, warehouse):
    _load_day(store, warehouse, day="2026-02-28", rows=synthetic_day("2026-02-28", ["pi-old"]))
    _load_day(store, warehouse, rows=synthetic_day(DAY, ["pi-node-1"]))
    build_device_health(warehouse, DAY, as_of=datetime(2026, 3, 1, 12))
    health = {r["device_id"]: r for r in warehouse.query("SELECT * FROM device_health").dicts()}
    assert health["pi-old"]["silent"] is True
    assert health["pi-old"]["readings"] == 0
    assert health["pi-old"]["minutes_silent"] == pytest.approx(12 * 60 + 1)
    # readings after as_of (today's partition while the day runs) do not count as silence
    assert health["pi-node-1"]["minutes_silent"] == 0.0


def test_health_as_of_is_the_day_end_or_now():
    assert health_as_of(DAY, now=datetime.fromisoformat("2026-03-05T10:00:00+00:00")) == (
        datetime(2026, 3, 2)
    )
    assert health_as_of(DAY, now=datetime.fromisoformat("2026-03-01T10:00:00.123456+00:00")) == (
        datetime(2026, 3, 1, 10, 0, 0, 123000)
    )


def test_a_broken_statement_names_the_backend_and_the_sql(warehouse):
    expected = r"DuckDB \(.*warehouse.duckdb\) failed(.|\n)*SQL: SELECT \* FROM sensors.no_such"
    with pytest.raises(WarehouseError, match=expected):
        warehouse.query("SELECT * FROM no_such_table")


def test_the_assets_materialize_a_day_with_readable_metadata(tmp_path, store):
    rows = synthetic_day(DAY, silent_from={"pi-node-3": "23:00"})
    write_day(store, DAY, rows, quarantine=[{"source_object": "x", "reason": "malformed"}])
    wh = DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"), object_store_root=store.root)
    settings = load_settings({"PICLUSTER_HOME": str(tmp_path)})
    defs = warehouse_tables.build_defs(settings)
    assets = list(defs.assets)
    resources = {"warehouse": wh, "object_store": store}

    for _ in range(2):  # a second run replaces the day
        result = dg.materialize(assets, partition_key=DAY, resources=resources)
        assert result.success
    by_asset = {
        m.asset_key.path[-1]: m.metadata
        for m in result.asset_materializations_for_node("sensor_readings_table")
    }
    assert by_asset["sensor_readings_table"]["dagster/row_count"].value == len(rows)
    hourly = result.asset_materializations_for_node("sensor_readings_hourly")[0].metadata
    assert hourly["dagster/row_count"].value == 3 * 24 - 1  # pi-node-3 sent nothing from 23:00
    assert "| pi-node-1 | 24 | 1440 |" in hourly["per_device"].value
    health = result.asset_materializations_for_node("device_health")[0].metadata
    assert health["silent"].value == "pi-node-3"
    assert health["dagster/row_count"].value == 4
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["hourly_counts_match_readings"].passed
    assert not checks["no_silent_devices"].passed  # pi-node-3, a warning
    assert checks["no_silent_devices"].severity == dg.AssetCheckSeverity.WARN
    assert checks["no_silent_devices"].metadata["silent"].value == "pi-node-3"
    # the one rejected row is nobody's: counted, but not held against a device
    assert checks["rejected_share_within_limit"].passed
    assert checks["rejected_share_within_limit"].metadata["unattributed_rejects"].value == 1


def test_factory_picks_the_profile_warehouse(tmp_path):
    local = warehouse_for(load_settings({"PICLUSTER_HOME": str(tmp_path)}))
    assert isinstance(local, DuckDBWarehouse)
    assert local.path == str(tmp_path / "warehouse.duckdb")
    assert local.object_store_root == str(tmp_path / "object-store")
    cluster = warehouse_for(
        load_settings(
            {
                "PICLUSTER_PROFILE": "cluster",
                "PICLUSTER_HOME": str(tmp_path),
                "PICLUSTER_S3_ENDPOINT": "127.0.0.1:8333",
                "PICLUSTER_S3_WAREHOUSE_BUCKET": "lab-warehouse",
                "PICLUSTER_S3_ACCESS_KEY": "a",
                "PICLUSTER_S3_SECRET_KEY": "b",
                "PICLUSTER_TRINO_HOST": "127.0.0.1",
                "PICLUSTER_PG_HOST": "127.0.0.1",
                "PICLUSTER_PG_PASSWORD": "c",
                "PICLUSTER_WAREHOUSE_SCHEMA": "lab",
            }
        )
    )
    assert isinstance(cluster, TrinoWarehouse)
    assert (cluster.catalog, cluster.schema_name) == ("hive", "lab")
    assert cluster.buckets == {"warehouse": "lab-warehouse", "quarantine": "quarantine"}
    assert cluster.location(layout.CURATED_PREFIX) == "s3://lab-warehouse/sensor_readings/"
    assert cluster.location(layout.QUARANTINE_PREFIX) == "s3://quarantine/sensor_readings/"
    assert cluster.schema_location == ""  # s3://lab-warehouse/lab.db
    with pytest.raises(ValueError, match="'landing/x/' names no bucket the warehouse knows"):
        cluster.location("landing/x/")
    # The schema (the aggregates' managed tables) goes into the warehouse bucket. The SQL is
    # captured, not sent: no Trino here (the Trino tests run it for real).
    sent: list[str] = []

    def capture(sql, args, fetch):
        sent.append(sql)
        return QueryResult((), [])

    object.__setattr__(cluster, "_run", capture)
    cluster.ensure_schema()
    assert sent == [
        "CREATE SCHEMA IF NOT EXISTS hive.lab WITH (location = 's3://lab-warehouse/lab.db')"
    ]


def test_the_schema_location_can_be_set_and_is_checked(tmp_path):
    env = {
        "PICLUSTER_PROFILE": "cluster",
        "PICLUSTER_HOME": str(tmp_path),
        "PICLUSTER_S3_ENDPOINT": "127.0.0.1:8333",
        "PICLUSTER_S3_ACCESS_KEY": "a",
        "PICLUSTER_S3_SECRET_KEY": "b",
        "PICLUSTER_TRINO_HOST": "127.0.0.1",
        "PICLUSTER_PG_HOST": "127.0.0.1",
        "PICLUSTER_PG_PASSWORD": "c",
    }
    env["PICLUSTER_WAREHOUSE_SCHEMA_LOCATION"] = "s3://warehouse/metastore/sensors/"
    assert warehouse_for(load_settings(env)).schema_location == "s3://warehouse/metastore/sensors"
    env["PICLUSTER_WAREHOUSE_SCHEMA_LOCATION"] = "/data/warehouse"
    with pytest.raises(SettingsError, match="PICLUSTER_WAREHOUSE_SCHEMA_LOCATION"):
        load_settings(env)


def test_a_step_waits_while_another_process_holds_the_duckdb_file(tmp_path, store):
    """Steps run in parallel processes; DuckDB lets one process at a time open the file."""
    import subprocess
    import sys

    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time\n"
            f"c = duckdb.connect({str(path)!r})\n"
            "print('holding', flush=True)\n"
            "time.sleep(1.5)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        wh = DuckDBWarehouse(path=str(path), object_store_root=store.root)
        with wh.session():
            ensure_tables(wh)  # opens the file once the other process lets go
            assert wh.query(sql("sensor_readings_count"), {"day": DAY}).rows == [(0,)]
    finally:
        holder.wait(timeout=60)


def test_a_batch_that_fails_its_checks_is_never_read(store, warehouse, tmp_path):
    """Write-audit-publish on DuckDB: the failed batch's readings and rejected rows stay in
    staging, so the tables show only what was there before; once fixed it is published."""
    from data_assets.curation_run import curate_day
    from resources.ledger import LedgerStore
    from tests.warehouse.curated_day import (
        a_day_whose_next_batch_fails,
        remove_the_hand_copied_file,
    )

    ledger = LedgerStore(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    a_day_whose_next_batch_fails(store, DAY)
    failed = curate_day(store, ledger, DAY, "run-1").result
    assert not failed.checks["schema_and_ranges"].passed
    assert failed.staged_keys  # its Parquet and its quarantine file wait in _staging/
    ensure_tables(warehouse)
    warehouse.register_partition(READINGS, DAY)
    warehouse.register_partition(QUARANTINE, DAY)
    count = "SELECT count(*) FROM sensor_readings WHERE dt = :day"
    rejected = "SELECT count(*) FROM sensor_quarantine WHERE dt = :day"
    assert warehouse.query(count, {"day": DAY}).rows == [(1,)]  # the hand-copied row only
    assert warehouse.query(rejected, {"day": DAY}).rows == [(0,)]

    remove_the_hand_copied_file(store, DAY)
    fixed = curate_day(store, ledger, DAY, "run-2").result
    assert fixed.passed and fixed.batch_id == failed.batch_id
    warehouse.register_partition(READINGS, DAY)
    warehouse.register_partition(QUARANTINE, DAY)
    assert warehouse.query(count, {"day": DAY}).rows == [(3,)]
    assert warehouse.query(rejected, {"day": DAY}).rows == [(1,)]
    assert [i.key for p in layout.STAGING_PREFIXES for i in store.list(p)] == []
    ledger.dispose()
