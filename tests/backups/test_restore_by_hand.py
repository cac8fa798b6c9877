"""The documented restore by hand from the mirror (docs/backups.md): unseal the night's index
with the command line, find the dump's blob, unseal it, pg_restore it into a new database; the
rows are all there. Real PostgreSQL, folder stores standing in for the lake and the NAS."""

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from platform_assets.backups.layout import dump_key, mirror_index_key
from tests.backups.conftest import (
    BACKUPS,
    LAKE_NIGHTLY,
    fill_database,
    folder_stores,
    platform_postgres,
    resources_for,
)
from tests.harness.postgres import PG_BIN

pytestmark = [pytest.mark.service]

NIGHT = "2026-03-07"


def unseal(path, key: str) -> bytes:
    result = subprocess.run(
        [sys.executable, "-m", "platform_assets.backups.sealing", "unseal"],
        stdin=path.open("rb"),
        capture_output=True,
        env={**os.environ, "PICLUSTER_BACKUP_KEY": key},
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def test_restore_a_database_from_the_mirror_by_hand(postgres, tmp_path, backup_key_env):
    database = "bk_byhand_" + os.urandom(3).hex()
    counts = fill_database(postgres, database, 120)
    lake, nas = folder_stores(tmp_path)
    result = dg.materialize(
        BACKUPS,
        selection=LAKE_NIGHTLY,
        partition_key=NIGHT,
        resources=resources_for(lake, platform_postgres(postgres, [database]), nas),
        raise_on_error=False,
    )
    assert result.success

    nas_root = tmp_path / "nas"
    index = json.loads(unseal(nas_root / mirror_index_key(NIGHT), backup_key_env))
    # jq -r '.objects[] | select(.[0] == $k) | .[4]'
    (blob,) = [row[4] for row in index["objects"] if row[0] == dump_key(NIGHT, database)]
    dump = tmp_path / "restored.dump"
    dump.write_bytes(unseal(nas_root / "mirror" / "blobs" / blob, backup_key_env))

    target = database + "_restored"
    postgres.create_database(target)
    env = {**os.environ, "PGPASSWORD": postgres.password}
    subprocess.run(
        [
            str(PG_BIN / "pg_restore"),
            "--exit-on-error",
            "--no-owner",
            "--no-privileges",
            "-h",
            postgres.host,
            "-p",
            str(postgres.port),
            "-U",
            postgres.user,
            "-d",
            target,
            str(dump),
        ],
        env=env,
        check=True,
    )
    conn = postgres.connect(target)
    with conn.cursor() as cur:
        restored = {}
        for table in counts:
            cur.execute(f"SELECT count(*) FROM {table}")
            restored[table] = cur.fetchone()[0]
    conn.close()
    assert restored == counts
