"""The ingestion ledger: which landing objects were handed over, in which batch, and what became of
them. SQLAlchemy Core; SQLite on the local profile, PostgreSQL on the cluster.

An object version is `(object_key, etag)`: a re-upload under the same key with new content is a new
version and is curated again (its readings are de-duplicated against the day, so nothing doubles).
Each version holds readings for one or more UTC days; `object_days` tracks every (version, day)
pair from `pending` to `curated`. A batch is a set of pending (version, day) pairs for one day,
named by a hash of its contents, so the same batch always gets the same id, run key and output
keys. The ledger is the queue between the landing sensor and the curation runs: a restart, a
re-delivered tick or a retried run reads it and carries on.

Two runs of one day must never both keep a reading, so a day has one owner at a time, enforced
here where the state lives:
- a **day lease** (`ledger_day_leases`: day, owner, expiry), taken with a guarded INSERT/UPDATE by
  whoever changes the day (the sensor while it creates the day's batch, a curation run from the
  moment it starts until it has published and finished its batch), renewed while the run works;
- **batch assignment** is one transaction under that lease: a guarded `UPDATE ... WHERE batch_id
  IS NULL`, so a (version, day) pair belongs to at most one batch and nobody re-points it;
- a queued batch's claim on its day is its `pending` status, not a clock: the sensor makes no
  other batch for a day while one is pending, however long its run waits in the queue. The claim
  ends when the batch is curated or marked failed.
"""

import hashlib
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import PrivateAttr

if TYPE_CHECKING:
    import sqlalchemy as sa

    from resources.object_store import ObjectInfo

PENDING = "pending"
CURATED = "curated"
FAILED = "failed"  # a batch whose run failed its checks or died: re-execute the run
SUPERSEDED = "superseded"  # a failed batch whose objects a later run of its day took over

# A lease outlives a run that stops renewing it (a killed pod) by at most this; a working run
# renews it every third of it.
LEASE_TTL = timedelta(minutes=2)
# How long a run waits for a day another run is curating (a manual run and the sensor's run of
# one day) before it fails, naming the holder.
LEASE_WAIT = timedelta(minutes=30)


class LeaseHeld(RuntimeError):
    """Another owner holds the day's lease; the message names the day and the holder."""


