"""postgres_dump and its restore check against the real PostgreSQL 15 (Debian's pg_dump and
pg_restore), dumps streamed to the real SeaweedFS: a round trip that matches the manifest, a
flipped byte and a truncated dump caught naming the object, scratch databases dropped, counts
from the dump's own snapshot while rows are being written, and the password only in a PGPASSFILE.
"""

import io
import json
import os
import subprocess
import threading
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.backups.assets import POSTGRES_RESTORES
from platform_assets.backups.layout import dump_key, manifest_key, postgres_verified_key
from platform_assets.backups.postgres import PlatformPostgres, dump_database
from platform_assets.backups.streams import open_stream, put_stream
from sensors.backups import FRESHNESS_CHECKS
from tests.backups.conftest import (
    BACKUPS,
    LAKE_NIGHTLY,
    failed_checks,
    platform_postgres,
    resources_for,
    s3_store,
)

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("backup_key_env")]

DAY = "2026-03-03"
DUMP = dg.AssetSelection.assets("postgres_dump") - FRESHNESS_CHECKS


def run_dump(store, pg: PlatformPostgres, day: str = DAY, **kwargs) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        BACKUPS,
        selection=DUMP,
        partition_key=day,
        resources=resources_for(store, pg),
        raise_on_error=False,
        **kwargs,
    )


def run_restore_check(store, pg: PlatformPostgres) -> dg.ExecuteInProcessResult:
    """The restore check alone, as running it from the UI does: it checks the newest night."""
    return dg.materialize(
        BACKUPS,
        selection=dg.AssetSelection.checks(POSTGRES_RESTORES.key),
        resources=resources_for(store, pg),
        raise_on_error=False,
    )


def scratch_databases(postgres) -> list[str]:
    conn = postgres.connect()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE 'restore_check_%'")
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


@pytest.fixture
def lake(s3):
    return s3_store(s3, "lake")


@pytest.fixture
def pg(postgres, platform_databases) -> PlatformPostgres:
    return platform_postgres(postgres, platform_databases)


def test_dump_restores_and_matches_its_manifest(lake, pg, postgres, platform_databases):
    result = run_dump(lake, pg)
    assert result.success, failed_checks(result)
    assert failed_checks(result) == {}
    manifest = json.loads(lake.get(manifest_key(DAY)))
    assert manifest["server_version"].startswith("15.")
    assert "pg_dump (PostgreSQL) 15" in manifest["pg_dump_version"]
    by_name = {d["database"]: d for d in manifest["databases"]}
    assert set(by_name) == set(platform_databases)
    for name, counts in platform_databases.items():
        entry = by_name[name]
        assert entry["tables"] == counts
        stored = lake.stat(dump_key(DAY, name))
        assert stored is not None and stored.size == entry["size"]
        import hashlib

        assert hashlib.sha256(lake.get(entry["object"])).hexdigest() == entry["sha256"]
        assert lake.get(entry["object"]).startswith(b"PGDMP")  # pg_dump's custom format
    assert lake.stat(postgres_verified_key(DAY)) is not None
    assert scratch_databases(postgres) == []
    mat = result.asset_materializations_for_node("postgres_dump")[0]
    total = sum(sum(c.values()) for c in platform_databases.values())
    assert mat.metadata["dagster/row_count"].value == total


