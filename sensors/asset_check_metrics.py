"""Dagster's asset-check results as Prometheus metrics, pushed to the `monitoring` release's
Pushgateway, so a failing check reaches Alertmanager like any other alert.

Why a sensor and a Pushgateway: the results live in the Dagster instance (PostgreSQL on the
cluster) and change only when a run evaluates a check. The daemon already ticks the sensors
every minute; one tick reads the latest evaluation of every check in the code location and
replaces the whole group on the Pushgateway (HTTP PUT), which Prometheus scrapes. No new
long-lived Python process (~150 MB on a Pi for an exporter importing dagster), no Prometheus
access to the database, and a check removed from the code drops out at the next push. The
Pushgateway's own `push_time_seconds` says when the sensor last pushed (AssetCheckMetricsSilent).

Metrics, per check (labels `asset`, `check`, `blocking`):

- `piclusterops_asset_check_passed`: 1 when the latest evaluation passed, 0 when it failed;
- `piclusterops_asset_check_evaluated_timestamp_seconds`: when that evaluation was recorded;
- `piclusterops_asset_check_last_passed_timestamp_seconds`: when the check last passed (0: never).

A check never evaluated has no series: nothing is known about it yet.

The same push carries the sensor pipeline's rows (the Grafana dashboard's curated and
quarantined panels), summed from `curated_sensor_readings`' materializations:
`piclusterops_sensor_rows_total{outcome="read|curated|quarantined|duplicate"}` and
`piclusterops_sensor_batches_total`. Counters: the sensor's cursor keeps the sums and the last
materialization read, so each tick reads only what is new (a lost cursor restarts them at 0,
which Prometheus's rate() treats as a counter reset).
"""

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from resources.settings import PREFIX, SettingsError, running_in_pod
from sensors.ownership import sensor_status

JOB = "piclusterops_asset_checks"  # the Pushgateway grouping key; alerts.CHECKS_JOB
URL_VAR = f"{PREFIX}PUSHGATEWAY_URL"
# The monitoring release's Service (platform_assets/releases/monitoring.py).
IN_CLUSTER_URL = "http://pushgateway.monitoring.svc:9091"
PUSH_TIMEOUT_S = 10.0
CURATED_ASSET = dg.AssetKey("curated_sensor_readings")
# curated_sensor_readings' metadata key per outcome.
ROW_OUTCOMES = {
    "read": "rows_read",
    "curated": "rows_curated",
    "quarantined": "rows_quarantined",
    "duplicate": "duplicates_dropped",
}
PAGE = 1000  # materializations read per query


@dataclass(frozen=True)
class CheckResult:
    asset: str
    check: str
    blocking: bool
    passed: bool
    evaluated_at: float
    last_passed_at: float  # 0.0: never passed


def pushgateway_url(environ=None) -> str:
    """`PICLUSTER_PUSHGATEWAY_URL`; in a pod the monitoring release's Service by default,
    elsewhere empty (the sensor then skips: a laptop usually cannot reach the cluster's)."""
    environ = os.environ if environ is None else environ
    value = environ.get(URL_VAR, "").strip()
    if not value:
        return IN_CLUSTER_URL if running_in_pod(environ) else ""
    if not re.fullmatch(r"https?://[A-Za-z0-9.\-]+(:\d{1,5})?/?", value):
        raise SettingsError(
            f"{URL_VAR}={value!r}: expected http(s)://host[:port], e.g. {IN_CLUSTER_URL}"
        )
    return value.rstrip("/")


def _label(value: str) -> str:
    # The text format's escapes for a label value: backslash, double quote, newline.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@dataclass(frozen=True)
class PipelineRows:
    """Running sums over curated_sensor_readings' materializations up to `storage_id`."""

    storage_id: int = 0
    batches: int = 0
    rows: tuple[tuple[str, int], ...] = tuple((o, 0) for o in ROW_OUTCOMES)

    def to_cursor(self) -> str:
        return json.dumps(
            {"storage_id": self.storage_id, "batches": self.batches, "rows": dict(self.rows)}
        )

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "PipelineRows":
        if not cursor:
            return cls()
        data = json.loads(cursor)
        rows = data.get("rows", {})
        return cls(
            storage_id=int(data["storage_id"]),
            batches=int(data["batches"]),
            rows=tuple((o, int(rows.get(o, 0))) for o in ROW_OUTCOMES),
        )


def pipeline_rows(instance: dg.DagsterInstance, since: PipelineRows) -> PipelineRows:
    """`since` plus every materialization of curated_sensor_readings recorded after it."""
    totals = dict(since.rows)
    batches, last = since.batches, since.storage_id
    while True:
        page = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=CURATED_ASSET, after_storage_id=last),
            limit=PAGE,
            ascending=True,
        ).records
        for record in page:
            metadata = record.asset_materialization.metadata
            batches += 1
            for outcome, key in ROW_OUTCOMES.items():
                value = metadata.get(key)
                totals[outcome] += int(value.value) if value is not None else 0
            last = record.storage_id
        if len(page) < PAGE:
            break
    return PipelineRows(last, batches, tuple(totals.items()))


