"""The object store's mirror off the cluster: incremental, sealed, verified, kept by day.

The mirror copies whole buckets of the cluster's object store (layout.MIRRORED_BUCKETS). Each
night's mirror is an index (every mirrored key, `<bucket>/<key>` as the object store names it ->
the version copied, its sha256 and the blob holding it) plus the blobs it names. A key whose
version (etag and size) is in the previous index is carried over without reading it; a new or
changed one is read once from the cluster, hashed and sealed on the way, and written as a new
blob. A blob is named after the key and the version through a keyed hash, so the mirror reveals
neither. A key deleted on the cluster simply leaves the new index: its blob stays for as long as
a kept index names it (see retention.py).
"""

import hashlib
import json
import random
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from platform_assets.backups.layout import (
    MIRROR_BLOB_PREFIX,
    MIRROR_INDEX_PREFIX,
    is_day,
    mirror_blob_key,
    mirror_index_key,
    mirror_verified_key,
)
from platform_assets.backups.sealing import BackupKey, SealError, seal, unseal
from platform_assets.backups.streams import open_stream, put_stream
from resources.object_store import ObjectInfo, ObjectNotFound, ObjectStore

DEFAULT_WORKERS = 4  # copies in flight: the NAS round trip, not the CPU, bounds a small object
DEFAULT_SAMPLE = 64


@dataclass(frozen=True)
class MirrorEntry:
    key: str
    etag: str
    size: int
    sha256: str
    blob: str
    day: str  # the night this version was first copied


@dataclass
class MirrorResult:
    day: str
    base_day: str | None
    entries: dict[str, MirrorEntry]
    copied: list[str] = field(default_factory=list)
    carried: int = 0
    deleted: list[str] = field(default_factory=list)  # on the cluster since the base index
    vanished: list[str] = field(default_factory=list)  # listed, then gone before the copy
    bytes_copied: int = 0

    @property
    def total_bytes(self) -> int:
        return sum(e.size for e in self.entries.values())


@dataclass
class MirrorVerification:
    day: str
    objects: int
    sampled: list[str]
    problems: list[str]

    @property
    def passed(self) -> bool:
        return not self.problems


def index_days(mirror: ObjectStore) -> list[str]:
    days = []
    for info in mirror.list(MIRROR_INDEX_PREFIX):
        name = info.key[len(MIRROR_INDEX_PREFIX) :]
        if name.endswith(".sealed") and is_day(name[: -len(".sealed")]):
            days.append(name[: -len(".sealed")])
    return sorted(days)


def _hashed(pieces: Iterable[bytes], digest) -> Iterator[bytes]:
    for piece in pieces:
        digest.update(piece)
        yield piece


def load_index(mirror: ObjectStore, key: BackupKey, day: str) -> dict[str, MirrorEntry]:
    """The index of one night; raises `SealError` naming it if it is damaged."""
    index_key = mirror_index_key(day)
    with open_stream(mirror, index_key) as pieces:
        text = b"".join(unseal(pieces, key, f"{mirror.describe()}: {index_key}"))
    try:
        data = json.loads(text)
        return {row[0]: MirrorEntry(*row) for row in data["objects"]}
    except (ValueError, KeyError, TypeError) as exc:
        raise SealError(f"{mirror.describe()}: {index_key} is not a mirror index: {exc}") from None


def write_index(mirror: ObjectStore, key: BackupKey, day: str, entries: dict[str, MirrorEntry]):
    # Rows in MirrorEntry's field order (dataclasses.asdict is slow on 10,000 entries).
    rows = [[e.key, e.etag, e.size, e.sha256, e.blob, e.day] for _, e in sorted(entries.items())]
    text = json.dumps({"day": day, "objects": rows}, separators=(",", ":")).encode()
    return put_stream(mirror, mirror_index_key(day), seal([text], key))


def _bucket_prefixes(store: ObjectStore, buckets: Sequence[str]) -> list[str]:
    unknown = [b for b in buckets if b not in store.bucket_names()]
    if unknown:
        raise ValueError(
            f"bucket(s) {', '.join(unknown)} not in {store.describe()}; its buckets: "
            f"{', '.join(store.bucket_names())}"
        )
    return [f"{b}/" for b in buckets]


def mirror_objects(
    source: ObjectStore,
    mirror: ObjectStore,
    key: BackupKey,
    day: str,
    buckets: Sequence[str],
    workers: int = DEFAULT_WORKERS,
) -> MirrorResult:
    """Mirrors every object of `buckets` (their roles: `landing`, ...) of `source` into
    `mirror` as the index of `day`."""
    prefixes = _bucket_prefixes(source, buckets)
    # Re-running a night replaces its index, so its old verification no longer holds.
    mirror.delete(mirror_verified_key(day))
    earlier = [d for d in index_days(mirror) if d <= day]
    base_day = earlier[-1] if earlier else None
    base = load_index(mirror, key, base_day) if base_day else {}
    result = MirrorResult(day, base_day, {})
    to_copy: list[ObjectInfo] = []
    for prefix in prefixes:
        for info in source.list(prefix):
            known = base.get(info.key)
            if known is not None and known.etag == info.etag and known.size == info.size:
                result.entries[info.key] = known
                result.carried += 1
            else:
                to_copy.append(info)

    def copy(info: ObjectInfo) -> MirrorEntry | None:
        blob = key.name_for(f"{info.key}\0{info.etag}\0{info.size}")
        digest = hashlib.sha256()
        try:
            with open_stream(source, info.key) as pieces:
                put_stream(mirror, mirror_blob_key(blob), seal(_hashed(pieces, digest), key))
        except ObjectNotFound:
            return None
        return MirrorEntry(info.key, info.etag, info.size, digest.hexdigest(), blob, day)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for info, entry in zip(to_copy, pool.map(copy, to_copy), strict=True):
            if entry is None:
                result.vanished.append(info.key)
                continue
            result.entries[info.key] = entry
            result.copied.append(info.key)
            result.bytes_copied += entry.size
    result.deleted = sorted(
        k for k in base.keys() - result.entries.keys() if k not in result.vanished
    )
    write_index(mirror, key, day, result.entries)
    return result


