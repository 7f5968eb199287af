"""Reading and writing a dataset's shard artifacts: embeddings per shard, columns and
rows at global positions, a shard at a time.

Writers go through a :class:`~curation.storage.Storage` (atomic, deterministic keys, so
running one twice gives the same objects). Parquet is read through ``storage.open`` (on an
object store: the footer and the wanted columns' chunks, by ranged reads); embeddings and
FAISS parts, which are memory-mapped, through the local files ``storage.local_path`` hands out.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation.embedders import Embedder, embedder_key
from curation.storage import Keys, Storage


def load_embeddings(path: Path) -> np.ndarray:
    """A shard's embeddings, ``(n, dim)`` float16 as stored (memory-mapped)."""
    return np.load(path, mmap_mode="r")


def embedding_paths(storage: Storage, dataset_id: object, embedder: Embedder, shards: int) -> list[Path]:
    """The local files of a dataset's per-shard embeddings, in shard order."""
    key = embedder_key(embedder)
    return [storage.local_path(Keys.embedding(dataset_id, key, i)) for i in range(shards)]


def shard_keys(dataset_id: object, shards: int) -> list[str]:
    """The keys of a dataset's Parquet shards, in order."""
    return [Keys.shard(dataset_id, i) for i in range(shards)]


def read_stored(storage: Storage, name: str, columns: list[str] | None = None) -> pa.Table:
    """A stored Parquet file (or only ``columns``), streamed from the storage, not copied first."""
    with storage.open(name) as source:
        return pq.read_table(source, columns=columns)


def write_stored(storage: Storage, name: str, table: pa.Table) -> None:
    """Store ``table`` as the Parquet file ``name`` (atomically: :meth:`Storage.writer`)."""
    with storage.writer(name) as path:
        pq.write_table(table, path)


def embed_shard(storage: Storage, dataset_id: object, index: int, embedder: Embedder, *,
                batch_size: int | None = None, chunk_size: int = 2048,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Embed shard ``index`` of a dataset: ``(n, dim)`` float16 ``.npy`` + a JSON sidecar + an
    exact FAISS part (:class:`~curation.storage.Keys` ``embedding``, ``embedding_meta``, ``index_part``).

    The sidecar records the embedder's name, version and key; if it already matches,
    the cached vectors are reused and nothing is recomputed. The sidecar is written last.
    ``progress(documents done, documents)`` is called after each chunk of ``chunk_size``.
    """
    started = time.perf_counter()
    key = embedder_key(embedder)
    names = (Keys.embedding(dataset_id, key, index), Keys.embedding_meta(dataset_id, key, index),
             Keys.index_part(dataset_id, key, index))
    texts = read_stored(storage, Keys.shard(dataset_id, index), ["text"]).column("text").to_pylist()
    expected = {"embedder": embedder.name, "version": embedder.version, "key": key,
                "dim": embedder.dim, "documents": len(texts), "dtype": "float16"}
    cached = all(storage.exists(n) for n in names) and json.loads(storage.read_bytes(names[1])) == expected
    if not cached:
        vectors = np.empty((len(texts), embedder.dim), dtype=np.float16)
        for start in range(0, len(texts), chunk_size):
            batch = texts[start:start + chunk_size]
            vectors[start:start + len(batch)] = embedder.encode(batch, batch_size=batch_size)
            if progress is not None:
                progress(start + len(batch), len(texts))
        buffer = io.BytesIO()
        np.save(buffer, vectors)
        storage.write_bytes(names[0], buffer.getvalue())
        part = faiss.IndexFlatIP(embedder.dim)
        part.add(vectors.astype(np.float32))
        storage.write_bytes(names[2], faiss.serialize_index(part).tobytes())
        storage.write_bytes(names[1], json.dumps(expected).encode())
    return {"documents": len(texts), "cached": cached, "seconds": round(time.perf_counter() - started, 4)}


def concat_embeddings(paths: list[Path]) -> np.ndarray:
    """Stack per-shard float16 embeddings into one ``(n, dim)`` float32 array (shard order)."""
    parts = [np.asarray(load_embeddings(path), dtype=np.float32) for path in paths]
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


def _at_positions(shards, positions):
    """``(shard, local positions)`` for each shard of ``shards`` (sized, read one at a time)
    holding some of the ascending global ``positions``; ``IndexError`` for one beyond them all."""
    positions = np.asarray(positions, dtype=np.int64)
    start = 0
    for shard in shards:
        end = start + len(shard)
        inside = positions[(positions >= start) & (positions < end)] - start
        if len(inside):
            yield shard, inside
        start = end
    if positions.size and (positions[-1] >= start or positions[0] < 0):
        raise IndexError(f"positions must lie in [0, {start}); got {positions[0]}..{positions[-1]}")


def embeddings_at(paths: list[Path], positions) -> np.ndarray:
    """Rows at global ``positions`` (ascending) of per-shard embeddings, ``(len(positions), dim)``
    float32, reading one memory-mapped shard at a time."""
    parts = [np.asarray(shard[inside], dtype=np.float32)
             for shard, inside in _at_positions(map(load_embeddings, paths), positions)]
    if parts:
        return np.concatenate(parts)
    return np.zeros((0, load_embeddings(paths[0]).shape[1] if paths else 0), dtype=np.float32)


class ShardedRows:
    """The embeddings of the documents at ascending global ``positions``, read on demand.

    Behaves as a read-only ``(len(positions), dim)`` float32 array for ``len``, ``shape`` and
    indexing by an integer array of any shape (what :mod:`curation.ot` samples with), so a
    pool of a large corpus can be subsampled without loading it.
    """

    ndim = 2

    def __init__(self, paths: list[Path], positions):
        self.paths = list(paths)
        self.positions = np.asarray(positions, dtype=np.int64)
        dim = load_embeddings(self.paths[0]).shape[1] if self.paths else 0
        self.shape = (len(self.positions), dim)
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        index = np.asarray(index, dtype=np.int64)
        unique, inverse = np.unique(index, return_inverse=True)
        rows = embeddings_at(self.paths, self.positions[unique])
        return rows[inverse.reshape(-1)].reshape(*index.shape, self.shape[1])


def column_at(storage: Storage, shards: Sequence[str], column: str, positions) -> list:
    """One column's values at global ``positions`` (ascending) of the Parquet ``shards`` (keys in
    order), reading a shard at a time."""
    shards = (read_stored(storage, name, [column]).column(column) for name in shards)
    return [value for shard, inside in _at_positions(shards, positions) for value in shard.take(inside).to_pylist()]


def concat_column(storage: Storage, shards: Sequence[str], column: str) -> list:
    """One column of every shard (keys in order): ``id``, ``text``, ``source``."""
    return [value for name in shards for value in read_stored(storage, name, [column]).column(column).to_pylist()]
