"""The platform's alert rules, as code: Prometheus rule groups shipped as one `PrometheusRule`.

Each alert is on a metric something in the `monitoring` release exports: node_exporter (nodes,
disks, the SoC's thermal zone, CPU frequency), kube-state-metrics (nodes, workloads, the
helm-controller's install Jobs), K3s's embedded etcd (`etcd-expose-metrics`), and the
`asset_check_metrics` sensor, which pushes Dagster's asset-check results to the Pushgateway
(`piclusterops_asset_check_*`). `release_not_ready` is generated from the catalogue: one rule
per release, over the workloads the release itself declares, so a new release is watched without
a second list. Every alert has a promtool unit test that fires it (deploy/monitoring/alert-tests).

No annotation uses Prometheus's `{{ $labels }}` templating: the rule travels in a Helm chart,
whose own templating would execute it. The alert's labels name the node, filesystem, release or
check instead.
"""

from collections.abc import Sequence

from platform_assets.releases.spec import MANAGED_BY, Release, Workload

RULE_NAME = "piclusterops-alerts"
# The label the chart's Prometheus selects PrometheusRules by (ruleSelector in monitoring.py).
RULE_SELECTOR = {"picluster.io/alerts": "true"}

# Backups whose restore check must have passed within the last 26 hours (one missed night is
# two hours of slack, not a day): the blocking checks that prove a backup restores.
VERIFIED_BACKUP_CHECKS = ("postgres_dump_restores", "object_store_mirror_verified")
BACKUP_MAX_AGE_H = 26
# What the asset_check_metrics sensor pushes under (the Pushgateway's grouping key `job`).
CHECKS_JOB = "piclusterops_asset_checks"
# The sensor pushes every minute; 15 minutes of silence is a stopped daemon or sensor.
CHECKS_SILENT_S = 900

# The Pi 5's firmware caps the ARM clock from 80 °C (its soft limit) and throttles hard at
# 85 °C; alerting at 75 °C leaves time to look at the fan before it slows down.
SOC_WARN_CELSIUS = 75
# etcd's own guidance: WAL fsync p99 above 500 ms loses leader elections (SD cards do this).
ETCD_FSYNC_P99_S = 0.5
# Filesystems that are not a node's disk.
NOT_A_DISK = 'fstype!~"tmpfs|overlay|squashfs|ramfs|nsfs",mountpoint!~"/boot/firmware|/run.*"'


def _alert(name: str, expr: str, for_: str, severity: str, summary: str, **labels) -> dict:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity, **labels},
        "annotations": {"summary": summary},
    }


def node_rules() -> list[dict]:
    return [
        _alert(
            "NodeDown",
            'kube_node_status_condition{condition="Ready",status="true"} == 0',
            "3m",
            "critical",
            "The node has not been Ready for 3 minutes (off, rebooting too long, or its "
            "kubelet is gone).",
        ),
        _alert(
            "NodeDiskFilling",
            f"(node_filesystem_avail_bytes{{{NOT_A_DISK}}} / "
            f"node_filesystem_size_bytes{{{NOT_A_DISK}}} < 0.25) and "
            f"predict_linear(node_filesystem_avail_bytes{{{NOT_A_DISK}}}[6h], 24 * 3600) < 0",
            "30m",
            "warning",
            "The filesystem is under 25 % free and, at the last 6 hours' rate, full within a day.",
        ),
        _alert(
            "NodeDiskAlmostFull",
            f"node_filesystem_avail_bytes{{{NOT_A_DISK}}} / "
            f"node_filesystem_size_bytes{{{NOT_A_DISK}}} < 0.10",
            "10m",
            "critical",
            "The filesystem has less than 10 % free.",
        ),
        _alert(
            "NodeSocTemperatureHigh",
            f'node_thermal_zone_temp{{type="cpu-thermal"}} > {SOC_WARN_CELSIUS}',
            "10m",
            "warning",
            f"The SoC has been above {SOC_WARN_CELSIUS} °C for 10 minutes; the firmware caps "
            "the clock from 80 °C.",
        ),
        # A busy node whose cores run well under their top frequency is being capped (by heat
        # or by the firmware after an under-voltage): the work it was sized for takes longer.
        _alert(
            "NodeCpuThrottled",
            "avg by (instance) (node_cpu_scaling_frequency_hertz / "
            "node_cpu_scaling_frequency_max_hertz) < 0.8 and on (instance) "
            '(1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))) > 0.7',
            "10m",
            "warning",
            "The node is busy but its cores run under 80 % of their top frequency: it is "
            "being throttled.",
        ),
        _alert(
            "EtcdSlowFsync",
            "histogram_quantile(0.99, sum by (instance, le) "
            "(rate(etcd_disk_wal_fsync_duration_seconds_bucket[5m]))) > "
            f"{ETCD_FSYNC_P99_S}",
            "10m",
            "warning",
            f"etcd's WAL fsync p99 is above {ETCD_FSYNC_P99_S} s: it starts losing leader "
            "elections (move K3s's data off the SD card).",
        ),
    ]


