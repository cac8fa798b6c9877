"""Child processes for the test services: started in their own process group, logged to a file,
waited on with a deadline, and stopped group-wide so nothing outlives the test session."""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"


class ServiceNotReady(RuntimeError):
    """A service did not become ready in time; the message names it and quotes its log."""


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port nobody listens on right now on the loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_port_pair(offset: int = 10000, host: str = LOOPBACK) -> int:
    """A port P such that P and P+offset are both free.

    SeaweedFS derives gRPC ports as HTTP port + 10000 in places that ignore the explicit flag
    (the mini mode's worker dials admin+10000), so both must be ours.
    """
    for _ in range(200):
        port = free_port(host)
        if port + offset < 65536 and port_is_free(port + offset, host):
            return port
    raise RuntimeError(f"no free loopback port pair (P, P+{offset}) found")


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


_PR_SET_PDEATHSIG = 1
# Loaded here, in the parent: the child may already run as another user who cannot read the
# interpreter's files when preexec_fn runs.
_LIBC = ctypes.CDLL(None, use_errno=True)


# Dispositions a server must not inherit. A CI job started in the background ignores SIGINT,
# and every in-process Dagster run then leaves SIGTERM ignored as well (dagster._utils.interrupts
# gives SIGTERM whatever SIGINT has); an ignored signal survives exec, so the server would
# outlive stop() and the death of the session.
_SIGNALS_RESET = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def default_signals() -> None:
    """Runs in the child before exec: the stop signals back to their defaults."""
    for number in _SIGNALS_RESET:
        signal.signal(number, signal.SIG_DFL)


def _die_with_parent() -> None:
    """Runs in the child before exec: ask the kernel to SIGTERM it when the test session's
    process dies, so even a killed pytest (timeout, Ctrl-C twice, OOM) leaves no server behind.
    Set after the uid change (Popen's user= happens first), which would otherwise clear it."""
    default_signals()
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class ServiceProcess:
    """One long-running server process whose stdout and stderr go to `log_path`."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stop_signal: int = signal.SIGTERM,
        stop_grace: float = 20.0,
        user: str | None = None,
        die_with_parent: bool = True,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.stop_signal = stop_signal
        self.stop_grace = stop_grace
        self.user = user
        # False only for servers meant to outlive their starter (`make fake-cluster`).
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.ready_seconds: float | None = None

    def start(self) -> "ServiceProcess":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.started_at = time.monotonic()
            # A new session makes the server its own process group: stop() can signal the
            # whole tree (e.g. launcher + JVM) and leave no orphans.
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                user=self.user,
                group=self.user,
                extra_groups=[] if self.user else None,
                preexec_fn=_die_with_parent if self.die_with_parent else default_signals,
            )
        finally:
            log.close()
        return self

    def wait_ready(self, probe: Callable[[], bool], timeout: float, what: str = "ready") -> float:
        """Poll `probe` until it returns True; raise ServiceNotReady with the log tail if the
        process exits or the deadline passes. Returns the seconds it took from start()."""
        assert self.proc is not None, "start() first"
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.stop()  # the leader is gone; whatever it started must go too
                raise ServiceNotReady(
                    f"{self.name} exited with code {code} before it was {what}.\n"
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            try:
                if probe():
                    self.ready_seconds = time.monotonic() - self.started_at
                    return self.ready_seconds
            except Exception as exc:  # the probe fails until the service is up
                last_error = exc
            time.sleep(0.25)
        self.stop()
        raise ServiceNotReady(
            f"{self.name} was not {what} after {timeout:.0f}s"
            f" (last probe error: {last_error!r}).\n"
            f"log {self.log_path}:\n{tail(self.log_path)}"
        )

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self._reap_group()
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, self.stop_signal)
        try:
            proc.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        self._reap_group()

    def _reap_group(self) -> None:
        # Children that survived their leader (e.g. a JVM whose launcher exited) still carry
        # the group id; finish them too.
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
