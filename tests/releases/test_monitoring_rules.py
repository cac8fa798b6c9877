"""The platform's alert rules with Prometheus's own promtool (v3.13.2, the version the
monitoring release runs, built from the Go module proxy by tests.harness.prometheus_dist):
`promtool check rules` accepts them, and every alert fires on sample series in a
`promtool test rules` case (and stays quiet on a healthy one). The rules are the ones shipped:
read back out of the rendered `monitoring-config` chart.
"""

import subprocess
from pathlib import Path

import pytest
import yaml

from platform_assets.inventory import load_inventory
from platform_assets.releases import alerts, catalogue
from platform_assets.releases.spec import helmcharts
from tests.harness import prometheus_dist
from tests.releases.test_rendering import own_manifests

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(ROOT / "inventory.example.yaml")
RELEASES = {r.name: r for r in catalogue.releases(INV)}
H = 3600
DISK = 'device="mmcblk0p2",fstype="ext4",mountpoint="/",instance="pi-agent-1:9100"'
DISK_LABELS = {
    "device": "mmcblk0p2",
    "fstype": "ext4",
    "mountpoint": "/",
    "instance": "pi-agent-1:9100",
}
# The Pushgateway's own `instance=""` is no label at all to Prometheus.
CHECK = 'job="piclusterops_asset_checks"'


def shipped_rule() -> dict:
    (config,) = [
        h
        for h in helmcharts(RELEASES["monitoring"])
        if h["metadata"]["name"] == "monitoring-config"
    ]
    (rule,) = [m for m in own_manifests(config) if m["kind"] == "PrometheusRule"]
    return rule


@pytest.fixture(scope="module")
def promtool() -> Path:
    prometheus_dist.ensure()
    return prometheus_dist.promtool()


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": shipped_rule()["spec"]["groups"]}))
    return path


def summary(alert: str, release: str | None = None) -> str:
    rules = [r for g in shipped_rule()["spec"]["groups"] for r in g["rules"]]
    (rule,) = [r for r in rules if r["alert"] == alert and r["labels"].get("release") == release]
    return rule["annotations"]["summary"]


def fired(alert, labels, release=None):
    severity = next(
        r["labels"]["severity"]
        for g in shipped_rule()["spec"]["groups"]
        for r in g["rules"]
        if r["alert"] == alert
    )
    exp = {"severity": severity, **labels}
    if release:
        exp["release"] = release
    return {"exp_labels": exp, "exp_annotations": {"summary": summary(alert, release)}}


def series(name_labels: str, values: str) -> dict:
    return {"series": name_labels, "values": values}