def corrupt(store, key: str, how: str) -> None:
    data = bytearray(store.get(key))
    if how == "flipped":
        data[len(data) // 2] ^= 0x40
    else:
        data = data[: len(data) * 2 // 3]
    store.put(key, bytes(data))


@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_a_damaged_dump_fails_the_check_naming_the_file(
    lake, pg, postgres, platform_databases, how
):
    assert run_dump(lake, pg).success
    victim = sorted(platform_databases)[1]
    key = dump_key(DAY, victim)
    corrupt(lake, key, how)
    lake.delete(postgres_verified_key(DAY))
    result = run_restore_check(lake, pg)
    failures = failed_checks(result)
    assert set(failures) == {"postgres_dump_restores"}
    text = failures["postgres_dump_restores"]
    assert key in text
    assert "does not match the manifest" in text
    if how == "truncated":
        assert "truncated" in text and "pg_restore" in text
    # The other database's dump is named nowhere: the failure points at the damaged file.
    assert dump_key(DAY, sorted(platform_databases)[0]) not in text
    assert lake.stat(postgres_verified_key(DAY)) is None
    assert scratch_databases(postgres) == []


def test_a_failed_restore_check_blocks_the_mirror_and_retention(lake, pg, postgres, tmp_path):
    """A backup role without CREATEDB dumps fine but cannot restore: the night fails its
    blocking check, so nothing is mirrored and nothing pruned."""
    from resources.object_store import LocalObjectStore

    role, password = "bk_no_createdb_" + os.urandom(3).hex(), "pw-" + os.urandom(8).hex()
    conn = postgres.connect()
    with conn.cursor() as cur:
        cur.execute(f"CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD %s", (password,))
        cur.execute(f"GRANT pg_read_all_data TO {role}")
    conn.close()
    weak = platform_postgres(postgres, pg.databases, user=role, password=password)
    nas = LocalObjectStore(root=str(tmp_path / "nas"), buckets=["mirror"])
    resources = resources_for(lake, weak, nas)
    result = dg.materialize(
        BACKUPS,
        selection=LAKE_NIGHTLY,
        partition_key=DAY,
        resources=resources,
        raise_on_error=False,
    )
    assert not result.success
    failures = failed_checks(result)
    assert set(failures) == {"postgres_dump_restores"}
    assert "permission denied to create database" in failures["postgres_dump_restores"]
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {"postgres_dump"}
    assert list(nas.list("mirror/")) == []  # nothing left the cluster, nothing was pruned
    assert lake.stat(postgres_verified_key(DAY)) is None


def test_counts_come_from_the_dumps_snapshot_while_rows_are_written(postgres, s3):
    """The Dagster database is written while it is dumped; counts taken outside pg_dump's
    snapshot would not match the dump. A writer inserts throughout the dump."""
    from tests.backups.conftest import fill_database

    name = "bk_busy_" + os.urandom(3).hex()
    fill_database(postgres, name, 20000)
    pg = platform_postgres(postgres, [name])
    lake = s3_store(s3, "busy")
    stop = threading.Event()
    inserted = 0

    def writer():
        nonlocal inserted
        conn = postgres.connect(name)
        with conn.cursor() as cur:
            while not stop.is_set():
                cur.execute("INSERT INTO public.runs (body) VALUES ('during the dump')")
                inserted += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = run_dump(lake, pg)
    finally:
        stop.set()
        thread.join()
    assert inserted > 0
    assert result.success, failed_checks(result)
    assert failed_checks(result) == {}


def test_large_dump_streams_as_a_multipart_upload(postgres, s3):
    """A dump larger than one upload part (16 MiB) goes up in parts and restores."""
    name = "bk_large_" + os.urandom(3).hex()
    postgres.create_database(name)
    conn = postgres.connect(name)
    with conn.cursor() as cur:
        # Random bytes do not compress: about 24 MiB in the dump.
        cur.execute("CREATE TABLE blobs (id int, b bytea)")
        rows = "".join(f"{i}\t\\\\x{os.urandom(1024).hex()}\n" for i in range(24 * 1024))
        cur.copy_expert("COPY blobs FROM STDIN", io.StringIO(rows))
    conn.close()
    pg = platform_postgres(postgres, [name])
    lake = s3_store(s3, "large")
    result = run_dump(lake, pg)
    assert result.success and failed_checks(result) == {}
    entry = json.loads(lake.get(manifest_key(DAY)))["databases"][0]
    assert entry["size"] > 20 << 20
    assert entry["tables"] == {"public.blobs": 24 * 1024}
    # S3's etag of a multipart upload is '<md5 of the part md5s>-<parts>'.
    assert lake.stat(dump_key(DAY, name)).etag.endswith("-2")


def test_a_missing_database_fails_naming_it_and_writes_no_manifest(lake, pg, postgres):
    broken = platform_postgres(postgres, [*pg.databases, "no_such_db"])
    result = run_dump(lake, broken)
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "no_such_db" in error and f"{postgres.host}:{postgres.port}" in error
    assert lake.stat(manifest_key(DAY)) is None


def test_a_failing_pg_dump_leaves_no_partial_object(lake, pg, postgres, tmp_path):
    """pg_dump exits non-zero half-way (a stand-in pg_dump that writes, then fails): the
    upload is aborted, nothing lands under the dump's key."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "pg_dump").write_text("#!/bin/sh\nhead -c 3000000 /dev/urandom\nexit 1\n")
    (fake_bin / "pg_dump").chmod(0o755)
    broken = platform_postgres(postgres, pg.databases[:1], pg_bin=str(fake_bin))
    key = dump_key("2026-03-09", broken.databases[0])
    with pytest.raises(Exception, match="pg_dump of database"):
        dump_database(broken, broken.databases[0], key, lambda p: put_stream(lake, key, p))
    assert lake.stat(key) is None
    assert list(lake.list("backups/")) == []


def test_wrong_password_names_the_server_not_the_password(lake, pg, postgres):
    wrong = "wr0ng:pass\\word-7Hq"
    result = run_dump(lake, platform_postgres(postgres, pg.databases, password=wrong))
    assert not result.success
    error = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert f"{postgres.host}:{postgres.port}" in error and "password authentication" in error
    assert wrong not in error


def test_the_password_reaches_the_tools_only_through_a_private_passfile(
    lake, pg, postgres, monkeypatch
):
    seen: list[tuple[list[str], dict[str, str], int]] = []
    real_popen = subprocess.Popen

    def spy(argv, *args, **kwargs):
        env = kwargs.get("env") or {}
        passfile = env.get("PGPASSFILE")
        mode = os.stat(passfile).st_mode & 0o777 if passfile else -1
        seen.append((list(argv), dict(env), mode))
        return real_popen(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", spy)
    monkeypatch.setenv("PGPASSWORD", postgres.password)  # inherited by nothing
    result = run_dump(lake, pg)
    assert result.success and failed_checks(result) == {}
    # Every call that connects (`pg_dump --version` does not).
    tools = [s for s in seen if Path(s[0][0]).name in ("pg_dump", "pg_restore") and "-h" in s[0]]
    assert {Path(s[0][0]).name for s in tools} == {"pg_dump", "pg_restore"}
    for argv, env, mode in tools:
        assert postgres.password not in " ".join(argv)
        assert all(postgres.password not in v for v in env.values())
        assert mode == 0o600
        assert not Path(env["PGPASSFILE"]).exists()  # removed afterwards


def test_streams_read_back_what_was_written(lake):
    data = os.urandom(3 << 20)
    pieces = (data[i : i + 100_000] for i in range(0, len(data), 100_000))
    info = put_stream(lake, "backups/x.bin", pieces)
    assert info.size == len(data)
    with open_stream(lake, "backups/x.bin", chunk=65536) as stream:
        assert b"".join(stream) == data