def exposition(results: Iterable[CheckResult], pipeline: PipelineRows | None = None) -> str:
    """The results in Prometheus's text exposition format (what the Pushgateway accepts)."""
    results = sorted(results, key=lambda r: (r.asset, r.check))
    families = (
        (
            "piclusterops_asset_check_passed",
            "1 when the latest evaluation of the asset check passed, 0 when it failed.",
            lambda r: 1 if r.passed else 0,
        ),
        (
            "piclusterops_asset_check_evaluated_timestamp_seconds",
            "When the latest evaluation of the asset check was recorded (Unix time).",
            lambda r: r.evaluated_at,
        ),
        (
            "piclusterops_asset_check_last_passed_timestamp_seconds",
            "When the asset check last passed (Unix time; 0 if it never did).",
            lambda r: r.last_passed_at,
        ),
    )
    lines = []
    for name, help_text, value in families:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for r in results:
            labels = (
                f'asset="{_label(r.asset)}",check="{_label(r.check)}",'
                f'blocking="{"true" if r.blocking else "false"}"'
            )
            lines.append(f"{name}{{{labels}}} {value(r)}")
    if pipeline is not None:
        lines += [
            "# HELP piclusterops_sensor_rows_total Sensor readings by what curation did with "
            "them, over every curated batch.",
            "# TYPE piclusterops_sensor_rows_total counter",
            *(f'piclusterops_sensor_rows_total{{outcome="{o}"}} {n}' for o, n in pipeline.rows),
            "# HELP piclusterops_sensor_batches_total Curated batches (materializations of "
            "curated_sensor_readings).",
            "# TYPE piclusterops_sensor_batches_total counter",
            f"piclusterops_sensor_batches_total {pipeline.batches}",
        ]
    return "\n".join(lines) + "\n"


def latest_results(instance: dg.DagsterInstance, graph) -> list[CheckResult]:
    """The latest evaluation of every check in `graph` (an asset graph) that has one."""
    storage = instance.event_log_storage
    keys = sorted(graph.asset_check_keys, key=lambda k: k.to_user_string())
    latest = storage.get_latest_asset_check_execution_by_key(keys)
    out = []
    for key in keys:
        record = latest.get(key)
        evaluation = record.evaluation if record else None
        if evaluation is None:  # never evaluated, or only planned by a run still going
            continue
        if evaluation.passed:
            last_passed = record.create_timestamp
        else:
            passed = storage.get_asset_check_execution_history(
                key, limit=1, status={AssetCheckExecutionRecordStatus.SUCCEEDED}
            )
            last_passed = passed[0].create_timestamp if passed else 0.0
        out.append(
            CheckResult(
                asset=key.asset_key.to_user_string(),
                check=key.name,
                blocking=graph.get_check_spec(key).blocking,
                passed=evaluation.passed,
                evaluated_at=record.create_timestamp,
                last_passed_at=last_passed,
            )
        )
    return out


class PushgatewayResource(dg.ConfigurableResource):
    """The Pushgateway of the `monitoring` release. Empty `url`: nothing is pushed."""

    url: str = ""

    def push(self, job: str, body: str) -> None:
        """Replaces the group `job` with `body` (PUT: series not in it are dropped)."""
        request = urllib.request.Request(  # noqa: S310 (http(s) only: pushgateway_url)
            f"{self.url}/metrics/job/{job}",
            data=body.encode(),
            method="PUT",
            headers={"Content-Type": "text/plain; version=0.0.4"},
        )
        try:
            with urllib.request.urlopen(request, timeout=PUSH_TIMEOUT_S) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:300]
            raise RuntimeError(
                f"the Pushgateway at {self.url} refused the push: {exc.code} {detail}"
            ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise RuntimeError(f"the Pushgateway at {self.url} is unreachable: {exc}") from None


def summary(results: Sequence[CheckResult]) -> str:
    failing = [f"{r.asset}/{r.check}" for r in results if r.blocking and not r.passed]
    text = f"pushed {len(results)} asset-check results"
    return text + (f"; blocking checks failing: {', '.join(failing)}" if failing else "")


@dg.sensor(
    minimum_interval_seconds=60,
    default_status=sensor_status(),
    description="Pushes the latest result of every asset check to the Pushgateway as "
    "piclusterops_asset_check_* metrics, so a failing blocking check (and a backup whose "
    "restore check has not passed for 26 hours) alerts through Alertmanager.",
)
def asset_check_metrics(context: dg.SensorEvaluationContext, pushgateway: PushgatewayResource):
    if not pushgateway.url:
        return dg.SkipReason(
            f"no Pushgateway configured ({URL_VAR} is empty outside the cluster): nothing pushed"
        )
    results = latest_results(context.instance, context.repository_def.asset_graph)
    rows = pipeline_rows(context.instance, PipelineRows.from_cursor(context.cursor))
    pushgateway.push(JOB, exposition(results, rows))
    # Only after the push: a failed push re-reads the same materializations next tick.
    context.update_cursor(rows.to_cursor())
    # Every tick pushes (the push time is the alerts' heartbeat); no run is ever requested.
    return dg.SkipReason(summary(results))