class LeaseLost(RuntimeError):
    """The day's lease expired or was taken over while its owner worked: stop, publish nothing."""


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
    run_id: str | None = None  # the run that claimed it (by hand) or curated it


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
    leases = sa.Table(
        "ledger_day_leases",
        metadata,
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    return {"objects": objects, "object_days": object_days, "batches": batches, "leases": leases}


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

    # -- day leases ----------------------------------------------------------------------------

    def acquire_lease(
        self, day: str, owner: str, ttl: timedelta = LEASE_TTL, now: datetime | None = None
    ) -> bool:
        """Takes the day's lease for `owner` when it is free, expired or already `owner`'s."""
        import sqlalchemy as sa

        leases = self.t["leases"]
        now = now or datetime.now(UTC)
        with self.engine.begin() as conn:
            # The UPDATE comes first: it locks the lease row (PostgreSQL) or the database
            # (SQLite) before anything is read, so two takers cannot both see it free.
            taken = conn.execute(
                sa.update(leases)
                .where(
                    leases.c.day == day,
                    sa.or_(leases.c.owner == owner, leases.c.expires_at <= now),
                )
                .values(owner=owner, expires_at=now + ttl)
            ).rowcount
            if taken == 0:
                taken = conn.execute(
                    self._insert_ignore(leases),
                    [{"day": day, "owner": owner, "expires_at": now + ttl}],
                ).rowcount
        return taken == 1

    def renew_lease(
        self, day: str, owner: str, ttl: timedelta = LEASE_TTL, now: datetime | None = None
    ) -> bool:
        """Extends `owner`'s lease; False when someone else has taken the day since. An expired
        lease nobody took is still `owner`'s: only a taker changes the owner."""
        import sqlalchemy as sa

        leases = self.t["leases"]
        now = now or datetime.now(UTC)
        with self.engine.begin() as conn:
            renewed = conn.execute(
                sa.update(leases)
                .where(leases.c.day == day, leases.c.owner == owner)
                .values(expires_at=now + ttl)
            ).rowcount
        return renewed == 1

    def release_lease(self, day: str, owner: str) -> None:
        import sqlalchemy as sa

        leases = self.t["leases"]
        with self.engine.begin() as conn:
            conn.execute(sa.delete(leases).where(leases.c.day == day, leases.c.owner == owner))

    def lease_holder(self, day: str) -> tuple[str, datetime] | None:
        """(owner, expires_at) of the day's lease, if anyone took it."""
        import sqlalchemy as sa

        leases = self.t["leases"]
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(leases.c.owner, leases.c.expires_at).where(leases.c.day == day)
            ).first()
        return None if row is None else (row[0], _aware(row[1]))

    def _hold(self, conn: Any, day: str, owner: str) -> None:
        """First statement of a transaction that changes a day: proves `owner` holds the day's
        lease and keeps it locked until the commit."""
        import sqlalchemy as sa

        leases = self.t["leases"]
        held = conn.execute(
            sa.update(leases)
            .where(leases.c.day == day, leases.c.owner == owner)
            .values(owner=owner)
        ).rowcount
        if held != 1:
            raise LeaseLost(
                f"{owner} does not hold the lease on {day} in the {self.describe()}: another "
                "run took the day over; nothing was changed"
            )

    # -- batches -------------------------------------------------------------------------------

    def _insert_batch(self, conn: Any, batch: Batch, now: datetime) -> int:
        return conn.execute(
            self._insert_ignore(self.t["batches"]),
            [
                {
                    "batch_id": batch.batch_id,
                    "day": batch.day,
                    "status": PENDING,
                    "object_count": len(batch.objects),
                    "created_at": now,
                    "run_id": batch.run_id,
                }
            ],
        ).rowcount

    def _assign(self, conn: Any, batch: Batch, *, or_already_this: bool = False) -> None:
        """Points the batch's (version, day) pairs at it, guarded: only pairs in no batch (or,
        with `or_already_this`, in this one). Raises, rolling the transaction back, when any
        pair belongs to another batch: a pair is never re-pointed."""
        import sqlalchemy as sa

        od = self.t["object_days"]
        unassigned = od.c.batch_id.is_(None)
        if or_already_this:
            unassigned = sa.or_(unassigned, od.c.batch_id == batch.batch_id)
        assigned = 0
        for chunk in _chunks(batch.objects, 200):
            assigned += conn.execute(
                sa.update(od)
                .where(
                    od.c.day == batch.day,
                    od.c.status == PENDING,
                    unassigned,
                    sa.tuple_(od.c.object_key, od.c.etag).in_([(v.key, v.etag) for v in chunk]),
                )
                .values(batch_id=batch.batch_id)
            ).rowcount
        if assigned != len(batch.objects):
            raise RuntimeError(
                f"batch {batch.batch_id}: {len(batch.objects) - assigned} of its "
                f"{len(batch.objects)} objects already belong to another batch or are curated "
                f"in the {self.describe()}; nothing was assigned"
            )

    def claim_batch(
        self,
        day: str,
        owner: str,
        max_objects: int | None = None,
        now: datetime | None = None,
        *,
        unless_pending: bool = False,
        take_failed: bool = False,
        run_id: str | None = None,
    ) -> Batch | None:
        """Puts the day's first `max_objects` unassigned pending (version, day) pairs into a new
        batch, in one transaction under `owner`'s lease on the day (`LeaseLost` otherwise).
        None when there is nothing to claim, or, with `unless_pending`, when a batch of the day
        is still pending (it holds the day until it is curated or failed). With `take_failed`
        (a run of the day started by hand) the objects of the day's failed batches are claimed
        too and those batches are superseded; a pending batch's objects are never taken.
        `run_id` records the run that claims it, so the sensor can tell when that run died."""
        import sqlalchemy as sa

        od, b = self.t["object_days"], self.t["batches"]
        now = now or datetime.now(UTC)
        with self.engine.begin() as conn:
            self._hold(conn, day, owner)
            if (
                unless_pending
                and conn.execute(
                    sa.select(b.c.batch_id).where(b.c.day == day, b.c.status == PENDING).limit(1)
                ).first()
            ):
                return None
            if take_failed:
                failed = sa.select(b.c.batch_id).where(b.c.day == day, b.c.status == FAILED)
                conn.execute(
                    sa.update(od)
                    .where(od.c.day == day, od.c.status == PENDING, od.c.batch_id.in_(failed))
                    .values(batch_id=None)
                )
                conn.execute(
                    sa.update(b)
                    .where(b.c.day == day, b.c.status == FAILED)
                    .values(status=SUPERSEDED)
                )
            query = (
                sa.select(od.c.object_key, od.c.etag)
                .where(od.c.day == day, od.c.status == PENDING, od.c.batch_id.is_(None))
                .order_by(od.c.object_key, od.c.etag)
            )
            if max_objects is not None:
                query = query.limit(max_objects)
            versions = [ObjectVersion(k, e) for k, e in conn.execute(query)]
            if not versions:
                return None
            batch = Batch(batch_id_for(day, versions), day, versions, created_at=now, run_id=run_id)
            # The same objects as a batch that failed: the same batch again (same output keys).
            revived = conn.execute(
                sa.update(b)
                .where(b.c.batch_id == batch.batch_id, b.c.status == SUPERSEDED)
                .values(status=PENDING, run_id=run_id)
            ).rowcount
            if not revived and self._insert_batch(conn, batch, now) != 1:
                raise RuntimeError(
                    f"batch {batch.batch_id} is already in the {self.describe()} but its "
                    "objects are not assigned to it; nothing was claimed"
                )
            self._assign(conn, batch)
        return batch

    def assign_batches(
        self,
        max_objects: int,
        max_batches: int,
        latest_day: str | None = None,
        *,
        owner: str | None = None,
        ttl: timedelta = LEASE_TTL,
        now: datetime | None = None,
    ) -> list[Batch]:
        """The landing sensor's step: for each day with unassigned pending pairs and no pending
        batch, oldest first, at most `max_batches` days, takes the day's lease, claims one batch
        of at most `max_objects` objects and gives the lease back. A day a run is curating (its
        lease is taken) waits for a later tick. Days after `latest_day` (their partition does
        not exist yet) wait too."""
        import sqlalchemy as sa

        od, b = self.t["object_days"], self.t["batches"]
        open_days = sa.select(b.c.day).where(b.c.status == PENDING)
        with self.engine.connect() as conn:
            days = list(
                conn.execute(
                    sa.select(od.c.day)
                    .where(
                        od.c.status == PENDING,
                        od.c.batch_id.is_(None),
                        od.c.day <= (latest_day or "9999-12-31"),
                        od.c.day.not_in(open_days),
                    )
                    .group_by(od.c.day)
                    .order_by(od.c.day)
                    .limit(max_batches)
                ).scalars()
            )
        owner = owner or f"landing-sensor-{uuid.uuid4().hex[:12]}"
        batches: list[Batch] = []
        for day in days:
            # The lease runs on the real clock whatever `now` says: it orders real runs.
            if not self.acquire_lease(day, owner, ttl):
                continue
            try:
                batch = self.claim_batch(day, owner, max_objects, now, unless_pending=True)
            finally:
                self.release_lease(day, owner)
            if batch is not None:
                batches.append(batch)
        return batches

    def save_batches(self, batches: Sequence[Batch]) -> None:
        """Creates batches of a given content (idempotent) and assigns their (version, day)
        pairs to them; refuses (and changes nothing) when a pair is in another batch. For
        tests and benchmarks that build a batch by hand; runs and the sensor use
        `claim_batch`."""
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
                self._assign(conn, batch, or_already_this=True)

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
            row["run_id"],
        )

    def _batches(self, status: str, limit: int) -> list[Batch]:
        import sqlalchemy as sa

        b = self.t["batches"]
        with self.engine.connect() as conn:
            ids = list(
                conn.execute(
                    sa.select(b.c.batch_id)
                    .where(b.c.status == status)
                    .order_by(b.c.created_at, b.c.batch_id)
                    .limit(limit)
                ).scalars()
            )
        return [batch for batch in (self.batch(i) for i in ids) if batch is not None]

    def open_batches(self, limit: int = 100) -> list[Batch]:
        """Batches created but neither curated nor failed, oldest first."""
        return self._batches(PENDING, limit)

    def failed_batches(self, limit: int = 100) -> list[Batch]:
        """Batches whose run failed, oldest first: they wait for their run to be re-executed."""
        return self._batches(FAILED, limit)

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

    def finish_batch(
        self, batch_id: str, run_id: str, stats: dict[str, int], *, lease_owner: str | None = None
    ) -> bool:
        """Marks the batch and its (version, day) pairs curated, with the batch's counts. With
        `lease_owner`, only while that owner holds the day's lease (`LeaseLost` otherwise).
        False, changing nothing, when the batch was already curated: its counts are recorded
        once, by the run that curated it first."""
        import sqlalchemy as sa

        b, od = self.t["batches"], self.t["object_days"]
        now = datetime.now(UTC)
        with self.engine.connect() as conn:
            batch_day = conn.execute(
                sa.select(b.c.day).where(b.c.batch_id == batch_id)
            ).scalar_one_or_none()
        if batch_day is None:
            raise KeyError(f"batch {batch_id!r} is not in the {self.describe()}")
        with self.engine.begin() as conn:
            if lease_owner is not None:
                self._hold(conn, batch_day, lease_owner)
            finished = conn.execute(
                sa.update(b)
                .where(b.c.batch_id == batch_id, b.c.status != CURATED)
                .values(
                    status=CURATED,
                    run_id=run_id,
                    finished_at=now,
                    rows_read=stats["rows_read"],
                    rows_curated=stats["rows_curated"],
                    rows_quarantined=stats["rows_quarantined"],
                    duplicates_dropped=stats["duplicates_dropped"],
                )
            ).rowcount
            if finished != 1:
                return False
            conn.execute(
                sa.update(od)
                .where(od.c.batch_id == batch_id, od.c.day == batch_day)
                .values(status=CURATED, curated_at=now)
            )
        return True

    def mark_failed(self, batch_ids: Collection[str]) -> int:
        """Pending batches whose run failed stop holding their day; returns how many changed."""
        import sqlalchemy as sa

        if not batch_ids:
            return 0
        b = self.t["batches"]
        with self.engine.begin() as conn:
            return conn.execute(
                sa.update(b)
                .where(b.c.batch_id.in_(sorted(batch_ids)), b.c.status == PENDING)
                .values(status=FAILED)
            ).rowcount

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


