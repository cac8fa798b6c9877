"""The warehouse: Trino's Hive catalog on the cluster, an embedded DuckDB file locally.

Assets write their SQL once, in Trino's dialect, with named parameters (`:day`). `Warehouse.query`
and friends translate it for the backend with sqlglot, qualify bare table names with the
warehouse's schema, and bind every `:name` as a positional parameter, so values never become SQL
text. Identifiers (schema, catalog, table and column names) are validated before use.

External tables sit over object-store prefixes laid out Hive-style (`<prefix>dt=YYYY-MM-DD/...`):

- Trino: `CREATE TABLE ... WITH (external_location='s3://<bucket>/<prefix>', partitioned_by=...)`,
  the prefix's first segment naming the bucket by its role as the object store's keys do
  (`warehouse/sensor_readings/` is `s3://<warehouse bucket>/sensor_readings/`);
  a day's partition is registered after each write (`system.register_partition`, or
  `system.sync_partition_metadata` where the catalog keeps that procedure disabled).
- DuckDB: a VIEW over `read_parquet`/`read_json` of `<root>/<prefix>*/*.<ext>` with
  `hive_partitioning`; new files are visible at once, so registering is a no-op there.

Aggregates are real tables in both: in the DuckDB file locally, and on Trino Hive managed tables
(Parquet, partitioned by `dt`) under the schema's location (`s3://<warehouse bucket>/<schema>.db`
by default). External tables cannot be deleted from in Trino, so the aggregates are managed: a
day is replaced by dropping its partition (`DELETE ... WHERE dt = ...`, a metadata delete) and
inserting it again. (`insert_existing_partitions_behavior = OVERWRITE` would do it in one commit,
but on Trino 476 with the native S3 file system, file metastore and SeaweedFS the overwritten
partition read back empty in our tests.)
"""

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from resources.settings import Settings

_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_PARAM_MARK = "__piclusterops_param_"
_PARAM_MARK_RE = re.compile(rf"\b{_PARAM_MARK}(\w+?)__\b")
_FORMATS = ("PARQUET", "JSON")
# DuckDB lets one process write a file at a time; steps running in parallel wait this long.
_DUCKDB_LOCK_WAIT_SECONDS = 120.0


class WarehouseError(RuntimeError):
    """A warehouse statement failed; the message names the table or statement and the backend."""


