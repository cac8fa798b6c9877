"""The object store: a folder on the local profile, an S3-API bucket (MinIO SDK) on the cluster.

Both backends offer the same small interface, in the shape of the S3 API the cluster speaks:
`put`, `get`, `stat`, `list` (in key order, with `start_after`), `delete`, and `table_location`
(the URI a warehouse reads a prefix from). Keys are `/`-separated, never start with `/`.

The local etag is the MD5 of the content, like S3's etag of a single-part upload, so re-writing the
same bytes is recognisably the same object on both backends.
"""

import contextlib
import hashlib
import os
import re
import stat
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import dagster as dg
from pydantic import PrivateAttr


class ObjectInfo(NamedTuple):
    key: str
    size: int
    etag: str
    last_modified: datetime  # timezone-aware, UTC


class ObjectNotFound(KeyError):
    """The key does not exist in the store; the message names the key and the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "object not found"


# A file name that is not UTF-8 (a folder filled by hand on an old system) cannot be an S3 key;
# the folder store names it with its odd bytes as `\xNN`, the way quarantine shows raw bytes.
_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


def _key_for(name: str) -> str:
    try:
        name.encode()
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


class ObjectStoreError(RuntimeError):
    """The store refused or could not be reached; the message names the store (bucket and
    endpoint), the operation and what to check, never a credential."""


# S3 error codes that mean the credentials are wrong, not the request.
_CREDENTIAL_CODES = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "AccessDenied", "InvalidToken"}
)


def _check_key(key: str) -> str:
    # A backslash is an ordinary character in S3 keys and POSIX file names.
    if (
        not key
        or key.startswith("/")
        or any(p in ("", ".", "..") for p in key.rstrip("/").split("/"))
    ):
        raise ValueError(
            f"object key {key!r} is not valid: use '/'-separated names without '.', '..' or a "
            "leading '/'"
        )
    return key


class ObjectUnreadable(Exception):
    """The key exists but its content cannot be read (the folder store: no read permission, or
    not a regular file); the message names the key and why."""


class ObjectStore(dg.ConfigurableResource, ABC):
    """An S3-shaped object store. Implementations: `LocalObjectStore`, `S3ObjectStore`."""

    @abstractmethod
    def put(self, key: str, data: bytes) -> ObjectInfo:
        """Writes (or overwrites) one object and returns what was stored."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The object's bytes; raises `ObjectNotFound` naming the key when it is absent."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's info, or None when it does not exist."""

    @abstractmethod
    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        """Objects under `prefix` in key order, strictly after `start_after` when given."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes one object; deleting a missing key is not an error."""

    @abstractmethod
    def table_location(self, prefix: str) -> str:
        """Where a warehouse reads `prefix`: `s3://bucket/prefix` or an absolute folder path."""

    @abstractmethod
    def describe(self) -> str:
        """A short name for messages (`folder /x/y` or `s3 bucket lake at host:port`)."""