def _workload_unready(namespace: str, w: Workload) -> str | None:
    """PromQL that has a series while one workload of a release is not ready, or None for
    workloads that are not expected to stay up (Jobs)."""
    ns = f'namespace="{namespace}"'
    if w.kind == "Deployment":
        sel = f'{ns},deployment="{w.name}"'
        return (
            f"kube_deployment_status_replicas_available{{{sel}}} "
            f"< kube_deployment_spec_replicas{{{sel}}}"
        )
    if w.kind == "StatefulSet":
        sel = f'{ns},statefulset="{w.name}"'
        return (
            f"kube_statefulset_status_replicas_ready{{{sel}}} < kube_statefulset_replicas{{{sel}}}"
        )
    if w.kind == "DaemonSet":
        sel = f'{ns},daemonset="{w.name}"'
        return (
            f"kube_daemonset_status_number_ready{{{sel}}} "
            f"< kube_daemonset_status_desired_number_scheduled{{{sel}}}"
        )
    if w.kind == "Cluster":  # CloudNativePG names its instance pods <cluster>-<n>
        return (
            f'sum by (namespace) (kube_pod_status_ready{{{ns},pod=~"{w.name}-[0-9]+",'
            f'condition="true"}}) < {w.replicas}'
        )
    return None


def release_not_ready(release: Release) -> dict:
    """One rule: any workload of the release unready, or one of its HelmCharts' install Job
    failed (the helm-controller's `helm-install-<chart>` in kube-system)."""
    parts = [
        f"({expr})"
        for w in release.workloads
        if (expr := _workload_unready(release.namespace, w)) is not None
    ]
    charts = "|".join(c.name for c in release.charts)
    jobs = f'namespace="kube-system",job_name=~"helm-install-({charts})"'
    parts.append(f"(kube_job_status_failed{{{jobs}}} > 0)")
    return _alert(
        "ReleaseNotReady",
        " or ".join(parts),
        "10m",
        "critical",
        f"Release {release.name} has been not ready for 10 minutes (the series' labels name "
        "the workload or install Job; its release_ready check says more).",
        release=release.name,
    )


def platform_rules() -> list[dict]:
    max_age = f"{BACKUP_MAX_AGE_H} * 3600"
    backups = "|".join(VERIFIED_BACKUP_CHECKS)
    absent = " or ".join(
        f'absent(piclusterops_asset_check_last_passed_timestamp_seconds{{check="{c}"}})'
        for c in VERIFIED_BACKUP_CHECKS
    )
    return [
        _alert(
            "BackupNotVerified",
            "(time() - piclusterops_asset_check_last_passed_timestamp_seconds"
            f'{{check=~"{backups}"}} > {max_age}) or {absent}',
            "5m",
            "critical",
            f"The newest backup that passed this restore check is older than {BACKUP_MAX_AGE_H} "
            "hours, or none ever passed.",
        ),
        _alert(
            "BlockingAssetCheckFailing",
            'piclusterops_asset_check_passed{blocking="true"} == 0',
            "1m",
            "critical",
            "A blocking asset check failed its latest evaluation: what depends on the asset "
            "is stopped until it passes.",
        ),
        _alert(
            "AssetCheckMetricsSilent",
            f'(time() - push_time_seconds{{job="{CHECKS_JOB}"}} > {CHECKS_SILENT_S}) '
            f'or absent(push_time_seconds{{job="{CHECKS_JOB}"}})',
            "5m",
            "warning",
            "Dagster's asset-check results have not reached the Pushgateway for 15 minutes: "
            "the daemon or the asset_check_metrics sensor is stopped, so check alerts are stale.",
        ),
    ]


def rule_groups(releases: Sequence[Release]) -> list[dict]:
    return [
        {"name": "piclusterops.nodes", "rules": node_rules()},
        {"name": "piclusterops.releases", "rules": [release_not_ready(r) for r in releases]},
        {"name": "piclusterops.platform", "rules": platform_rules()},
    ]


def alert_names(releases: Sequence[Release]) -> set[str]:
    return {rule["alert"] for group in rule_groups(releases) for rule in group["rules"]}


def prometheus_rule(releases: Sequence[Release], namespace: str) -> dict:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": RULE_NAME,
            "namespace": namespace,
            "labels": {**MANAGED_BY, **RULE_SELECTOR},
        },
        "spec": {"groups": rule_groups(releases)},
    }