def check_identifier(value: str, what: str) -> str:
    """Returns `value` if it is a lower-case SQL identifier, else raises naming `what`."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ValueError(
            f"{what}={value!r} is not a valid SQL identifier; expected lower-case letters, digits "
            "and underscores, starting with a letter."
        )
    return value


def check_day(value: str) -> str:
    """Returns `value` if it is a real calendar day written YYYY-MM-DD, else raises."""
    if not isinstance(value, str) or not _DAY.match(value):
        raise ValueError(f"day={value!r} is not valid; expected YYYY-MM-DD.")
    date.fromisoformat(value)  # rejects 2026-02-30
    return value


@dataclass(frozen=True)
class ExternalTable:
    """A table whose files live under an object-store prefix, partitioned Hive-style.

    `columns` are (name, Trino type) pairs in file order, without the partition column, which the
    warehouse appends last (Trino requires partition columns at the end).
    """

    name: str
    prefix: str  # e.g. "warehouse/sensor_readings/" (bucket role first), ends with "/"
    columns: tuple[tuple[str, str], ...]
    file_format: str  # PARQUET or JSON (JSON Lines)
    partition_column: str = "dt"

    def __post_init__(self):
        check_identifier(self.name, "table name")
        check_identifier(self.partition_column, f"{self.name} partition column")
        for column, _ in self.columns:
            check_identifier(column, f"{self.name} column")
        if self.file_format not in _FORMATS:
            raise ValueError(f"{self.name}: file_format must be one of {_FORMATS}")
        if not self.prefix.endswith("/") or self.prefix.startswith("/") or "'" in self.prefix:
            raise ValueError(f"{self.name}: prefix {self.prefix!r} must be relative and end in /")

    @property
    def file_extension(self) -> str:
        return "parquet" if self.file_format == "PARQUET" else "jsonl"


@dataclass(frozen=True)
class QueryResult:
    columns: tuple[str, ...]
    rows: list[tuple]

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@lru_cache(maxsize=256)
def translate(
    sql: str, dialect: str, schema: str, catalog: str | None = None
) -> tuple[str, tuple[str, ...]]:
    """Trino-dialect SQL with `:name` parameters -> (SQL for `dialect` with `?`, parameter names).

    Bare table names are qualified with `schema` (and `catalog`); names already qualified, CTE
    names and table functions are left alone. Pure, so cached: each statement is parsed once
    per process.
    """
    import sqlglot
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read="trino")
    cte_names = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or table.args.get("db"):
            continue
        if table.name in cte_names:
            continue
        table.set("db", exp.to_identifier(schema))
        if catalog:
            table.set("catalog", exp.to_identifier(catalog))
    for placeholder in list(tree.find_all(exp.Placeholder)):
        name = placeholder.name
        if not name or not re.match(r"^\w+$", name):
            raise ValueError("use named parameters (:name) in warehouse SQL, not ?")
        placeholder.replace(exp.column(f"{_PARAM_MARK}{name}__"))
    if dialect == "duckdb":
        # Trino's table properties (format, partitioned_by) mean nothing to DuckDB.
        for props in list(tree.find_all(exp.Properties)):
            props.pop()
    text = tree.sql(dialect=dialect, comments=False)
    names = _PARAM_MARK_RE.findall(text)
    return _PARAM_MARK_RE.sub("?", text), tuple(names)


def _bind(names: Sequence[str], params: Mapping[str, Any] | None) -> list:
    params = params or {}
    missing = sorted({n for n in names if n not in params})
    if missing:
        raise ValueError(f"missing SQL parameter(s): {', '.join(missing)}")
    return [params[n] for n in names]


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Warehouse(dg.ConfigurableResource, ABC):
    """Runs the platform's Trino-dialect SQL on the active warehouse.

    One connection per step: opened on first use, closed when the step ends.
    """

    schema_name: str = "sensors"

    _connection: Any = PrivateAttr(default=None)

    # -- lifecycle -------------------------------------------------------------------------

    @contextmanager
    def yield_for_execution(self, context: dg.InitResourceContext) -> Generator["Warehouse"]:
        try:
            yield self
        finally:
            self.close()

    @contextmanager
    def session(self) -> Iterator["Warehouse"]:
        """For use outside Dagster (tests, CLI): `with warehouse.session() as wh: ...`."""
        try:
            yield self
        finally:
            self.close()

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def _conn(self):
        if self._connection is None:
            check_identifier(self.schema_name, "warehouse schema")
            self._connection = self._open()
        return self._connection

    # -- backend-specific ------------------------------------------------------------------

    @property
    @abstractmethod
    def kind(self) -> str:
        """'trino' or 'duckdb': the dialect and the asset kind."""

    @property
    def catalog_name(self) -> str | None:
        return None

    @abstractmethod
    def _open(self): ...

    @abstractmethod
    def _run(self, sql: str, args: list, *, fetch: bool) -> QueryResult | None: ...

    @abstractmethod
    def ensure_schema(self) -> None:
        """Creates the warehouse schema if it does not exist."""

    @abstractmethod
    def ensure_external_table(self, table: ExternalTable) -> None:
        """Creates (Trino) or refreshes (DuckDB) an external table over its prefix."""

    @abstractmethod
    def register_partition(self, table: ExternalTable, day: str) -> bool:
        """Makes the files under `<prefix>dt=<day>/` visible; True if the partition is new."""

    @abstractmethod
    def location(self, prefix: str) -> str:
        """Where the warehouse reads `prefix`: an s3:// URI or a local folder."""

    # -- shared SQL, written once ----------------------------------------------------------

    def translate(self, sql: str) -> tuple[str, tuple[str, ...]]:
        return translate(sql, self.kind, self.schema_name, self.catalog_name)

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> QueryResult:
        """Runs one Trino-dialect SELECT and returns every row."""
        text, names = self.translate(sql)
        result = self._run(text, _bind(names, params), fetch=True)
        assert result is not None
        return result

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Runs one Trino-dialect statement (DDL or DML)."""
        text, names = self.translate(sql)
        self._run(text, _bind(names, params), fetch=False)

    def replace_partition(
        self, table: str, select_sql: str, day: str, params: Mapping[str, Any] | None = None
    ) -> int:
        """Replaces the rows of `table` for `dt = day` with the rows of `select_sql`.

        Re-running a day replaces that day, never adds to it. The SELECT's columns must match
        the table's, partition column last. Returns the number of rows now in the partition.
        """
        check_identifier(table, "table name")
        check_day(day)
        params = {**(params or {}), "day": day}
        self._replace(table, select_sql, params)
        counted = self.query(f"SELECT count(*) FROM {table} WHERE dt = :day", {"day": day})  # noqa: S608 -- identifier checked
        return int(counted.rows[0][0])

    def _replace(self, table: str, select_sql: str, params: Mapping[str, Any]) -> None:
        import sqlglot
        from sqlglot import exp

        select = sqlglot.parse_one(select_sql, read="trino")
        insert = exp.insert(select, table).sql(dialect="trino")
        self.execute(f"DELETE FROM {table} WHERE dt = :day", params)  # noqa: S608 -- checked
        self.execute(insert, params)


class DuckDBWarehouse(Warehouse):
    """The local profile's warehouse: a DuckDB file over the object-store folder."""

    path: str
    object_store_root: str

    @property
    def kind(self) -> str:
        return "duckdb"

    def location(self, prefix: str) -> str:
        return str(Path(self.object_store_root) / prefix)

    def _open(self):
        import duckdb

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _DUCKDB_LOCK_WAIT_SECONDS
        while True:
            try:
                return duckdb.connect(self.path)
            except duckdb.IOException as error:
                # Another step holds the file; DuckDB has one writer process at a time.
                if "lock" not in str(error).lower() or time.monotonic() > deadline:
                    raise WarehouseError(
                        f"cannot open the DuckDB warehouse {self.path}: {error}"
                    ) from None
                time.sleep(0.2)

    def _run(self, sql: str, args: list, *, fetch: bool) -> QueryResult | None:
        import duckdb

        try:
            cursor = self._conn().execute(sql, args)
            if not fetch:
                return None
            columns = tuple(d[0] for d in cursor.description)
            return QueryResult(columns, cursor.fetchall())
        except duckdb.Error as error:
            raise WarehouseError(f"DuckDB ({self.path}) failed: {error}\nSQL: {sql}") from None

    def _replace(self, table: str, select_sql: str, params: Mapping[str, Any]) -> None:
        # One transaction: a reader never sees the day half replaced.
        conn = self._conn()
        conn.execute("BEGIN TRANSACTION")
        try:
            super()._replace(table, select_sql, params)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def ensure_schema(self) -> None:
        self._run(f"CREATE SCHEMA IF NOT EXISTS {self.schema_name}", [], fetch=False)

    def _reader(self, table: ExternalTable) -> str | None:
        import glob

        root = Path(self.object_store_root) / table.prefix
        pattern = str(root / f"{table.partition_column}=*" / f"*.{table.file_extension}")
        if not glob.glob(pattern):
            return None
        options = (
            f"hive_partitioning = true, "
            f"hive_types = {{{_sql_string(table.partition_column)}: 'VARCHAR'}}"
        )
        if table.file_format == "PARQUET":
            return f"read_parquet({_sql_string(pattern)}, {options})"
        columns = ", ".join(
            f"{_sql_string(name)}: {_sql_string(self._duckdb_type(trino_type))}"
            for name, trino_type in table.columns
        )
        return (
            f"read_json({_sql_string(pattern)}, format = 'newline_delimited', "
            f"columns = {{{columns}}}, {options})"
        )

    @staticmethod
    def _duckdb_type(trino_type: str) -> str:
        import sqlglot

        return sqlglot.parse_one(f"CAST(x AS {trino_type})", read="trino").to.sql("duckdb")

    def ensure_external_table(self, table: ExternalTable) -> None:
        reader = self._reader(table)
        columns = [*table.columns, (table.partition_column, "varchar")]
        if reader is None:
            # No files yet: an empty view of the right shape, replaced once files arrive.
            select = ", ".join(
                f"CAST(NULL AS {self._duckdb_type(t)}) AS {name}" for name, t in columns
            )
            body = f"SELECT {select} WHERE false"
        else:
            select = ", ".join(
                f"CAST({name} AS {self._duckdb_type(t)}) AS {name}" for name, t in columns
            )
            body = f"SELECT {select} FROM {reader}"  # noqa: S608 -- identifiers checked
        self._run(
            f"CREATE OR REPLACE VIEW {self.schema_name}.{table.name} AS {body}", [], fetch=False
        )

    def register_partition(self, table: ExternalTable, day: str) -> bool:
        check_day(day)
        # The view globs the folder at query time; it only needs creating once files exist.
        self.ensure_external_table(table)
        return False


