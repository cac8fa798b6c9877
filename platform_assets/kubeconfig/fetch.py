"""The cluster's admin kubeconfig: pointed at the server node and stored where only its owner can
read it."""

import os
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
    """Writes a file only its owner can read, atomically (never world-readable, even briefly)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    os.replace(tmp, path)
