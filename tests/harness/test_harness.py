"""The harness's own promises: a server that dies early is reported by name with its log, a
stopped service leaves no process behind (even when the test session itself is killed), and
the Trino download is reused once complete."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.harness import trino_dist
from tests.harness.procs import ServiceNotReady, ServiceProcess


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, within: float = 30.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def _wait_file(path: Path, within: float = 30.0) -> str:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.1)
    raise AssertionError(f"{path} never written")


def test_a_server_that_exits_early_is_named_with_its_log(tmp_path):
    proc = ServiceProcess(
        "BrokenServer",
        ["sh", "-c", "echo 'FATAL: port already in use' >&2; exit 3"],
        tmp_path / "broken.log",
    ).start()
    with pytest.raises(ServiceNotReady) as failure:
        proc.wait_ready(lambda: False, timeout=60)
    message = str(failure.value)
    assert "BrokenServer exited with code 3" in message
    assert "FATAL: port already in use" in message
    assert str(tmp_path / "broken.log") in message


def test_a_server_that_never_gets_ready_is_stopped_and_reported(tmp_path):
    proc = ServiceProcess("SlowServer", ["sleep", "300"], tmp_path / "slow.log").start()
    with pytest.raises(ServiceNotReady, match="SlowServer was not ready after 1s"):
        proc.wait_ready(lambda: False, timeout=1)
    assert _wait_gone(proc.proc.pid)


def test_stop_ends_the_whole_process_group(tmp_path):
    child_pid_file = tmp_path / "child.pid"
    proc = ServiceProcess(
        "Launcher",
        ["sh", "-c", f"sleep 300 & echo $! > {child_pid_file}; wait"],
        tmp_path / "launcher.log",
    ).start()
    child = int(_wait_file(child_pid_file))
    assert _alive(child)
    proc.stop()
    assert proc.proc.poll() is not None
    assert _wait_gone(child)


def test_servers_die_with_a_killed_test_session(tmp_path):
    """If pytest itself is SIGKILLed, its servers must not live on."""
    pid_file = tmp_path / "server.pid"
    session = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import time
                from pathlib import Path
                from tests.harness.procs import ServiceProcess
                p = ServiceProcess("S", ["sleep", "300"], Path({str(tmp_path / "s.log")!r}))
                p.start()
                Path({str(pid_file)!r}).write_text(str(p.proc.pid))
                time.sleep(300)
            """),
        ],
        cwd=Path(__file__).resolve().parents[2],
    )
    server = int(_wait_file(pid_file))
    assert _alive(server)
    session.send_signal(signal.SIGKILL)
    session.wait()
    assert _wait_gone(server)


def test_trino_distribution_is_reused_when_complete(tmp_path, monkeypatch):
    monkeypatch.setenv("PICLUSTER_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")  # no mvn: a download attempt would fail
    server = tmp_path / f"trino-{trino_dist.TRINO_VERSION}"
    (server / "bin").mkdir(parents=True)
    (server / trino_dist.MARKER).write_text(trino_dist._marker_text())
    assert trino_dist.ensure_trino() == server


def test_trino_distribution_without_marker_is_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("PICLUSTER_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", "/nonexistent")
    server = tmp_path / f"trino-{trino_dist.TRINO_VERSION}"
    (server / "bin").mkdir(parents=True)  # an interrupted unpack: files but no marker
    assert not trino_dist.is_complete(server)
    with pytest.raises(trino_dist.TrinoDistError, match="install the Debian package `maven`"):
        trino_dist.ensure_trino()


def test_service_reprs_shown_in_failures_carry_no_secrets():
    from tests.harness.postgres import PostgresService
    from tests.harness.seaweedfs import S3Service
    from tests.harness.trino import TrinoService

    pg = PostgresService("127.0.0.1", 5432, "picluster_test", "pg-secret-value", "db")
    s3 = S3Service("127.0.0.1:8333", "access", "s3-secret-value")
    trino = TrinoService("127.0.0.1", 8080, "picluster", "hive", s3, "warehouse")
    shown = repr(pg) + repr(s3) + repr(trino)
    assert "pg-secret-value" not in shown
    assert "s3-secret-value" not in shown


def test_a_server_stops_on_sigterm_even_when_its_starter_ignores_it(tmp_path):
    """A CI job started in the background ignores SIGINT, and Dagster's in-process runs then
    leave SIGTERM ignored too (dagster._utils.interrupts gives SIGTERM SIGINT's handler). An
    ignored signal survives exec: a server must not inherit it, or it outlives stop() and the
    session's death."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        server = ServiceProcess("S", ["sleep", "300"], tmp_path / "s.log", stop_grace=5.0).start()
    finally:
        signal.signal(signal.SIGTERM, previous)
    server.stop()
    assert server.proc.returncode == -signal.SIGTERM  # not the SIGKILL after the grace
