"""Trino 476 server + Hive plugin, fetched once from Maven Central into a cache outside the repo.

    uv run python -m tests.harness.trino_dist      # prints the server directory

The cache is `${PICLUSTER_CACHE:-~/.cache/piclusterops}/trino-476/`. A marker file written after
a complete unpack (holding the artifacts' SHA-256) says the directory is usable; without it the
directory is rebuilt. Downloads go through Maven (`mvn dependency:copy`), which reuses
`~/.m2/repository` when the artifacts are already there. Each artifact is checked against the
SHA-256 pinned below before it is unpacked (taken from files whose SHA-1 matched the `.sha1`
Maven Central publishes).
"""

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

TRINO_VERSION = "476"


@dataclass(frozen=True)
class Artifact:
    coordinates: str  # groupId:artifactId:version:type for `mvn dependency:copy`
    filename: str
    sha256: str


SERVER_CORE = Artifact(
    f"io.trino:trino-server-core:{TRINO_VERSION}:tar.gz",
    f"trino-server-core-{TRINO_VERSION}.tar.gz",
    "0f388f9967c177ae70a47c099082fc95387f0c3cb96d8000d1d41fc3a5223158",
)
HIVE_PLUGIN = Artifact(
    f"io.trino:trino-hive:{TRINO_VERSION}:zip",
    f"trino-hive-{TRINO_VERSION}.zip",
    "611bacdb07d9f3cf7b9d47f97ecc76fa2e7ff8bfe8a9728c3d06adc1bfb8662e",
)
MARKER = ".piclusterops-complete"


class TrinoDistError(RuntimeError):
    """The Trino distribution could not be fetched or verified; the message says what to do."""


def cache_root() -> Path:
    configured = os.environ.get("PICLUSTER_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "piclusterops"


def _marker_text() -> str:
    return "".join(f"{a.filename} sha256={a.sha256}\n" for a in (SERVER_CORE, HIVE_PLUGIN))


def server_dir() -> Path:
    return cache_root() / f"trino-{TRINO_VERSION}"


def is_complete(directory: Path) -> bool:
    marker = directory / MARKER
    return marker.is_file() and marker.read_text() == _marker_text()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch(artifact: Artifact, into: Path) -> Path:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise TrinoDistError(
            "Maven (`mvn`) is needed to fetch Trino from Maven Central: install the Debian "
            "package `maven`"
        )
    result = subprocess.run(
        [
            mvn,
            "-q",
            "-B",
            "dependency:copy",
            f"-Dartifact={artifact.coordinates}",
            f"-DoutputDirectory={into}",
            "-Dmdep.overWriteReleases=true",
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=into,
    )
    path = into / artifact.filename
    if result.returncode != 0 or not path.exists():
        raise TrinoDistError(
            f"mvn dependency:copy {artifact.coordinates} failed (exit {result.returncode}):\n"
            f"{(result.stdout + result.stderr)[-3000:]}"
        )
    actual = _sha256(path)
    if actual != artifact.sha256:
        raise TrinoDistError(
            f"{artifact.filename} has SHA-256 {actual}, expected {artifact.sha256}: the download "
            "is corrupt or not the pinned release; delete it from ~/.m2/repository and retry"
        )
    return path


def _unpack(server_tar: Path, hive_zip: Path, staging: Path) -> None:
    with tarfile.open(server_tar) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(staging, filter="data")
        else:  # Python < 3.11.4 (Debian 12 ships 3.11.2): refuse unsafe paths ourselves
            # (it hard-links plugin jars to lib/; those links stay inside the archive too)
            for member in archive.getmembers():
                paths = [member.name] + ([member.linkname] if member.islnk() else [])
                if member.issym() or any(p.startswith("/") or ".." in Path(p).parts for p in paths):
                    raise TrinoDistError(f"{server_tar.name}: unsafe member {member.name!r}")
            archive.extractall(staging)  # noqa: S202 - every member checked above
    root = staging / f"trino-server-core-{TRINO_VERSION}"
    plugin_dir = root / "plugin" / "hive"
    plugin_dir.mkdir(parents=True)
    with zipfile.ZipFile(hive_zip) as archive:
        prefix = f"trino-hive-{TRINO_VERSION}/"
        for member in archive.infolist():
            name = member.filename
            if member.is_dir() or not name.startswith(prefix) or ".." in Path(name).parts:
                continue
            target = plugin_dir / name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, target.open("wb") as dst:
                shutil.copyfileobj(src, dst)
    (root / MARKER).write_text(_marker_text())


@contextlib.contextmanager
def _lock(root: Path):
    # Several test sessions (engineers, CI steps) may ask at once; one unpacks, the rest wait.
    root.mkdir(parents=True, exist_ok=True)
    with (root / f"trino-{TRINO_VERSION}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_trino(log=None) -> Path:
    """Return the Trino 476 server dir (with `plugin/hive`), fetching and unpacking if absent."""
    target = server_dir()
    if is_complete(target):
        return target
    root = cache_root()
    with _lock(root):
        if is_complete(target):
            return target
        with tempfile.TemporaryDirectory(prefix="trino-dl-", dir=root) as tmp:
            work = Path(tmp)
            if log:
                log(f"fetching Trino {TRINO_VERSION} from Maven Central into {root}")
            server_tar = _fetch(SERVER_CORE, work)
            hive_zip = _fetch(HIVE_PLUGIN, work)
            staging = work / "unpacked"
            _unpack(server_tar, hive_zip, staging)
            if target.exists():
                shutil.rmtree(target)  # an incomplete earlier attempt
            (staging / f"trino-server-core-{TRINO_VERSION}").rename(target)
    return target


def main() -> int:
    try:
        path = ensure_trino(log=lambda msg: print(msg, file=sys.stderr))
    except TrinoDistError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
