"""Book-keeping for one pytest session's services: where their files and logs live, which
processes to stop, how long each took to become ready, and whether to keep the logs."""

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.harness.procs import ServiceProcess, tail

# Set to 1 to keep the session's service dir even when every test passed.
KEEP_ENV = "PICLUSTER_KEEP_SERVICE_LOGS"


class ServiceRegistry:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="picluster-services-"))
        self.log_dir = self.root / "logs"
        self.log_dir.mkdir()
        self.processes: dict[str, ServiceProcess] = {}
        self.ready_seconds: dict[str, float] = {}
        self.failed_tests: list[str] = []

    def workdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self, name: str, starter: Callable[[Path, Path], tuple[Any, ServiceProcess]]) -> Any:
        """Run `starter(workdir, log_dir)`, remember its process for stop_all()."""
        service, proc = starter(self.workdir(name), self.log_dir)
        self.processes[name] = proc
        if proc.ready_seconds is not None:
            self.ready_seconds[proc.name] = proc.ready_seconds
        return service

    def stop(self, name: str) -> None:
        proc = self.processes.pop(name, None)
        if proc is not None:
            proc.stop()

    def stop_all(self) -> None:
        # Reverse start order: Trino goes before the S3 server it writes to.
        for name in reversed(list(self.processes)):
            self.stop(name)

    def log_report(self, lines: int = 25) -> str:
        parts = [f"service files and logs kept in {self.root}"]
        for log in sorted(self.log_dir.glob("*.log")):
            parts.append(f"--- {log} (last {lines} lines) ---\n{tail(log, lines)}")
        return "\n".join(parts)

    @property
    def keep(self) -> bool:
        return bool(self.failed_tests) or os.environ.get(KEEP_ENV) == "1"

    def cleanup(self) -> None:
        self.stop_all()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)
