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
