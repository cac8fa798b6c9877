"""The object store: a folder on the local profile, the S3-API buckets (MinIO SDK) on the cluster.

Both backends offer the same small interface, in the shape of the S3 API the cluster speaks:
`put`, `get`, `stat`, `list` (in key order, with `start_after`), `delete`, `copy` (within a
bucket, server-side on S3) and `table_location` (the URI a warehouse reads a prefix from).

A key is `<bucket>/<object key>`, the way S3's path-style addresses read: its first segment names
one of the store's buckets by its role (`landing`, `warehouse`, `quarantine`, `backups`, the
buckets the `object_store` release creates; `mirror` for the backups' off-cluster store), the
rest is the object's key in that bucket. On S3 each role maps to the bucket of that name or the
one its setting names (`PICLUSTER_S3_LANDING_BUCKET`, ...); in a folder each bucket is a
directory of that name. A key naming no bucket of the store is refused, on both backends, so a
wrong key fails on a laptop as it would on the cluster. Keys are `/`-separated, never start
with `/`.

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


# The buckets the platform's code uses, by role; their default names on the cluster are the roles
# (the `object_store` release creates them: platform_assets/releases/catalogue.py BUCKETS).
PLATFORM_BUCKETS = ("landing", "warehouse", "quarantine", "backups")


def split_key(key: str) -> tuple[str, str]:
    """`landing/2026-11-24/x.jsonl` -> (`landing`, `2026-11-24/x.jsonl`)."""
    bucket, _, rest = key.partition("/")
    return bucket, rest


class UnknownBucket(ValueError):
    """A key or prefix whose first segment names none of the store's buckets."""


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
    def copy(self, source: str, target: str) -> ObjectInfo:
        """Copies one object to another key of the same bucket (S3: a server-side copy, the
        bytes never leave the store); raises `ObjectNotFound` when `source` is absent."""

    @abstractmethod
    def table_location(self, prefix: str) -> str:
        """Where a warehouse reads `prefix`: `s3://bucket/prefix` or an absolute folder path."""

    @abstractmethod
    def describe(self) -> str:
        """A short name for messages (`folder /x/y` or `s3 buckets landing, ... at host:port`)."""

    @abstractmethod
    def bucket_names(self) -> tuple[str, ...]:
        """The roles of the buckets this store holds (the first segment of its keys)."""

    def _bucket_of(self, key: str, what: str = "object key") -> tuple[str, str]:
        bucket, rest = split_key(key)
        if bucket not in self.bucket_names():
            raise UnknownBucket(
                f"{what} {key!r} names no bucket of {self.describe()}: a key starts with one "
                f"of {', '.join(f'{b}/' for b in self.bucket_names())}"
            )
        return bucket, rest


class LocalObjectStore(ObjectStore):
    """A folder used as an object store: key `landing/b.c` is the file `<root>/landing/b.c`, one
    directory per bucket.

    Writes go to a temporary file and are renamed into place, so a reader (or a listing) never
    sees half an object. Names starting with `.` are not objects (editors' and our temp files).
    """

    root: str
    buckets: list[str] = list(PLATFORM_BUCKETS)

    _etag_cache: dict = PrivateAttr(default_factory=dict)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)

    def bucket_names(self) -> tuple[str, ...]:
        return tuple(self.buckets)

    def _path(self, key: str) -> Path:
        self._bucket_of(_check_key(key))
        path = Path(self.root) / key
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
        self._bucket_of(prefix, "prefix")
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

    def copy(self, source: str, target: str) -> ObjectInfo:
        if split_key(source)[0] != split_key(target)[0]:
            raise ValueError(f"copy {source!r} to {target!r}: both keys must be in one bucket")
        return self.put(target, self.get(source))

    def table_location(self, prefix: str) -> str:
        self._bucket_of(prefix, "prefix")
        location = str((Path(self.root) / prefix).resolve())
        return location + "/" if prefix.endswith("/") else location


