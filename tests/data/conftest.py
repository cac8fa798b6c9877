"""Object stores and ledgers for the data tests: each test runs on the local backend, and the
ones marked for it also on the real service (SeaweedFS S3, PostgreSQL)."""

import uuid

import pytest

from resources.ledger import LedgerStore
from resources.object_store import LocalObjectStore, S3ObjectStore


def s3_store(s3, prefix: str | None = None) -> S3ObjectStore:
    """The platform's buckets, fresh ones named `<prefix>-<role>`, on the real SeaweedFS."""
    return S3ObjectStore(
        endpoint=s3.endpoint,
        access_key=s3.access_key,
        secret_key=s3.secret_key,
        buckets=s3.make_buckets(prefix or f"t-{uuid.uuid4().hex[:12]}"),
        secure=False,
        region=s3.region,
    )


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.service)])
def store(request, tmp_path):
    if request.param == "folder":
        return LocalObjectStore(root=str(tmp_path / "object-store"))
    return s3_store(request.getfixturevalue("s3"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.service)])
def ledger(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    else:
        url = request.getfixturevalue("postgres").create_database(f"ledger_{uuid.uuid4().hex[:12]}")
    store = LedgerStore(url)
    yield store
    store.dispose()


@pytest.fixture
def local_store(tmp_path):
    return LocalObjectStore(root=str(tmp_path / "object-store"))


@pytest.fixture
def sqlite_ledger(tmp_path):
    store = LedgerStore(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    yield store
    store.dispose()
