"""The cluster state: `k3s etcd-snapshot save` on the server node, sealed into the object store
with the K3s token in force, and an integrity check that blocks the mirror and retention.

    etcd_snapshot ──(etcd_snapshot_intact, blocking)──▶ object_store_mirror, backup_retention

The snapshot holds every Kubernetes Secret, so unlike the dumps it is sealed on the cluster's own
object store too. The token is what a restore needs besides the file (K3s encrypts its bootstrap
data in etcd with it; `--cluster-reset-restore-path` on new hosts takes `--token`): it is sealed
beside the snapshot, and the manifest holds only a keyed fingerprint of it.

The file comes back over the run's SSH connection as base64 (the SSH layer returns text) and is
checked end to end: the node's `sha256sum` against the bytes received, then etcd's own trailer and
structure (etcd_file.py). The on-demand snapshot is deleted from the node afterwards: K3s keeps no
retention for on-demand snapshots, and the SD card is not where they should pile up.
"""

import base64
import contextlib
import hashlib
import json
import shlex
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from platform_assets.backups.assets import (
    backup_days,
    freshness_check,
    integrity_then_freshness,
    night_to_check,
)
from platform_assets.backups.etcd_file import SnapshotDamaged, SnapshotStatus, read_snapshot
from platform_assets.backups.layout import (
    etcd_manifest_key,
    etcd_snapshot_key,
    etcd_token_key,
    etcd_verified_key,
)
from platform_assets.backups.resources import BackupKeyResource
from platform_assets.backups.retention import etcd_days
from platform_assets.backups.sealing import BackupKey, SealError, seal, unseal
from platform_assets.backups.streams import open_stream, put_stream
from platform_assets.core.engine import may_contact, ssh_targets
from platform_assets.inventory import Inventory
from platform_assets.resources import InventoryFile
from resources.object_store import ObjectNotFound, ObjectStore
from resources.ssh import NodeError, NodeSessions, SshResource

SNAPSHOT_NAME = "piclusterops"
SAVE_TIMEOUT_S = 600.0  # a big etcd on an SD card takes minutes to snapshot
_FIND_SNAPSHOT = 'ls -1t -- "$1"/"$2"-* 2>/dev/null | head -n 1'


class SnapshotFailed(RuntimeError):
    """Taking, fetching or checking the snapshot failed; the message names the node or file."""


@dataclass(frozen=True)
class TakenSnapshot:
    node: str
    path_on_node: str
    k3s_version: str
    status: SnapshotStatus


def server_node(inv: Inventory, allow_remote: bool = True) -> str:
    """The server node's name; refuses one this profile may not contact (the local profile
    reaches loopback nodes only, the fake-Pi cluster)."""
    servers = [n for n in inv.nodes if n.role == "server"]
    if not servers:
        raise SnapshotFailed("the inventory has no server node: nothing runs etcd")
    if not may_contact(servers[0], allow_remote):
        raise SnapshotFailed(
            f"{servers[0].name} ({servers[0].address}) is not contacted on the local profile "
            "(loopback nodes only): the etcd snapshot runs on the cluster profile"
        )
    return servers[0].name


def snapshot_dir(inv: Inventory) -> str:
    return f"{inv.k3s.data_dir}/server/db/snapshots"


def token_path(inv: Inventory) -> str:
    return f"{inv.k3s.data_dir}/server/token"


def fingerprint(key: BackupKey, token: str) -> str:
    """A keyed hash of the token's passphrase: says whether two tokens are the same (the full
    `K10<ca hash>::server:<passphrase>` and the bare passphrase alike), reveals nothing."""
    passphrase = token.strip().split("::server:", 1)[-1]
    return key.name_for("k3s token\0" + passphrase)[:16]