class S3ObjectStore(ObjectStore):
    """Buckets on any server speaking the S3 API (SeaweedFS on the cluster), via the MinIO SDK.

    `buckets` maps each role (a key's first segment) to its bucket's name. The `backups` bucket
    may have its own key pair (`backups_access_key`): the release's `backups` identity, which may
    touch only that bucket; every other bucket uses `access_key`.
    """

    endpoint: str  # host:port, no scheme
    access_key: str
    secret_key: str
    buckets: dict[str, str]
    secure: bool = True
    region: str = "us-east-1"
    backups_access_key: str = ""
    backups_secret_key: str = ""

    _clients: dict = PrivateAttr(default_factory=dict)

    def bucket_names(self) -> tuple[str, ...]:
        return tuple(self.buckets)

    def describe(self) -> str:
        names = list(self.buckets.values())
        return f"s3 bucket{'s' if len(names) > 1 else ''} {', '.join(names)} at {self.endpoint}"

    def locate(self, key: str, what: str = "object key") -> tuple[Any, str, str]:
        """(the SDK client for the key's bucket, the bucket's name, the key in that bucket)."""
        role, rest = self._bucket_of(key, what)
        return self._client(role), self.buckets[role], rest

    @contextlib.contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Turns the SDK's errors into an `ObjectStoreError` that says which bucket refused:
        minio's own messages name the bucket but not the endpoint."""
        from minio.error import MinioException, S3Error
        from urllib3.exceptions import HTTPError

        role = split_key(key)[0]
        where = (
            f"s3 bucket {self.buckets.get(role, role)} at {self.endpoint}: {action} {key!r} failed"
        )
        try:
            yield
        except S3Error as exc:
            variable = "PICLUSTER_S3_BACKUPS" if self._own_keys(role) else "PICLUSTER_S3"
            hint = (
                f"; check the access and secret key ({variable}_ACCESS_KEY, "
                f"{variable}_SECRET_KEY) and that their identity may use this bucket"
                if exc.code in _CREDENTIAL_CODES
                else ""
            )
            raise ObjectStoreError(f"{where}: {exc.code}: {exc.message}{hint}") from exc
        except (HTTPError, MinioException) as exc:
            raise ObjectStoreError(f"{where}: cannot reach it: {exc}") from exc

    def _own_keys(self, role: str) -> bool:
        return role == "backups" and bool(self.backups_access_key)

    def _client(self, role: str) -> Any:
        identity = "backups" if self._own_keys(role) else "default"
        if identity not in self._clients:
            from minio import Minio

            access, secret = (
                (self.backups_access_key, self.backups_secret_key)
                if identity == "backups"
                else (self.access_key, self.secret_key)
            )
            self._clients[identity] = Minio(
                self.endpoint,
                access_key=access,
                secret_key=secret,
                secure=self.secure,
                region=self.region,
            )
        return self._clients[identity]

    def put(self, key: str, data: bytes) -> ObjectInfo:
        import io

        client, bucket, name = self.locate(_check_key(key))
        with self._errors("put", key):
            result = client.put_object(bucket, name, io.BytesIO(data), len(data))
        return ObjectInfo(key, len(data), (result.etag or "").strip('"'), datetime.now(UTC))

    def get(self, key: str) -> bytes:
        from minio.error import S3Error

        client, bucket, name = self.locate(_check_key(key))
        with self._errors("get", key):
            try:
                response = client.get_object(bucket, name)
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

        client, bucket, name = self.locate(_check_key(key))
        with self._errors("stat", key):
            try:
                st = client.stat_object(bucket, name)
            except S3Error as exc:
                if exc.code in ("NoSuchKey", "NoSuchObject", "NotFound"):
                    return None
                raise
        return ObjectInfo(key, st.size, (st.etag or "").strip('"'), st.last_modified)

    def list(self, prefix: str, start_after: str | None = None) -> Iterator[ObjectInfo]:
        client, bucket, name = self.locate(prefix, "prefix")
        role = split_key(prefix)[0]
        if start_after is not None:
            after_role, after = split_key(start_after)
            if after_role != role:
                # Outside the listed bucket: everything or nothing of it sorts after.
                if start_after >= prefix:
                    return
                after = None
        else:
            after = None
        listing = client.list_objects(bucket, prefix=name, recursive=True, start_after=after)
        while True:
            # Only the SDK's calls are wrapped: an error the caller raises into this generator
            # is not the store's.
            with self._errors("list", prefix):
                obj = next(listing, None)
            if obj is None:
                return
            if obj.is_dir:
                continue
            yield ObjectInfo(
                f"{role}/{obj.object_name}",
                obj.size or 0,
                (obj.etag or "").strip('"'),
                obj.last_modified,
            )

    def delete(self, key: str) -> None:
        client, bucket, name = self.locate(_check_key(key))
        with self._errors("delete", key):
            client.remove_object(bucket, name)

    def copy(self, source: str, target: str) -> ObjectInfo:
        from minio.commonconfig import CopySource
        from minio.error import S3Error

        client, bucket, source_name = self.locate(_check_key(source))
        _, target_bucket, target_name = self.locate(_check_key(target))
        if target_bucket != bucket:
            raise ValueError(f"copy {source!r} to {target!r}: both keys must be in one bucket")
        with self._errors(f"copy to {target!r} from", source):
            try:
                client.copy_object(bucket, target_name, CopySource(bucket, source_name))
            except S3Error as exc:
                if exc.code == "NoSuchKey":
                    raise ObjectNotFound(
                        f"object {source!r} not found in {self.describe()}"
                    ) from None
                raise
        info = self.stat(target)
        assert info is not None
        return info

    def table_location(self, prefix: str) -> str:
        _, bucket, name = self.locate(prefix, "prefix")
        return f"s3://{bucket}/{name}"


def s3_object_store(s3: Any) -> "S3ObjectStore":
    """An S3 store for `S3Settings`; its keys reach it only through `dg.EnvVar`."""
    own_backups_keys = s3.backups_access_key_var != s3.access_key_var
    return S3ObjectStore(
        endpoint=s3.endpoint,
        access_key=dg.EnvVar(s3.access_key_var),
        secret_key=dg.EnvVar(s3.secret_key_var),
        buckets=dict(s3.buckets),
        secure=s3.secure,
        region=s3.region,
        backups_access_key=dg.EnvVar(s3.backups_access_key_var) if own_backups_keys else "",
        backups_secret_key=dg.EnvVar(s3.backups_secret_key_var) if own_backups_keys else "",
    )


def object_store_for(settings: Any) -> ObjectStore:
    """The object store of the active profile; secrets reach it only through `dg.EnvVar`."""
    if settings.is_cluster:
        return s3_object_store(settings.s3)
    return LocalObjectStore(root=str(settings.object_store_root))
