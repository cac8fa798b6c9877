"""The cluster's admin kubeconfig: pointed at the server node and stored where only its owner can
read it."""

import contextlib
import os
import tempfile
from pathlib import Path

import yaml


def rewrite_kubeconfig(text: str, server: str) -> str:
    """The server's k3s.yaml points at 127.0.0.1; the platform reaches it at the node's address."""
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # YAML's message quotes the offending line, which may be a client key or token.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"the fetched kubeconfig is not valid YAML{where}") from None
    if not isinstance(config, dict) or not config.get("clusters"):
        raise ValueError("the fetched kubeconfig has no clusters")
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    return yaml.safe_dump(config, sort_keys=False)


def write_private(path: str | Path, text: str) -> None:
    """Writes a file only its owner can read, atomically: a private temp file in the same folder,
    created exclusively (O_EXCL, so never through a link someone left in its place), then
    renamed over the target. Readers see the old file or the new one, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(text.encode())
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