def take_snapshot(
    sessions: NodeSessions, inv: Inventory, name: str, into: Path
) -> tuple[TakenSnapshot, str]:
    """Saves a snapshot on the server node, copies it to `into` (checked against the node's
    sha256), deletes it on the node; returns it and the server token in force."""
    node = server_node(inv)
    directory = snapshot_dir(inv)
    version = sessions.run(node, ["k3s", "--version"]).stdout.splitlines()
    sessions.run(
        node, ["k3s", "etcd-snapshot", "save", "--name", name], sudo=True, timeout_s=SAVE_TIMEOUT_S
    )
    found = sessions.run(
        node, ["sh", "-c", _FIND_SNAPSHOT, "picluster-snapshot", directory, name], sudo=True
    ).stdout.strip()
    if not found:
        raise SnapshotFailed(
            f"{node}: `k3s etcd-snapshot save --name {name}` reported success but no "
            f"{directory}/{name}-* file exists"
        )
    try:
        said = sessions.run(node, ["sha256sum", "--", found], sudo=True).stdout.split()
        argv = ["base64", "-w", "0", "--", found]
        encoded = sessions.run(node, argv, sudo=True, quiet=True, timeout_s=SAVE_TIMEOUT_S).stdout
        with into.open("wb") as f:
            f.write(base64.b64decode(encoded, validate=True))
        del encoded
        token = sessions.run(node, ["cat", "--", token_path(inv)], sudo=True, quiet=True).stdout
    finally:
        sessions.run(node, ["rm", "-f", "--", found], sudo=True, check=False)
    received = _sha256(into)
    if not said or said[0] != received:
        raise SnapshotFailed(
            f"{node}:{found}: sha256 on the node is {said[0] if said else '(none)'}, the copy "
            f"received has {received}: the transfer damaged it"
        )
    if not token.strip():
        raise SnapshotFailed(f"{node}: {token_path(inv)} is empty: no K3s token to save")
    status = read_snapshot(into, f"{node}:{found}")
    return TakenSnapshot(node, found, version[0] if version else "unknown", status), token


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _file_pieces(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from iter(lambda: f.read(1 << 20), b"")


@contextlib.contextmanager
def scratch_file(suffix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="piclusterops-etcd-") as tmp:
        yield Path(tmp) / suffix


def status_table(status: SnapshotStatus) -> str:
    return (
        "| revision | live keys | storage version | size | sha256 |\n"
        "| ---: | ---: | --- | ---: | --- |\n"
        f"| {status.revision} | {status.live_keys} | {status.storage_version or 'unknown'} "
        f"| {status.size} | `{status.sha256[:16]}…` |"
    )


@dg.asset(group_name="backups", kinds={"k3s", "s3"}, partitions_def=backup_days)
def etcd_snapshot(
    context: dg.AssetExecutionContext,
    inventory_file: InventoryFile,
    ssh: SshResource,
    object_store: ObjectStore,
    backup_key: BackupKeyResource,
) -> dg.MaterializeResult:
    """The cluster state: `k3s etcd-snapshot save` on the server node over SSH, copied (checked
    against the node's sha256) and sealed into `backups/etcd/<day>/snapshot.sealed`, with the
    K3s token in force sealed beside it (a restore on new hosts needs it) and a manifest
    (sha256, size, revision, live keys, K3s version). The integrity check then proves it."""
    key = backup_key.backup_key()
    inv = inventory_file.load()
    day = context.partition_key
    try:
        node = server_node(inv, inventory_file.allow_remote_nodes)
    except SnapshotFailed as exc:
        raise dg.Failure(str(exc)) from None
    object_store.delete(etcd_verified_key(day))  # a re-run is unverified until checked again
    name = f"{SNAPSHOT_NAME}-{day}"
    with (
        ssh.open(ssh_targets(inv, [node]), log=context.log) as sessions,
        scratch_file("snapshot.db") as local,
    ):
        try:
            taken, token = take_snapshot(sessions, inv, name, local)
        except (NodeError, SnapshotFailed, SnapshotDamaged) as exc:
            raise dg.Failure(f"etcd snapshot of {day} failed: {exc}") from None
        put_stream(object_store, etcd_snapshot_key(day), seal(_file_pieces(local), key))
    put_stream(object_store, etcd_token_key(day), seal([token.strip().encode()], key))
    status = taken.status
    manifest = {
        "day": day,
        "taken_at": datetime.now(UTC).isoformat(),
        "run_id": context.run.run_id,
        "node": taken.node,
        "file_on_node": taken.path_on_node,
        "k3s_version": taken.k3s_version,
        "object": etcd_snapshot_key(day),
        "token_object": etcd_token_key(day),
        "token_fingerprint": fingerprint(key, token),
        "sha256": status.sha256,
        "size": status.size,
        "revision": status.revision,
        "live_keys": status.live_keys,
        "storage_version": status.storage_version,
    }
    object_store.put(etcd_manifest_key(day), json.dumps(manifest, indent=1).encode())
    context.log.info(
        f"etcd snapshot of {taken.node}: revision {status.revision}, {status.live_keys} keys, "
        f"{status.size} bytes -> {etcd_snapshot_key(day)}"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": status.live_keys,
            "revision": status.revision,
            "bytes": status.size,
            "node": taken.node,
            "k3s_version": taken.k3s_version,
            "manifest": etcd_manifest_key(day),
            "summary": dg.MetadataValue.md(status_table(status)),
        }
    )


