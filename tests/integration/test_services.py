"""Smoke tests for the test harness: each proves a real round trip through a real service."""

import io

import pytest

pytestmark = pytest.mark.service


def test_postgres_round_trip_through_sqlalchemy(postgres):
    import sqlalchemy as sa

    url = postgres.create_database("smoke_services")
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE TABLE readings (node text, celsius double precision)"))
            conn.execute(
                sa.text("INSERT INTO readings VALUES (:node, :celsius)"),
                [{"node": "pi-1", "celsius": 48.5}, {"node": "pi-2", "celsius": 51.0}],
            )
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT node, celsius FROM readings ORDER BY node")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [("pi-1", 48.5), ("pi-2", 51.0)]


def test_postgres_create_database_gives_a_clean_database(postgres):
    import sqlalchemy as sa

    url = postgres.create_database("smoke_clean")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE leftover (x int)"))
    engine.dispose()

    engine = sa.create_engine(postgres.create_database("smoke_clean"))
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_seaweedfs_put_list_get_with_minio_sdk(s3):
    client = s3.client()
    bucket = s3.make_bucket("smoke-objects")
    assert s3.make_bucket("smoke-objects") == bucket  # idempotent
    body = b"node,celsius\npi-1,48.5\n"
    for key in ("landing/a.csv", "landing/b.csv", "other/c.csv"):
        client.put_object(bucket, key, io.BytesIO(body), len(body), content_type="text/csv")

    listed = sorted(o.object_name for o in client.list_objects(bucket, prefix="landing/"))
    assert listed == ["landing/a.csv", "landing/b.csv"]
    response = client.get_object(bucket, "landing/b.csv")
    try:
        assert response.read() == body
    finally:
        response.close()
        response.release_conn()


def test_seaweedfs_refuses_a_wrong_secret_key(s3):
    from minio import Minio
    from minio.error import S3Error

    s3.make_bucket("smoke-auth")
    intruder = Minio(
        s3.endpoint,
        access_key=s3.access_key,
        secret_key="not-the-secret",
        secure=False,
        region=s3.region,
    )
    with pytest.raises(S3Error) as refused:
        intruder.list_objects("smoke-auth").__next__()
    assert refused.value.code in {"SignatureDoesNotMatch", "AccessDenied", "InvalidAccessKeyId"}
    with pytest.raises(S3Error):
        intruder.put_object("smoke-auth", "x.txt", io.BytesIO(b"x"), 1)
    assert list(s3.client().list_objects("smoke-auth")) == []


def test_seaweedfs_refuses_anonymous_reads(s3):
    import urllib.error
    import urllib.request

    s3.make_bucket("smoke-anonymous")
    s3.client().put_object("smoke-anonymous", "reading.csv", io.BytesIO(b"x"), 1)
    for url in (f"{s3.url}/smoke-anonymous/reading.csv", f"{s3.url}/smoke-anonymous"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 403


def test_dagster_run_recorded_in_postgres_instance(dagster_pg_instance, dagster_pg_home):
    import dagster as dg

    from tests.harness.dagster_instance import open_instance

    @dg.asset
    def smoke_asset() -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"dagster/row_count": 3})

    result = dg.materialize([smoke_asset], instance=dagster_pg_instance)
    assert result.success
    run_id = result.run_id

    fresh = open_instance(dagster_pg_home)
    try:
        assert type(fresh.run_storage).__name__ == "PostgresRunStorage"
        run = fresh.get_run_by_id(run_id)
        assert run is not None and run.is_success
        event = fresh.get_latest_materialization_event(dg.AssetKey("smoke_asset"))
        assert event is not None and event.run_id == run_id
        assert event.asset_materialization.metadata["dagster/row_count"].value == 3
    finally:
        fresh.dispose()


def _put(s3, bucket: str, key: str, body: bytes) -> None:
    s3.client().put_object(bucket, key, io.BytesIO(body), len(body))


def _parquet(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), sink)
    return sink.getvalue()


def test_trino_reads_csv_written_with_minio_through_external_table(trino, s3):
    _put(
        s3,
        trino.bucket,
        "harness_smoke/csv_readings/readings.csv",
        b"node,celsius\npi-1,48.5\npi-2,51.0\n",
    )
    conn = trino.connect()
    cur = conn.cursor()
    cur.execute(
        f"CREATE SCHEMA IF NOT EXISTS hive.harness_csv "
        f"WITH (location = 's3://{trino.bucket}/harness_smoke/')"
    )
    cur.fetchall()
    cur.execute(
        "CREATE TABLE hive.harness_csv.readings (node varchar, celsius varchar) "
        f"WITH (external_location = 's3://{trino.bucket}/harness_smoke/csv_readings/', "
        "format = 'CSV', skip_header_line_count = 1)"
    )
    cur.fetchall()
    cur.execute("SELECT node, CAST(celsius AS double) FROM hive.harness_csv.readings ORDER BY 1")
    assert cur.fetchall() == [["pi-1", 48.5], ["pi-2", 51.0]]
    conn.close()


