"""`disaster_recovery`: the whole cluster back from one night of the mirror off the cluster.

    recover_nodes_and_k3s ─▶ recover_cluster_state ─▶ recover_object_store ─▶ recover_postgres

1. The nodes and K3s from the inventory: the bring-up's own steps (preflight, node prep,
   reboots, K3s server and agents, kubeconfig), applied, exactly as `apply_cluster` runs them.
2. The cluster state from the night's etcd snapshot: fetched from the mirror (the cluster's own
   object store is gone with it) and checked like the nightly integrity check, copied to the
   server, then `k3s server --cluster-reset --cluster-reset-restore-path=<file>` with the token
   saved beside the snapshot (from a root-only file, never on a command line), and K3s started
   again. The releases come back with it: their HelmCharts are in the snapshot and K3s's
   helm-controller reconciles them (`apply_releases` afterwards re-checks them; runbook).
3. The buckets, `backups` included, from the mirror, every object verified against the index.
4. Every database of the night's manifest from its dump, replacing what is there, checked
   against the manifest.

Before anything is contacted, the run refuses unless `confirm` names the night, and unless the
K3s token the inventory's variable holds is the one the snapshot was taken with: K3s encrypts
its bootstrap data in etcd with it, so a server installed with another token could not use the
restored state.
"""

import base64
import contextlib
import json
import time
from collections.abc import Iterator

import dagster as dg

from platform_assets.assets import (
    STEPS,
    BringUpConfig,
    StepRun,
)
from platform_assets.backups.etcd_snapshot import (
    SnapshotFailed,
    check_snapshot,
    fingerprint,
    load_token,
    restore_command,
    scratch_file,
    server_node,
)
from platform_assets.backups.layout import (
    MIRRORED_BUCKETS,
    etcd_day_prefix,
    is_day,
    manifest_key,
)
from platform_assets.backups.postgres import PlatformPostgres
from platform_assets.backups.resources import BackupKeyResource
from platform_assets.backups.sealing import BackupKey, unseal
from platform_assets.backups.streams import open_stream
from platform_assets.core.engine import ssh_targets
from platform_assets.recovery.object_store import restore_mirrored
from platform_assets.recovery.postgres import restore_one
from platform_assets.resources import InventoryFile, K3sToken
from resources.kubernetes import ClusterUnreachable, KubeconfigMissing, KubernetesResource
from resources.object_store import LocalObjectStore, ObjectNotFound, ObjectStore
from resources.ssh import NodeError, SshResource

CONFIRM_FIELD = "ops.recover_nodes_and_k3s.config.confirm"
RESTORE_DIR = "server/piclusterops-restore"  # under the K3s data dir, root only
API_TIMEOUT_S = 300.0


class DisasterRecoveryConfig(dg.Config):
    night: str
    """The mirror's night to recover (YYYY-MM-DD): its etcd snapshot, buckets and dumps."""
    confirm: str = ""
    """Must be the night: the go-ahead to re-install the nodes and replace the cluster state,
    the buckets' objects and every database with that night's."""
    reboot_timeout_s: float = 300.0


@contextlib.contextmanager
def _mirrored_snapshot(
    backup_mirror: ObjectStore, key: BackupKey, night: str
) -> Iterator[tuple[LocalObjectStore, dict]]:
    """The night's etcd snapshot fetched from the mirror into a scratch store (the cluster's own
    object store is gone) and checked like the nightly integrity check; yields the store and
    the snapshot's manifest, removed again on leaving."""
    with scratch_file("mirror") as tmp:
        scratch = LocalObjectStore(root=str(tmp))
        restore_mirrored(backup_mirror, key, night, scratch, [etcd_day_prefix(night)])
        problems, manifest = check_snapshot(scratch, key, night)
        if problems:
            raise dg.Failure(
                f"the etcd snapshot of {night} on the mirror is unusable:\n" + "\n".join(problems)
            )
        yield scratch, manifest


def _night(config: DisasterRecoveryConfig) -> str:
    if not is_day(config.night):
        raise dg.Failure(f"night {config.night!r} is not a night (YYYY-MM-DD)")
    if config.confirm != config.night:
        raise dg.Failure(
            "disaster_recovery refused: it re-installs every node and replaces the cluster "
            "state, the buckets and every database with those of the night; set "
            f"{CONFIRM_FIELD} to {config.night!r} in the run config to go ahead"
        )
    return config.night


@dg.op(
    description="Refuses without confirm or with the wrong K3s token, then applies the "
    "bring-up's steps (nodes and K3s from the inventory).",
    tags={"dagster/max_retries": "0"},
)
def recover_nodes_and_k3s(
    context: dg.OpExecutionContext,
    config: DisasterRecoveryConfig,
    inventory_file: InventoryFile,
    ssh: SshResource,
    k3s_token: K3sToken,
    kubernetes: KubernetesResource,
    backup_mirror: ObjectStore,
    backup_key: BackupKeyResource,
) -> str:
    night = _night(config)
    inv = inventory_file.load()
    key = backup_key.backup_key()
    with _mirrored_snapshot(backup_mirror, key, night) as (_, manifest):
        pass  # checked only: its token is compared before any node is contacted
    token = k3s_token.token
    if not token or fingerprint(key, token) != manifest["token_fingerprint"]:
        raise dg.Failure(
            f"the etcd snapshot of {night} was taken with another K3s token than "
            f"{inv.k3s.token_env} holds{' (unset)' if not token else ''}: K3s could not use the "
            "restored state. Set it to the saved token (unseal backups/etcd/"
            f"{night}/token.sealed from the mirror, see docs/backups.md) and run again"
        )
    targets = ssh_targets(inv, [n.name for n in inv.nodes])
    with ssh.open(targets, log=context.log, secrets=[token]) as sessions:
        run = StepRun(
            context,  # the steps use its log
            BringUpConfig(apply=True, reboot_timeout_s=config.reboot_timeout_s),
            inv,
            inventory_file.allow_remote_nodes,
            sessions,
            ssh,
            token,
            kubernetes,
        )
        for spec, step in STEPS:
            report = step(run)
            name = spec.key.to_user_string()
            if report.failure is not None:
                raise dg.Failure(f"bring-up stopped at {name}:\n{report.failure}")
            context.log.info(f"{name}: applied")
    return night


