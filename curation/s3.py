"""Artifacts in an S3-compatible object store (AWS S3, MinIO, Ceph, R2, GCS's XML API).

Selected by ``ARTIFACT_URL=s3://bucket/prefix`` (``api/core/artifacts.py``); the web process
and every worker then share nothing but the database, the broker and the bucket.

The client is boto3, on purpose: it is the reference client of the S3 protocol (every
S3-compatible server is tested against it, and ``moto`` serves exactly its protocol to the
tests); its ``standard`` retry mode retries throttling (``SlowDown``, 503, 429) and transient
errors (500, 502, 504, dropped connections) with capped exponential backoff and jitter; its
transfer manager uploads and downloads large files in parallel multipart parts; and it reads
endpoint, region and credentials from the standard AWS environment, profiles and instance or
pod roles (IRSA), which is how operators already configure everything else. obstore is faster
but younger, and fsspec/s3fs adds an asyncio layer and pins botocore through aiobotocore.

- Reads stream: :meth:`S3Storage.open` is a seekable file whose reads are ranged GETs, so
  pyarrow fetches a Parquet shard's footer and the column chunks it needs, never the whole
  object. Opening fetches the object's last ``READ_BLOCK_BYTES`` (a suffix range: the size
  and, for Parquet, the footer in one request; all of a small object).
- Writes are local files uploaded when complete (one PUT, or multipart above
  ``MULTIPART_BYTES``); an object appears whole or not at all.
- :meth:`S3Storage.local_path`, for libraries that need a real file (FAISS, fastText, mmap),
  downloads into a :class:`LocalCache` bounded in bytes on each host, keyed by the object's
  ETag so a rewritten object is fetched again.
- Keys are checked part by part (:func:`curation.storage.key`) under the storage's prefix, so a
  tenant's view can never name an object outside its prefix.
- A denied request (403) raises :class:`curation.storage.StorageDenied` naming the bucket; an
  unreachable store after the client's retries raises :class:`curation.storage.StorageUnavailable`
  (the task layer retries the unit later).
"""
from __future__ import annotations

import io
import os
import shutil
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from curation.storage import Storage, StorageDenied, StorageUnavailable, key

#: The smallest ranged GET of a streamed read (larger reads, a Parquet column chunk, are one GET of
#: their size; no read-ahead beyond this, so a projected column costs little more than its bytes).
READ_BLOCK_BYTES = 64 << 10
#: Files above this size upload (and download) in parallel parts of this size.
MULTIPART_BYTES = 16 << 20
#: Attempts per request, the first included, before an error reaches the caller.
MAX_ATTEMPTS = 8
#: Parallel uploads of a committed folder's files.
COMMIT_THREADS = 8
#: A cached file used in the last this many seconds is never evicted (another process of the
#: host may be about to open it), so the cache may exceed its bound by what is in use.
CACHE_GRACE_SECONDS = 300


def parse_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix")`` (the prefix checked like a key)."""
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"ARTIFACT_URL must look like s3://bucket/prefix, not {url!r}")
    prefix = "/".join(p for p in parsed.path.split("/") if p)
    if prefix:
        key(*prefix.split("/"))
    return parsed.netloc, prefix


