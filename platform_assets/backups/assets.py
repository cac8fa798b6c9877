"""The nightly backups as assets, one partition a night (group `backups`):

    postgres_dump ──(restore check, blocking)──▶ object_store_mirror ──(re-read check, blocking)
          └──────────────────────────────┬───────────────────┘
                                   backup_retention  (prunes only after both are verified)

The mirror waits for the dump's restore check so that the night's verified dumps leave the
cluster the same night (`backups` is one of the mirrored buckets). The checks record what they
proved in the stores themselves (`verified.json`), so retention, freshness and a disaster
recovery without the Dagster instance all read the same truth.
"""

import functools
import json
import subprocess
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta

import dagster as dg

from platform_assets.backups.layout import (
    MIRRORED_BUCKETS,
    dump_key,
    etcd_verified_key,
    manifest_key,
    mirror_verified_key,
    postgres_verified_key,
)
from platform_assets.backups.mirror import (
    DEFAULT_SAMPLE,
    DEFAULT_WORKERS,
    index_days,
    mirror_objects,
    record_verified,
    verify_mirror,
)
from platform_assets.backups.postgres import (
    BackupError,
    DumpResult,
    PlatformPostgres,
    dump_database,
    restore_check,
)
from platform_assets.backups.resources import BackupKeyResource
from platform_assets.backups.retention import (
    KEEP,
    PruneResult,
    RetentionPlan,
    etcd_days,
    mirror_verified_days,
    postgres_days,
    prune_etcd,
    prune_mirror,
    prune_postgres,
    verified_at,
)
from platform_assets.backups.streams import open_stream, put_stream
from resources.object_store import ObjectNotFound, ObjectStore

# A backup night is the date in the inventory's time zone when the schedule fires (02:00). The
# partitions are plain dates: end_offset=2 lets a zone up to 14 hours ahead of UTC (where 02:00
# local is still the previous day in UTC) name its night before UTC's calendar reaches it.
backup_days = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_offset=2)

# A night's backup runs at 02:00; 26 hours leaves two hours for a slow night before the owner
# is told that the newest backup that restored is more than a day old.
FRESHNESS_LIMIT = timedelta(hours=26)


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


def _and(words: list[str]) -> str:
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def pg_dump_version(pg: PlatformPostgres) -> str:
    out = subprocess.run(  # noqa: S603 (argv is ours)
        [pg.tool("pg_dump"), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    return out.stdout.strip() or "unknown"


def dump_table(results: list[DumpResult]) -> str:
    lines = [
        "| database | object | size | sha256 | tables | rows |",
        "| --- | --- | ---: | --- | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.database} | `{r.key}` | {_size(r.size)} | `{r.sha256[:16]}…` "
            f"| {len(r.tables)} | {r.rows} |"
        )
    return "\n".join(lines)


@dg.asset(group_name="backups", kinds={"postgres", "s3"}, partitions_def=backup_days)
def postgres_dump(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    platform_postgres: PlatformPostgres,
) -> dg.MaterializeResult:
    """`pg_dump -Fc` of every platform database (Dagster's, the Hive Metastore's, the ingestion
    ledger's) streamed to `backups/postgres/<day>/<database>.dump` in the object store, with a
    `manifest.json` (sha256, size, server version, rows per table counted in the dump's own
    snapshot). The restore check then proves each dump restores."""
    pg = platform_postgres
    day = context.partition_key
    if not pg.databases:
        raise dg.Failure(
            "no PostgreSQL databases to back up: the local profile keeps Dagster and the ledger "
            "in SQLite; postgres_dump runs on the cluster profile (PICLUSTER_BACKUP_DATABASES)"
        )
    # A re-run replaces the night's dumps, so the night is unverified until checked again.
    object_store.delete(postgres_verified_key(day))
    results: list[DumpResult] = []
    failures: list[str] = []
    for database in pg.databases:
        key = dump_key(day, database)
        try:
            result = dump_database(
                pg, database, key, functools.partial(put_stream, object_store, key)
            )
        except BackupError as exc:
            failures.append(str(exc))
            context.log.error(str(exc))
            continue
        context.log.info(
            f"dumped {database}: {_size(result.size)}, {len(result.tables)} tables, "
            f"{result.rows} rows -> {key}"
        )
        results.append(result)
    if failures:
        # No manifest: a night with a database missing is never taken for a complete backup.
        raise dg.Failure(
            f"{len(failures)} of {len(pg.databases)} databases could not be dumped; the "
            "night has no manifest and will not count as a backup:\n" + "\n".join(failures)
        )
    server_version = results[0].server_version if results else "unknown"
    manifest = {
        "day": day,
        "taken_at": datetime.now(UTC).isoformat(),
        "run_id": context.run.run_id,
        "server": f"{pg.host}:{pg.port}",
        "server_version": server_version,
        "pg_dump_version": pg_dump_version(pg),
        "databases": [
            {
                "database": r.database,
                "object": r.key,
                "size": r.size,
                "sha256": r.sha256,
                "server_version": r.server_version,
                "tables": r.tables,
            }
            for r in results
        ],
    }
    object_store.put(manifest_key(day), json.dumps(manifest, indent=1).encode())
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(r.rows for r in results),
            "databases": len(results),
            "bytes": sum(r.size for r in results),
            "server_version": server_version,
            "manifest": manifest_key(day),
            "location": object_store.table_location(f"backups/postgres/{day}/"),
            "summary": dg.MetadataValue.md(dump_table(results)),
        }
    )


