"""Sealing: encryption at rest for everything that leaves the cluster, in bounded memory.

A sealed object is a header and a sequence of AES-256-GCM chunks (the STREAM construction that
`age` and Tink use): each chunk has its own nonce (a counter and a last-chunk flag), and the
header is the associated data of every chunk. So a flipped byte fails that chunk's tag, chunks
cannot be reordered or spliced from another object, and a stream cut at any point — even at a
chunk boundary — fails because its last chunk is not marked last. Memory is one chunk each way.

    header = MAGIC (8) | key id (8) | salt (16) | chunk size (4, big-endian)
    chunk  = AES-256-GCM(file key, nonce = counter (11) | last (1), plaintext <= chunk size)

The file key is HKDF-SHA256(backup key, salt): a fresh key per object, so nonces never repeat
under one key however many objects are sealed. The key id (from the backup key) lets a wrong key
say so instead of looking like tampering.

The backup key is 32 random bytes, base64 in one environment variable (`PICLUSTER_BACKUP_KEY`),
never stored beside the backups: see docs/backups.md.
"""

import base64
import binascii
import hashlib
import hmac
import os
import struct
from collections.abc import Iterable, Iterator

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"PICLBK1\n"
HEADER = struct.Struct(">8s8s16sI")
TAG_SIZE = 16
DEFAULT_CHUNK_SIZE = 1 << 20  # 1 MiB: a Pi seals it in well under a millisecond
MAX_CHUNK_SIZE = 16 << 20  # a header asking for more is not ours (or is tampered)
_LAST = 1
_MAX_CHUNKS = 1 << 88  # the 11-byte counter


class SealError(ValueError):
    """A sealed object cannot be opened: tampered, truncated, not sealed, or sealed with another
    key. The message names the object; it never contains key material."""


class BackupKey:
    """The backup key, checked for form; `repr` never shows it."""

    def __init__(self, encoded: str, variable: str = "PICLUSTER_BACKUP_KEY"):
        self.variable = variable
        try:
            raw = base64.b64decode(encoded.strip(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 32:
            raise SealError(
                f"{variable} is not a backup key: expected 32 random bytes in base64 (make one "
                "with `python -m platform_assets.backups.sealing keygen`)"
            )
        self._raw = raw
        self.key_id = hmac.new(raw, b"piclusterops backup key id", hashlib.sha256).digest()[:8]

    def __repr__(self) -> str:
        return f"BackupKey(id={self.key_id.hex()})"

    def file_key(self, salt: bytes) -> bytes:
        return HKDF(
            algorithm=hashes.SHA256(), length=32, salt=salt, info=b"piclusterops backup v1"
        ).derive(self._raw)

    def name_for(self, text: str) -> str:
        """A stable name for `text` that does not reveal it (mirror blob names)."""
        mac_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"piclusterops mirror names"
        ).derive(self._raw)
        return hmac.new(mac_key, text.encode(), hashlib.sha256).hexdigest()


def generate_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def _nonce(counter: int, last: bool) -> bytes:
    if counter >= _MAX_CHUNKS:
        raise SealError("object too large to seal")
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def rechunk(data: Iterable[bytes], size: int) -> Iterator[bytes]:
    """Pieces of exactly `size` bytes (the last may be shorter, never empty unless all is)."""
    buffer = bytearray()
    for piece in data:
        if not buffer and len(piece) == size:
            yield piece  # the common case (a reader of `size` blocks): no copy
            continue
        buffer += piece
        while len(buffer) >= size:
            with memoryview(buffer) as view:
                out = bytes(view[:size])
            del buffer[:size]
            yield out
    yield bytes(buffer)


def seal(plaintext: Iterable[bytes], key: BackupKey, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Yields the sealed form of `plaintext` (any iterable of byte strings), chunk by chunk."""
    salt = os.urandom(16)
    header = HEADER.pack(MAGIC, key.key_id, salt, chunk_size)
    aead = AESGCM(key.file_key(salt))
    yield header
    pending: bytes | None = None
    counter = 0
    for piece in rechunk(plaintext, chunk_size):
        if pending is not None:
            yield aead.encrypt(_nonce(counter, False), pending, header)
            counter += 1
        pending = piece
    yield aead.encrypt(_nonce(counter, True), pending or b"", header)


def unseal(sealed: Iterable[bytes], key: BackupKey, name: str) -> Iterator[bytes]:
    """Yields the plaintext of a sealed object, verified chunk by chunk. Raises `SealError`
    naming `name` (and the chunk) on any tampering or truncation, and before yielding anything
    of a chunk that fails: a consumer never sees unauthenticated bytes."""
    pieces = iter(sealed)
    buffer = bytearray()

    def fill(n: int) -> bool:
        while len(buffer) < n:
            piece = next(pieces, None)
            if piece is None:
                return False
            buffer.extend(piece)
        return True

    fill(HEADER.size)
    if len(buffer) < HEADER.size or bytes(buffer[:8]) != MAGIC:
        raise SealError(
            f"{name}: not a sealed backup (no PiClusterOps header); it is truncated or was "
            "not written by the backups"
        )
    header = bytes(buffer[: HEADER.size])
    _, key_id, salt, chunk_size = HEADER.unpack(header)
    del buffer[: HEADER.size]
    if key_id != key.key_id:
        raise SealError(
            f"{name}: sealed with another backup key (key id {key_id.hex()}, the key in "
            f"{key.variable} has id {key.key_id.hex()})"
        )
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise SealError(f"{name}: header is damaged (chunk size {chunk_size})")
    aead = AESGCM(key.file_key(salt))
    sealed_size = chunk_size + TAG_SIZE
    counter = 0
    while True:
        # A chunk is the last one when nothing follows it; look one byte past it to know.
        more = fill(sealed_size + 1)
        with memoryview(buffer) as view:
            chunk = bytes(view[:sealed_size]) if more else bytes(view)
        del buffer[: len(chunk)]
        try:
            plain = aead.decrypt(_nonce(counter, not more), chunk, header)
        except InvalidTag:
            raise SealError(
                f"{name}: chunk {counter} (bytes {HEADER.size + counter * sealed_size}-"
                f"{HEADER.size + counter * sealed_size + len(chunk)}) failed authentication: "
                "the object is tampered with or truncated"
            ) from None
        yield plain
        if not more:
            return
        counter += 1


def main(argv: list[str]) -> int:
    """`keygen` prints a new key; `seal`/`unseal` filter stdin to stdout with the key from
    $PICLUSTER_BACKUP_KEY (restoring by hand, see docs/backups.md)."""
    import sys

    if argv == ["keygen"]:
        print(generate_key())
        return 0
    if argv not in (["seal"], ["unseal"]):
        print(
            "usage: python -m platform_assets.backups.sealing keygen|seal|unseal", file=sys.stderr
        )
        return 2
    encoded = os.environ.get("PICLUSTER_BACKUP_KEY", "")
    try:
        key = BackupKey(encoded)
        source = iter(lambda: sys.stdin.buffer.read(DEFAULT_CHUNK_SIZE), b"")
        out = seal(source, key) if argv == ["seal"] else unseal(source, key, "stdin")
        for piece in out:
            sys.stdout.buffer.write(piece)
    except SealError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