def make_client(endpoint_url: str | None = None, region: str | None = None):
    """A boto3 S3 client with standard-mode retries; path-style addressing for a custom endpoint
    (MinIO and most self-hosted servers have no per-bucket DNS names)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS}, connect_timeout=10,
                    read_timeout=120, max_pool_connections=2 * COMMIT_THREADS,
                    s3={"addressing_style": "path" if endpoint_url else "auto"})
    return boto3.session.Session().client("s3", endpoint_url=endpoint_url or None, region_name=region or None,
                                          config=config)


class LocalCache:
    """Whole objects on local disk for libraries that need a path, at most ``max_bytes`` in all
    (least recently used evicted first). Files are named by bucket and key and stored with the
    ETag they were downloaded at; every write is a rename, so processes of one host can share it."""

    def __init__(self, root: str | os.PathLike, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = int(max_bytes)

    def path(self, bucket: str, name: str) -> Path:
        return self.root.joinpath(bucket, *name.split("/"))

    def lookup(self, bucket: str, name: str, etag: str) -> Path | None:
        path = self.path(bucket, name)
        tag = path.with_name(f".{path.name}.etag")
        try:
            if tag.read_text() == etag and path.is_file():
                os.utime(path)  # recently used
                return path
        except FileNotFoundError:
            pass
        return None

    @contextmanager
    def filling(self, bucket: str, name: str, etag: str) -> Iterator[Path]:
        """A temporary path to write the object to; in the cache under ``etag`` on a clean exit."""
        final = self.path(bucket, name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            yield tmp
            os.replace(tmp, final)
            tag_tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.etag.tmp")
            tag_tmp.write_text(etag)
            os.replace(tag_tmp, final.with_name(f".{final.name}.etag"))
        finally:
            tmp.unlink(missing_ok=True)
        self.evict(keep=final)

    def evict(self, keep: Path | None = None) -> None:
        """Remove least recently used files until the cache is within its bound."""
        files = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                try:
                    stat = path.stat()
                except FileNotFoundError:
                    continue
                files.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in files)
        recent = time.time() - CACHE_GRACE_SECONDS
        for used, size, path in sorted(files, key=lambda f: f[0]):
            if total <= self.max_bytes:
                break
            if path == keep or used > recent:
                continue
            path.with_name(f".{path.name}.etag").unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            total -= size


class RangedReader(io.RawIOBase):
    """A seekable, read-only view of one object; each read is a ranged GET, except within
    ``tail``, the object's last bytes already fetched (wrap it in a ``BufferedReader`` of
    ``READ_BLOCK_BYTES``, as :meth:`S3Storage.open` does)."""

    def __init__(self, storage: "S3Storage", full_key: str, size: int, tail: bytes = b"") -> None:
        self._storage, self._key, self._size, self._pos = storage, full_key, size, 0
        self._tail, self._tail_start = tail, size - len(tail)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer) -> int:
        if self._pos >= self._size or not len(buffer):
            return 0
        end = min(self._pos + len(buffer), self._size) - 1
        if self._pos >= self._tail_start:
            data = self._tail[self._pos - self._tail_start:end + 1 - self._tail_start]
            buffer[:len(data)] = data
            self._pos += len(data)
            return len(data)
        body = self._storage._call("read", self._key, "get_object", Key=self._key,
                                   Range=f"bytes={self._pos}-{end}")["Body"]
        data = body.read()
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


class S3Storage(Storage):
    """Artifacts as objects ``<prefix>/<key>`` of one bucket (see the module docstring)."""

    def __init__(self, bucket: str, prefix: str = "", *, client, cache: LocalCache,
                 scratch: str | os.PathLike) -> None:
        self.bucket, self.prefix, self.client, self.cache = bucket, prefix, client, cache
        self.scratch = Path(scratch)

    @classmethod
    def from_url(cls, url: str, *, endpoint_url: str | None, region: str | None, cache_dir: str | os.PathLike,
                 cache_bytes: int, scratch: str | os.PathLike) -> "S3Storage":
        bucket, prefix = parse_url(url)
        return cls(bucket, prefix, client=make_client(endpoint_url, region), cache=LocalCache(cache_dir, cache_bytes),
                   scratch=scratch)

    def scoped(self, *parts: object) -> "S3Storage":
        return S3Storage(self.bucket, "/".join(p for p in (self.prefix, key(*parts)) if p), client=self.client,
                         cache=self.cache, scratch=self.scratch)

    # -- keys and errors --------------------------------------------------------------------
    def _key(self, name: str) -> str:
        parts = [p for p in f"{self.prefix}/{name}".split("/") if p]
        return key(*parts)  # validates every part

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1:] if self.prefix else full_key

    def _call(self, what: str, name: str, method: str, **kwargs):
        """``client.<method>(Bucket=..., **kwargs)`` with the store's errors made readable."""
        with self._readable_errors(what, name):
            return getattr(self.client, method)(Bucket=self.bucket, **kwargs)

    @contextmanager
    def _readable_errors(self, what: str, name: str) -> Iterator[None]:
        """The client's errors in the block as :func:`_translate` says (a missing object, a denial,
        an unreachable store), naming the bucket and ``name``."""
        from boto3.exceptions import S3UploadFailedError
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            raise self._translate(exc, what, name) from exc
        except S3UploadFailedError as exc:  # the transfer manager wraps the ClientError it met
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ClientError):
                raise self._translate(cause, what, name) from exc
            raise StorageUnavailable(f"the upload of s3://{self.bucket}/{name} failed: {exc}") from exc
        except BotoCoreError as exc:  # no connection after the retries, a read timeout
            raise StorageUnavailable(f"the object store did not answer the {what} of s3://{self.bucket}/{name} "
                                     f"after {MAX_ATTEMPTS} attempts: {exc}") from exc

    def _translate(self, exc, what: str, name: str) -> Exception:
        error = exc.response.get("Error", {})
        code, status = error.get("Code", ""), exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        where = f"s3://{self.bucket}/{name}"
        if code in ("NoSuchKey", "404", "NotFound"):
            return FileNotFoundError(f"no object {where}")
        if code == "NoSuchBucket":
            return StorageDenied(f"the bucket {self.bucket!r} does not exist (ARTIFACT_URL names it): {what} of {where}")
        if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return StorageDenied(f"the object store denied the {what} of {where} ({code or status}): check that the "
                                 f"credentials may read and write the bucket {self.bucket!r}")
        if status is not None and status >= 500 or code in ("SlowDown", "RequestTimeout"):
            return StorageUnavailable(f"the object store kept failing the {what} of {where} after {MAX_ATTEMPTS} "
                                      f"attempts ({code or status})")
        return OSError(f"the object store refused the {what} of {where}: {code or status}: {error.get('Message', '')}")

    def _head(self, name: str) -> dict:
        full = self._key(name)
        return self._call("lookup", full, "head_object", Key=full)

    # -- the interface ----------------------------------------------------------------------
    def read_bytes(self, name: str) -> bytes:
        full = self._key(name)
        return self._call("read", full, "get_object", Key=full)["Body"].read()

    def write_bytes(self, name: str, data: bytes) -> None:
        full = self._key(name)
        self._call("write", full, "put_object", Key=full, Body=data)

    def open(self, name: str):
        full = self._key(name)
        try:
            last = self._call("read", full, "get_object", Key=full, Range=f"bytes=-{READ_BLOCK_BYTES}")
        except OSError as exc:  # an empty object has no range to serve (416 InvalidRange)
            if isinstance(exc, (FileNotFoundError, StorageDenied, StorageUnavailable)) or self.size(name):
                raise
            return io.BufferedReader(RangedReader(self, full, 0), buffer_size=READ_BLOCK_BYTES)
        tail = last["Body"].read()  # a server may answer a suffix range with the whole object (200)
        size = int(last["ContentRange"].rsplit("/", 1)[1]) if last.get("ContentRange") else len(tail)
        return io.BufferedReader(RangedReader(self, full, size, tail), buffer_size=READ_BLOCK_BYTES)

    def exists(self, name: str) -> bool:
        try:
            self._head(name)
        except FileNotFoundError:
            return False
        return True

    def _objects(self, prefix: str) -> Iterator[dict]:
        full = self._key(prefix)
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=f"{full}/")
        with self._readable_errors("listing", f"{full}/"):
            for page in pages:
                yield from page.get("Contents", [])

    def list(self, prefix: str) -> list[str]:
        return sorted(self._relative(o["Key"]) for o in self._objects(prefix)
                      if not o["Key"].rsplit("/", 1)[-1].startswith("."))

    def delete_prefix(self, prefix: str) -> None:
        self._delete(prefix, [o["Key"] for o in self._objects(prefix)] + [self._key(prefix)])

    def _delete(self, prefix: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # the most one request deletes
            batch = [{"Key": k} for k in keys[start:start + 1000]]
            self._call("deletion", f"{self._key(prefix)}/", "delete_objects", Delete={"Objects": batch, "Quiet": True})

    def size(self, prefix: str) -> int:
        try:
            return int(self._head(prefix)["ContentLength"])
        except FileNotFoundError:
            return sum(int(o["Size"]) for o in self._objects(prefix))

    def local_path(self, name: str) -> Path:
        full = self._key(name)
        etag = self._head(name)["ETag"]
        cached = self.cache.lookup(self.bucket, full, etag)
        if cached is not None:
            return cached
        with self.cache.filling(self.bucket, full, etag) as tmp:
            self._transfer("read", full, "download_file", Key=full, Filename=str(tmp))
        return self.cache.path(self.bucket, full)

    def _transfer(self, what: str, full: str, method: str, **kwargs) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=MULTIPART_BYTES, multipart_chunksize=MULTIPART_BYTES,
                                max_concurrency=4)
        self._call(what, full, method, Config=config, **kwargs)

    def _upload(self, path: Path, full: str) -> None:
        self._transfer("write", full, "upload_file", Key=full, Filename=str(path))

    @contextmanager
    def writer(self, name: str) -> Iterator[Path]:
        full = self._key(name)
        with self.staging() as folder:
            path = folder / full.rsplit("/", 1)[-1]
            yield path
            self._upload(path, full)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        self.scratch.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=self.scratch))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, folder: Path, prefix: str) -> None:
        """Upload a file to ``prefix``, or every file of a folder under it (in parallel); objects
        under ``prefix`` that the folder does not have are then deleted, so a repeated commit
        leaves exactly the folder's files."""
        if folder.is_file():
            self._upload(folder, self._key(prefix))
            return
        files = {f"{prefix}/{p.relative_to(folder).as_posix()}": p for p in sorted(folder.rglob("*")) if p.is_file()}
        with ThreadPoolExecutor(COMMIT_THREADS) as pool:
            list(pool.map(lambda item: self._upload(item[1], self._key(item[0])), files.items()))
        self._delete(prefix, [o["Key"] for o in self._objects(prefix) if self._relative(o["Key"]) not in files])
