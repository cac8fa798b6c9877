"""The patch order and plan (pure), and the weekly_patches schedule's run requests at given
times in the inventory's time zone (`build_schedule_context`)."""

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml

from platform_assets.inventory import load_inventory
from platform_assets.patching.facts import Upgrade
from platform_assets.patching.plan import K3S, OS, NodePatchPlan, patch_order, plan_markdown
from platform_assets.releases.dagster import INFRASTRUCTURE_TAG
from platform_assets.run_placement import K8S_CONFIG_TAG, TOUCHES_TAG
from sensors.patches import weekly_patches_schedule

ROOT = Path(__file__).resolve().parents[2]


def inventory(tmp_path, timezone="UTC", dagster_on="pi-agent-3"):
    plan = yaml.safe_load((ROOT / "inventory.example.yaml").read_text())
    plan["timezone"] = timezone
    for node in plan["nodes"]:
        node["labels"].pop("picluster.io/dagster", None)
        if node["name"] == dagster_on:
            node["labels"]["picluster.io/dagster"] = "true"
    path = tmp_path / "inventory.yaml"
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return load_inventory(path)


ALL = ("pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3")


@pytest.mark.parametrize(
    ("mode", "dagster_on", "run_node", "order"),
    [
        # The server first; the Dagster node (agent-3) last.
        (OS, "pi-agent-3", None, ["pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3"]),
        # Dagster on agent-1: it moves to the end.
        (OS, "pi-agent-1", None, ["pi-server", "pi-agent-2", "pi-agent-3", "pi-agent-1"]),
        # The run's own node after the Dagster node.
        (OS, "pi-agent-3", "pi-agent-2", ["pi-server", "pi-agent-1", "pi-agent-3", "pi-agent-2"]),
        # Dagster on the server: the server goes last for OS patches...
        (OS, "pi-server", None, ["pi-agent-1", "pi-agent-2", "pi-agent-3", "pi-server"]),
        # ...but a K3s upgrade keeps the server first whatever hosts what.
        (K3S, "pi-server", "pi-agent-1", ["pi-server", "pi-agent-1", "pi-agent-2", "pi-agent-3"]),
    ],
)
def test_patch_order(tmp_path, mode, dagster_on, run_node, order):
    inv = inventory(tmp_path, dagster_on=dagster_on)
    assert patch_order(inv, ALL, mode=mode, run_node=run_node) == order


def test_order_of_a_subset_keeps_the_rules(tmp_path):
    inv = inventory(tmp_path)
    assert patch_order(inv, ["pi-agent-3", "pi-agent-1"], mode=OS) == ["pi-agent-1", "pi-agent-3"]


def test_plan_shows_packages_kernel_and_reboot_per_node():
    kernel = Upgrade(
        "linux-image-rpi-2712", "1:6.12.34-1+rpt1~bookworm", "1:6.12.47-1+rpt1~bookworm"
    )
    ssh = Upgrade("openssh-server", "1:9.2p1-2+deb12u7", "1:9.2p1-2+deb12u8")
    plans = [
        NodePatchPlan("pi-server", OS, (ssh,), "6.12.34+rpt-rpi-2712"),
        NodePatchPlan("pi-agent-1", OS, (ssh, kernel), "6.12.34+rpt-rpi-2712"),
        NodePatchPlan("pi-agent-2", OS, (), "6.12.34+rpt-rpi-2712", "6.12.47+rpt-rpi-2712"),
        NodePatchPlan("pi-agent-3", OS, (), "6.12.47+rpt-rpi-2712", skipped="nothing to upgrade"),
    ]
    assert [p.reboot_expected for p in plans] == [False, True, True, False]
    text = plan_markdown(plans, ALL)
    assert "| 1 | pi-server | 1 | 6.12.34+rpt-rpi-2712 | 6.12.34+rpt-rpi-2712 | no |" in text
    assert (
        "| 2 | pi-agent-1 | 2 | 6.12.34+rpt-rpi-2712 | newer (kernel package upgraded) | yes |"
        in text
    )
    assert "| 3 | pi-agent-2 | 0 | 6.12.34+rpt-rpi-2712 | 6.12.47+rpt-rpi-2712 | yes |" in text
    assert "nothing to upgrade" in text
    assert "| openssh-server | 1:9.2p1-2+deb12u7 | 1:9.2p1-2+deb12u8 |" in text