class TrinoWarehouse(Warehouse):
    """The cluster's warehouse: Trino's Hive connector over the object store's buckets."""

    host: str
    port: int = 8080
    user: str = "piclusterops"
    catalog: str = "hive"
    http_scheme: str = "http"
    # The object store's buckets by role (PICLUSTER_S3_*_BUCKET): where the external tables'
    # prefixes point.
    buckets: dict[str, str] = {"warehouse": "warehouse", "quarantine": "quarantine"}
    # Where the schema, and so its managed (aggregate) tables, live. Empty: the Hive convention
    # `s3://<warehouse bucket>/<schema>.db`, so two schemas never share a table folder. Trino's
    # file metastore (tests) only accepts managed tables under its own catalog dir, so there it
    # is `s3://<catalog bucket>/metastore/<schema>`.
    schema_location: str = ""
    request_timeout_seconds: float = 300.0

    @property
    def kind(self) -> str:
        return "trino"

    @property
    def catalog_name(self) -> str | None:
        return check_identifier(self.catalog, "Trino catalog")

    def location(self, prefix: str) -> str:
        role, rest = prefix.split("/", 1)
        if role not in self.buckets:
            raise ValueError(
                f"prefix {prefix!r} names no bucket the warehouse knows "
                f"({', '.join(sorted(self.buckets))})"
            )
        return f"s3://{self.buckets[role]}/{rest}"

    def _open(self):
        from trino.dbapi import connect

        if self.http_scheme not in ("http", "https"):
            raise ValueError(f"http_scheme={self.http_scheme!r}: expected http or https")
        return connect(
            host=self.host,
            port=self.port,
            user=self.user,
            catalog=self.catalog_name,
            schema=self.schema_name,
            http_scheme=self.http_scheme,
            source="piclusterops",
            request_timeout=self.request_timeout_seconds,
        )

    def _run(self, sql: str, args: list, *, fetch: bool) -> QueryResult | None:
        from trino.exceptions import TrinoQueryError

        cursor = self._conn().cursor()
        try:
            cursor.execute(sql, args or None)
            rows = cursor.fetchall()  # also waits for DDL/DML to finish
        except TrinoQueryError as error:
            raise WarehouseError(
                f"Trino ({self.host}:{self.port}) failed: {error.error_name}: {error.message}"
                f"\nSQL: {sql}"
            ) from None
        finally:
            cursor.close()
        if not fetch:
            return None
        columns = tuple(d[0] for d in (cursor.description or ()))
        return QueryResult(columns, [tuple(row) for row in rows])

    def _literal_run(self, sql: str) -> QueryResult:
        result = self._run(sql, [], fetch=True)
        assert result is not None
        return result

    def ensure_schema(self) -> None:
        location = self.schema_location.rstrip("/") or self.location(
            f"warehouse/{self.schema_name}.db"
        )  # s3://<warehouse bucket>/<schema>.db
        if not location.startswith("s3://"):
            raise ValueError(f"schema_location={location!r}: expected an s3:// URI")
        self._literal_run(
            f"CREATE SCHEMA IF NOT EXISTS {self.catalog_name}.{self.schema_name} "
            f"WITH (location = {_sql_string(location)})"
        )

    def _qualified(self, name: str) -> str:
        return f"{self.catalog_name}.{self.schema_name}.{check_identifier(name, 'table name')}"

    def ensure_external_table(self, table: ExternalTable) -> None:
        columns = ", ".join(
            f"{name} {trino_type}"
            for name, trino_type in (*table.columns, (table.partition_column, "varchar"))
        )
        self._literal_run(
            f"CREATE TABLE IF NOT EXISTS {self._qualified(table.name)} ({columns}) WITH ("
            # no trailing slash: Trino appends "/dt=..." to it for each partition
            f"external_location = {_sql_string(self.location(table.prefix).rstrip('/'))}, "
            f"format = {_sql_string(table.file_format)}, "
            f"partitioned_by = ARRAY[{_sql_string(table.partition_column)}])"
        )

    def register_partition(self, table: ExternalTable, day: str) -> bool:
        check_day(day)
        partitions = f'{self.catalog_name}.{self.schema_name}."{table.name}$partitions"'
        known = self._run(
            f"SELECT count(*) FROM {partitions} WHERE {table.partition_column} = ?",  # noqa: S608
            [day],
            fetch=True,
        )
        if known is not None and known.rows[0][0]:
            return False
        try:
            self._literal_run(
                f"CALL {self.catalog_name}.system.register_partition("
                f"schema_name => {_sql_string(self.schema_name)}, "
                f"table_name => {_sql_string(table.name)}, "
                f"partition_columns => ARRAY[{_sql_string(table.partition_column)}], "
                f"partition_values => ARRAY[{_sql_string(day)}])"
            )
        except WarehouseError as error:
            if "register_partition procedure is disabled" not in str(error):
                raise
            # The catalog keeps register_partition off: sync adds every new folder instead.
            self._literal_run(
                f"CALL {self.catalog_name}.system.sync_partition_metadata("
                f"schema_name => {_sql_string(self.schema_name)}, "
                f"table_name => {_sql_string(table.name)}, mode => 'ADD')"
            )
        return True


def warehouse_for(settings: "Settings") -> Warehouse:
    """The warehouse of the active profile: Trino on the cluster, DuckDB locally."""
    schema = check_identifier(settings.warehouse_schema, "PICLUSTER_WAREHOUSE_SCHEMA")
    if settings.is_cluster:
        assert settings.trino is not None and settings.s3 is not None
        return TrinoWarehouse(
            schema_name=schema,
            host=settings.trino.host,
            port=settings.trino.port,
            user=settings.trino.user,
            catalog=settings.trino.catalog,
            http_scheme=settings.trino.http_scheme,
            buckets={r: settings.s3.buckets[r] for r in ("warehouse", "quarantine")},
            schema_location=settings.trino.schema_location,
        )
    return DuckDBWarehouse(
        schema_name=schema,
        path=str(settings.duckdb_path),
        object_store_root=str(settings.object_store_root),
    )
