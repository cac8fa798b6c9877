"""The mock devices: deterministic, realistic enough, and honest about the faults they inject."""

import json
import statistics

import dagster as dg

from data_assets.readings import parse_object
from data_assets.simulator import (
    FaultRates,
    manifest_key,
    mock_sensor_uploads,
    simulate_day,
    write_day,
)
from tests.integration.cluster_env import OFFLINE_CLUSTER_ENV

DAY = "2026-11-24"


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = simulate_day(DAY, devices=3, seed=1, faults=FaultRates.typical())
    b = simulate_day(DAY, devices=3, seed=1, faults=FaultRates.typical())
    c = simulate_day(DAY, devices=3, seed=2, faults=FaultRates.typical())
    assert [(u.key, u.data) for u in a.uploads] == [(u.key, u.data) for u in b.uploads]
    assert [u.data for u in a.uploads] != [u.data for u in c.uploads]


def test_one_reading_a_minute_per_device_with_a_daily_cycle():
    day = simulate_day(DAY, devices=2, seed=4, formats=["csv", "jsonl"])
    assert len(day.uploads) == 2 * 24
    readings = [r for u in day.uploads for r in parse_object(u.key, u.data).readings]
    assert len(readings) == 2 * 24 * 60
    one = sorted((r for r in readings if r.device_id == "env-01"), key=lambda r: r.reading_ms)
    gaps = {b.reading_ms - a.reading_ms for a, b in zip(one, one[1:], strict=False)}
    assert gaps == {60_000}
    by_hour = {}
    for r in one:
        by_hour.setdefault((r.reading_ms // 3_600_000) % 24, []).append(r.temperature_c)
    night, afternoon = statistics.mean(by_hour[5]), statistics.mean(by_hour[15])
    assert afternoon - night > 3  # warmer in the afternoon than before dawn
    assert all(300 < r.pressure_hpa < 1100 and 0 <= r.humidity_pct <= 100 for r in one)


def test_late_files_are_uploaded_last_and_keys_are_time_first():
    day = simulate_day(DAY, devices=8, seed=7, faults=FaultRates(late_file=0.2))
    late = [u.late for u in day.uploads]
    assert any(late) and late == sorted(late)  # all on-time uploads, then the late ones
    assert all(u.key.startswith(f"landing/{DAY}/") for u in day.uploads)


def test_mock_asset_writes_a_day_once_and_keeps_it(local_store):
    result = dg.materialize(
        [mock_sensor_uploads], partition_key=DAY, resources={"object_store": local_store}
    )
    assert result.success
    manifest = json.loads(local_store.get(manifest_key(DAY)))
    files = {i.key: i.etag for i in local_store.list("landing/")}
    assert len(files) == len(manifest["files"]) == 8 * 24
    again = dg.materialize(
        [mock_sensor_uploads], partition_key=DAY, resources={"object_store": local_store}
    )
    (event,) = again.asset_materializations_for_node("mock_sensor_uploads")
    assert "kept it" in event.metadata["summary"].value
    assert {i.key: i.etag for i in local_store.list("landing/")} == files


def test_write_day_reports_what_is_in_the_store(local_store):
    day = simulate_day(DAY, devices=1, seed=9)
    written = write_day(local_store, day)
    kept = write_day(local_store, simulate_day(DAY, devices=5, seed=1), overwrite=False)
    assert kept["devices"] == written["devices"] == 1 and kept["kept_existing"]


def test_mock_devices_are_part_of_the_local_graph_only():
    from data_assets import build_defs
    from resources.settings import load_settings

    local = build_defs(load_settings({}))
    cluster = build_defs(load_settings(OFFLINE_CLUSTER_ENV))

    def keys(defs):
        return {k.to_user_string() for a in defs.assets for k in a.keys}

    assert "mock_sensor_uploads" in keys(local)
    assert "mock_sensor_uploads" not in keys(cluster)
    assert "curated_sensor_readings" in keys(cluster)
