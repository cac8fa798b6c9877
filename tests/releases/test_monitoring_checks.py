"""Dagster's asset-check results reaching Prometheus: the asset_check_metrics sensor on a real
Dagster instance (checks evaluated by real runs) pushes them, and a failing blocking check
yields the series the shipped BlockingAssetCheckFailing rule fires on (real promtool).

The Pushgateway is a fake: its Go module is not served by the module proxy here (403), and no
container runs. The stand-in is an HTTP server on 127.0.0.1 that records what is PUT to it, as
the Pushgateway's API takes it; the body is then checked with `promtool check metrics` (the
same text-format parser Prometheus scrapes with).
"""

import http.server
import subprocess
import threading

import dagster as dg
import pytest
import yaml

from resources.settings import SettingsError
from sensors.asset_check_metrics import (
    IN_CLUSTER_URL,
    JOB,
    PipelineRows,
    PushgatewayResource,
    asset_check_metrics,
    pushgateway_url,
)
from tests.harness import prometheus_dist
from tests.releases.test_monitoring_rules import fired, rules_file, run_promtool_test  # noqa: F401

FAIL = {"value": False}


@dg.asset(
    check_specs=[
        dg.AssetCheckSpec("reconciliation", asset="curated_sensor_readings", blocking=True),
        dg.AssetCheckSpec("rows_plausible", asset="curated_sensor_readings"),
    ]
)
def curated_sensor_readings():
    return dg.MaterializeResult(
        metadata={
            "rows_read": 10,
            "rows_curated": 7,
            "rows_quarantined": 2,
            "duplicates_dropped": 1,
        },
        check_results=[
            dg.AssetCheckResult(check_name="reconciliation", passed=not FAIL["value"]),
            dg.AssetCheckResult(check_name="rows_plausible", passed=False),
        ],
    )


DEFS = dg.Definitions(assets=[curated_sensor_readings], sensors=[asset_check_metrics])


class FakePushgateway(http.server.BaseHTTPRequestHandler):
    """Records PUT /metrics/job/<job> bodies (a fake: see the module docstring)."""

    pushes: list[tuple[str, str]] = []

    def do_PUT(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        type(self).pushes.append((self.path, body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def pushgateway():
    FakePushgateway.pushes = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakePushgateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def tick(instance, url, cursor=None):
    context = dg.build_sensor_context(
        instance=instance,
        repository_def=DEFS.get_repository_def(),
        cursor=cursor,
        resources={"pushgateway": PushgatewayResource(url=url)},
    )
    return asset_check_metrics(context), context


def materialize(instance, fail: bool):
    FAIL["value"] = fail
    dg.materialize([curated_sensor_readings], instance=instance, raise_on_error=False)


def samples(body: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }


def test_a_failing_blocking_check_is_pushed_as_passed_0(pushgateway):
    with dg.instance_for_test() as instance:
        materialize(instance, fail=False)
        materialize(instance, fail=True)
        result, _ = tick(instance, pushgateway)
    ((path, body),) = FakePushgateway.pushes
    assert path == f"/metrics/job/{JOB}"
    got = samples(body)
    key = 'asset="curated_sensor_readings",check="reconciliation",blocking="true"'
    assert got[f"piclusterops_asset_check_passed{{{key}}}"] == 0
    # It passed in the first run: when is what the backup alert reads for its checks.
    assert got[f"piclusterops_asset_check_last_passed_timestamp_seconds{{{key}}}"] > 0
    other = 'asset="curated_sensor_readings",check="rows_plausible",blocking="false"'
    assert got[f"piclusterops_asset_check_passed{{{other}}}"] == 0
    assert got[f"piclusterops_asset_check_last_passed_timestamp_seconds{{{other}}}"] == 0
    assert "blocking checks failing: curated_sensor_readings/reconciliation" in result.skip_message


def test_the_pipeline_rows_are_counted_once_across_ticks(pushgateway):
    with dg.instance_for_test() as instance:
        materialize(instance, fail=False)
        _, first = tick(instance, pushgateway)
        materialize(instance, fail=False)
        _, second = tick(instance, pushgateway, cursor=first.cursor)
        tick(instance, pushgateway, cursor=second.cursor)  # nothing new
    counts = [samples(body) for _, body in FakePushgateway.pushes]
    curated = [c['piclusterops_sensor_rows_total{outcome="curated"}'] for c in counts]
    assert curated == [7, 14, 14]
    assert [c["piclusterops_sensor_batches_total"] for c in counts] == [1, 2, 2]
    assert counts[-1]['piclusterops_sensor_rows_total{outcome="quarantined"}'] == 4
    assert PipelineRows.from_cursor(second.cursor).batches == 2


@pytest.fixture(scope="module")
def promtool():
    prometheus_dist.ensure()
    return prometheus_dist.promtool()


def test_the_push_is_valid_exposition_and_fires_the_shipped_alert(
    pushgateway,
    promtool,
    rules_file,  # noqa: F811 (the fixture imported above)
    tmp_path,
):
    with dg.instance_for_test() as instance:
        materialize(instance, fail=True)
        tick(instance, pushgateway)
    ((_, body),) = FakePushgateway.pushes
    lint = subprocess.run(
        [str(promtool), "check", "metrics"], input=body, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # What Prometheus would hold after scraping the Pushgateway (honor_labels: the push's job).
    series = [
        {"series": f'{name[:-1]},job="{JOB}"}}', "values": f"{value:g}x5"}
        for name, value in samples(body).items()
        if name.startswith("piclusterops_asset_check_passed")
    ]
    case = {
        "interval": "1m",
        "input_series": series,
        "alert_rule_test": [
            {
                "eval_time": "3m",
                "alertname": "BlockingAssetCheckFailing",
                "exp_alerts": [
                    fired(
                        "BlockingAssetCheckFailing",
                        {
                            "asset": "curated_sensor_readings",
                            "check": "reconciliation",
                            "blocking": "true",
                            "job": JOB,
                        },
                    )
                ],
            }
        ],
    }
    out = run_promtool_test(promtool, rules_file, [case], tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr + yaml.safe_dump(series)


def test_without_a_pushgateway_nothing_is_pushed():
    with dg.instance_for_test() as instance:
        result, _ = tick(instance, "")
    assert "nothing pushed" in result.skip_message


def test_an_unreachable_pushgateway_fails_the_tick_naming_it():
    with dg.instance_for_test() as instance:
        materialize(instance, fail=False)
        with pytest.raises(
            Exception, match=r"the Pushgateway at http://127\.0\.0\.1:9 is unreachable"
        ):
            tick(instance, "http://127.0.0.1:9")


def test_the_url_setting():
    assert pushgateway_url({}) == ""
    assert pushgateway_url({"KUBERNETES_SERVICE_HOST": "10.43.0.1"}) == IN_CLUSTER_URL
    assert pushgateway_url({"PICLUSTER_PUSHGATEWAY_URL": "http://192.168.0.201:9091/"}) == (
        "http://192.168.0.201:9091"
    )
    with pytest.raises(SettingsError, match="PICLUSTER_PUSHGATEWAY_URL='file:///etc/passwd'"):
        pushgateway_url({"PICLUSTER_PUSHGATEWAY_URL": "file:///etc/passwd"})
