"""The Grafana dashboards (deploy/monitoring/dashboards) and the alert rules refer only to
metrics something in the platform exports, and the dashboards parse as Grafana dashboards with
the data sources the monitoring release provisions.

The exporters' metric names are listed here by exporter (node_exporter, kube-state-metrics, the
kubelet's cAdvisor, etcd, Prometheus, the Pushgateway); ours come from the real exposition the
asset_check_metrics sensor pushes. A dashboard or rule naming anything else fails, so a typo or
a metric of an exporter we do not run cannot slip in.
"""

import re
from pathlib import Path

import pytest

from platform_assets.inventory import load_inventory
from platform_assets.releases import alerts, catalogue, monitoring
from sensors.asset_check_metrics import CheckResult, PipelineRows, exposition

ROOT = Path(__file__).resolve().parents[2]
INV = load_inventory(ROOT / "inventory.example.yaml")
DASHBOARDS = monitoring.dashboards()

EXPORTED = {
    "node_exporter": {
        "node_cpu_seconds_total",
        "node_cpu_scaling_frequency_hertz",
        "node_cpu_scaling_frequency_max_hertz",
        "node_memory_MemAvailable_bytes",
        "node_memory_MemTotal_bytes",
        "node_filesystem_avail_bytes",
        "node_filesystem_size_bytes",
        "node_thermal_zone_temp",
        "node_disk_io_time_seconds_total",
        "node_network_receive_bytes_total",
        "node_network_transmit_bytes_total",
        "node_uname_info",
    },
    "kube-state-metrics": {
        "kube_node_status_condition",
        "kube_node_info",
        "kube_pod_info",
        "kube_pod_status_ready",
        "kube_pod_container_resource_limits",
        "kube_pod_container_status_restarts_total",
        "kube_pod_container_status_last_terminated_reason",
        "kube_deployment_status_replicas_available",
        "kube_deployment_spec_replicas",
        "kube_statefulset_status_replicas_ready",
        "kube_statefulset_replicas",
        "kube_daemonset_status_number_ready",
        "kube_daemonset_status_desired_number_scheduled",
        "kube_job_status_failed",
    },
    "kubelet (cAdvisor)": {
        "container_cpu_usage_seconds_total",
        "container_memory_working_set_bytes",
        "container_network_receive_bytes_total",
    },
    "etcd (K3s, etcd-expose-metrics)": {"etcd_disk_wal_fsync_duration_seconds_bucket"},
    "Prometheus": {"ALERTS"},
    "Pushgateway": {"push_time_seconds"},
}


def ours() -> set[str]:
    """The metric names the asset_check_metrics sensor really pushes."""
    text = exposition([CheckResult("a", "c", True, False, 1.0, 0.0)], PipelineRows())
    return {line.split("{")[0].split()[0] for line in text.splitlines() if not line.startswith("#")}


def known() -> set[str]:
    return set().union(*EXPORTED.values()) | ours()


KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS |= {"bool", "offset", "inf", "nan"}


def metric_names(promql: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana's label_values() included)."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', promql)  # label values, $variables in them
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"label_values\(([A-Za-z_:][\w:]*)\s*,[^)]*\)", r" \1 ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][\w:]*", text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if word.lower() in KEYWORDS or rest.startswith("("):  # a keyword or a function
            continue
        names.add(word)
    return names


def test_the_extractor_finds_metrics_not_functions_labels_or_keywords():
    expr = (
        'sum by (pod) (rate(container_cpu_usage_seconds_total{namespace="$ns",pod=~"a-.*"}[5m]))'
        " / on (pod) group_left kube_pod_info or vector(0)"
    )
    assert metric_names(expr) == {"container_cpu_usage_seconds_total", "kube_pod_info"}
    assert metric_names('label_values(kube_pod_info{namespace="$namespace"}, pod)') == {
        "kube_pod_info"
    }


def panel_queries(board: dict) -> list[tuple[str, dict, str]]:
    out = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            out.append((panel["title"], target["datasource"], target["expr"]))
    for var in board["templating"]["list"]:
        out.append((f"variable {var['name']}", var["datasource"], var["query"]["query"]))
    return out


def test_the_issues_dashboards_are_there():
    assert set(DASHBOARDS) == {"cluster", "pods", "nodes", "trino", "nifi", "sensor-pipeline"}
    uids = [b["uid"] for b in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_a_dashboard_parses_and_queries_only_exported_metrics(name):
    board = DASHBOARDS[name]
    assert board["title"].startswith("PiClusterOps: ") and board["schemaVersion"] >= 39
    queries = panel_queries(board)
    assert queries, name
    provisioned = {"prometheus", "loki"}  # monitoring.datasources()
    for title, source, expr in queries:
        assert source["uid"] in provisioned, (name, title)
        if source["type"] == "loki":
            assert expr.startswith("{"), (name, title)  # a LogQL stream selector
            continue
        unknown = metric_names(expr) - known()
        assert not unknown, f"{name}: {title}: {sorted(unknown)} is exported by nothing"


def test_the_node_dashboard_shows_the_pi_temperature_and_the_pipeline_its_rows():
    def exprs(board):
        return " ".join(e for _, _, e in panel_queries(DASHBOARDS[board]))

    assert 'node_thermal_zone_temp{instance=~"$instance",type="cpu-thermal"}' in exprs("nodes")
    pipeline = exprs("sensor-pipeline")
    assert 'piclusterops_sensor_rows_total{outcome="curated"}' in pipeline
    assert 'piclusterops_sensor_rows_total{outcome="quarantined"}' in pipeline


def test_the_alert_rules_use_only_exported_metrics():
    releases = catalogue.releases(INV)
    for group in alerts.rule_groups(releases):
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - known()
            assert not unknown, f"{rule['alert']}: {sorted(unknown)}"
