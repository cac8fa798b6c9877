"""The Secrets the releases read, generated once on the cluster side of an apply.

A generated Secret is created with random values when it is missing and never rewritten (a new
password would lock the services out of their data). Its copies in other namespaces, and the
SeaweedFS identity file built from the per-purpose S3 keys, are derived from it on every apply.
A copied Secret holds what the applying process itself has (its settings, its SSH files: what a
person set up on the laptop), rewritten on every apply.
The values exist only in this process's memory between reading and writing them: they are
never returned, logged, diffed (a dry-run diff of a Secret would print its data) or recorded.

A Secret only an admin makes (`AdminSecret`) is never written here: before a plan or an apply
its keys are checked, by name, and what is missing is refused with the command that makes it.
"""

import base64
import json
import secrets
import string
from collections.abc import Callable, Iterable

from platform_assets.releases.spec import (
    FIELD_MANAGER,
    AdminSecret,
    GeneratedSecret,
    Release,
    secret_manifests,
)

S3_CONFIG_SECRET = "seaweedfs-s3-config"  # noqa: S105 (a Secret's name, not a value)
_ACCESS_KEY_CHARS = string.ascii_uppercase + string.digits


def _random_value(key: str) -> str:
    if key == "seal_key":
        # OpenBao's static seal: a 32-byte AES-256 key, base64.
        return base64.b64encode(secrets.token_bytes(32)).decode()
    if key == "cookie_secret":
        # oauth2-proxy: exactly 32 bytes for AES-256 (24 random bytes in URL-safe base64).
        return secrets.token_urlsafe(24)
    if key == "access_key":
        # S3 access keys are printable identifiers (20 upper-case alphanumerics by convention).
        return "".join(secrets.choice(_ACCESS_KEY_CHARS) for _ in range(20))
    return secrets.token_urlsafe(30)


def generate(secret: GeneratedSecret, random_value: Callable[[str], str] = _random_value) -> dict:
    """Fresh values for a generated Secret: {key: value}."""
    return {key: secret.username if key == "username" else random_value(key) for key in secret.keys}


def _manifest(release: Release, secret: GeneratedSecret, namespace: str, data: dict) -> dict:
    shown = next(
        m
        for m in secret_manifests(release)
        if m["metadata"]["name"] == secret.name and m["metadata"]["namespace"] == namespace
    )
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())}
    return {**shown, "data": encoded}


def _decoded(live: dict) -> dict:
    return {k: base64.b64decode(v).decode() for k, v in (live.get("data") or {}).items()}


def _derived(kube, secret: GeneratedSecret) -> dict:
    namespace, _, name = secret.derived_from.partition("/")
    source = kube.get("v1", "Secret", name, namespace)
    if source is None:
        raise RuntimeError(
            f"Secret {secret.derived_from}, which {secret.namespace}/{secret.name} is derived "
            "from, does not exist; apply the release that generates it first"
        )
    values = _decoded(source)
    missing = sorted(src for _, src in secret.key_map if src not in values)
    if missing:
        raise RuntimeError(f"Secret {secret.derived_from} lacks the keys {missing}")
    return {key: values[src] for key, src in secret.key_map}


def _copied(secret: GeneratedSecret) -> dict:
    data = secret.copied_from()
    missing = sorted(set(secret.keys) - set(data))
    if missing:
        raise RuntimeError(
            f"Secret {secret.namespace}/{secret.name} needs {', '.join(missing)} from "
            f"{secret.copied_what}; set them where this apply runs and apply again"
        )
    return data


