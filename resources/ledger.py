"""The ingestion ledger: which landing objects were handed over, in which batch, and what became of
them. SQLAlchemy Core; SQLite on the local profile, PostgreSQL on the cluster.

An object version is `(object_key, etag)`: a re-upload under the same key with new content is a new
version and is curated again (its readings are de-duplicated against the day, so nothing doubles).
Each version holds readings for one or more UTC days; `object_days` tracks every (version, day)
pair from `pending` to `curated`. A batch is a set of pending (version, day) pairs for one day,
named by a hash of its contents, so the same batch always gets the same id, run key and output
keys. The ledger is the queue between the landing sensor and the curation runs: a restart, a
re-delivered tick or a retried run reads it and carries on.
"""

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

if TYPE_CHECKING:
    import sqlalchemy as sa

    from resources.object_store import ObjectInfo

PENDING = "pending"
CURATED = "curated"


@dataclass(frozen=True)
class ObjectVersion:
    key: str
    etag: str


@dataclass
class Batch:
    batch_id: str
    day: str
    objects: list[ObjectVersion]
    status: str = PENDING
    stats: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None


def batch_id_for(day: str, objects: Iterable[ObjectVersion]) -> str:
    """Deterministic: the same day and object versions always give the same id."""
    digest = hashlib.sha256(day.encode())
    for obj in sorted(objects, key=lambda o: (o.key, o.etag)):
        digest.update(b"\0" + obj.key.encode() + b"\0" + obj.etag.encode())
    return f"{day}-{digest.hexdigest()[:16]}"