def night_to_check(context: dg.AssetCheckExecutionContext, nights: list[str]) -> str | None:
    """The run's night when the check runs with its backup; run on its own (from the UI), the
    newest night there is. The checks are not partitioned themselves: Dagster 1.13 has
    partitioned checks only in preview."""
    op = context.op_execution_context
    if op.has_partition_key:
        return op.partition_key
    return max(nights) if nights else None


CheckEvaluation = Callable[[dg.AssetCheckExecutionContext], dg.AssetCheckResult]


def integrity_then_freshness(
    integrity: dg.AssetCheckSpec,
    check_integrity: CheckEvaluation,
    freshness: dg.AssetCheckSpec,
    check_freshness: CheckEvaluation,
    resources: set[str],
) -> dg.AssetChecksDefinition:
    """A backup's integrity check and its freshness check as one step, integrity first; each
    runs only when selected, and each result is named for its spec.

    One step for this order: freshness reads the marker the integrity check writes, and
    separate checks of one asset run in the order of their names (`*_fresh` before
    `*_intact`), so the first backup materialized from the UI would fail its freshness in the
    very run that verified it. The hourly freshness job selects the freshness checks alone."""

    @dg.multi_asset_check(
        name=f"{integrity.asset_key.to_python_identifier()}_checks",
        specs=[integrity, freshness],
        can_subset=True,
        required_resource_keys=resources,
    )
    def checks(context: dg.AssetCheckExecutionContext) -> Iterator[dg.AssetCheckResult]:
        for spec, evaluate in ((integrity, check_integrity), (freshness, check_freshness)):
            if spec.key in context.selected_asset_check_keys:
                yield evaluate(context)._replace(asset_key=spec.asset_key, check_name=spec.name)

    return checks


POSTGRES_RESTORES = dg.AssetCheckSpec(
    "postgres_dump_restores",
    asset=postgres_dump,
    blocking=True,
    description="Each of the night's dumps restores into a scratch database (pg_restore "
    "--exit-on-error --no-owner --no-privileges) and matches its manifest: sha256 and size of "
    "the object, and the row count of every table. The scratch databases are dropped.",
)
POSTGRES_FRESH = dg.AssetCheckSpec(
    "postgres_dump_fresh",
    asset=postgres_dump,
    description="The newest dump that passed its restore check is at most 26 hours old.",
)


def restores_check(
    context: dg.AssetCheckExecutionContext,
    object_store: ObjectStore,
    platform_postgres: PlatformPostgres,
) -> dg.AssetCheckResult:
    """The restore check of the night's dumps (POSTGRES_RESTORES)."""
    day = night_to_check(context, sorted(postgres_days(object_store)[0]))
    if day is None:
        return dg.AssetCheckResult(passed=False, description="there is no backup to check")
    try:
        manifest = json.loads(object_store.get(manifest_key(day)))
    except ObjectNotFound:
        return dg.AssetCheckResult(
            passed=False, description=f"{manifest_key(day)} is missing: no backup for {day}"
        )
    problems: list[str] = []
    lines = ["| database | object | tables | rows | result |", "| --- | --- | ---: | ---: | --- |"]
    for entry in manifest["databases"]:
        try:
            with open_stream(object_store, entry["object"]) as pieces:
                outcome = restore_check(
                    platform_postgres,
                    entry["database"],
                    entry["object"],
                    pieces,
                    entry["sha256"],
                    entry["size"],
                    entry["tables"],
                )
        except ObjectNotFound:
            problems.append(f"{entry['object']} is missing from {object_store.describe()}")
            continue
        problems.extend(outcome.problems)
        verdict = "restored, matches" if outcome.passed else "**failed**"
        lines.append(
            f"| {entry['database']} | `{entry['object']}` | {outcome.tables} | {outcome.rows} "
            f"| {verdict} |"
        )
    if not problems:
        marker = {
            "day": day,
            "verified_at": datetime.now(UTC).isoformat(),
            "run_id": context.run.run_id,
            "databases": [e["database"] for e in manifest["databases"]],
        }
        object_store.put(postgres_verified_key(day), json.dumps(marker).encode())
    return dg.AssetCheckResult(
        passed=not problems,
        description="\n".join(problems)
        if problems
        else f"{len(manifest['databases'])} dumps of {day} restored and match the manifest",
        metadata={"restores": dg.MetadataValue.md("\n".join(lines)), "problems": len(problems)},
    )