# (alert, interval, input series, eval time, alerts expected then); each alert at least once
# firing and once quiet.
CASES = [
    (
        "NodeDown",
        "1m",
        [
            series(
                'kube_node_status_condition{condition="Ready",status="true",node="pi-agent-2"}',
                "0x10",
            ),
            series(
                'kube_node_status_condition{condition="Ready",status="true",node="pi-agent-1"}',
                "1x10",
            ),
        ],
        "5m",
        [fired("NodeDown", {"condition": "Ready", "status": "true", "node": "pi-agent-2"})],
    ),
    (
        "NodeDown",
        "1m",
        # Back after two minutes (a reboot): under the 3 minutes the alert waits.
        [
            series(
                'kube_node_status_condition{condition="Ready",status="true",node="pi-agent-2"}',
                "0 0 1x10",
            )
        ],
        "5m",
        [],
    ),
    (
        "NodeDiskFilling",
        "1m",
        # 24 % free and losing 20 MB a minute: empty within the day.
        [
            series(f"node_filesystem_size_bytes{{{DISK}}}", "100000000000x60"),
            series(f"node_filesystem_avail_bytes{{{DISK}}}", "24000000000-20000000x60"),
        ],
        "40m",
        [fired("NodeDiskFilling", DISK_LABELS)],
    ),
    (
        "NodeDiskFilling",
        "1m",
        # As empty, but steady: not filling.
        [
            series(f"node_filesystem_size_bytes{{{DISK}}}", "100000000000x60"),
            series(f"node_filesystem_avail_bytes{{{DISK}}}", "24000000000x60"),
        ],
        "40m",
        [],
    ),
    (
        "NodeDiskAlmostFull",
        "1m",
        [
            series(f"node_filesystem_size_bytes{{{DISK}}}", "100000000000x20"),
            series(f"node_filesystem_avail_bytes{{{DISK}}}", "5000000000x20"),
            # The firmware partition is small and full by design: never alerted on.
            series(
                'node_filesystem_size_bytes{device="mmcblk0p1",fstype="vfat",'
                'mountpoint="/boot/firmware",instance="pi-agent-1:9100"}',
                "500000000x20",
            ),
            series(
                'node_filesystem_avail_bytes{device="mmcblk0p1",fstype="vfat",'
                'mountpoint="/boot/firmware",instance="pi-agent-1:9100"}',
                "10000000x20",
            ),
        ],
        "12m",
        [fired("NodeDiskAlmostFull", DISK_LABELS)],
    ),
    (
        "NodeSocTemperatureHigh",
        "1m",
        [
            series(
                'node_thermal_zone_temp{type="cpu-thermal",zone="0",instance="pi-agent-3:9100"}',
                "78x20",
            ),
            series(
                'node_thermal_zone_temp{type="cpu-thermal",zone="0",instance="pi-agent-2:9100"}',
                "62x20",
            ),
        ],
        "12m",
        [
            fired(
                "NodeSocTemperatureHigh",
                {"type": "cpu-thermal", "zone": "0", "instance": "pi-agent-3:9100"},
            )
        ],
    ),
    (
        "NodeCpuThrottled",
        "1m",
        # Four busy cores (idle time grows 0.05 s a minute) held at 1.5 of 2.4 GHz.
        [
            *(
                series(
                    f'node_cpu_scaling_frequency_hertz{{cpu="{c}",instance="pi-server:9100"}}',
                    "1500000000x30",
                )
                for c in range(4)
            ),
            *(
                series(
                    f'node_cpu_scaling_frequency_max_hertz{{cpu="{c}",instance="pi-server:9100"}}',
                    "2400000000x30",
                )
                for c in range(4)
            ),
            *(
                series(
                    f'node_cpu_seconds_total{{cpu="{c}",mode="idle",instance="pi-server:9100"}}',
                    "0+0.05x30",
                )
                for c in range(4)
            ),
        ],
        "20m",
        [fired("NodeCpuThrottled", {"instance": "pi-server:9100"})],
    ),
    (
        "NodeCpuThrottled",
        "1m",
        # Idle at a low clock: the governor saving power, not throttling.
        [
            series(
                'node_cpu_scaling_frequency_hertz{cpu="0",instance="pi-server:9100"}',
                "1500000000x30",
            ),
            series(
                'node_cpu_scaling_frequency_max_hertz{cpu="0",instance="pi-server:9100"}',
                "2400000000x30",
            ),
            series(
                'node_cpu_seconds_total{cpu="0",mode="idle",instance="pi-server:9100"}', "0+58x30"
            ),
        ],
        "20m",
        [],
    ),
    (
        "EtcdSlowFsync",
        "1m",
        # Every fsync between 0.5 and 1 s.
        [
            series(
                'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.1",instance="192.168.0.120:2381"}',
                "0x30",
            ),
            series(
                'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.5",instance="192.168.0.120:2381"}',
                "0x30",
            ),
            series(
                'etcd_disk_wal_fsync_duration_seconds_bucket{le="1",instance="192.168.0.120:2381"}',
                "0+100x30",
            ),
            series(
                'etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf",instance="192.168.0.120:2381"}',
                "0+100x30",
            ),
        ],
        "20m",
        [fired("EtcdSlowFsync", {"instance": "192.168.0.120:2381"})],
    ),
    (
        "EtcdSlowFsync",
        "1m",
        # Every fsync under 0.1 s (an SSD).
        [
            series(
                'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.1",instance="192.168.0.120:2381"}',
                "0+100x30",
            ),
            series(
                'etcd_disk_wal_fsync_duration_seconds_bucket{le="+Inf",instance="192.168.0.120:2381"}',
                "0+100x30",
            ),
        ],
        "20m",
        [],
    ),
    (
        "ReleaseNotReady",
        "1m",
        # A Deployment short of replicas (trino), a StatefulSet (object_store), a DaemonSet
        # (logging), a CloudNativePG cluster without a ready instance (postgres), and a failed
        # helm-controller install Job (metastore).
        [
            series(
                'kube_deployment_status_replicas_available{namespace="query",deployment="trino-worker"}',
                "0x15",
            ),
            series(
                'kube_deployment_spec_replicas{namespace="query",deployment="trino-worker"}', "1x15"
            ),
            series(
                'kube_deployment_status_replicas_available{namespace="query",deployment="trino-coordinator"}',
                "1x15",
            ),
            series(
                'kube_deployment_spec_replicas{namespace="query",deployment="trino-coordinator"}',
                "1x15",
            ),
            series(
                'kube_statefulset_status_replicas_ready{namespace="storage",statefulset="seaweedfs"}',
                "0x15",
            ),
            series(
                'kube_statefulset_replicas{namespace="storage",statefulset="seaweedfs"}', "1x15"
            ),
            series(
                'kube_daemonset_status_number_ready{namespace="logging",daemonset="fluent-bit"}',
                "3x15",
            ),
            series(
                'kube_daemonset_status_desired_number_scheduled{namespace="logging",daemonset="fluent-bit"}',
                "4x15",
            ),
            series(
                'kube_pod_status_ready{namespace="databases",pod="pg-main-1",condition="true"}',
                "0x15",
            ),
            series(
                'kube_job_status_failed{namespace="kube-system",job_name="helm-install-metastore"}',
                "1x15",
            ),
        ],
        "12m",
        [
            fired("ReleaseNotReady", {"namespace": "query", "deployment": "trino-worker"}, "trino"),
            fired(
                "ReleaseNotReady",
                {"namespace": "storage", "statefulset": "seaweedfs"},
                "object_store",
            ),
            fired(
                "ReleaseNotReady", {"namespace": "logging", "daemonset": "fluent-bit"}, "logging"
            ),
            fired("ReleaseNotReady", {"namespace": "databases"}, "postgres"),
            fired(
                "ReleaseNotReady",
                {"namespace": "kube-system", "job_name": "helm-install-metastore"},
                "metastore",
            ),
        ],
    ),
    (
        "ReleaseNotReady",
        "1m",
        # Everything ready.
        [
            series(
                'kube_deployment_status_replicas_available{namespace="query",deployment="trino-worker"}',
                "1x15",
            ),
            series(
                'kube_deployment_spec_replicas{namespace="query",deployment="trino-worker"}', "1x15"
            ),
            series(
                'kube_pod_status_ready{namespace="databases",pod="pg-main-1",condition="true"}',
                "1x15",
            ),
            series(
                'kube_job_status_failed{namespace="kube-system",job_name="helm-install-trino"}',
                "0x15",
            ),
        ],
        "12m",
        [],
    ),
    (
        "BackupNotVerified",
        "1m",
        # Both restore checks last passed at 01:00; 27 h later that is more than 26 h ago.
        [
            series(
                "piclusterops_asset_check_last_passed_timestamp_seconds{"
                f'asset="postgres_dump",check="postgres_dump_restores",blocking="true",{CHECK}}}',
                f"{H}x1700",
            ),
            series(
                "piclusterops_asset_check_last_passed_timestamp_seconds{"
                f'asset="object_store_mirror",check="object_store_mirror_verified",blocking="true",{CHECK}}}',
                f"{H}x1700",
            ),
        ],
        "28h",
        [
            fired(
                "BackupNotVerified",
                {
                    "asset": "postgres_dump",
                    "check": "postgres_dump_restores",
                    "blocking": "true",
                    "job": "piclusterops_asset_checks",
                },
            ),
            fired(
                "BackupNotVerified",
                {
                    "asset": "object_store_mirror",
                    "check": "object_store_mirror_verified",
                    "blocking": "true",
                    "job": "piclusterops_asset_checks",
                },
            ),
        ],
    ),
    (
        "BackupNotVerified",
        "1m",
        # 24 hours after the last pass: fine. The mirror's check was never evaluated at all.
        [
            series(
                "piclusterops_asset_check_last_passed_timestamp_seconds{"
                f'asset="postgres_dump",check="postgres_dump_restores",blocking="true",{CHECK}}}',
                f"{H}x1700",
            ),
        ],
        "25h",
        [fired("BackupNotVerified", {"check": "object_store_mirror_verified"})],
    ),
    (
        "BlockingAssetCheckFailing",
        "1m",
        [
            series(
                f'piclusterops_asset_check_passed{{asset="curated_sensor_readings",check="reconciliation",blocking="true",{CHECK}}}',
                "0x10",
            ),
            # A failing check that is only a warning does not page anyone.
            series(
                f'piclusterops_asset_check_passed{{asset="capacity_plan",check="full_catalogue_fits",blocking="false",{CHECK}}}',
                "0x10",
            ),
        ],
        "3m",
        [
            fired(
                "BlockingAssetCheckFailing",
                {
                    "asset": "curated_sensor_readings",
                    "check": "reconciliation",
                    "blocking": "true",
                    "job": "piclusterops_asset_checks",
                },
            )
        ],
    ),
    (
        "AssetCheckMetricsSilent",
        "1m",
        # The last push at 00:01, nothing after.
        [series(f"push_time_seconds{{{CHECK}}}", "60x30")],
        "22m",
        [fired("AssetCheckMetricsSilent", {"job": "piclusterops_asset_checks"})],
    ),
    (
        "AssetCheckMetricsSilent",
        "1m",
        # A push every minute.
        [series(f"push_time_seconds{{{CHECK}}}", "0+60x30")],
        "22m",
        [],
    ),
]


