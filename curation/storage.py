"""The artifact store: every file of a tenant lives under that tenant's prefix.

Layout (local filesystem; the same keys map onto an object store)::

    <root>/tenants/<tenant_id>/datasets/<dataset_id>/shards/shard-00000.parquet
    <root>/tenants/<tenant_id>/datasets/<dataset_id>/embeddings/<embedder_key>/shard-00000.npy
    <root>/tenants/<tenant_id>/datasets/<dataset_id>/faiss/<embedder_key>/shard-00000.faiss
    <root>/tenants/<tenant_id>/jobs/<job_id>/scores/<metric>/shard-00000.parquet
    <root>/tenants/<tenant_id>/jobs/<job_id>/<job-level artifacts>
    <root>/tenants/<tenant_id>/staging/<random>/        (uploads being validated)

Paths are built by :meth:`ArtifactStore.path` only; every other helper goes through it,
so a path can never escape the tenant prefix.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def shard_name(index: int, suffix: str) -> str:
    """``shard-00007.parquet`` style names; ``suffix`` includes the dot."""
    return f"shard-{index:05d}{suffix}"


class ArtifactStore:
    """Tenant-namespaced files under ``root``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def path(self, tenant_id: object, *parts: object) -> Path:
        """The one function that builds artifact paths: ``root/tenants/<tenant>/<parts...>``.

        Every part must be a plain name (letters, digits, ``._-``; no separators, no ``..``).
        """
        names = [str(tenant_id), *map(str, parts)]
        for name in names:
            if not _SAFE_PART.match(name) or name in {".", ".."}:
                raise ValueError(f"unsafe artifact path part {name!r}")
        return self.root.joinpath("tenants", *names)

    def dataset_dir(self, tenant_id: object, dataset_id: object) -> Path:
        return self.path(tenant_id, "datasets", dataset_id)

    def shard_path(self, tenant_id: object, dataset_id: object, index: int) -> Path:
        return self.path(tenant_id, "datasets", dataset_id, "shards", shard_name(index, ".parquet"))

    def embedding_path(self, tenant_id: object, dataset_id: object, embedder_key: str, index: int) -> Path:
        return self.path(tenant_id, "datasets", dataset_id, "embeddings", embedder_key, shard_name(index, ".npy"))

    def index_part_path(self, tenant_id: object, dataset_id: object, embedder_key: str, index: int) -> Path:
        return self.path(tenant_id, "datasets", dataset_id, "faiss", embedder_key, shard_name(index, ".faiss"))

    def predictions_path(self, tenant_id: object, dataset_id: object, prediction_set_id: object) -> Path:
        return self.path(tenant_id, "datasets", dataset_id, "predictions", f"{prediction_set_id}.parquet")

    def job_dir(self, tenant_id: object, job_id: object) -> Path:
        return self.path(tenant_id, "jobs", job_id)

    def scores_path(self, tenant_id: object, job_id: object, metric: str, index: int) -> Path:
        """Per-document scores of one shard, written by a job: ``jobs/<job>/scores/<metric>/shard-N.parquet``."""
        return self.path(tenant_id, "jobs", job_id, "scores", metric, shard_name(index, ".parquet"))

    def job_file(self, tenant_id: object, job_id: object, name: str) -> Path:
        """A job-level artifact (a model, a sample), e.g. ``jobs/<job>/classifier.bin``."""
        return self.path(tenant_id, "jobs", job_id, name)

    def manifest_path(self, tenant_id: object, mixture_id: object) -> Path:
        """A mixture's document manifest: ``mixtures/<mixture>/manifest.parquet``."""
        return self.path(tenant_id, "mixtures", mixture_id, "manifest.parquet")

    @contextmanager
    def staging(self, tenant_id: object) -> Iterator[Path]:
        """A fresh staging directory, always removed on exit (commit moves what it keeps)."""
        directory = self.path(tenant_id, "staging", uuid.uuid4().hex)
        directory.mkdir(parents=True)
        try:
            yield directory
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def commit_dir(self, staged: Path, final: Path) -> None:
        """Move a staged directory into place atomically (same filesystem rename)."""
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, final)

    def remove_tree(self, directory: Path) -> None:
        if not directory.resolve().is_relative_to(self.root.resolve()):
            raise ValueError(f"refusing to remove {directory}: outside the artifact root")
        shutil.rmtree(directory, ignore_errors=True)

    @staticmethod
    def tree_bytes(directory: Path) -> int:
        return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) if directory.exists() else 0


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file and ``os.replace`` (never a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