def ensure_secrets(kube, release: Release, s3_config: Callable[[dict], str]) -> list[str]:
    """Creates what is missing, refreshes the derived copies; returns one line per Secret
    (`namespace/name: created|kept|derived`), never a value.

    `s3_config(credentials)` builds SeaweedFS's identity file from {purpose: (access, secret)}.
    """
    report = []
    values: dict[str, dict] = {}
    for secret in release.secrets:
        if secret.name == S3_CONFIG_SECRET:
            continue
        if secret.copied_from is not None:
            data = _copied(secret)
            kube.apply(
                _manifest(release, secret, secret.namespace, data), field_manager=FIELD_MANAGER
            )
            report.append(f"{secret.namespace}/{secret.name}: copied from {secret.copied_what}")
            continue
        if secret.derived_from:
            data = _derived(kube, secret)
            kube.apply(
                _manifest(release, secret, secret.namespace, data), field_manager=FIELD_MANAGER
            )
            report.append(f"{secret.namespace}/{secret.name}: derived from {secret.derived_from}")
            continue
        live = kube.get("v1", "Secret", secret.name, secret.namespace)
        if live is None:
            data = generate(secret)
            kube.apply(
                _manifest(release, secret, secret.namespace, data), field_manager=FIELD_MANAGER
            )
            report.append(f"{secret.namespace}/{secret.name}: created")
        else:
            data = _decoded(live)
            missing = sorted(set(secret.keys) - set(data))
            if missing:
                # Never fill in a half-made Secret by guessing: someone edited it by hand.
                raise RuntimeError(
                    f"Secret {secret.namespace}/{secret.name} lacks the keys {missing}; "
                    "restore it (or delete it to have new values generated, which services "
                    "already using the old ones will then refuse)"
                )
            report.append(f"{secret.namespace}/{secret.name}: kept")
        values[secret.name] = data
        for namespace in secret.copies:
            kube.apply(_manifest(release, secret, namespace, data), field_manager=FIELD_MANAGER)
            report.append(f"{namespace}/{secret.name}: derived")
    derived = next((s for s in release.secrets if s.name == S3_CONFIG_SECRET), None)
    if derived is not None:
        credentials = {
            name.removeprefix("s3-"): (data["access_key"], data["secret_key"])
            for name, data in values.items()
            if name.startswith("s3-")
        }
        data = {"s3.json": s3_config(credentials)}
        kube.apply(
            _manifest(release, derived, derived.namespace, data), field_manager=FIELD_MANAGER
        )
        report.append(f"{derived.namespace}/{derived.name}: derived")
    return report


def namespaces(release: Release) -> list[dict]:
    """Namespaces the release's Secrets go into (the HelmChart creates its own target
    namespace too, but the Secrets must exist before its pods start)."""
    names = sorted({ns for s in release.secrets for ns in s.namespaces})
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}} for name in names]


def key_names(kube, name: str, namespace: str) -> set[str] | None:
    """The names of a Secret's keys, or None when it does not exist. The API sends the values
    along (no request returns the keys alone): they are dropped here, unread."""
    live = kube.get("v1", "Secret", name, namespace)
    return None if live is None else set(live.get("data") or {})


def _create_command(secret: AdminSecret) -> str:
    literals = " ".join(f"--from-literal={k}='<{what}>'" for k, what in secret.keys)
    return f"kubectl -n {secret.namespace} create secret generic {secret.name} {literals}"


def _add_command(secret: AdminSecret, missing: list[str]) -> str:
    what = dict(secret.keys)
    patch = json.dumps({"stringData": {k: f"<{what[k]}>" for k in missing}})
    return f"kubectl -n {secret.namespace} patch secret {secret.name} --type=merge -p '{patch}'"


def admin_secret_problems(kube, releases: Iterable[Release]) -> list[str]:
    """What the releases' admin-made Secrets lack, one message each naming the release, the
    Secret, its namespace, the missing keys and the kubectl command (placeholders only) that
    fixes it; [] when every one is complete."""
    problems = []
    for release in releases:
        for secret in release.admin_secrets:
            where = f"{release.name}: Secret {secret.namespace}/{secret.name}"
            held = key_names(kube, secret.name, secret.namespace)
            needed = [k for k, _ in secret.keys]
            if held is None:
                namespace = kube.get("v1", "Namespace", secret.namespace)
                first = "" if namespace else f"kubectl create namespace {secret.namespace} && "
                problems.append(
                    f"{where} does not exist; {secret.needed_by} needs it with the keys "
                    f"{', '.join(needed)} ({secret.guide}). An admin creates it:\n"
                    f"  {first}{_create_command(secret)}"
                )
                continue
            missing = [k for k in needed if k not in held]
            if missing:
                problems.append(
                    f"{where} lacks the keys {', '.join(missing)}, which {secret.needed_by} "
                    f"needs ({secret.guide}). An admin adds them:\n"
                    f"  {_add_command(secret, missing)}"
                )
    return problems
