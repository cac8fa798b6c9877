"""`restore_postgres` and `restore_object_store` against the real PostgreSQL (pg_dump/pg_restore
of Debian's 15) and folder stores: refused without the confirmation naming the field, a new
database by default, in place only with replace, verified against the manifest; the lake back
from the mirror, a tampered copy refused naming it."""

import os

import dagster as dg
import pytest

from platform_assets.backups.layout import mirror_blob_key
from platform_assets.backups.mirror import load_index
from platform_assets.backups.sealing import BackupKey
from platform_assets.recovery.object_store import restore_object_store
from platform_assets.recovery.postgres import restore_postgres
from tests.backups.conftest import (
    BACKUPS,
    LAKE_NIGHTLY,
    failed_checks,
    fill_database,
    folder_stores,
    platform_postgres,
    resources_for,
)

pytestmark = [pytest.mark.service]

NIGHT = "2026-03-06"


@pytest.fixture
def backed_up(postgres, tmp_path, backup_key_env):
    database = "rs_" + os.urandom(3).hex()
    counts = fill_database(postgres, database, 150)
    lake, nas = folder_stores(tmp_path)
    pg = platform_postgres(postgres, [database])
    lake.put("landing/2026-03-06/00/dev-1.jsonl", b'{"t": 21.5}\n')
    result = dg.materialize(
        BACKUPS,
        selection=LAKE_NIGHTLY,
        partition_key=NIGHT,
        resources=resources_for(lake, pg, nas),
        raise_on_error=False,
    )
    assert result.success, failed_checks(result)
    return database, counts, lake, nas, pg


def run(job, config: dict, lake, pg, nas) -> dg.ExecuteInProcessResult:
    name = job.name
    return job.execute_in_process(
        run_config={"ops": {name: {"config": config}}},
        resources=resources_for(lake, pg, nas),
        raise_on_error=False,
    )


def error_of(result) -> str:
    return result.get_step_failure_events()[0].event_specific_data.error.message


def rows(postgres, database: str) -> dict[str, int]:
    conn = postgres.connect(database)
    try:
        with conn.cursor() as cur:
            out = {}
            for table in ("public.runs", "ingest.objects", "public.empty_table"):
                cur.execute(f"SELECT count(*) FROM {table}")  # noqa: S608 (our names)
                out[table] = cur.fetchone()[0]
            return out
    finally:
        conn.close()


def exists(postgres, database: str) -> bool:
    conn = postgres.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def test_refused_without_the_confirmation_naming_the_field(postgres, backed_up):
    database, _, lake, nas, pg = backed_up
    result = run(restore_postgres, {"day": NIGHT, "database": database}, lake, pg, nas)
    assert not result.success
    message = error_of(result)
    assert "ops.restore_postgres.config.confirm" in message
    assert f"{database}_restored" in message
    assert not exists(postgres, f"{database}_restored")


def test_into_a_new_database_by_default(postgres, backed_up):
    database, counts, lake, nas, pg = backed_up
    conn = postgres.connect(database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DELETE FROM public.runs WHERE id > 10")  # after the backup
    conn.close()
    target = f"{database}_restored"
    config = {"day": NIGHT, "database": database, "confirm": target}
    result = run(restore_postgres, config, lake, pg, nas)
    assert result.success, error_of(result)
    assert rows(postgres, target) == counts
    assert rows(postgres, database)["public.runs"] == 10  # the live one is untouched
    # A second time refuses: the target exists and replace is not set.
    again = run(restore_postgres, config, lake, pg, nas)
    assert not again.success
    assert f"database {target!r} exists" in error_of(again)


def test_replace_restores_in_place(postgres, backed_up):
    database, counts, lake, nas, pg = backed_up
    conn = postgres.connect(database)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("DROP TABLE ingest.objects")
    conn.close()
    config = {"day": NIGHT, "database": database, "replace": True, "confirm": database}
    result = run(restore_postgres, config, lake, pg, nas)
    assert result.success, error_of(result)
    assert rows(postgres, database) == counts


def test_an_unknown_database_or_night_is_named(backed_up):
    database, _, lake, nas, pg = backed_up
    other = run(restore_postgres, {"day": NIGHT, "database": "nope", "confirm": "x"}, lake, pg, nas)
    assert not other.success  # refused before: confirm does not name the target
    unknown = run(
        restore_postgres,
        {"day": NIGHT, "database": "nope", "confirm": "nope_restored"},
        lake,
        pg,
        nas,
    )
    assert f"the backup of {NIGHT} has no database 'nope'" in error_of(unknown)
    no_night = run(
        restore_postgres,
        {"day": "2026-01-02", "database": database, "confirm": f"{database}_restored"},
        lake,
        pg,
        nas,
    )
    assert "backups/postgres/2026-01-02/manifest.json is missing" in error_of(no_night)


def test_the_lake_comes_back_from_the_mirror(backed_up, backup_key_env):
    _, _, lake, nas, pg = backed_up
    landing = "landing/2026-03-06/00/dev-1.jsonl"
    lake.delete(landing)
    refused = run(restore_object_store, {"day": NIGHT}, lake, pg, nas)
    assert "ops.restore_object_store.config.confirm" in error_of(refused)
    assert lake.stat(landing) is None
    result = run(restore_object_store, {"day": NIGHT, "confirm": NIGHT}, lake, pg, nas)
    assert result.success, error_of(result)
    assert lake.get(landing) == b'{"t": 21.5}\n'


def test_a_tampered_copy_is_refused_naming_it(backed_up, backup_key_env, tmp_path):
    _, _, lake, nas, pg = backed_up
    landing = "landing/2026-03-06/00/dev-1.jsonl"
    entry = load_index(nas, BackupKey(backup_key_env), NIGHT)[landing]
    blob = tmp_path / "nas" / mirror_blob_key(entry.blob)
    data = bytearray(blob.read_bytes())
    data[-20] ^= 0x01
    blob.write_bytes(bytes(data))
    lake.put(landing, b"newer on the cluster")
    result = run(restore_object_store, {"day": NIGHT, "confirm": NIGHT}, lake, pg, nas)
    assert not result.success
    assert f"(mirror of {landing})" in error_of(result)
    assert lake.get(landing) == b"newer on the cluster"  # a bad copy replaces nothing