class DayLease:
    """Holds a day's lease for a `with` block: waits up to `wait` for it, renews it in a thread
    every third of `ttl` while the block runs, gives it back at the end. `confirm()` before an
    irreversible step (publishing) proves the lease is still held."""

    def __init__(
        self,
        store: LedgerStore,
        day: str,
        owner: str,
        *,
        ttl: timedelta = LEASE_TTL,
        wait: timedelta = LEASE_WAIT,
        poll_seconds: float = 1.0,
    ):
        self.store, self.day, self.owner = store, day, owner
        self.ttl, self.wait, self.poll_seconds = ttl, wait, poll_seconds
        self._stop = threading.Event()
        self._lost = False
        self._renewer: threading.Thread | None = None

    def __enter__(self) -> "DayLease":
        deadline = time.monotonic() + self.wait.total_seconds()
        while not self.store.acquire_lease(self.day, self.owner, self.ttl):
            if time.monotonic() >= deadline:
                holder = self.store.lease_holder(self.day)
                who = f"{holder[0]} (lease until {holder[1]:%H:%M:%S} UTC)" if holder else "?"
                raise LeaseHeld(
                    f"{self.day} is being curated by {who} in the {self.store.describe()}; "
                    f"waited {self.wait} for it. Re-run once that run has finished"
                )
            time.sleep(self.poll_seconds)
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{self.day}", daemon=True)
        self._renewer.start()
        return self

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl.total_seconds() / 3):
            try:
                held = self.store.renew_lease(self.day, self.owner, self.ttl)
            except Exception:  # noqa: S112 - a database hiccup: the next renewal tries again
                continue
            if not held:
                self._lost = True
                return

    def confirm(self) -> None:
        """Raises `LeaseLost` unless the lease is still this owner's (and renews it)."""
        if self._lost or not self.store.renew_lease(self.day, self.owner, self.ttl):
            self._lost = True
            raise LeaseLost(
                f"the lease on {self.day} expired and was taken over while {self.owner} "
                "worked: nothing was published; re-run the day"
            )

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
        if not self._lost:
            self.store.release_lease(self.day, self.owner)


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
