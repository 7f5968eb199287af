"""Pieces several job kinds share: the embedding stage over one or more datasets, and
loading a dataset's stored columns and embeddings."""
from __future__ import annotations

import numpy as np

from api.core.artifacts import artifact_store
from api.datasets.models import Dataset
from api.jobs.kinds.base import Stage
from curation.embedders import Embedder, embedder_key
from curation.pipeline import ShardedRows, column_at, concat_column, concat_embeddings, embed_shard, embeddings_at


def embedding_stage(datasets: list[Dataset]) -> Stage:
    """One unit per shard of every dataset (queue ``gpu``); cached shards finish at once."""
    return Stage("embedding", sum(d.shard_count for d in datasets), queue="gpu")


def run_embedding_unit(datasets: list[Dataset], index: int, embedder: Embedder, batch_size: int | None = None) -> dict:
    """Embed the ``index``-th shard counting across ``datasets`` in order."""
    for dataset in datasets:
        if index < dataset.shard_count:
            store = artifact_store()
            key = embedder_key(embedder)
            output = embed_shard(
                store.shard_path(dataset.tenant_id, dataset.pk, index),
                store.embedding_path(dataset.tenant_id, dataset.pk, key, index),
                store.index_part_path(dataset.tenant_id, dataset.pk, key, index),
                embedder,
                batch_size=batch_size,
            )
            return {"dataset": str(dataset.pk), "shard": index, **output}
        index -= dataset.shard_count
    raise IndexError("embedding unit out of range")


def _embedding_paths(dataset: Dataset, embedder: Embedder) -> list:
    store = artifact_store()
    key = embedder_key(embedder)
    return [store.embedding_path(dataset.tenant_id, dataset.pk, key, i) for i in range(dataset.shard_count)]


def dataset_embeddings(dataset: Dataset, embedder: Embedder) -> np.ndarray:
    """``(documents, dim)`` float32 embeddings of a dataset, in document order."""
    return concat_embeddings(_embedding_paths(dataset, embedder))


def dataset_embeddings_at(dataset: Dataset, embedder: Embedder, positions) -> np.ndarray:
    """``(len(positions), dim)`` float32 embeddings of the documents at ascending ``positions``,
    read a shard at a time."""
    return embeddings_at(_embedding_paths(dataset, embedder), positions)


def dataset_rows(dataset: Dataset, embedder: Embedder, positions) -> ShardedRows:
    """The embeddings at ascending ``positions`` as a lazily read array (for subsampling a pool)."""
    return ShardedRows(_embedding_paths(dataset, embedder), positions)


def dataset_column_at(dataset: Dataset, column: str, positions) -> list:
    """One column's values at ascending ``positions``, read a shard at a time."""
    return column_at(shard_paths(dataset), column, positions)


def shard_paths(dataset: Dataset) -> list:
    store = artifact_store()
    return [store.shard_path(dataset.tenant_id, dataset.pk, i) for i in range(dataset.shard_count)]


def dataset_column(dataset: Dataset, column: str) -> list:
    return concat_column(shard_paths(dataset), column)
