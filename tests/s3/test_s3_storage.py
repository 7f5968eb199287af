"""The storage interface's contract, the same assertions on local disk and on a real
S3-protocol server; then what only the object store does: ranged reads of Parquet, multipart
uploads, the bounded file cache, retries on throttling, readable denials."""
from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation import s3 as s3_module
from curation.s3 import LocalCache, S3Storage, make_client, parse_url
from curation.storage import LocalStorage, StorageDenied, StorageUnavailable


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return LocalStorage(tmp_path / "root", "svc")
    return request.getfixturevalue("s3")


def test_bytes_round_trip_list_size_and_delete(storage):
    storage.write_bytes("a/b/one.bin", b"1" * 10)
    storage.write_bytes("a/b/two.bin", b"2" * 5)
    storage.write_bytes("a/c/three.bin", b"3")
    storage.write_bytes("other.bin", b"x")
    assert storage.read_bytes("a/b/one.bin") == b"1" * 10
    assert storage.exists("a/b/two.bin") and not storage.exists("a/b/none.bin") and not storage.exists("a/b")
    assert storage.list("a") == ["a/b/one.bin", "a/b/two.bin", "a/c/three.bin"]
    assert storage.list("missing") == []
    assert storage.size("a") == 16 and storage.size("a/b/one.bin") == 10 and storage.size("missing") == 0
    with storage.open("a/b/one.bin") as f:
        f.seek(4)
        assert f.read(3) == b"111" and f.tell() == 7
    storage.delete_prefix("a/b")
    assert storage.list("a") == ["a/c/three.bin"]
    storage.delete_prefix("a/c/three.bin")
    assert storage.list("a") == [] and storage.exists("other.bin")
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("a/b/one.bin")


def test_writer_stores_only_a_complete_object(storage):
    with storage.writer("w/done.txt") as path:
        path.write_text("complete")
    assert storage.read_bytes("w/done.txt") == b"complete"
    with pytest.raises(RuntimeError), storage.writer("w/done.txt") as path:
        path.write_text("half")
        raise RuntimeError("the step failed mid-write")
    assert storage.read_bytes("w/done.txt") == b"complete", "a failed write replaced the object"
    assert storage.list("w") == ["w/done.txt"]


def test_commit_stores_a_folder_and_a_repeated_commit_leaves_exactly_its_files(storage):
    with storage.staging() as folder:
        (folder / "shards").mkdir()
        for i in range(3):
            (folder / "shards" / f"shard-{i:05d}.parquet").write_bytes(bytes([i]) * 4)
        storage.commit(folder / "shards", "d/shards")
        assert not (folder / "shards").exists() or storage.__class__ is not LocalStorage
    assert not folder.exists(), "staging left its folder behind"
    assert storage.list("d") == [f"d/shards/shard-{i:05d}.parquet" for i in range(3)]
    if isinstance(storage, LocalStorage):
        return  # a local commit is one rename onto a fresh prefix
    with storage.staging() as folder:
        (folder / "shard-00000.parquet").write_bytes(b"new")
        storage.commit(folder, "d/shards")
    assert storage.list("d") == ["d/shards/shard-00000.parquet"]
    assert storage.read_bytes("d/shards/shard-00000.parquet") == b"new"


def test_a_key_never_leaves_its_prefix(storage):
    tenant = storage.scoped("tenants", 7)
    tenant.write_bytes("x.bin", b"mine")
    assert storage.read_bytes("tenants/7/x.bin") == b"mine"
    for bad in ("../8/x.bin", "a/../../x", "a\\b", "x/.hidden/../y", "x/-dash"):
        with pytest.raises(ValueError):
            tenant.read_bytes(bad)
        with pytest.raises(ValueError):
            tenant.write_bytes(bad, b"no")
    with pytest.raises(ValueError):
        storage.scoped("tenants", "..")
    tenant.write_bytes("/etc/passwd", b"inside")  # a leading slash is no way out
    assert storage.read_bytes("tenants/7/etc/passwd") == b"inside"


def test_local_path_is_a_real_file(storage):
    storage.write_bytes("f/vectors.npy", b"\x93NUMPY-ish")
    path = storage.local_path("f/vectors.npy")
    assert path.is_file() and path.read_bytes() == b"\x93NUMPY-ish"


# -- the object store only ---------------------------------------------------------------------

def test_parse_url():
    assert parse_url("s3://bucket/a/b/") == ("bucket", "a/b")
    assert parse_url("s3://bucket") == ("bucket", "")
    for bad in ("bucket/a", "file:///tmp", "s3:///a", "s3://bucket/a/../b"):
        with pytest.raises(ValueError):
            parse_url(bad)