def test_every_alert_fires_in_a_case():
    # (Each alert's healthy counterpart is a quiet case or a healthy series beside the firing
    # one, which the exact expectation then proves silent.)
    firing = {alert for alert, *_, expected in CASES if expected}
    assert firing == alerts.alert_names(list(RELEASES.values()))


def test_every_release_has_its_readiness_rule():
    rules = [r for g in shipped_rule()["spec"]["groups"] for r in g["rules"]]
    assert sorted(
        r["labels"]["release"] for r in rules if r["alert"] == "ReleaseNotReady"
    ) == sorted(RELEASES)


def test_promtool_accepts_the_rules(promtool, rules_file):
    out = subprocess.run(
        [str(promtool), "check", "rules", str(rules_file)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (
        f"SUCCESS: {sum(len(g['rules']) for g in shipped_rule()['spec']['groups'])} rules found"
        in out.stdout
    )


def run_promtool_test(promtool: Path, rules_file: Path, tests: list[dict], where: Path):
    test_file = where / "alerts.test.yaml"
    test_file.write_text(
        yaml.safe_dump(
            {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": tests}
        )
    )
    return subprocess.run(
        [str(promtool), "test", "rules", str(test_file)], capture_output=True, text=True
    )


@pytest.mark.parametrize(
    ("alert", "interval", "inputs", "at", "expected"),
    CASES,
    ids=[f"{c[0]}-{'fires' if c[4] else 'quiet'}" for c in CASES],
)
def test_the_alert_fires_exactly_as_expected(
    promtool, rules_file, tmp_path, alert, interval, inputs, at, expected
):
    case = {
        "interval": interval,
        "input_series": inputs,
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
    }
    out = run_promtool_test(promtool, rules_file, [case], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_case_that_expects_the_wrong_alert_fails(promtool, rules_file, tmp_path):
    # The harness itself: promtool must refuse a case whose expectation is false, or every
    # case above would pass vacuously.
    alert, interval, inputs, at, _ = CASES[0]
    case = {
        "interval": interval,
        "input_series": inputs,
        "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": []}],
    }
    out = run_promtool_test(promtool, rules_file, [case], tmp_path)
    assert out.returncode != 0
    assert "NodeDown" in out.stdout + out.stderr
