"""One contract for every blob store (models/blobs.py): a local directory, S3 (moto) and
GCS (fake-gcs-server) behave alike for visionq's reads, writes and gc."""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.objectstore.servers import FakeGcs, MotoServer, s3_options
from visionq.models.blobs import BlobNotFoundError, BlobStore, BlobStoreUnavailableError
from visionq.models.settings import Settings

pytestmark = pytest.mark.objectstore

DATA = bytes(range(256)) * 4096  # 1 MiB, several chunks
MakeStore = Callable[..., BlobStore]


@pytest.fixture(params=["local", "s3", "gcs"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, MakeStore]:
    """(kind, factory): the factory opens the test's store; ``isolated=True`` gives a file
    system instance of its own (caches included), as another process would have."""
    kind: str = request.param
    if kind == "local":
        url, options = str(tmp_path / "blobs"), {}
    elif kind == "s3":
        server: MotoServer = request.getfixturevalue("moto_server")
        url = f"s3://{request.getfixturevalue('s3_bucket')}/blobs"
        options = s3_options(server.endpoint_url)
    else:
        gcs: FakeGcs = request.getfixturevalue("fake_gcs")
        url, options = f"gs://{request.getfixturevalue('gcs_bucket')}/blobs", gcs.options

    def make(isolated: bool = False, **extra: Any) -> BlobStore:
        more = {"skip_instance_cache": True} if isolated and kind != "local" else {}
        return BlobStore(url, {**options, **more, **extra})

    return kind, make


def _objects(store: BlobStore) -> list[str]:
    """Every object (file) under the store's root, trash included."""
    return sorted(str(path) for path in store._fs.find(store._root))


def test_put_is_idempotent_and_get_returns_the_bytes(make_store: tuple[str, MakeStore]) -> None:
    _, make = make_store
    store = make()
    sha256 = store.put(DATA)
    assert sha256 == hashlib.sha256(DATA).hexdigest()
    assert store.put(DATA) == sha256
    assert store.get(sha256) == DATA
    with pytest.raises(BlobNotFoundError):
        store.get(hashlib.sha256(b"never stored").hexdigest())


def test_put_leaves_only_the_blob(make_store: tuple[str, MakeStore]) -> None:
    # Object stores are written with one PutObject/upload: no temporary key to be seen
    # by a reader or left behind by a killed process (a temp+mv write leaves a .tmp key).
    _, make = make_store
    store = make()
    sha256 = store.put(DATA)
    assert _objects(store) == [f"{store._root}/{sha256[:2]}/{sha256}"]
    assert store.is_local is (make_store[0] == "local")


def test_size_head_and_chunks(make_store: tuple[str, MakeStore]) -> None:
    _, make = make_store
    store = make()
    sha256 = store.put(DATA)
    assert store.size(sha256) == len(DATA)
    assert store.head(sha256, 1000) == DATA[:1000]
    assert store.head(sha256, 10 * len(DATA)) == DATA
    chunks = list(store.iter_chunks(sha256, chunk=300_000))
    assert [len(chunk) for chunk in chunks] == [300_000, 300_000, 300_000, 148_576]
    assert b"".join(chunks) == DATA
    missing = hashlib.sha256(b"never stored").hexdigest()
    for read in (store.size, store.head, store.iter_chunks):
        with pytest.raises(BlobNotFoundError):
            read(missing)


def test_gc_trash_restore_and_purge(make_store: tuple[str, MakeStore]) -> None:
    _, make = make_store
    store = make()
    old, other = store.put(DATA), store.put(b"other image")
    assert sorted(store.stored_before(time.time() + 60)) == sorted([old, other])
    assert list(store.stored_before(time.time() - 3600)) == []
    assert store.trash(old)
    assert not store.trash(old)  # gone already
    ((path, sha256, moved),) = list(store.trashed())
    assert sha256 == old and abs(moved - time.time()) < 120
    # A job that took the image meanwhile still reads it from the trash.
    assert store.get(old) == DATA and store.size(old) == len(DATA)
    store.restore(path, old)
    assert list(store.trashed()) == []
    assert store.get(old) == DATA
    assert store.trash(other)
    ((path, _, _),) = list(store.trashed())
    store.purge(path)
    store.purge(path)  # idempotent
    with pytest.raises(BlobNotFoundError):
        store.get(other)
    assert _objects(store) == [f"{store._root}/{old[:2]}/{old}"]


def test_put_after_another_process_trashed_a_listed_blob_writes_it(
    make_store: tuple[str, MakeStore],
) -> None:
    # A process that listed a shard (gc's stored_before) must not answer put's exists()
    # from that listing after another process trashed the blob: the blob would be lost.
    _, make = make_store
    lister, other = make(isolated=True), make(isolated=True)
    sha256 = other.put(DATA)
    assert list(lister.stored_before(time.time() + 60)) == [sha256]
    assert other.trash(sha256)
    assert lister.put(DATA) == sha256
    fresh = make(isolated=True)
    assert f"{fresh._root}/{sha256[:2]}/{sha256}" in _objects(fresh)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_an_unreachable_s3_store_is_unavailable_not_a_crash(moto_server: MotoServer) -> None:
    # gcsfs retries every request 6 times (~30 s, not configurable): S3 stands for both.
    options = {
        **s3_options(f"http://127.0.0.1:{_free_port()}"),
        "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 1},
    }
    store = BlobStore("s3://nobody-listens/blobs", options)
    with pytest.raises(BlobStoreUnavailableError) as raised:
        store.put(DATA)
    assert raised.value.full is False
    assert "nothing was stored" in str(raised.value)
    with pytest.raises(BlobStoreUnavailableError):
        store.get(hashlib.sha256(DATA).hexdigest())


def test_from_settings_passes_the_storage_options(
    moto_server: MotoServer, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(
        blob_dir=f"s3://{s3_bucket}/blobs",
        blob_storage_options=s3_options(moto_server.endpoint_url),
    )
    store = BlobStore.from_settings(settings)
    sha256 = store.put(b"via settings")
    assert BlobStore(settings.blob_dir, s3_options(moto_server.endpoint_url)).get(sha256) == (
        b"via settings"
    )


def test_a_malformed_digest_is_a_value_error(make_store: tuple[str, MakeStore]) -> None:
    _, make = make_store
    store = make()
    for read in (store.get, store.size, store.head, store.iter_chunks):
        with pytest.raises(ValueError, match="not a sha256"):
            read("../../etc/passwd")