def freshness(newest_day: str | None, at: datetime | None, now: datetime) -> tuple[bool, str]:
    """Whether the newest verified backup is recent enough, and a sentence saying so."""
    if newest_day is None or at is None:
        return False, "there is no verified backup at all"
    age = now - at
    hours = age.total_seconds() / 3600
    if age > FRESHNESS_LIMIT:
        return False, (
            f"the newest verified backup ({newest_day}, verified {at:%Y-%m-%d %H:%M} UTC) is "
            f"{hours:.1f} hours old, more than {FRESHNESS_LIMIT.total_seconds() / 3600:.0f}"
        )
    return True, f"the newest verified backup ({newest_day}) is {hours:.1f} hours old"


def freshness_check(
    store: ObjectStore, verified_days: Iterable[str], marker_key: Callable[[str], str]
) -> dg.AssetCheckResult:
    """A freshness check's result: the newest of `verified_days` and when its marker
    (`marker_key(day)` in `store`) says it verified."""
    newest = max(verified_days, default=None)
    at = verified_at(store, marker_key(newest)) if newest else None
    passed, text = freshness(newest, at, datetime.now(UTC))
    return dg.AssetCheckResult(passed=passed, description=text)


class MirrorConfig(dg.Config):
    buckets: list[str] = list(MIRRORED_BUCKETS)
    """The object store's buckets that leave the cluster (by role: landing, warehouse, ...)."""
    workers: int = DEFAULT_WORKERS
    """Objects copied at once."""


@dg.asset(
    group_name="backups",
    kinds={"s3"},
    partitions_def=backup_days,
    # The night's sealed etcd snapshot leaves the cluster with it (backups/ is mirrored).
    deps=[postgres_dump, dg.AssetKey("etcd_snapshot")],
)
def object_store_mirror(
    context: dg.AssetExecutionContext,
    config: MirrorConfig,
    object_store: ObjectStore,
    backup_mirror: ObjectStore,
    backup_key: BackupKeyResource,
) -> dg.MaterializeResult:
    """The object store's `landing`, `warehouse`, `quarantine` and `backups` buckets mirrored
    incrementally to a second S3 endpoint off the cluster (a NAS), every object sealed with the
    backup key. Only new and changed objects are copied; an object deleted on the cluster stays
    on the mirror until retention drops the last night that had it."""
    key = backup_key.backup_key()
    day = context.partition_key
    result = mirror_objects(object_store, backup_mirror, key, day, config.buckets, config.workers)
    context.log.info(
        f"mirrored {len(result.entries)} objects into {backup_mirror.describe()}: "
        f"{len(result.copied)} copied, {result.carried} unchanged since {result.base_day}, "
        f"{len(result.deleted)} deleted on the cluster"
    )
    deleted = ", ".join(f"`{k}`" for k in result.deleted[:20]) or "none"
    summary = (
        f"**{day}**: {len(result.entries)} objects ({_size(result.total_bytes)}) on "
        f"{backup_mirror.describe()}.\n\n"
        f"| copied | unchanged since {result.base_day or '(first night)'} | deleted on the cluster "
        f"| vanished during the copy |\n| ---: | ---: | ---: | ---: |\n"
        f"| {len(result.copied)} ({_size(result.bytes_copied)}) | {result.carried} "
        f"| {len(result.deleted)} | {len(result.vanished)} |\n\n"
        f"Deleted on the cluster (kept on the mirror until retention): {deleted}\n"
    )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(result.entries),
            "copied": len(result.copied),
            "unchanged": result.carried,
            "deleted_on_cluster": len(result.deleted),
            "bytes_copied": result.bytes_copied,
            "buckets": dg.MetadataValue.json(config.buckets),
            "summary": dg.MetadataValue.md(summary),
        }
    )


MIRROR_VERIFIED = dg.AssetCheckSpec(
    "object_store_mirror_verified",
    asset=object_store_mirror,
    blocking=True,
    description=f"The night's mirror index unseals, every blob it names exists, and a sample "
    f"of {DEFAULT_SAMPLE} objects (that night's copies first) re-read from the mirror unseals "
    "and matches its sha256 and size.",
)
MIRROR_FRESH = dg.AssetCheckSpec(
    "object_store_mirror_fresh",
    asset=object_store_mirror,
    description="The newest mirror night that passed its re-read check is at most 26 hours old.",
)