def requests_at(inv, local: datetime) -> list[dg.RunRequest]:
    schedule = weekly_patches_schedule(inv)
    when = local.replace(tzinfo=ZoneInfo(inv.timezone))
    return list(schedule(dg.build_schedule_context(scheduled_execution_time=when)))


@pytest.mark.parametrize(
    ("timezone", "local", "week"),
    [
        ("UTC", datetime(2026, 12, 6, 3, 0), "2026-12-06"),
        # 03:00 Sunday in Auckland is 14:00 Saturday UTC: the week is still named by Sunday.
        ("Pacific/Auckland", datetime(2026, 12, 6, 3, 0), "2026-12-06"),
        ("America/Los_Angeles", datetime(2026, 12, 6, 3, 0), "2026-12-06"),
    ],
)
def test_the_week_is_the_local_sunday(tmp_path, timezone, local, week):
    inv = inventory(tmp_path, timezone)
    first, second = requests_at(inv, local)
    assert first.run_key == f"weekly_patches-{week}-nodes"
    assert second.run_key == f"weekly_patches-{week}-dagster-nodes"
    assert first.tags["piclusterops/week"] == week


def test_no_run_patches_the_node_it_is_placed_on(tmp_path):
    inv = inventory(tmp_path, dagster_on="pi-agent-3")
    first, second = requests_at(inv, datetime(2026, 12, 6, 3, 0))
    nodes = [r.run_config["ops"]["node_patches"]["config"]["nodes"] for r in (first, second)]
    assert nodes == [["pi-server", "pi-agent-1", "pi-agent-2"], ["pi-agent-3"]]
    for request, patched in zip((first, second), nodes, strict=True):
        assert request.run_config["ops"]["node_patches"]["config"]["apply"] is True
        assert request.tags[INFRASTRUCTURE_TAG] == "true"  # the queue runs them one at a time
        assert request.tags[TOUCHES_TAG] == ",".join(sorted(patched))
        affinity = json.loads(request.tags[K8S_CONFIG_TAG])["pod_spec_config"]["affinity"]
        term = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        (expression,) = term["nodeSelectorTerms"][0]["matchExpressions"]
        assert expression["operator"] == "NotIn" and expression["values"] == sorted(patched)


def test_cron_zone_and_a_repeated_tick(tmp_path):
    inv = inventory(tmp_path, "Europe/Berlin")
    schedule = weekly_patches_schedule(inv)
    assert schedule.cron_schedule == "0 3 * * 0"
    assert schedule.execution_timezone == "Europe/Berlin"
    assert schedule.job_name == "patch_nodes"
    again = [r.run_key for r in requests_at(inv, datetime(2026, 12, 6, 3, 0))]
    assert again == [r.run_key for r in requests_at(inv, datetime(2026, 12, 6, 3, 0))]


@pytest.mark.parametrize(
    ("profile", "owner", "status"),
    [
        ("cluster", "laptop", dg.DefaultScheduleStatus.RUNNING),  # this Dagster owns them
        ("cluster", "cluster", dg.DefaultScheduleStatus.STOPPED),  # the cluster's Dagster does
        ("local", "laptop", dg.DefaultScheduleStatus.STOPPED),  # a laptop never patches alone
    ],
)
def test_running_where_this_dagster_owns_the_cluster_schedules(
    monkeypatch, tmp_path, profile, owner, status
):
    from platform_assets import patching
    from resources.settings import load_settings
    from tests.backups.test_settings import CLUSTER_ENV

    for name, value in CLUSTER_ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("PICLUSTER_HOME", str(tmp_path))
    monkeypatch.setenv("PICLUSTER_PROFILE", profile)
    monkeypatch.setenv("PICLUSTER_SCHEDULES_OWNER", owner)
    defs = patching.build_defs(load_settings(), inventory(tmp_path))
    (schedule,) = [s for s in defs.schedules if s.name == "weekly_patches"]
    assert schedule.default_status == status
    assert schedule.metadata["owner"].value == owner


def test_node_health_is_read_every_hour_into_the_utc_day():
    from sensors.patches import node_health_schedule

    schedule = node_health_schedule()
    assert schedule.cron_schedule == "7 * * * *"
    when = datetime(2026, 12, 6, 0, 7, tzinfo=ZoneInfo("Europe/Berlin"))  # 23:07 UTC the day before
    request = schedule(dg.build_schedule_context(scheduled_execution_time=when))
    assert request.partition_key == "2026-12-05"
    assert request.run_key == "node_health-2026-12-05T23"
