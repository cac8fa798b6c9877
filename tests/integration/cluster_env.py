"""The cluster profile's settings for the integration tests: fresh buckets (one per role, as the
object_store release makes them) and a ledger database on the harness's real SeaweedFS and
PostgreSQL (and Trino, when a test asks for the warehouse)."""

import uuid


def cluster_profile_env(s3, postgres, home, *, name: str, trino=None) -> dict[str, str]:
    """PICLUSTER_* variables for the cluster profile; `name` prefixes the buckets and database."""
    buckets = s3.make_buckets(f"{name.replace('_', '-')}-{uuid.uuid4().hex[:8]}")
    database = f"{name.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    env = {
        "PICLUSTER_PROFILE": "cluster",
        "PICLUSTER_HOME": str(home),
        "PICLUSTER_S3_ENDPOINT": s3.endpoint,
        "PICLUSTER_S3_SECURE": "false",
        **{f"PICLUSTER_S3_{role.upper()}_BUCKET": bucket for role, bucket in buckets.items()},
        "PICLUSTER_S3_REGION": s3.region,
        "PICLUSTER_S3_ACCESS_KEY": s3.access_key,
        "PICLUSTER_S3_SECRET_KEY": s3.secret_key,
        # Without a Trino fixture the warehouse is configured but never contacted.
        "PICLUSTER_TRINO_HOST": trino.host if trino else "127.0.0.1",
        "PICLUSTER_PG_HOST": postgres.host,
        "PICLUSTER_PG_PORT": str(postgres.port),
        "PICLUSTER_PG_DATABASE": database,
        "PICLUSTER_PG_USER": postgres.user,
        "PICLUSTER_PG_PASSWORD": postgres.password,
    }
    if trino:
        schema = f"it_{uuid.uuid4().hex[:8]}"
        env.update(
            {
                "PICLUSTER_TRINO_PORT": str(trino.port),
                "PICLUSTER_TRINO_USER": trino.user,
                "PICLUSTER_WAREHOUSE_SCHEMA": schema,
                # The test Trino's file metastore keeps managed tables under its catalog folder.
                "PICLUSTER_WAREHOUSE_SCHEMA_LOCATION": f"s3://{trino.bucket}/metastore/{schema}",
            }
        )
    return env


# The cluster profile's settings for tests that build its Definitions but contact no service:
# every endpoint is loopback (port 1 for S3, where nothing listens).
OFFLINE_CLUSTER_ENV = {
    "PICLUSTER_PROFILE": "cluster",
    "PICLUSTER_S3_ENDPOINT": "127.0.0.1:1",
    "PICLUSTER_S3_ACCESS_KEY": "unused",
    "PICLUSTER_S3_SECRET_KEY": "unused",
    "PICLUSTER_TRINO_HOST": "127.0.0.1",
    "PICLUSTER_PG_HOST": "127.0.0.1",
    "PICLUSTER_PG_PASSWORD": "unused",
}
