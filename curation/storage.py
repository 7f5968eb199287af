"""The storage interface: every artifact read and write goes through a :class:`Storage`.

An artifact is named by a *key*, a ``/``-joined relative name built by the key builders
of :class:`Keys` (one per artifact kind) and checked part by part, so a key can never
leave its prefix. The service scopes a storage to a tenant (``storage.scoped("tenants",
tenant_id)``) and hands the steps only that view; the local executor hands them a work
folder. Layout under a tenant::

    datasets/<dataset>/shards/shard-00000.parquet              validated documents
    datasets/<dataset>/embeddings/<embedder key>/shard-00000.npy  float16 (+ .json sidecar)
    datasets/<dataset>/faiss/<embedder key>/shard-00000.faiss  exact index part per shard
    datasets/<dataset>/store/<embedder key>/...                the corpus's FAISS store
    datasets/<dataset>/ot-cache/<key>.json                     OT distances per pool
    datasets/<dataset>/predictions/<prediction set>.parquet    uploaded model outputs (EL2N)
    jobs/<job>/scores/<metric>/shard-00000.parquet             per-document scores
    jobs/<job>/<name>                                          job-level artifacts
    jobs/<job>/prune/<part>-00000.{npy,parquet}                 sharded prune: centroids, assignments, dedup
    jobs/<job>/store/<part>-00000.faiss                        sharded IVF build: trained index, shard parts
    mixtures/<mixture>/manifest.parquet                        selected documents

:class:`LocalStorage` keeps artifacts on the local filesystem; :class:`curation.s3.S3Storage`
in an S3-compatible object store (``local_path`` then downloads into a bounded cache and
``writer`` uploads on close). Both raise ``FileNotFoundError`` for a missing object,
:class:`StorageDenied` when the store refuses access and :class:`StorageUnavailable` when it
cannot be reached.
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def shard_name(index: int, suffix: str) -> str:
    """``shard-00007.parquet`` style names; ``suffix`` includes the dot."""
    return f"shard-{index:05d}{suffix}"


def key(*parts: object) -> str:
    """A key from plain names (letters, digits, ``._-``; no separators, no ``..``)."""
    names = [str(part) for part in parts]
    for name in names:
        if not _SAFE_PART.match(name):
            raise ValueError(f"unsafe artifact key part {name!r}")
    return "/".join(names)


class Keys:
    """The named key builders: one per artifact kind (the layout of the module docstring)."""

    @staticmethod
    def dataset(dataset_id: object) -> str:
        return key("datasets", dataset_id)

    @staticmethod
    def shards(dataset_id: object) -> str:
        return key("datasets", dataset_id, "shards")

    @staticmethod
    def shard(dataset_id: object, index: int) -> str:
        return key("datasets", dataset_id, "shards", shard_name(index, ".parquet"))

    @staticmethod
    def embedding(dataset_id: object, embedder_key: str, index: int) -> str:
        return key("datasets", dataset_id, "embeddings", embedder_key, shard_name(index, ".npy"))

    @staticmethod
    def embedding_meta(dataset_id: object, embedder_key: str, index: int) -> str:
        return key("datasets", dataset_id, "embeddings", embedder_key, shard_name(index, ".json"))

    @staticmethod
    def index_part(dataset_id: object, embedder_key: str, index: int) -> str:
        return key("datasets", dataset_id, "faiss", embedder_key, shard_name(index, ".faiss"))

    @staticmethod
    def vector_store(dataset_id: object, embedder_key: str) -> str:
        return key("datasets", dataset_id, "store", embedder_key)

    @staticmethod
    def vector_stores(dataset_id: object) -> str:
        """The folder of a dataset's stores, one per embedder."""
        return key("datasets", dataset_id, "store")

    @staticmethod
    def ot_cache(dataset_id: object, digest: str) -> str:
        return key("datasets", dataset_id, "ot-cache", f"{digest}.json")

    @staticmethod
    def predictions(dataset_id: object, prediction_set_id: object) -> str:
        return key("datasets", dataset_id, "predictions", f"{prediction_set_id}.parquet")

    @staticmethod
    def job(job_id: object) -> str:
        return key("jobs", job_id)

    @staticmethod
    def scores(job_id: object, metric: str, index: int) -> str:
        return key("jobs", job_id, "scores", metric, shard_name(index, ".parquet"))

    @staticmethod
    def contamination(job_id: object, index: int) -> str:
        return key("jobs", job_id, "contamination", shard_name(index, ".parquet"))

    @staticmethod
    def job_file(job_id: object, name: str) -> str:
        return key("jobs", job_id, name)

    @staticmethod
    def job_part(job_id: object, step: str, part: str, index: int, suffix: str = ".parquet") -> str:
        """An intermediate artifact of a step run in many units: ``part`` number ``index`` (a shard's,
        a cluster group's) under the job's ``step`` folder (``prune``: centroids, assignments, dedup;
        ``store``: the trained IVF index and each shard's part)."""
        return key("jobs", job_id, step, f"{part}-{index:05d}{suffix}")

    @staticmethod
    def manifest(mixture_id: object) -> str:
        return key("mixtures", mixture_id, "manifest.parquet")

    @staticmethod
    def training_dataset(mixture_id: object) -> str:
        """The folder of the training-ready dataset's shards and ``dataset.json`` (:mod:`curation.dataset`)."""
        return key("mixtures", mixture_id, "dataset")