def check_snapshot(store: ObjectStore, key: BackupKey, day: str) -> tuple[list[str], dict]:
    """Problems with the night's sealed snapshot and token (each naming the object), and the
    manifest. The snapshot is unsealed into a scratch file, never held whole in memory."""
    try:
        manifest = json.loads(store.get(etcd_manifest_key(day)))
    except ObjectNotFound:
        return [f"{etcd_manifest_key(day)} is missing: no etcd snapshot for {day}"], {}
    name = f"{store.describe()}: {manifest['object']}"
    problems: list[str] = []
    with scratch_file("snapshot.db") as local:
        try:
            with open_stream(store, manifest["object"]) as pieces, local.open("wb") as f:
                for piece in unseal(pieces, key, name):
                    f.write(piece)
            size, sha = local.stat().st_size, _sha256(local)
            if (size, sha) != (manifest["size"], manifest["sha256"]):
                problems.append(
                    f"{name}: {size} bytes with sha256 {sha}, the manifest says "
                    f"{manifest['size']} bytes with {manifest['sha256']}"
                )
            status = read_snapshot(local, name)
            for what in ("revision", "live_keys"):
                if getattr(status, what) != manifest[what]:
                    problems.append(
                        f"{name}: {what} {getattr(status, what)}, the manifest says "
                        f"{manifest[what]}"
                    )
        except ObjectNotFound:
            problems.append(f"{name} is missing")
        except (SealError, SnapshotDamaged) as exc:
            problems.append(str(exc))
    try:
        token = load_token(store, key, manifest)
        if fingerprint(key, token) != manifest["token_fingerprint"]:
            problems.append(f"{manifest['token_object']}: not the token the manifest names")
    except (ObjectNotFound, SealError, SnapshotFailed) as exc:
        problems.append(str(exc))
    return problems, manifest


def load_token(store: ObjectStore, key: BackupKey, manifest: dict) -> str:
    name = f"{store.describe()}: {manifest['token_object']}"
    with open_stream(store, manifest["token_object"]) as pieces:
        token = b"".join(unseal(pieces, key, name)).decode()
    if not token.strip():
        raise SnapshotFailed(f"{name}: the sealed token is empty")
    return token.strip()


ETCD_INTACT = dg.AssetCheckSpec(
    "etcd_snapshot_intact",
    asset=etcd_snapshot,
    blocking=True,
    description="The night's snapshot unseals and matches its manifest (sha256, size), etcd's "
    "own sha256 trailer matches its database, the bbolt structure reads end to end (meta "
    "pages, every page reached once) with the manifest's revision and key count, and the "
    "sealed token unseals to the token the manifest names.",
)
ETCD_FRESH = dg.AssetCheckSpec(
    "etcd_snapshot_fresh",
    asset=etcd_snapshot,
    description="The newest etcd snapshot that passed its integrity check is at most 26 hours old.",
)


def integrity_check(
    context: dg.AssetCheckExecutionContext,
    object_store: ObjectStore,
    backup_key: BackupKeyResource,
) -> dg.AssetCheckResult:
    """The integrity check of the night's snapshot (ETCD_INTACT)."""
    day = night_to_check(context, sorted(etcd_days(object_store)[0]))
    if day is None:
        return dg.AssetCheckResult(passed=False, description="there is no etcd snapshot to check")
    problems, manifest = check_snapshot(object_store, backup_key.backup_key(), day)
    if not problems:
        marker = {"day": day, "verified_at": datetime.now(UTC).isoformat()}
        marker["run_id"] = context.run.run_id
        object_store.put(etcd_verified_key(day), json.dumps(marker).encode())
    return dg.AssetCheckResult(
        passed=not problems,
        description="\n".join(problems)
        if problems
        else f"the etcd snapshot of {day} (revision {manifest['revision']}, "
        f"{manifest['live_keys']} keys) is intact",
        metadata={"problems": len(problems), "day": day},
    )


def restore_command(path: str, token_file: str) -> str:
    """The K3s restore, as the runbook gives it (the token from a root-only file, never argv)."""
    return shlex.join(
        [
            "k3s",
            "server",
            "--cluster-reset",
            f"--cluster-reset-restore-path={path}",
            f"--token-file={token_file}",
        ]
    )


etcd_snapshot_checks = integrity_then_freshness(
    ETCD_INTACT,
    lambda c: integrity_check(c, c.resources.object_store, c.resources.backup_key),
    ETCD_FRESH,
    lambda c: freshness_check(
        c.resources.object_store, etcd_days(c.resources.object_store)[1], etcd_verified_key
    ),
    {"object_store", "backup_key"},
)

ETCD_ASSETS = [etcd_snapshot]
ETCD_CHECKS = [etcd_snapshot_checks]