def verify_mirror(
    mirror: ObjectStore,
    key: BackupKey,
    day: str,
    sample_size: int = DEFAULT_SAMPLE,
    rng: random.Random | None = None,
) -> MirrorVerification:
    """Re-reads the night's index, checks every blob it names exists, and re-reads a sample of
    them (the ones first copied that night first), unsealing and checksumming each. Every
    problem names the blob and the key it mirrors."""
    rng = rng or random.SystemRandom()
    index_key = mirror_index_key(day)
    try:
        entries = load_index(mirror, key, day)
    except ObjectNotFound:
        return MirrorVerification(day, 0, [], [f"{mirror.describe()}: no index {index_key}"])
    except SealError as exc:
        return MirrorVerification(day, 0, [], [str(exc)])
    present = {info.key for info in mirror.list(MIRROR_BLOB_PREFIX)}
    problems = [
        f"{mirror.describe()}: {mirror_blob_key(e.blob)} (mirror of {e.key}) is missing"
        for e in entries.values()
        if mirror_blob_key(e.blob) not in present
    ]
    new = [e for e in entries.values() if e.day == day]
    old = [e for e in entries.values() if e.day != day]
    sample = rng.sample(new, min(len(new), max(sample_size // 2, sample_size - len(old))))
    sample += rng.sample(old, min(len(old), sample_size - len(sample)))
    for entry in sample:
        problems.extend(check_blob(mirror, key, entry))
    return MirrorVerification(day, len(entries), [e.key for e in sample], problems)


def check_blob(mirror: ObjectStore, key: BackupKey, entry: MirrorEntry) -> list[str]:
    blob_key = mirror_blob_key(entry.blob)
    name = f"{mirror.describe()}: {blob_key} (mirror of {entry.key})"
    digest = hashlib.sha256()
    size = 0
    try:
        with open_stream(mirror, blob_key) as pieces:
            for piece in unseal(pieces, key, name):
                digest.update(piece)
                size += len(piece)
    except ObjectNotFound:
        return [f"{name} is missing"]
    except SealError as exc:
        return [str(exc)]
    if size != entry.size or digest.hexdigest() != entry.sha256:
        return [
            f"{name}: sha256 {digest.hexdigest()} / {size} bytes, the index says "
            f"{entry.sha256} / {entry.size} bytes"
        ]
    return []


def record_verified(mirror: ObjectStore, verification: MirrorVerification, run_id: str) -> None:
    marker = {
        "day": verification.day,
        "verified_at": datetime.now(UTC).isoformat(),
        "objects": verification.objects,
        "sampled": len(verification.sampled),
        "run_id": run_id,
    }
    mirror.put(mirror_verified_key(verification.day), json.dumps(marker).encode())


def restore_from_mirror(
    mirror: ObjectStore,
    key: BackupKey,
    day: str,
    target: ObjectStore,
    buckets: Sequence[str] | None = None,
    under: Sequence[str] = (),
) -> list[str]:
    """Writes every object of the night's index in `buckets` (roles, e.g. `["landing"]`;
    default every bucket the index holds) back into that bucket of `target` under its own key,
    each verified against the index before it becomes visible. `under` narrows it to keys
    under those prefixes (`backups/etcd/<night>/`). Returns the restored keys
    (`<bucket>/<key>`). A bucket `target` does not have fails before anything is written."""
    entries = sorted(load_index(mirror, key, day).values(), key=lambda e: e.key)
    wanted = (
        tuple(buckets)
        if buckets is not None
        else tuple(dict.fromkeys(e.key.partition("/")[0] for e in entries))
    )
    prefixes = tuple(_bucket_prefixes(target, wanted))
    if under:
        outside = [u for u in under if not u.startswith(prefixes)]
        if outside:
            raise ValueError(f"{', '.join(outside)}: not inside bucket(s) {', '.join(wanted)}")
        prefixes = tuple(under)
    restored = []
    for entry in entries:
        if not entry.key.startswith(prefixes):
            continue
        blob_key = mirror_blob_key(entry.blob)
        name = f"{mirror.describe()}: {blob_key} (mirror of {entry.key})"
        with open_stream(mirror, blob_key) as pieces:
            put_stream(target, entry.key, _verified(unseal(pieces, key, name), entry, name))
        restored.append(entry.key)
    return restored


def _verified(pieces: Iterable[bytes], entry: MirrorEntry, name: str) -> Iterator[bytes]:
    # Raising before the end aborts the write: a bad copy never replaces anything.
    digest = hashlib.sha256()
    yield from _hashed(pieces, digest)
    if digest.hexdigest() != entry.sha256:
        raise SealError(f"{name}: sha256 {digest.hexdigest()} does not match the index's")