def _tables(metadata: "sa.MetaData") -> dict[str, "sa.Table"]:
    import sqlalchemy as sa

    objects = sa.Table(
        "ledger_objects",
        metadata,
        sa.Column("object_key", sa.String(1024), primary_key=True),
        sa.Column("etag", sa.String(128), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("last_modified", sa.DateTime(timezone=True)),
        # Where rows that carry no usable timestamp are quarantined: the day named in the key, or
        # the upload day.
        sa.Column("home_day", sa.String(10), nullable=False),
        sa.Column("discovered_at", sa.DateTime(timezone=True), nullable=False),
    )
    object_days = sa.Table(
        "ledger_object_days",
        metadata,
        sa.Column("object_key", sa.String(1024), primary_key=True),
        sa.Column("etag", sa.String(128), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("batch_id", sa.String(64), index=True),
        sa.Column("curated_at", sa.DateTime(timezone=True)),
        sa.Index("ix_ledger_object_days_pending", "status", "day"),
    )
    batches = sa.Table(
        "ledger_batches",
        metadata,
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("object_count", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(64)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("rows_read", sa.BigInteger),
        sa.Column("rows_curated", sa.BigInteger),
        sa.Column("rows_quarantined", sa.BigInteger),
        sa.Column("duplicates_dropped", sa.BigInteger),
    )
    return {"objects": objects, "object_days": object_days, "batches": batches}


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything the ledger writes is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class LedgerStore:
    """The ledger's operations over one SQLAlchemy engine (no Dagster in here)."""

    def __init__(self, url: str):
        import sqlalchemy as sa

        self.url = url
        kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            # WAL lets the sensor read while a run writes; the busy timeout waits out the writer.
            @sa.event.listens_for(self.engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

        self.metadata = sa.MetaData()
        self.t = _tables(self.metadata)
        self.metadata.create_all(self.engine, checkfirst=True)

    def dispose(self) -> None:
        self.engine.dispose()

    def describe(self) -> str:
        return f"ledger on {self.engine.url.render_as_string(hide_password=True)}"

    def _insert_ignore(self, table: "sa.Table") -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table).on_conflict_do_nothing()

    # -- objects -------------------------------------------------------------------------------

    def known_versions(self, keys: Sequence[str]) -> set[ObjectVersion]:
        """Which versions of these keys the ledger already holds (one query per 500 keys)."""
        import sqlalchemy as sa

        objects = self.t["objects"]
        found: set[ObjectVersion] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(list(keys), 500):
                rows = conn.execute(
                    sa.select(objects.c.object_key, objects.c.etag).where(
                        objects.c.object_key.in_(chunk)
                    )
                )
                found.update(ObjectVersion(k, e) for k, e in rows)
        return found

    def register(self, infos: Sequence["ObjectInfo"], home_days: Sequence[str]) -> int:
        """Records object versions handed over (idempotent) with a pending entry for their home
        day. Returns how many were new."""

        if not infos:
            return 0
        now = datetime.now(UTC)
        known = self.known_versions(sorted({i.key for i in infos}))
        fresh = [
            (info, day)
            for info, day in zip(infos, home_days, strict=True)
            if ObjectVersion(info.key, info.etag) not in known
        ]
        if not fresh:
            return 0
        with self.engine.begin() as conn:
            for chunk in _chunks(fresh, 1000):
                conn.execute(
                    self._insert_ignore(self.t["objects"]),
                    [
                        {
                            "object_key": info.key,
                            "etag": info.etag,
                            "size": info.size,
                            "last_modified": info.last_modified,
                            "home_day": day,
                            "discovered_at": now,
                        }
                        for info, day in chunk
                    ],
                )
                conn.execute(
                    self._insert_ignore(self.t["object_days"]),
                    [
                        {"object_key": info.key, "etag": info.etag, "day": day, "status": PENDING}
                        for info, day in chunk
                    ],
                )
        return len(fresh)

    def home_days(self, versions: Sequence[ObjectVersion]) -> dict[ObjectVersion, str]:
        import sqlalchemy as sa

        objects = self.t["objects"]
        result: dict[ObjectVersion, str] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list({v.key for v in versions}), 500):
                rows = conn.execute(
                    sa.select(objects.c.object_key, objects.c.etag, objects.c.home_day).where(
                        objects.c.object_key.in_(chunk)
                    )
                )
                for key, etag, day in rows:
                    result[ObjectVersion(key, etag)] = day
        return {v: result[v] for v in versions if v in result}

    def add_days(self, entries: Iterable[tuple[ObjectVersion, str]]) -> int:
        """Records that object versions also hold readings for other days (pending there)."""
        rows = [
            {"object_key": v.key, "etag": v.etag, "day": day, "status": PENDING}
            for v, day in entries
        ]
        if not rows:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(self._insert_ignore(self.t["object_days"]), rows)
        return max(result.rowcount or 0, 0)

    # -- batches -------------------------------------------------------------------------------

    def _insert_batch(self, conn: Any, batch: Batch, now: datetime) -> None:
        conn.execute(
            self._insert_ignore(self.t["batches"]),
            [
                {
                    "batch_id": batch.batch_id,
                    "day": batch.day,
                    "status": PENDING,
                    "object_count": len(batch.objects),
                    "created_at": now,
                }
            ],
        )

    def assign_batches(
        self,
        max_objects: int,
        max_batches: int,
        latest_day: str | None = None,
        *,
        skip_days: Collection[str] = (),
        per_day: int | None = None,
    ) -> list[Batch]:
        """Groups unassigned pending (version, day) pairs into new batches of at most
        `max_objects` objects, one day per batch, oldest day first, at most `per_day` batches a
        day. Days after `latest_day` (their partition does not exist yet) and `skip_days` wait."""
        import sqlalchemy as sa

        od = self.t["object_days"]
        conditions = [
            od.c.status == PENDING,
            od.c.batch_id.is_(None),
            od.c.day <= (latest_day or "9999-12-31"),
        ]
        if skip_days:
            conditions.append(od.c.day.not_in(sorted(skip_days)))
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(od.c.day, od.c.object_key, od.c.etag)
                .where(*conditions)
                .order_by(od.c.day, od.c.object_key, od.c.etag)
                .limit(max_objects * max_batches)
            ).all()
        by_day: dict[str, list[ObjectVersion]] = {}
        for day, key, etag in rows:
            by_day.setdefault(day, []).append(ObjectVersion(key, etag))
        batches: list[Batch] = []
        for day, versions in by_day.items():
            for n, chunk in enumerate(_chunks(versions, max_objects)):
                if len(batches) < max_batches and (per_day is None or n < per_day):
                    batches.append(Batch(batch_id_for(day, chunk), day, list(chunk)))
        self.save_batches(batches)
        return batches

    def save_batches(self, batches: Sequence[Batch]) -> None:
        """Creates batches (idempotent) and assigns their (version, day) pairs to them."""
        import sqlalchemy as sa

        if not batches:
            return
        od = self.t["object_days"]
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            for batch in batches:
                self._insert_batch(conn, batch, now)
                conn.execute(
                    self._insert_ignore(od),
                    [
                        {"object_key": v.key, "etag": v.etag, "day": batch.day, "status": PENDING}
                        for v in batch.objects
                    ],
                )
                for chunk in _chunks(batch.objects, 200):
                    conn.execute(
                        sa.update(od)
                        .where(
                            od.c.day == batch.day,
                            od.c.status == PENDING,
                            sa.tuple_(od.c.object_key, od.c.etag).in_(
                                [(v.key, v.etag) for v in chunk]
                            ),
                        )
                        .values(batch_id=batch.batch_id)
                    )

    def batch(self, batch_id: str) -> Batch | None:
        import sqlalchemy as sa

        b, od = self.t["batches"], self.t["object_days"]
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(b).where(b.c.batch_id == batch_id)).mappings().first()
            if row is None:
                return None
            versions = conn.execute(
                sa.select(od.c.object_key, od.c.etag)
                .where(od.c.batch_id == batch_id)
                .order_by(od.c.object_key, od.c.etag)
            ).all()
        stats = {
            k: row[k]
            for k in ("rows_read", "rows_curated", "rows_quarantined", "duplicates_dropped")
            if row[k] is not None
        }
        return Batch(
            row["batch_id"],
            row["day"],
            [ObjectVersion(k, e) for k, e in versions],
            row["status"],
            stats,
            _aware(row["created_at"]),
        )

    def open_batches(self, limit: int = 100) -> list[Batch]:
        """Batches created but not yet curated, oldest first."""
        import sqlalchemy as sa

        b = self.t["batches"]
        with self.engine.connect() as conn:
            ids = conn.execute(
                sa.select(b.c.batch_id)
                .where(b.c.status == PENDING)
                .order_by(b.c.created_at, b.c.batch_id)
                .limit(limit)
            ).scalars()
            ids = list(ids)
        return [batch for batch in (self.batch(i) for i in ids) if batch is not None]

    def pending_for_day(self, day: str) -> list[ObjectVersion]:
        import sqlalchemy as sa

        od = self.t["object_days"]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(od.c.object_key, od.c.etag)
                .where(od.c.day == day, od.c.status == PENDING)
                .order_by(od.c.object_key, od.c.etag)
            ).all()
        return [ObjectVersion(k, e) for k, e in rows]

    def finish_batch(self, batch_id: str, run_id: str, stats: dict[str, int]) -> None:
        """Marks the batch and its (version, day) pairs curated, with the batch's counts."""
        import sqlalchemy as sa

        b, od = self.t["batches"], self.t["object_days"]
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            batch_day = conn.execute(
                sa.select(b.c.day).where(b.c.batch_id == batch_id)
            ).scalar_one_or_none()
            if batch_day is None:
                raise KeyError(f"batch {batch_id!r} is not in the {self.describe()}")
            conn.execute(
                sa.update(od)
                .where(od.c.batch_id == batch_id, od.c.day == batch_day)
                .values(status=CURATED, curated_at=now)
            )
            conn.execute(
                sa.update(b)
                .where(b.c.batch_id == batch_id)
                .values(
                    status=CURATED,
                    run_id=run_id,
                    finished_at=now,
                    rows_read=stats["rows_read"],
                    rows_curated=stats["rows_curated"],
                    rows_quarantined=stats["rows_quarantined"],
                    duplicates_dropped=stats["duplicates_dropped"],
                )
            )

    def counts(self) -> dict[str, int]:
        """Objects, pending (version, day) pairs and open batches: for tests and the UI."""
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return {
                "objects": conn.execute(
                    sa.select(sa.func.count()).select_from(self.t["objects"])
                ).scalar_one(),
                "pending": conn.execute(
                    sa.select(sa.func.count())
                    .select_from(self.t["object_days"])
                    .where(self.t["object_days"].c.status == PENDING)
                ).scalar_one(),
                "open_batches": conn.execute(
                    sa.select(sa.func.count())
                    .select_from(self.t["batches"])
                    .where(self.t["batches"].c.status == PENDING)
                ).scalar_one(),
            }