def mirror_reread_check(
    context: dg.AssetCheckExecutionContext,
    backup_mirror: ObjectStore,
    backup_key: BackupKeyResource,
) -> dg.AssetCheckResult:
    """The re-read check of the night's mirror (MIRROR_VERIFIED)."""
    day = night_to_check(context, index_days(backup_mirror))
    if day is None:
        return dg.AssetCheckResult(passed=False, description="the mirror has no night to check")
    verification = verify_mirror(backup_mirror, backup_key.backup_key(), day)
    if verification.passed:
        record_verified(backup_mirror, verification, context.run.run_id)
    text = (
        "\n".join(verification.problems[:50])
        if verification.problems
        else f"{len(verification.sampled)} of {verification.objects} mirrored objects re-read "
        "and match"
    )
    return dg.AssetCheckResult(
        passed=verification.passed,
        description=text,
        metadata={
            "objects": verification.objects,
            "sampled": len(verification.sampled),
            "problems": len(verification.problems),
        },
    )


@dg.asset(
    group_name="backups",
    kinds={"python"},
    partitions_def=backup_days,
    deps=[postgres_dump, dg.AssetKey("etcd_snapshot"), object_store_mirror],
)
def backup_retention(
    context: dg.AssetExecutionContext,
    object_store: ObjectStore,
    backup_mirror: ObjectStore,
    backup_key: BackupKeyResource,
) -> dg.MaterializeResult:
    """Keeps exactly the seven newest verified nights of dumps, etcd snapshots and the mirror
    and deletes what is older. Runs only after the night's restore, integrity and re-read
    checks passed (they block it), and refuses on its own when the night is not verified."""
    day = context.partition_key
    missing = [
        what
        for what, store, marker in (
            ("dump", object_store, postgres_verified_key(day)),
            ("mirror", backup_mirror, mirror_verified_key(day)),
        )
        if store.stat(marker) is None
    ]
    if missing:
        raise dg.Failure(
            f"not pruning: the {_and(missing)} of {day} is not verified; older backups "
            "are kept until a newer one passes its checks"
        )
    dumps = prune_postgres(object_store, KEEP)
    # The etcd snapshots are pruned on their own night's integrity check alone: a cluster
    # without etcd (or a night whose snapshot failed) keeps every snapshot it has.
    snapshots = (
        prune_etcd(object_store, KEEP)
        if object_store.stat(etcd_verified_key(day)) is not None
        else PruneResult(RetentionPlan(sorted(etcd_days(object_store)[1], reverse=True), []))
    )
    mirror = prune_mirror(backup_mirror, backup_key.backup_key(), KEEP)
    rows = "\n".join(
        f"| {what} | {', '.join(r.plan.keep)} | {', '.join(r.plan.prune) or 'none'} "
        f"| {len(r.deleted_objects)} |"
        for what, r in (("dumps", dumps), ("etcd snapshots", snapshots), ("mirror", mirror))
    )
    return dg.MaterializeResult(
        metadata={
            "dumps_kept": dg.MetadataValue.json(dumps.plan.keep),
            "dumps_pruned": dg.MetadataValue.json(dumps.plan.prune),
            "etcd_snapshots_kept": dg.MetadataValue.json(snapshots.plan.keep),
            "etcd_snapshots_pruned": dg.MetadataValue.json(snapshots.plan.prune),
            "mirror_kept": dg.MetadataValue.json(mirror.plan.keep),
            "mirror_pruned": dg.MetadataValue.json(mirror.plan.prune),
            "summary": dg.MetadataValue.md(
                "| backups | verified nights kept | nights pruned | objects deleted |\n"
                "| --- | --- | --- | ---: |\n" + rows
            ),
        }
    )


postgres_dump_checks = integrity_then_freshness(
    POSTGRES_RESTORES,
    lambda c: restores_check(c, c.resources.object_store, c.resources.platform_postgres),
    POSTGRES_FRESH,
    lambda c: freshness_check(
        c.resources.object_store, postgres_days(c.resources.object_store)[1], postgres_verified_key
    ),
    {"object_store", "platform_postgres"},
)
object_store_mirror_checks = integrity_then_freshness(
    MIRROR_VERIFIED,
    lambda c: mirror_reread_check(c, c.resources.backup_mirror, c.resources.backup_key),
    MIRROR_FRESH,
    lambda c: freshness_check(
        c.resources.backup_mirror,
        mirror_verified_days(c.resources.backup_mirror),
        mirror_verified_key,
    ),
    {"backup_mirror", "backup_key"},
)

BACKUP_ASSETS = [postgres_dump, object_store_mirror, backup_retention]
BACKUP_CHECKS = [postgres_dump_checks, object_store_mirror_checks]