def test_a_parquet_column_is_read_with_ranged_gets_not_the_whole_object(s3, proxy, tmp_path):
    rng = np.random.default_rng(0)
    table = pa.table({"id": [f"d{i}" for i in range(20_000)],
                      "text": [rng.bytes(200).hex() for _ in range(20_000)]})  # ~8 MB of text
    with s3.writer("shards/shard-00000.parquet") as path:
        pq.write_table(table, path, compression="none", row_group_size=5_000)
    size = s3.size("shards/shard-00000.parquet")
    proxy.reset_counts()
    ids = pq.read_table(s3.open("shards/shard-00000.parquet"), columns=["id"]).column("id").to_pylist()
    assert ids == table.column("id").to_pylist()
    assert proxy.bytes_served < size / 10, f"read {proxy.bytes_served} of {size} bytes for the id column"
    assert pq.read_table(s3.open("shards/shard-00000.parquet")).equals(table)


def test_a_large_file_uploads_in_parts(s3, proxy, tmp_path, monkeypatch):
    monkeypatch.setattr(s3_module, "MULTIPART_BYTES", 5 << 20)  # S3's smallest part
    data = os.urandom(11 << 20)
    proxy.reset_counts()
    with s3.writer("big/index.faiss") as path:
        path.write_bytes(data)
    assert proxy.requests["PUT"] >= 3 and proxy.requests["POST"] >= 2, proxy.requests  # create + complete
    assert s3.local_path("big/index.faiss").read_bytes() == data


def test_the_file_cache_is_keyed_by_etag_and_bounded(s3, proxy, tmp_path, monkeypatch):
    s3.write_bytes("c/a.bin", b"a" * 1000)
    first = s3.local_path("c/a.bin")
    proxy.reset_counts()
    assert s3.local_path("c/a.bin") == first and proxy.requests["GET"] == 0, "a cached file was fetched again"
    s3.write_bytes("c/a.bin", b"b" * 1000)
    assert s3.local_path("c/a.bin").read_bytes() == b"b" * 1000, "a rewritten object was served from the cache"

    monkeypatch.setattr(s3_module, "CACHE_GRACE_SECONDS", 0)
    bounded = S3Storage(s3.bucket, "svc", client=s3.client, cache=LocalCache(tmp_path / "small", 2500),
                        scratch=tmp_path / "scratch")
    for name in ("x", "y", "z"):
        s3.write_bytes(f"c/{name}.bin", name.encode() * 1000)
        path = bounded.local_path(f"c/{name}.bin")
        os.utime(path, (1e9 + ord(name), 1e9 + ord(name)))  # x used first, then y, then z
    cached = sorted(p.name for p in (tmp_path / "small").rglob("*.bin"))
    assert cached == ["y.bin", "z.bin"], f"least recently used not evicted first: {cached}"
    assert bounded.local_path("c/x.bin").read_bytes() == b"x" * 1000


def test_throttling_is_retried_until_the_request_succeeds(s3, proxy):
    proxy.throttle(2)
    s3.write_bytes("t/one.bin", b"payload")
    proxy.throttle(2)
    assert s3.read_bytes("t/one.bin") == b"payload"
    assert proxy.injected[503] == 4


def test_a_denied_request_fails_with_a_reason_naming_the_bucket(s3, proxy):
    s3.write_bytes("d/one.bin", b"x")
    proxy.deny()
    for call in (lambda: s3.read_bytes("d/one.bin"), lambda: s3.write_bytes("d/two.bin", b"y"),
                 lambda: s3.local_path("d/one.bin"), lambda: s3.list("d")):
        with pytest.raises(StorageDenied, match=s3.bucket):
            call()
    assert proxy.injected[403] <= 8, "a permanent 403 was retried"


def test_an_unreachable_store_is_unavailable_not_missing(aws_env, tmp_path, monkeypatch):
    from tests.s3.servers import free_port

    monkeypatch.setattr(s3_module, "MAX_ATTEMPTS", 2)
    store = S3Storage("b", "", client=make_client(f"http://127.0.0.1:{free_port()}", "us-east-1"),
                      cache=LocalCache(tmp_path / "c", 1 << 20), scratch=tmp_path / "s")
    with pytest.raises(StorageUnavailable, match="s3://b/x.bin"):
        store.read_bytes("x.bin")


def test_opening_fetches_the_tail_in_one_request_and_a_small_object_whole(s3, proxy):
    s3.write_bytes("o/small.bin", bytes(range(256)) * 4)
    s3.write_bytes("o/empty.bin", b"")
    big = os.urandom(3 * s3_module.READ_BLOCK_BYTES + 17)
    s3.write_bytes("o/big.bin", big)
    proxy.reset_counts()
    with s3.open("o/small.bin") as f:
        assert f.read() == bytes(range(256)) * 4
    assert sum(proxy.requests.values()) == 1, proxy.requests
    with s3.open("o/empty.bin") as f:
        assert f.read() == b""
    proxy.reset_counts()
    with s3.open("o/big.bin") as f:
        f.seek(-10, os.SEEK_END)
        assert f.read() == big[-10:] and proxy.requests["GET"] == 1 and not proxy.requests["HEAD"]
        f.seek(5)
        assert f.read(100) == big[5:105]
        f.seek(0)
        assert f.read() == big