class Ledger(dg.ConfigurableResource, ABC):
    """The ingestion ledger resource. Implementations: `SqliteLedger`, `PostgresLedger`."""

    _store: Any = PrivateAttr(default=None)

    @abstractmethod
    def _url(self) -> str: ...

    def store(self) -> LedgerStore:
        if self._store is None:
            self._store = LedgerStore(self._url())
        return self._store

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.dispose()
            self._store = None


class SqliteLedger(Ledger):
    """The ledger in one SQLite file (local profile)."""

    path: str

    def _url(self) -> str:
        from pathlib import Path

        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{self.path}"


class PostgresLedger(Ledger):
    """The ledger in PostgreSQL (cluster profile); the password comes from `dg.EnvVar`."""

    host: str
    port: int = 5432
    database: str
    user: str
    password: str

    def _url(self) -> str:
        from resources.settings import PostgresSettings

        pg = PostgresSettings(self.host, self.port, self.database, self.user, password_var="")
        return pg.sqlalchemy_url(self.password)


def ledger_for(settings: Any) -> Ledger:
    if settings.is_cluster:
        pg = settings.postgres
        return PostgresLedger(
            host=pg.host,
            port=pg.port,
            database=pg.database,
            user=pg.user,
            password=dg.EnvVar(pg.password_var),
        )
    return SqliteLedger(path=str(settings.ledger_sqlite_path))
