"""What an etcd v3 snapshot file is, read without etcd: the integrity check of `etcd_snapshot`.

A snapshot as `k3s etcd-snapshot save` writes it (etcd's Maintenance.Snapshot stream, like
`etcdctl snapshot save`) is etcd's bbolt database followed by the sha256 of that database
(32 bytes). `etcdutl snapshot status` checks that trailer, the bbolt structure (`tx.Check()`)
and reports the newest revision, the live keys and the storage version; `etcdutl` is not in
the image or on a Pi (K3s does not ship it), so this module does the same reading in Python:

- the trailer: sha256 of everything before it;
- both bbolt meta pages (magic, version, page size, FNV-1a checksum), the newest valid one;
- a walk of every page reachable from the root: each page's type is what its parent says it
  is, inside the file and the high-water mark, and no page is reached twice;
- the `key` bucket's revisions (`<main>_<sub>[t]`) and `mvccpb.KeyValue` values: the newest
  revision and the live keys; the `meta` bucket's `storageVersion`.

It does not check bbolt's freelist against the unreachable pages (etcdutl does); a snapshot that
passes here and fails there would have a consistent tree and a damaged freelist, which a restore
rebuilds. The tests compare these figures with a real `etcdutl snapshot status`.
"""

import hashlib
import mmap
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

TRAILER = 32  # sha256 of the database, appended by etcd's snapshot stream
_MAGIC = 0xED0CDAED
_VERSION = 2
_PAGE_HEADER = struct.Struct("<QHHI")  # id, flags, count, overflow
_META = struct.Struct("<IIIIQQQQQQ")  # magic, version, page size, flags, root, seq, freelist, pgid,
#                                        txid, checksum
_BRANCH_ELEMENT = struct.Struct("<IIQ")  # pos, ksize, pgid
_LEAF_ELEMENT = struct.Struct("<IIII")  # flags, pos, ksize, vsize
_BUCKET = struct.Struct("<QQ")  # root pgid, sequence
_BRANCH, _LEAF, _META_FLAG = 0x01, 0x02, 0x04
_BUCKET_LEAF = 0x01


class SnapshotDamaged(ValueError):
    """The file is not an intact etcd snapshot; the message names it and what is wrong."""


@dataclass(frozen=True)
class SnapshotStatus:
    """What `etcdutl snapshot status` reports, plus the checks behind it."""

    sha256: str  # of the whole file, trailer included (what the manifest records)
    size: int
    db_size: int  # the database, without the trailer
    revision: int
    live_keys: int
    storage_version: str
    buckets: tuple[str, ...]
    pages: int  # pages reached from the root


def _fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, i
        shift += 7


def key_value(data: bytes) -> tuple[bytes, bytes]:
    """(key, value) of an `mvccpb.KeyValue` protobuf (fields 1 and 5; the rest are numbers)."""
    key, value, i = b"", b"", 0
    while i < len(data):
        tag, i = _varint(data, i)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            if i + n > len(data):
                raise ValueError("truncated field")
            if field == 1:
                key = data[i : i + n]
            elif field == 5:
                value = data[i : i + n]
            i += n
        else:
            raise ValueError(f"unexpected wire type {wire}")
    return key, value


