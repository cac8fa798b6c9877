"""Fixtures for the backups: platform databases with rows on the real PostgreSQL, the lake and
the mirror on two real SeaweedFS servers (or folders), and the resources the assets take."""

import uuid

import dagster as dg
import pytest

from platform_assets.backups.assets import BACKUP_ASSETS, BACKUP_CHECKS
from platform_assets.backups.etcd_snapshot import ETCD_ASSETS, ETCD_CHECKS
from platform_assets.backups.postgres import PlatformPostgres
from platform_assets.backups.resources import BackupKeyResource
from platform_assets.backups.sealing import generate_key
from platform_assets.resources import InventoryFile
from resources.object_store import LocalObjectStore, S3ObjectStore
from resources.ssh import SshResource
from sensors.backups import NIGHTLY
from tests.harness.postgres import PG_BIN

KEY_VAR = "PICLUSTER_TEST_BACKUP_KEY"


def s3_store(service, prefix: str, roles=None) -> S3ObjectStore:
    """Fresh buckets `<prefix>-<random>-<role>` for the platform's roles (or `roles`: the NAS
    has the one `mirror` bucket)."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    buckets = service.make_buckets(name, roles) if roles else service.make_buckets(name)
    return S3ObjectStore(
        endpoint=service.endpoint,
        access_key=service.access_key,
        secret_key=service.secret_key,
        buckets=buckets,
        secure=False,
        region=service.region,
    )


def fill_database(postgres, name: str, rows: int = 500) -> dict[str, int]:
    """A platform-like database: two schemas, a few tables, an empty one; returns the counts."""
    postgres.create_database(name)
    conn = postgres.connect(name)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE SCHEMA ingest")
            cur.execute(
                "CREATE TABLE public.runs (id serial PRIMARY KEY, body text NOT NULL, "
                "created timestamptz DEFAULT now())"
            )
            cur.execute("CREATE TABLE ingest.objects (key text PRIMARY KEY, size bigint)")
            cur.execute("CREATE TABLE public.empty_table (x int)")
            cur.execute(
                "INSERT INTO public.runs (body) SELECT md5(g::text) FROM generate_series(1, %s) g",
                (rows,),
            )
            cur.execute(
                "INSERT INTO ingest.objects "
                "SELECT 'landing/' || g, g FROM generate_series(1, %s) g",
                (rows // 5,),
            )
    finally:
        conn.close()
    return {"public.runs": rows, "ingest.objects": rows // 5, "public.empty_table": 0}


@pytest.fixture(scope="module")
def platform_databases(postgres) -> dict[str, dict[str, int]]:
    suffix = uuid.uuid4().hex[:6]
    return {
        f"bk_dagster_{suffix}": fill_database(postgres, f"bk_dagster_{suffix}", 800),
        f"bk_ledger_{suffix}": fill_database(postgres, f"bk_ledger_{suffix}", 300),
    }


def platform_postgres(postgres, databases, **overrides) -> PlatformPostgres:
    # A new resource, not `model_copy`: Dagster rebuilds a resource from its original config.
    fields = dict(
        host=postgres.host,
        port=postgres.port,
        user=postgres.user,
        password=postgres.password,
        databases=list(databases),
        pg_bin=str(PG_BIN),
    )
    return PlatformPostgres(**{**fields, **overrides})


@pytest.fixture
def backup_key_env(monkeypatch) -> str:
    value = generate_key()
    monkeypatch.setenv(KEY_VAR, value)
    return value


def key_resource() -> BackupKeyResource:
    return BackupKeyResource(key=dg.EnvVar(KEY_VAR), variable=KEY_VAR)


def folder_stores(tmp_path) -> tuple[LocalObjectStore, LocalObjectStore]:
    return (
        LocalObjectStore(root=str(tmp_path / "object-store")),
        LocalObjectStore(root=str(tmp_path / "nas"), buckets=["mirror"]),
    )


# The backup assets and checks, for `dg.materialize`.
BACKUPS = [*BACKUP_ASSETS, *BACKUP_CHECKS, *ETCD_ASSETS, *ETCD_CHECKS]
# The night without the etcd snapshot, which needs the fake cluster (tests/recovery).
LAKE_NIGHTLY = NIGHTLY - dg.AssetSelection.assets("etcd_snapshot")
# What the etcd snapshot takes, unused where it is not selected.
NO_CLUSTER = {
    "inventory_file": InventoryFile(path="/nonexistent/piclusterops-unused-inventory.yaml"),
    "ssh": SshResource(known_hosts_path="/nonexistent", private_key_path="/nonexistent"),
}


def resources_for(lake, pg=None, nas=None) -> dict[str, object]:
    """Every resource the backup assets take (materialize wants them all whatever is
    selected); what a test does not use is a folder or an empty server list."""
    return {
        "object_store": lake,
        "platform_postgres": pg or PlatformPostgres(host="", user="", password="", databases=[]),
        # A folder the dump tests never write to (only the mirror does).
        "backup_mirror": nas
        or LocalObjectStore(root="/nonexistent/piclusterops-unused-mirror", buckets=["mirror"]),
        "backup_key": key_resource(),
        **NO_CLUSTER,
    }


def failed_checks(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        e.check_name: e.description or ""
        for e in result.get_asset_check_evaluations()
        if not e.passed
    }


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}
