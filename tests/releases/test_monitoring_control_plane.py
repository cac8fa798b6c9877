"""The monitoring and logging releases against the real control plane (kube-apiserver with the
helm-controller's CRDs, the helm-controller, KWOK), as the core releases are tested
(test_control_plane.py): every HelmChart admitted as rendered, a second apply changes nothing,
the generated Grafana login is in no HelmChart, event or Dagster record. And the platform's
PrometheusRule and ServiceMonitors admitted by the real monitoring.coreos.com CRDs of the
operator version the chart runs (v0.93.1, read out of its Go module by
tests.harness.prometheus_dist): the chart would install those CRDs, which cannot be fetched
here, so the test installs the same files.

No chart is rendered and no container runs (see test_control_plane.py).
"""

import base64
import json

import dagster as dg
import pytest

from platform_assets.releases import catalogue
from platform_assets.releases.spec import CHART_NAMESPACE, helmcharts
from tests.harness import prometheus_dist
from tests.harness.kube import install_crd
from tests.releases.test_control_plane import (  # noqa: F401 (the module's kube fixture)
    HC,
    INV,
    TEST_MANAGER,
    job_of,
    kube,
    run,
)
from tests.releases.test_rendering import own_manifests

pytestmark = pytest.mark.service

RELEASES = {r.name: r for r in catalogue.releases(INV) if r.name in ("monitoring", "logging")}


def test_the_crd_admits_the_monitoring_and_logging_helmcharts(kube):  # noqa: F811
    for release in RELEASES.values():
        for manifest in helmcharts(release):
            would_be = kube.apply(manifest, field_manager=TEST_MANAGER, dry_run=True)
            assert would_be["spec"] == manifest["spec"], manifest["metadata"]["name"]


def test_applied_twice_the_second_apply_changes_nothing(kube):  # noqa: F811
    with dg.instance_for_test() as instance:
        first = run(kube, ["monitoring", "logging"], apply=True, instance=instance)
        changed = {
            m.asset_key.path[0]: m.materialization.metadata["changed"].value
            for m in first.get_asset_materialization_events()
        }
        assert changed == {
            "monitoring": "grafana-tls, kube-prometheus-stack, monitoring-config",
            "logging": "logging",
        }
        for chart in ("grafana-tls", "kube-prometheus-stack", "monitoring-config", "logging"):
            job = job_of(kube, chart)
            assert job["metadata"]["ownerReferences"][0]["name"] == chart
        generations = {
            c: kube.get(HC, "HelmChart", c, CHART_NAMESPACE)["metadata"]["generation"]
            for c in ("grafana-tls", "kube-prometheus-stack", "monitoring-config", "logging")
        }
        again = run(kube, ["monitoring", "logging"], apply=True, instance=instance)
        records = "\n".join(dg.serialize_value(e) for e in instance.all_logs(again.run_id))
        records += "\n".join(dg.serialize_value(e) for e in instance.all_logs(first.run_id))
    assert {
        m.asset_key.path[0]: m.materialization.metadata["changed"].value
        for m in again.get_asset_materialization_events()
    } == {"monitoring": "none", "logging": "none"}
    assert {
        c: kube.get(HC, "HelmChart", c, CHART_NAMESPACE)["metadata"]["generation"]
        for c in generations
    } == generations
    # The Grafana login: generated once, kept on the second apply, never in a CR or record.
    secret = kube.get("v1", "Secret", "grafana-admin", "monitoring")
    password = base64.b64decode(secret["data"]["password"]).decode()
    assert base64.b64decode(secret["data"]["username"]).decode() == "admin"
    assert len(password) >= 30
    assert password not in json.dumps(kube.list(HC, "HelmChart", CHART_NAMESPACE))
    events = [kube.list("v1", "Event", ns) for ns in (CHART_NAMESPACE, "monitoring", "logging")]
    assert password not in json.dumps(events)
    assert password not in records


@pytest.fixture(scope="module")
def monitoring_crds(kube):  # noqa: F811
    prometheus_dist.ensure()
    for name in prometheus_dist.CRDS:
        install_crd(kube, prometheus_dist.crd(name), TEST_MANAGER)
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
        field_manager=TEST_MANAGER,
    )
    return kube


def config_crs():
    (config,) = [
        h
        for h in helmcharts(RELEASES["monitoring"])
        if h["metadata"]["name"] == "monitoring-config"
    ]
    return [m for m in own_manifests(config) if m["apiVersion"] == "monitoring.coreos.com/v1"]


@pytest.mark.parametrize(
    "manifest", config_crs(), ids=lambda m: f"{m['kind']}/{m['metadata']['name']}"
)
def test_the_operators_crds_admit_our_rules_and_service_monitors(monitoring_crds, manifest):
    # Strict field validation: an unknown or mistyped field is refused; a pruned one would
    # differ below.
    would_be = monitoring_crds.apply(manifest, field_manager=TEST_MANAGER, dry_run=True)
    assert would_be["spec"] == manifest["spec"]


def test_the_crd_refuses_a_rule_with_a_mistyped_field(monitoring_crds):
    (rule,) = [m for m in config_crs() if m["kind"] == "PrometheusRule"]
    broken = json.loads(json.dumps(rule))
    broken["spec"]["groups"][0]["rules"][0]["expresion"] = "up == 0"
    with pytest.raises(Exception, match="expresion"):
        monitoring_crds.apply(broken, field_manager=TEST_MANAGER, dry_run=True)