class _Bolt:
    def __init__(self, db, name: str):
        self.db = db
        self.name = name
        self.page_size, self.root, self.high_water = self._meta()
        self.seen: set[int] = set()

    def _fail(self, what: str) -> SnapshotDamaged:
        return SnapshotDamaged(f"{self.name}: {what} (not an intact etcd snapshot)")

    def _meta(self) -> tuple[int, int, int]:
        candidates = []
        page_size = 4096
        for page in (0, 1):
            offset = page * page_size + _PAGE_HEADER.size
            raw = bytes(self.db[offset : offset + _META.size])
            if len(raw) < _META.size:
                continue
            fields = _META.unpack(raw)
            magic, version, size, _f, root, _s, _fl, pgid, txid, checksum = fields
            if magic != _MAGIC or version != _VERSION or checksum != _fnv1a64(raw[:-8]):
                continue
            if page == 0:
                page_size = size
            candidates.append((txid, size, root, pgid))
        if not candidates:
            raise self._fail("neither bbolt meta page is valid")
        _txid, size, root, pgid = max(candidates)
        if size < 1024 or size & (size - 1) or len(self.db) % size:
            raise self._fail(f"bbolt page size {size} does not fit a {len(self.db)}-byte database")
        if pgid * size > len(self.db):
            raise self._fail(
                f"the database is {len(self.db)} bytes, its meta page says {pgid * size}: truncated"
            )
        return size, root, pgid

    def page(self, pgid: int, want: int) -> tuple[int, int, int]:
        """(offset, flags, count) of page `pgid`, checked; marks it (and its overflow) seen."""
        if not 2 <= pgid < self.high_water:
            raise self._fail(f"page {pgid} is outside the database (high water {self.high_water})")
        offset = pgid * self.page_size
        pid, flags, count, overflow = _PAGE_HEADER.unpack_from(self.db, offset)
        if pid != pgid or not flags & want:
            raise self._fail(f"page {pgid} has id {pid} and flags {flags:#x}, expected {want:#x}")
        if pgid + overflow >= self.high_water + 1:
            raise self._fail(f"page {pgid} overflows the database")
        for p in range(pgid, pgid + overflow + 1):
            if p in self.seen:
                raise self._fail(f"page {p} is reached twice")
            self.seen.add(p)
        return offset, flags, count

    def items(self, buf, offset: int, flags: int, count: int, end: int) -> Iterator:
        """(flags, key, value) of a page at `offset` in `buf`, recursing through branches."""
        base = offset + _PAGE_HEADER.size
        for n in range(count):
            at = base + n * 16
            if flags & _LEAF:
                eflags, pos, ksize, vsize = _LEAF_ELEMENT.unpack_from(buf, at)
                start = at + pos
                if start + ksize + vsize > end:
                    raise self._fail(f"a leaf element at byte {at} runs past its page")
                yield (
                    eflags,
                    bytes(buf[start : start + ksize]),
                    buf[start + ksize : start + ksize + vsize],
                )
            else:
                _pos, _ksize, child = _BRANCH_ELEMENT.unpack_from(buf, at)
                yield from self.tree(child)

    def tree(self, pgid: int) -> Iterator:
        offset, flags, count = self.page(pgid, _BRANCH | _LEAF)
        overflow = _PAGE_HEADER.unpack_from(self.db, offset)[3]
        yield from self.items(
            self.db, offset, flags, count, offset + (overflow + 1) * self.page_size
        )

    def bucket(self, value) -> Iterator:
        root, _seq = _BUCKET.unpack_from(value, 0)
        if root:
            yield from self.tree(root)
            return
        inline = bytes(value[_BUCKET.size :])  # a small bucket lives in its parent's value
        if len(inline) < _PAGE_HEADER.size:
            raise self._fail("an inline bucket is cut short")
        _id, flags, count, _o = _PAGE_HEADER.unpack_from(inline, 0)
        if not flags & _LEAF:
            raise self._fail("an inline bucket is not a leaf page")
        yield from self.items(inline, 0, flags, count, len(inline))


def read_snapshot(path: Path, name: str, keys: dict | None = None) -> SnapshotStatus:
    """Checks the snapshot at `path` (reported as `name`) and returns its status; fills `keys`
    (when given) with the live keys and their values, as a restore would leave them."""
    size = path.stat().st_size
    if size < TRAILER + 2 * 4096:
        raise SnapshotDamaged(f"{name}: {size} bytes is too short for an etcd snapshot")
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as whole:
        db_size = size - TRAILER
        digest = hashlib.sha256()
        file_digest = hashlib.sha256()
        for start in range(0, db_size, 1 << 20):
            piece = whole[start : min(start + (1 << 20), db_size)]
            digest.update(piece)
            file_digest.update(piece)
        trailer = whole[db_size:]
        file_digest.update(trailer)
        if db_size % 512 or digest.digest() != trailer:
            raise SnapshotDamaged(
                f"{name}: the sha256 at the end of the snapshot does not match its database "
                "(the file is truncated or corrupted)"
            )
        with memoryview(whole) as view:
            db = view[:db_size]
            try:
                status = _walk(_Bolt(db, name), keys)
            finally:
                db.release()
    return SnapshotStatus(file_digest.hexdigest(), size, db_size, *status)


def _walk(bolt: _Bolt, keys: dict | None):
    buckets, revision, storage_version = [], 0, ""
    live: dict[bytes, bytes] = {}
    try:
        for flags, name, value in bolt.tree(bolt.root):
            if not flags & _BUCKET_LEAF:
                raise bolt._fail(f"the root holds a plain key {name!r}, not a bucket")
            buckets.append(name.decode(errors="replace"))
            for _f, k, v in bolt.bucket(value):
                if name == b"key":
                    if len(k) not in (17, 18) or k[8:9] != b"_":
                        raise bolt._fail(f"a revision key {bytes(k)!r} is malformed")
                    revision = struct.unpack(">Q", k[:8])[0]
                    user_key, user_value = key_value(bytes(v))
                    if len(k) == 18:  # a tombstone: deleted at this revision
                        live.pop(user_key, None)
                    else:
                        live[user_key] = user_value
                elif name == b"meta" and k == b"storageVersion":
                    storage_version = bytes(v).decode(errors="replace")
    except (struct.error, ValueError) as exc:
        if isinstance(exc, SnapshotDamaged):
            raise
        raise bolt._fail(f"a page cannot be read: {exc}") from None
    if "key" not in buckets:
        raise bolt._fail("it has no `key` bucket")
    if keys is not None:
        keys.update(live)
    return revision, len(live), storage_version, tuple(buckets), len(bolt.seen)
