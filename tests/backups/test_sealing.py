"""Sealing: chunked AES-GCM round trips in bounded memory; any flipped byte, cut, reordered or
spliced chunk, or wrong key fails naming the object, never showing key material."""

import base64
import os
import tracemalloc

import pytest

from platform_assets.backups.sealing import (
    HEADER,
    TAG_SIZE,
    BackupKey,
    SealError,
    generate_key,
    main,
    seal,
    unseal,
)

CHUNK = 64  # small chunks so every case crosses chunk boundaries


@pytest.fixture(scope="module")
def key() -> BackupKey:
    return BackupKey(generate_key())


def sealed_bytes(data: bytes, key: BackupKey, chunk: int = CHUNK) -> bytes:
    # Feed the plaintext in odd-sized pieces: framing must not depend on how it arrives.
    pieces = [data[i : i + 7] for i in range(0, len(data), 7)]
    return b"".join(seal(pieces, key, chunk))


def opened(sealed: bytes, key: BackupKey, name: str = "obj") -> bytes:
    pieces = [sealed[i : i + 13] for i in range(0, len(sealed), 13)]
    return b"".join(unseal(pieces, key, name))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 5])
def test_round_trip(key, size):
    data = os.urandom(size)
    sealed = sealed_bytes(data, key)
    chunks = size // CHUNK + 1
    assert len(sealed) == HEADER.size + size + chunks * TAG_SIZE
    assert opened(sealed, key) == data


def test_two_seals_of_the_same_bytes_differ(key):
    data = b"same plaintext" * 10
    assert sealed_bytes(data, key) != sealed_bytes(data, key)


def test_every_flipped_byte_fails_naming_the_object(key):
    sealed = sealed_bytes(os.urandom(2 * CHUNK + 10), key)
    for position in range(len(sealed)):
        damaged = bytearray(sealed)
        damaged[position] ^= 0x01
        with pytest.raises(SealError, match="backups/postgres/2026-03-03/ledger.dump"):
            opened(bytes(damaged), key, "backups/postgres/2026-03-03/ledger.dump")


def test_every_truncation_fails_naming_the_object(key):
    # Including the cuts that fall exactly on a chunk boundary, which a per-chunk tag alone
    # would not catch.
    sealed = sealed_bytes(os.urandom(3 * CHUNK), key)
    for length in range(len(sealed)):
        with pytest.raises(SealError, match="mirror/blobs/abc"):
            opened(sealed[:length], key, "mirror/blobs/abc")


def test_trailing_bytes_fail(key):
    sealed = sealed_bytes(os.urandom(CHUNK + 3), key)
    with pytest.raises(SealError, match="x.dump"):
        opened(sealed + b"\0", key, "x.dump")


def test_reordered_or_spliced_chunks_fail(key):
    data = os.urandom(3 * CHUNK)
    sealed = sealed_bytes(data, key)
    size = CHUNK + TAG_SIZE
    body = sealed[HEADER.size :]
    chunks = [body[i : i + size] for i in range(0, len(body), size)]
    swapped = sealed[: HEADER.size] + chunks[1] + chunks[0] + b"".join(chunks[2:])
    with pytest.raises(SealError, match="chunk 0"):
        opened(swapped, key)
    other = sealed_bytes(data, key)  # same key, same plaintext, another object
    spliced = sealed[: HEADER.size + size] + other[HEADER.size + size :]
    with pytest.raises(SealError, match="chunk 1"):
        opened(spliced, key)


def test_a_wrong_key_says_so_without_showing_either_key(key):
    other_encoded = generate_key()
    sealed = sealed_bytes(b"data", key)
    with pytest.raises(SealError, match="sealed with another backup key") as err:
        opened(sealed, BackupKey(other_encoded), "obj")
    assert other_encoded not in str(err.value)
    assert base64.b64encode(key._raw).decode() not in str(err.value)


def test_not_sealed_at_all(key):
    with pytest.raises(SealError, match="obj: not a sealed backup"):
        opened(b"PGDMP\x01\x0e\x00 a plain dump", key)


@pytest.mark.parametrize(
    "value", ["", "short", base64.b64encode(os.urandom(31)).decode(), "not base64 at all!!"]
)
def test_a_malformed_key_is_refused_naming_the_variable_not_the_value(value):
    with pytest.raises(SealError, match="PICLUSTER_BACKUP_KEY is not a backup key") as err:
        BackupKey(value)
    if value:
        assert value not in str(err.value)


def test_repr_shows_only_the_key_id(key):
    assert repr(key) == f"BackupKey(id={key.key_id.hex()})"


def peak_memory(key: BackupKey, mib: int) -> int:
    block = os.urandom(1 << 20)
    tracemalloc.start()
    try:
        seen = 0
        for piece in unseal(seal((block for _ in range(mib)), key), key, "big"):
            seen += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert seen == mib << 20
    return peak


def test_memory_stays_bounded_for_a_large_stream(key):
    """Through seal and unseal with 1 MiB chunks the peak is a few chunks whatever the size:
    64 MiB costs what 8 MiB does (held whole, it would cost 64 MiB or more)."""
    small, large = peak_memory(key, 8), peak_memory(key, 64)
    assert large < 12 << 20, f"peak {large / 2**20:.1f} MiB for 64 MiB"
    assert large < small * 1.25 + (1 << 20), f"{small / 2**20:.1f} -> {large / 2**20:.1f} MiB"


def test_the_command_line_round_trip(key, monkeypatch, capsysbinary):
    """`seal`/`unseal` as documented for restoring by hand."""
    import io
    import sys

    encoded = generate_key()
    monkeypatch.setenv("PICLUSTER_BACKUP_KEY", encoded)
    data = os.urandom(3000)

    def run(argv, stdin: bytes) -> bytes:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        assert main(argv) == 0
        return capsysbinary.readouterr().out

    assert run(["unseal"], run(["seal"], data)) == data
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"garbage")))
    assert main(["unseal"]) == 1
    err = capsysbinary.readouterr().err.decode()
    assert "stdin: not a sealed backup" in err and encoded not in err
