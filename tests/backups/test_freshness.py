"""The freshness checks: fail when the newest verified night is older than 26 hours, read from
what the restore and re-read checks recorded in the stores."""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from platform_assets.backups.assets import freshness
from platform_assets.backups.layout import (
    etcd_verified_key,
    mirror_index_key,
    postgres_verified_key,
)
from sensors.backups import FRESHNESS_CHECKS
from tests.backups.conftest import BACKUPS, check_evaluations, folder_stores, resources_for

NOW = datetime(2026, 3, 4, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("age", "passed"),
    [
        (timedelta(hours=2), True),
        (timedelta(hours=25, minutes=59), True),
        (timedelta(hours=26), True),
        (timedelta(hours=26, minutes=1), False),
        (timedelta(days=3), False),
    ],
)
def test_freshness_at_given_times(age, passed):
    ok, text = freshness("2026-03-03", NOW - age, NOW)
    assert ok is passed
    assert "2026-03-03" in text


def test_no_verified_backup_is_not_fresh():
    assert freshness(None, None, NOW) == (False, "there is no verified backup at all")


def test_the_checks_read_the_markers(tmp_path, backup_key_env):
    # The key is in the environment of every run (the freshness checks share a step with the
    # integrity checks, which take it), as on the cluster.
    lake, nas = folder_stores(tmp_path)
    now = datetime.now(UTC)
    # An unverified newer night does not count; the newest verified one is 30 hours old.
    lake.put("backups/postgres/2026-03-04/manifest.json", b"{}")
    lake.put(
        postgres_verified_key("2026-03-03"),
        json.dumps({"verified_at": (now - timedelta(hours=30)).isoformat()}).encode(),
    )
    nas.put(mirror_index_key("2026-03-03"), b"sealed")
    lake.put(
        etcd_verified_key("2026-03-02"),
        json.dumps({"verified_at": (now - timedelta(hours=27)).isoformat()}).encode(),
    )
    nas.put(
        "mirror/verified/2026-03-03.json",
        json.dumps({"verified_at": (now - timedelta(hours=3)).isoformat()}).encode(),
    )
    result = dg.materialize(
        BACKUPS,
        selection=FRESHNESS_CHECKS,
        resources=resources_for(lake, nas=nas),
        raise_on_error=False,
    )
    checks = check_evaluations(result)
    assert not checks["postgres_dump_fresh"].passed
    assert "(2026-03-03, verified" in checks["postgres_dump_fresh"].description
    assert "30.0 hours old, more than 26" in checks["postgres_dump_fresh"].description
    assert checks["object_store_mirror_fresh"].passed
    assert not checks["etcd_snapshot_fresh"].passed
    assert "(2026-03-02, verified" in checks["etcd_snapshot_fresh"].description
