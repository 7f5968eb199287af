"""A dataset's stored columns and embeddings as steps read them: a shard at a time, through the storage."""
from __future__ import annotations

import numpy as np

from curation.pipeline import (ShardedRows, column_at, concat_column, concat_embeddings, embedding_paths,
                               embeddings_at, shard_keys)
from curation.steps import Context, DatasetRef


def dataset_embeddings(ctx: Context, dataset: DatasetRef, embedder: str) -> np.ndarray:
    """``(documents, dim)`` float32 embeddings of a dataset, in document order."""
    return concat_embeddings(embedding_paths(ctx.storage, dataset.id, ctx.embedder(embedder), dataset.shard_count))


def dataset_embeddings_at(ctx: Context, dataset: DatasetRef, embedder: str, positions) -> np.ndarray:
    """``(len(positions), dim)`` float32 embeddings at ascending ``positions``, a shard at a time."""
    return embeddings_at(embedding_paths(ctx.storage, dataset.id, ctx.embedder(embedder), dataset.shard_count),
                         positions)


def dataset_rows(ctx: Context, dataset: DatasetRef, embedder: str, positions) -> ShardedRows:
    """The embeddings at ascending ``positions`` as a lazily read array (for subsampling a pool)."""
    return ShardedRows(embedding_paths(ctx.storage, dataset.id, ctx.embedder(embedder), dataset.shard_count),
                       positions)


def dataset_column(ctx: Context, dataset: DatasetRef, column: str) -> list:
    """One column (``id``, ``text``, ``source``) of every shard, in document order."""
    return concat_column(ctx.storage, shard_keys(dataset.id, dataset.shard_count), column)


def dataset_column_at(ctx: Context, dataset: DatasetRef, column: str, positions) -> list:
    """One column's values at ascending ``positions``, a shard at a time."""
    return column_at(ctx.storage, shard_keys(dataset.id, dataset.shard_count), column, positions)
