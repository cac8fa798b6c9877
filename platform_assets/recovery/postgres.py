"""`restore_postgres`: one database from a chosen night's dump, into a new database unless told to
replace, verified against the night's manifest (sha256, size, rows per table)."""

import json

import dagster as dg

from platform_assets.backups.layout import is_day, manifest_key
from platform_assets.backups.postgres import BackupError, PlatformPostgres, restore_database
from platform_assets.backups.streams import open_stream
from resources.object_store import ObjectNotFound, ObjectStore

CONFIRM_FIELD = "ops.restore_postgres.config.confirm"


class RestorePostgresConfig(dg.Config):
    day: str
    """The night to restore from, YYYY-MM-DD (a folder of backups/postgres/)."""
    database: str
    """The database whose dump to restore."""
    target: str = ""
    """The database to restore into; empty: `<database>_restored` (never an existing one)."""
    replace: bool = False
    """Drop `target` (default: `database` itself) first and restore in its place."""
    confirm: str = ""
    """Must be the name of the database written: the explicit go-ahead."""


def target_of(config: RestorePostgresConfig) -> str:
    if config.target:
        return config.target
    return config.database if config.replace else f"{config.database}_restored"


def restore_one(
    store: ObjectStore, pg: PlatformPostgres, day: str, database: str, target: str, replace: bool
) -> dict:
    """Restores `database` of `day` into `target`; returns what was restored (rows per table).
    Raises `dg.Failure` naming the night, the object or the database."""
    if not is_day(day):
        raise dg.Failure(f"day {day!r} is not a night (YYYY-MM-DD)")
    try:
        manifest = json.loads(store.get(manifest_key(day)))
    except ObjectNotFound:
        raise dg.Failure(
            f"{manifest_key(day)} is missing in {store.describe()}: no backup of {day}"
        ) from None
    entries = {e["database"]: e for e in manifest["databases"]}
    if database not in entries:
        raise dg.Failure(
            f"the backup of {day} has no database {database!r} (it has: {', '.join(entries)})"
        )
    entry = entries[database]
    try:
        with open_stream(store, entry["object"]) as pieces:
            outcome = restore_database(
                pg,
                target,
                entry["object"],
                pieces,
                entry["sha256"],
                entry["size"],
                entry["tables"],
                replace,
            )
    except (BackupError, ObjectNotFound) as exc:
        raise dg.Failure(f"restore of {database} from {day} into {target} refused: {exc}") from None
    if not outcome.passed:
        raise dg.Failure(
            f"restore of {database} from {day} into {target} does not match the manifest:\n"
            + "\n".join(outcome.problems)
        )
    return {"tables": outcome.tables, "rows": outcome.rows, "object": entry["object"]}


@dg.op(
    description="Restores one database from a night's dump (pg_restore --exit-on-error "
    "--no-owner --no-privileges) into a new database, or in place with replace, and checks it "
    "against the manifest. Refuses without `confirm` naming the database written.",
    tags={"dagster/max_retries": "0"},
)
def restore_postgres_op(
    context: dg.OpExecutionContext,
    config: RestorePostgresConfig,
    object_store: ObjectStore,
    platform_postgres: PlatformPostgres,
) -> dg.Output[None]:
    target = target_of(config)
    if config.confirm != target:
        raise dg.Failure(
            f"restore_postgres refused: it writes database {target!r}"
            + (" (dropping it first)" if config.replace else "")
            + f"; set {CONFIRM_FIELD} to {target!r} in the run config to go ahead"
        )
    restored = restore_one(
        object_store, platform_postgres, config.day, config.database, target, config.replace
    )
    context.log.info(
        f"restored {config.database} of {config.day} into {target}: {restored['tables']} "
        f"tables, {restored['rows']} rows, matching the manifest"
    )
    return dg.Output(
        None,
        metadata={
            "database": target,
            "from": restored["object"],
            "dagster/row_count": restored["rows"],
            "tables": restored["tables"],
            "replaced": config.replace,
        },
    )


@dg.job(
    name="restore_postgres",
    description="One database from a chosen night's dump, into a new database unless told to "
    "replace; verified against the manifest. Needs `confirm` (the database written).",
    tags={"dagster/max_retries": "0"},
)
def restore_postgres():
    restore_postgres_op.alias("restore_postgres")()