@dg.op(
    description="The night's etcd snapshot from the mirror onto the server, K3s "
    "--cluster-reset with the saved token, K3s started again, the API answering.",
    tags={"dagster/max_retries": "0"},
)
def recover_cluster_state(
    context: dg.OpExecutionContext,
    night: str,
    inventory_file: InventoryFile,
    ssh: SshResource,
    kubernetes: KubernetesResource,
    backup_mirror: ObjectStore,
    backup_key: BackupKeyResource,
) -> str:
    inv = inventory_file.load()
    key = backup_key.backup_key()
    try:
        node = server_node(inv, inventory_file.allow_remote_nodes)
    except SnapshotFailed as exc:
        raise dg.Failure(str(exc)) from None
    with _mirrored_snapshot(backup_mirror, key, night) as (scratch, manifest):
        token = load_token(scratch, key, manifest)
        with open_stream(scratch, manifest["object"]) as pieces:
            snapshot = b"".join(unseal(pieces, key, manifest["object"]))
    directory = f"{inv.k3s.data_dir}/{RESTORE_DIR}"
    snapshot_path, token_path = f"{directory}/{night}.db", f"{directory}/token"
    write = 'umask 077 && mkdir -p "$(dirname "$1")" && base64 -d > "$1"'
    with ssh.open(ssh_targets(inv, [node]), log=context.log, secrets=[token]) as sessions:
        try:
            for path, data in ((snapshot_path, snapshot), (token_path, token.encode())):
                sessions.run(
                    node,
                    ["sh", "-c", write, "picluster-restore", path],
                    sudo=True,
                    stdin=base64.b64encode(data),
                    quiet=True,
                )
            del snapshot
            sessions.run(node, ["systemctl", "stop", "k3s"], sudo=True)
            sessions.run(
                node,
                ["sh", "-c", restore_command(snapshot_path, token_path)],
                sudo=True,
                timeout_s=600,
            )
            sessions.run(node, ["systemctl", "start", "k3s"], sudo=True)
        except NodeError as exc:
            raise dg.Failure(f"restore of the cluster state of {night} failed: {exc}") from None
        finally:
            sessions.run(node, ["rm", "-rf", "--", directory], sudo=True, check=False)
    waited = _wait_for_api(kubernetes, node)
    context.log.info(
        f"cluster state of {night} restored on {node} (revision {manifest['revision']}, "
        f"{manifest['live_keys']} keys); API back after {waited:.0f}s"
    )
    return night


def _wait_for_api(kubernetes: KubernetesResource, node: str) -> float:
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < API_TIMEOUT_S:
        try:
            statuses = {s.name: s for s in kubernetes.node_statuses()}
            if node in statuses:
                return time.monotonic() - started
            last = f"{node} not registered"
        except (ClusterUnreachable, KubeconfigMissing) as exc:
            last = str(exc)
        time.sleep(2.0)
    raise dg.Failure(f"the API did not answer within {API_TIMEOUT_S:g}s after the restore: {last}")


@dg.op(
    description="The buckets, backups included, from the night's mirror.",
    tags={"dagster/max_retries": "0"},
)
def recover_object_store(
    context: dg.OpExecutionContext,
    night: str,
    object_store: ObjectStore,
    backup_mirror: ObjectStore,
    backup_key: BackupKeyResource,
) -> str:
    restored = restore_mirrored(
        backup_mirror, backup_key.backup_key(), night, object_store, MIRRORED_BUCKETS
    )
    context.log.info(f"{len(restored)} objects of {night} back in {object_store.describe()}")
    return night


@dg.op(
    description="Every database of the night's manifest from its dump, replacing.",
    tags={"dagster/max_retries": "0"},
)
def recover_postgres(
    context: dg.OpExecutionContext,
    night: str,
    object_store: ObjectStore,
    platform_postgres: PlatformPostgres,
) -> dg.Output[None]:
    try:
        manifest = json.loads(object_store.get(manifest_key(night)))
    except ObjectNotFound:
        raise dg.Failure(f"{manifest_key(night)} is missing after the buckets' restore") from None
    rows = 0
    for entry in manifest["databases"]:
        database = entry["database"]
        restored = restore_one(object_store, platform_postgres, night, database, database, True)
        rows += restored["rows"]
        context.log.info(f"{database}: {restored['tables']} tables, {restored['rows']} rows")
    return dg.Output(
        None, metadata={"databases": len(manifest["databases"]), "dagster/row_count": rows}
    )


@dg.job(
    name="disaster_recovery",
    description="The cluster back from one night of the mirror: nodes and K3s from the "
    "inventory, the cluster state from the etcd snapshot (--cluster-reset with the saved "
    "token), the buckets, every database. Needs `confirm` (the night). Runbook: docs/backups.md.",
    tags={"dagster/max_retries": "0"},
)
def disaster_recovery():
    recover_postgres(recover_object_store(recover_cluster_state(recover_nodes_and_k3s())))