class StorageDenied(PermissionError):
    """The store refused access (credentials, bucket policy, a missing bucket): permanent, so
    the unit fails with this message, which names the bucket."""


class StorageUnavailable(ConnectionError):
    """The store did not answer after the client's retries: transient, the unit is retried later."""


class Storage:
    """Artifacts by key. Writes are atomic: a reader sees the old object or the new one."""

    def scoped(self, *parts: object) -> "Storage":
        """The same storage seen under a prefix (a tenant's view)."""
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, name: str, data: bytes) -> None:
        raise NotImplementedError

    def open(self, name: str):
        """A binary file object for reading (streams; the object is not loaded whole)."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:
        raise NotImplementedError

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> None:
        raise NotImplementedError

    def size(self, prefix: str) -> int:
        """Bytes stored under ``prefix``."""
        raise NotImplementedError

    def local_path(self, name: str) -> Path:
        """A real file holding the object, for libraries that need one (FAISS, fastText, mmap)."""
        raise NotImplementedError

    @contextmanager
    def writer(self, name: str) -> Iterator[Path]:
        """A local path to write the object to; stored atomically when the block exits cleanly."""
        raise NotImplementedError
        yield

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh local folder, always removed on exit (:meth:`commit` keeps what it moves)."""
        raise NotImplementedError
        yield

    def commit(self, folder: Path, prefix: str) -> None:
        """Store every file of a local ``folder`` under ``prefix`` (one move where possible)."""
        raise NotImplementedError


class LocalStorage(Storage):
    """Artifacts as files under ``root`` (one filesystem, so renames are atomic)."""

    def __init__(self, root: str | os.PathLike, prefix: str = "") -> None:
        self.root = Path(root)
        self.prefix = prefix

    def scoped(self, *parts: object) -> "LocalStorage":
        return LocalStorage(self.root, "/".join(p for p in (self.prefix, key(*parts)) if p))

    def _path(self, name: str) -> Path:
        parts = [p for p in f"{self.prefix}/{name}".split("/") if p]
        key(*parts)  # validates every part
        return self.root.joinpath(*parts)

    def read_bytes(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.writer(name) as path:
            path.write_bytes(data)

    def open(self, name: str):
        return open(self._path(name), "rb")

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def list(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(f"{prefix}/{p.relative_to(base).as_posix()}" for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith("."))

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)

    def size(self, prefix: str) -> int:
        base = self._path(prefix)
        if base.is_file():
            return base.stat().st_size
        return sum(p.stat().st_size for p in base.rglob("*") if p.is_file()) if base.is_dir() else 0

    def local_path(self, name: str) -> Path:
        return self._path(name)

    @contextmanager
    def writer(self, name: str) -> Iterator[Path]:
        final = self._path(name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            yield tmp
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        base = self.root / ".staging"
        base.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=base))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, folder: Path, prefix: str) -> None:
        final = self._path(prefix)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, final)
