"""The nightly_backups and backup_freshness schedules: the run each asks for at given times, in
the inventory's time zone; running on the cluster, stopped on the local profile."""

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

import data_assets
import platform_assets
from platform_assets import backups
from platform_assets.backups.assets import backup_days
from resources.settings import load_settings
from sensors.backups import backup_freshness_schedule, nightly_backups_schedule
from tests.backups.test_settings import CLUSTER_ENV


def with_data_assets(settings, **kwargs) -> dg.Definitions:
    # The backups use the platform's `object_store`, which data_assets registers, and the etcd
    # snapshot the inventory and SSH, which platform_assets registers.
    return dg.Definitions.merge(
        platform_assets.build_defs(settings),
        data_assets.build_defs(settings),
        backups.build_defs(settings, **kwargs),
    )


def request_at(timezone: str, local: datetime) -> dg.RunRequest:
    schedule = nightly_backups_schedule(timezone)
    when = local.replace(tzinfo=ZoneInfo(timezone))
    request = schedule(dg.build_schedule_context(scheduled_execution_time=when))
    assert isinstance(request, dg.RunRequest)
    return request


@pytest.mark.parametrize(
    ("timezone", "local", "night"),
    [
        ("UTC", datetime(2026, 3, 3, 2, 0), "2026-03-03"),
        ("Europe/Berlin", datetime(2026, 3, 3, 2, 0), "2026-03-03"),
        # 02:00 local is 13:00 UTC the day before: the night is still the local date
        ("Pacific/Auckland", datetime(2026, 3, 3, 2, 0), "2026-03-03"),
        # 02:00 local is 14:00 UTC the day before
        ("America/Los_Angeles", datetime(2026, 3, 3, 2, 0), "2026-03-03"),
        ("Pacific/Kiritimati", datetime(2026, 1, 1, 2, 0), "2026-01-01"),
    ],
)
def test_the_night_is_the_local_date(timezone, local, night):
    request = request_at(timezone, local)
    assert request.partition_key == night
    assert request.run_key == f"nightly_backups-{night}"
    # The night exists as a partition at that moment, even 14 hours ahead of UTC.
    utc_now = local.replace(tzinfo=ZoneInfo(timezone)).astimezone(ZoneInfo("UTC"))
    assert night in backup_days.get_partition_keys(current_time=utc_now)


def test_the_same_tick_twice_asks_for_the_same_run():
    first = request_at("Europe/Berlin", datetime(2026, 3, 3, 2, 0))
    again = request_at("Europe/Berlin", datetime(2026, 3, 3, 2, 0))
    assert first.run_key == again.run_key and first.partition_key == again.partition_key


def test_cron_and_zone():
    schedule = nightly_backups_schedule("Europe/Berlin")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "nightly_backups"


def test_a_wrong_time_zone_names_it():
    with pytest.raises(ValueError, match="'Mars/Olympus' is not an IANA time zone"):
        nightly_backups_schedule("Mars/Olympus")


def test_running_on_the_cluster_stopped_on_the_local_profile(monkeypatch, tmp_path):
    for name, value in CLUSTER_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PICLUSTER_HOME", str(tmp_path))
    monkeypatch.setenv("PICLUSTER_INVENTORY", "inventory.example.yaml")
    cluster = with_data_assets(load_settings(), timezone="Europe/Berlin")
    for name in ("nightly_backups", "backup_freshness"):
        status = cluster.resolve_schedule_def(name).default_status
        assert status == dg.DefaultScheduleStatus.RUNNING, name
    monkeypatch.setenv("PICLUSTER_PROFILE", "local")
    local = with_data_assets(load_settings())
    for name in ("nightly_backups", "backup_freshness"):
        assert local.resolve_schedule_def(name).default_status == dg.DefaultScheduleStatus.STOPPED


def test_the_freshness_schedule_runs_only_the_freshness_checks(monkeypatch, tmp_path):
    monkeypatch.setenv("PICLUSTER_HOME", str(tmp_path))
    settings = load_settings({"PICLUSTER_HOME": str(tmp_path)})
    defs = with_data_assets(settings)
    job = defs.resolve_job_def("backup_freshness")
    assert job.asset_layer.selected_asset_keys == set()
    assert {k.name for k in job.asset_layer.asset_graph.asset_check_keys} == {
        "postgres_dump_fresh",
        "object_store_mirror_fresh",
        "etcd_snapshot_fresh",
    }
    nightly = defs.resolve_job_def("nightly_backups")
    assert {k.path[-1] for k in nightly.asset_layer.selected_asset_keys} == {
        "postgres_dump",
        "etcd_snapshot",
        "object_store_mirror",
        "backup_retention",
    }
    assert {k.name for k in nightly.asset_layer.asset_graph.asset_check_keys} == {
        "postgres_dump_restores",
        "etcd_snapshot_intact",
        "object_store_mirror_verified",
    }
    assert backup_freshness_schedule().cron_schedule == "17 * * * *"
