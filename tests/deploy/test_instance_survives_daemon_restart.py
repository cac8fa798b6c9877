"""The dagster-postgres instance keeps what matters across a restart of the daemon.

Real parts: PostgreSQL (the `dagster_pg_home` instance) and `dagster-daemon run` as a
subprocess, started, left to tick, stopped and started again. What must survive: a run and its
events, a schedule's state and a sensor's cursor (the sensor counts its ticks in the cursor, so
a daemon that lost it would count from 1 again).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest
from dagster._core.scheduler.instigation import InstigatorType

from tests.harness.dagster_instance import open_instance

pytestmark = [pytest.mark.service, pytest.mark.slow]

LOCATION = textwrap.dedent(
    """
    import dagster as dg

    @dg.op
    def hello():
        return 1

    @dg.job
    def restart_probe():
        hello()

    @dg.sensor(job=restart_probe, minimum_interval_seconds=1,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def counting(context):
        n = int(context.cursor or 0) + 1
        return dg.SensorResult(skip_reason=dg.SkipReason(f"tick {n}"), cursor=str(n))

    nightly = dg.ScheduleDefinition(name="nightly", job=restart_probe, cron_schedule="0 3 * * *")

    defs = dg.Definitions(jobs=[restart_probe], sensors=[counting], schedules=[nightly])
    """
)


def _states(home, kind):
    instance = open_instance(home)
    try:
        return {s.name: s for s in instance.all_instigator_state(instigator_type=kind)}
    finally:
        instance.dispose()


def _cursor(home) -> int:
    state = _states(home, InstigatorType.SENSOR).get("counting")
    return int(state.instigator_data.cursor) if state and state.instigator_data.cursor else 0


def _daemon(home, folder):
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    return subprocess.Popen(
        [
            os.path.join(os.path.dirname(sys.executable), "dagster-daemon"),
            "run",
            "-w",
            str(folder / "workspace.yaml"),
        ],
        cwd=folder,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "daemon.log", "a"),  # noqa: SIM115 (closed with the process)
    )


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_for_cursor(home, above: int, folder, timeout_s=120.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = _cursor(home)
        if value > above:
            return value
        time.sleep(1)
    raise AssertionError(
        f"the sensor's cursor stayed at {_cursor(home)}; daemon log:\n"
        + (folder / "daemon.log").read_text()[-3000:]
    )


def test_runs_events_schedule_state_and_sensor_cursor_survive_a_daemon_restart(
    dagster_pg_home, tmp_path
):
    (tmp_path / "probe_location.py").write_text(LOCATION)
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_file:\n      relative_path: probe_location.py\n"
        "      location_name: probe\n      working_directory: .\n"
    )
    # A run and its events, written through the instance.
    sys.path.insert(0, str(tmp_path))
    try:
        import probe_location
    finally:
        sys.path.remove(str(tmp_path))
    instance = open_instance(dagster_pg_home)
    result = probe_location.restart_probe.execute_in_process(instance=instance)
    run_id = result.run_id
    events_before = len(instance.all_logs(run_id))
    instance.dispose()

    first = _daemon(dagster_pg_home, tmp_path)
    try:
        seen = _wait_for_cursor(dagster_pg_home, 0, tmp_path)
        # The schedule is started by hand (as in the UI) while this daemon runs.
        instance = open_instance(dagster_pg_home)
        try:
            workspace_schedule = _remote_schedule(instance, tmp_path)
            instance.start_schedule(workspace_schedule)
        finally:
            instance.dispose()
    finally:
        _stop(first)
    stopped_at = _cursor(dagster_pg_home)
    assert stopped_at >= seen

    second = _daemon(dagster_pg_home, tmp_path)
    try:
        # Counting on from where it stopped: the cursor came back from PostgreSQL.
        after = _wait_for_cursor(dagster_pg_home, stopped_at, tmp_path)
        assert after > stopped_at
    finally:
        _stop(second)

    instance = open_instance(dagster_pg_home)
    try:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert len(instance.all_logs(run_id)) == events_before
    finally:
        instance.dispose()
    schedules = _states(dagster_pg_home, InstigatorType.SCHEDULE)
    assert schedules["nightly"].status.value == "RUNNING"


def _remote_schedule(instance, folder):
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget

    with WorkspaceProcessContext(
        instance, WorkspaceFileTarget([str(folder / "workspace.yaml")])
    ) as context:
        location = context.create_request_context().get_code_location("probe")
        repo = next(iter(location.get_repositories().values()))
        return repo.get_schedule("nightly")
