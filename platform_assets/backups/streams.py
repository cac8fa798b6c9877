"""Streaming reads and writes on the object store, for objects too big to hold in memory.

`resources.object_store.ObjectStore` moves whole `bytes` (right for landing files and Parquet
batches). A database dump or a mirrored object can be any size, so the backups stream: a write
of unknown length is a multipart upload on S3 (the SDK sends one part at a time) and a temp file
renamed into place in a folder; a read is the response body in chunks.

These two functions belong on `ObjectStore` itself (`put_stream`, `open_stream`); they live here
until that module can take them, and dispatch on its two implementations.
"""

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from resources.object_store import (
    LocalObjectStore,
    ObjectInfo,
    ObjectNotFound,
    ObjectStore,
    S3ObjectStore,
)

READ_CHUNK = 1 << 20
# The part size of a multipart upload: memory held per upload. S3's minimum part is 5 MiB and a
# part count is at most 10,000, so 16 MiB parts take objects up to 156 GiB.
PART_SIZE = 16 << 20


class _IterableReader(io.RawIOBase):
    """A file-like `read(n)` over an iterable of byte strings (what the SDK uploads from)."""

    def __init__(self, pieces: Iterable[bytes]):
        self._pieces = iter(pieces)
        self._buffer = bytearray()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buffer) < n:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._buffer += piece
        if n < 0:
            n = len(self._buffer)
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out


def put_stream(store: ObjectStore, key: str, pieces: Iterable[bytes]) -> ObjectInfo:
    """Writes the concatenation of `pieces` as one object, never holding it whole. Readers see
    either the old object or the complete new one."""
    if isinstance(store, S3ObjectStore):
        return _put_s3(store, key, pieces)
    if isinstance(store, LocalObjectStore):
        return _put_local(store, key, pieces)
    raise TypeError(f"cannot stream to {store.describe()}: unknown object store type")


def _put_s3(store: S3ObjectStore, key: str, pieces: Iterable[bytes]) -> ObjectInfo:
    counted = _Counted(pieces)
    client, bucket, name = store.locate(key)
    with store._errors("put", key):
        result = client.put_object(
            bucket, name, _IterableReader(counted), length=-1, part_size=PART_SIZE
        )
    return ObjectInfo(key, counted.size, (result.etag or "").strip('"'), datetime.now(UTC))


def _put_local(store: LocalObjectStore, key: str, pieces: Iterable[bytes]) -> ObjectInfo:
    path = store._path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    try:
        with os.fdopen(fd, "wb") as f:
            for piece in pieces:
                f.write(piece)
                md5.update(piece)
                size += len(piece)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    mtime = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return ObjectInfo(key, size, md5.hexdigest(), mtime)


class _Counted:
    def __init__(self, pieces: Iterable[bytes]):
        self._pieces = pieces
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            self.size += len(piece)
            yield piece


@contextlib.contextmanager
def open_stream(store: ObjectStore, key: str, chunk: int = READ_CHUNK) -> Iterator[Iterator[bytes]]:
    """`with open_stream(store, key) as pieces:` the object's bytes in chunks of about `chunk`.
    Raises `ObjectNotFound` naming the key when it is absent."""
    if isinstance(store, S3ObjectStore):
        from minio.error import S3Error

        client, bucket, name = store.locate(key)
        with store._errors("get", key):
            try:
                response = client.get_object(bucket, name)
            except S3Error as exc:
                if exc.code == "NoSuchKey":
                    raise ObjectNotFound(
                        f"object {key!r} not found in {store.describe()}"
                    ) from None
                raise
        try:
            yield _s3_pieces(store, key, response, chunk)
        finally:
            response.close()
            response.release_conn()
    elif isinstance(store, LocalObjectStore):
        try:
            f = store._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"object {key!r} not found in {store.describe()}") from None
        with f:
            yield iter(lambda: f.read(chunk), b"")
    else:
        raise TypeError(f"cannot stream from {store.describe()}: unknown object store type")


def _s3_pieces(store: S3ObjectStore, key: str, response, chunk: int) -> Iterator[bytes]:
    # A connection that breaks mid-object is the store's error, named like any other.
    with store._errors("get", key):
        yield from response.stream(chunk)