def test_trino_reads_partitioned_parquet_written_with_minio(trino, s3):
    prefix = "harness_smoke/parquet_readings"
    for day, rows in {
        "2026-11-24": [{"node": "pi-1", "celsius": 47.0}, {"node": "pi-2", "celsius": 49.0}],
        "2026-11-25": [{"node": "pi-1", "celsius": 48.5}],
    }.items():
        _put(s3, trino.bucket, f"{prefix}/day={day}/part-0.parquet", _parquet(rows))

    conn = trino.connect()
    cur = conn.cursor()
    for sql in (
        f"CREATE SCHEMA IF NOT EXISTS hive.harness_parquet "
        f"WITH (location = 's3://{trino.bucket}/harness_smoke_parquet/')",
        "CREATE TABLE hive.harness_parquet.readings "
        "(node varchar, celsius double, day varchar) "
        f"WITH (external_location = 's3://{trino.bucket}/{prefix}/', format = 'PARQUET', "
        "partitioned_by = ARRAY['day'])",
        "CALL hive.system.sync_partition_metadata('harness_parquet', 'readings', 'ADD')",
    ):
        cur.execute(sql)
        cur.fetchall()
    cur.execute(
        "SELECT day, count(*), max(celsius) FROM hive.harness_parquet.readings "
        "GROUP BY day ORDER BY day"
    )
    assert cur.fetchall() == [["2026-11-24", 2, 49.0], ["2026-11-25", 1, 48.5]]

    # A partition outside the day=... layout is added explicitly.
    _put(
        s3,
        trino.bucket,
        "harness_smoke/late/readings.parquet",
        _parquet([{"node": "pi-3", "celsius": 50.0}]),
    )
    cur.execute(
        "CALL hive.system.register_partition('harness_parquet', 'readings', ARRAY['day'], "
        f"ARRAY['2026-11-26'], 's3://{trino.bucket}/harness_smoke/late')"
    )
    cur.fetchall()
    cur.execute("SELECT node FROM hive.harness_parquet.readings WHERE day = '2026-11-26'")
    assert cur.fetchall() == [["pi-3"]]
    conn.close()


def test_trino_inserts_into_external_table_land_under_its_prefix(trino, s3):
    location = f"s3://{trino.bucket}/harness_written/nodes/"
    for sql in (
        "CREATE SCHEMA IF NOT EXISTS hive.harness_written",
        "CREATE TABLE hive.harness_written.nodes (node varchar, ram_gb integer) "
        f"WITH (external_location = '{location}', format = 'PARQUET')",
        "INSERT INTO hive.harness_written.nodes VALUES ('pi-1', 8), ('pi-2', 8)",
    ):
        trino.query(sql)

    keys = [
        o.object_name
        for o in s3.client().list_objects(
            trino.bucket, prefix="harness_written/nodes/", recursive=True
        )
    ]
    assert keys, f"Trino's INSERT wrote no objects under {location}"
    assert trino.query("SELECT sum(ram_gb) FROM hive.harness_written.nodes") == [[16]]


def test_trino_managed_tables_live_under_the_metastore_prefix(trino, s3):
    """The file metastore keeps managed tables under s3://<bucket>/metastore/<schema>/<table>."""
    trino.query("CREATE SCHEMA IF NOT EXISTS hive.harness_managed")
    trino.query(
        "CREATE TABLE hive.harness_managed.nodes AS "
        "SELECT * FROM (VALUES ('pi-1', 8), ('pi-2', 8)) AS t(node, ram_gb)"
    )
    assert trino.query("SELECT count(*) FROM hive.harness_managed.nodes") == [[2]]
    data = [
        o.object_name
        for o in s3.client().list_objects(
            trino.bucket, prefix="metastore/harness_managed/nodes/", recursive=True
        )
        if not o.object_name.rsplit("/", 1)[-1].startswith(".")
    ]
    assert data


def test_trino_log_does_not_contain_the_s3_secret(trino, s3, service_registry):
    trino.query("SELECT 1")
    log = (service_registry.log_dir / "trino.log").read_text(errors="replace")
    assert "hive" in log  # the catalog was loaded and logged
    assert s3.secret_key not in log