class LocalObjectStore(ObjectStore):
    """A folder used as an object store: key `a/b.c` is the file `<root>/a/b.c`.

    Writes go to a temporary file and are renamed into place, so a reader (or a listing) never
    sees half an object. Names starting with `.` are not objects (editors' and our temp files).
    """

    root: str

    _etag_cache: dict = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def _path(self, key: str) -> Path:
        path = Path(self.root) / _check_key(key)
        if "\\x" in key and not path.exists():
            raw = _ESCAPED_BYTE.sub(lambda m: bytes([int(m[1], 16)]), key.encode())
            unescaped = Path(self.root) / os.fsdecode(raw)
            if unescaped.exists():
                return unescaped
        return path

    def describe(self) -> str:
        return f"folder {self.root}"

    def _info(self, key: str, path: Path) -> ObjectInfo | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        modified = datetime.fromtimestamp(st.st_mtime, UTC)
        # A file nobody may read, or a FIFO or device (reading a FIFO would block the listing),
        # is still listed, so whoever reads it can say why it cannot; not cached, so the real
        # etag (a new version) appears as soon as it is fixed.
        unreadable = ObjectInfo(key, st.st_size, f"unreadable-{st.st_mtime_ns}", modified)
        if not stat.S_ISREG(st.st_mode):
            return unreadable
        cache_key = (str(path), st.st_size, st.st_mtime_ns)
        with self._lock:
            etag = self._etag_cache.get(cache_key)
        if etag is None:
            try:
                etag = hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()
            except PermissionError:
                return unreadable
            except FileNotFoundError:  # deleted while we listed
                return None
            with self._lock:
                self._etag_cache[cache_key] = etag
        return ObjectInfo(key, st.st_size, etag, modified)

    def put(self, key: str, data: bytes) -> ObjectInfo:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        info = self._info(key, path)
        assert info is not None
        return info

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            if path.exists() and not path.is_file() and not path.is_dir():
                raise ObjectUnreadable(
                    f"object {key!r} in {self.describe()} is not a regular file (a FIFO, socket "
                    "or device); replace it with the file's content"
                )
            return path.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"object {key!r} not found in {self.describe()}") from None
        except PermissionError:
            raise ObjectUnreadable(
                f"object {key!r} in {self.describe()} cannot be read: permission denied for "
                f"the user running Dagster; fix the file's permissions"
            ) from None

    def stat(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        return self._info(key, path) if path.is_file() else None

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        # Walk only the folder the prefix names, lazily, in S3's key order, skipping whole
        # folders before `start_after`: a paged listing of a large store reads only its page.
        base_dir = prefix.rpartition("/")[0]
        start = Path(self.root) / base_dir if base_dir else Path(self.root)
        if start.is_dir():
            yield from self._walk(start, base_dir, prefix, start_after)

    def _walk(
        self, folder: Path, rel: str, prefix: str, start_after: str | None
    ) -> Iterator[ObjectInfo]:
        entries = []
        try:
            with os.scandir(folder) as found:
                for entry in found:
                    if entry.name.startswith("."):
                        continue
                    key = _key_for(f"{rel}/{entry.name}" if rel else entry.name)
                    is_dir = entry.is_dir()
                    if is_dir and entry.is_symlink():
                        continue  # not followed, as a bucket has no links
                    # Every key in a folder starts with "<folder>/": it sorts as that. S3 orders
                    # keys by their bytes, not as a directory walk would ('a-b' < 'a/b').
                    entries.append(((key + "/" if is_dir else key).encode(), key, is_dir, entry))
        except FileNotFoundError:  # removed while we listed
            return
        entries.sort(key=lambda e: e[0])
        for _, key, is_dir, entry in entries:
            if is_dir:
                below = key + "/"
                if not (below.startswith(prefix) or prefix.startswith(below)):
                    continue
                if (
                    start_after is not None
                    and start_after > below
                    and not start_after.startswith(below)
                ):
                    continue  # every key below sorts before start_after
                yield from self._walk(Path(entry.path), key, prefix, start_after)
            elif key.startswith(prefix) and (start_after is None or key > start_after):
                info = self._info(key, Path(entry.path))
                if info is not None:  # deleted while we listed
                    yield info

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def table_location(self, prefix: str) -> str:
        location = str((Path(self.root) / prefix).resolve())
        return location + "/" if prefix.endswith("/") else location


class S3ObjectStore(ObjectStore):
    """A bucket on any server speaking the S3 API (SeaweedFS on the cluster), via the MinIO SDK."""

    endpoint: str  # host:port, no scheme
    access_key: str
    secret_key: str
    bucket: str
    secure: bool = True
    region: str = "us-east-1"

    _client: Any = PrivateAttr(default=None)

    def describe(self) -> str:
        return f"s3 bucket {self.bucket} at {self.endpoint}"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turns the SDK's errors into an `ObjectStoreError` that says which store refused:
        minio's own messages name the bucket but not the endpoint."""
        from minio.error import MinioException, S3Error
        from urllib3.exceptions import HTTPError

        where = f"{self.describe()}: {action} failed"
        try:
            yield
        except S3Error as exc:
            hint = (
                "; check the access and secret key (PICLUSTER_S3_ACCESS_KEY, "
                "PICLUSTER_S3_SECRET_KEY)"
                if exc.code in _CREDENTIAL_CODES
                else ""
            )
            raise ObjectStoreError(f"{where}: {exc.code}: {exc.message}{hint}") from exc
        except (HTTPError, MinioException) as exc:
            raise ObjectStoreError(f"{where}: cannot reach it: {exc}") from exc

    @property
    def client(self) -> Any:
        if self._client is None:
            from minio import Minio

            self._client = Minio(
                self.endpoint,
                access_key=self.access_key,
                secret_key=self.secret_key,
                secure=self.secure,
                region=self.region,
            )
        return self._client

    def put(self, key: str, data: bytes) -> ObjectInfo:
        import io

        _check_key(key)
        with self._errors(f"put {key!r}"):
            result = self.client.put_object(self.bucket, key, io.BytesIO(data), len(data))
        return ObjectInfo(key, len(data), (result.etag or "").strip('"'), datetime.now(UTC))

    def get(self, key: str) -> bytes:
        from minio.error import S3Error

        with self._errors(f"get {key!r}"):
            try:
                response = self.client.get_object(self.bucket, _check_key(key))
            except S3Error as exc:
                if exc.code == "NoSuchKey":
                    raise ObjectNotFound(f"object {key!r} not found in {self.describe()}") from None
                raise
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def stat(self, key: str) -> ObjectInfo | None:
        from minio.error import S3Error

        with self._errors(f"stat {key!r}"):
            try:
                st = self.client.stat_object(self.bucket, _check_key(key))
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    return None
                raise
        return ObjectInfo(key, st.size, (st.etag or "").strip('"'), st.last_modified)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        listing = self.client.list_objects(
            self.bucket, prefix=prefix, recursive=True, start_after=start_after
        )
        while True:
            # Only the SDK's calls are wrapped: an error the caller raises into this generator
            # is not the store's.
            with self._errors(f"list {prefix!r}"):
                obj = next(listing, None)
            if obj is None:
                return
            if obj.is_dir:
                continue
            yield ObjectInfo(
                obj.object_name, obj.size or 0, (obj.etag or "").strip('"'), obj.last_modified
            )

    def delete(self, key: str) -> None:
        _check_key(key)
        with self._errors(f"delete {key!r}"):
            self.client.remove_object(self.bucket, key)

    def table_location(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}"


def s3_object_store(s3: Any) -> "S3ObjectStore":
    """An S3 store for `S3Settings`; its keys reach it only through `dg.EnvVar`."""
    return S3ObjectStore(
        endpoint=s3.endpoint,
        access_key=dg.EnvVar(s3.access_key_var),
        secret_key=dg.EnvVar(s3.secret_key_var),
        bucket=s3.bucket,
        secure=s3.secure,
        region=s3.region,
    )


def object_store_for(settings: Any) -> ObjectStore:
    """The object store of the active profile; secrets reach it only through `dg.EnvVar`."""
    if settings.is_cluster:
        return s3_object_store(settings.s3)
    return LocalObjectStore(root=str(settings.object_store_root))
