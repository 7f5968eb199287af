"""Embedding: one unit per shard of one or more datasets (GPU queue), and the embed job's summary."""
from __future__ import annotations

from dataclasses import dataclass

from curation.embedders import embedder_key
from curation.pipeline import embed_shard
from curation.steps import Context, DatasetRef


@dataclass(frozen=True)
class EmbedParams:
    """``datasets`` embedded in order (their shards are the units); ``embedder`` a spec for
    :func:`curation.embedders.get_embedder`; ``batch_size`` the encoder's (default per device)."""

    datasets: tuple[DatasetRef, ...]
    embedder: str
    batch_size: int | None = None

    @property
    def units(self) -> int:
        return sum(d.shard_count for d in self.datasets)


def embed_unit(ctx: Context, index: int, params: EmbedParams) -> dict:
    """Embed the ``index``-th shard counting across ``params.datasets``; cached shards return at once."""
    for dataset in params.datasets:
        if index < dataset.shard_count:
            output = embed_shard(ctx.storage, dataset.id, index, ctx.embedder(params.embedder),
                                 batch_size=params.batch_size, progress=ctx.progress)
            return {"dataset": dataset.id, "shard": index, **output}
        index -= dataset.shard_count
    raise IndexError("embedding unit out of range")


def embed_summary(ctx: Context, index: int, params: EmbedParams, *, embedding_stage: str) -> dict:
    """Throughput of the shards this run computed, and how many came from the cache."""
    embedder = ctx.embedder(params.embedder)
    outputs = ctx.outputs(embedding_stage)
    computed = [o for o in outputs if not o["cached"]]
    seconds = sum(o["seconds"] for o in computed)
    documents = sum(o["documents"] for o in computed)
    dataset = params.datasets[0]
    return {
        "dataset": dataset.id,
        "embedder": embedder.name,
        "embedder_version": embedder.version,
        "embedder_key": embedder_key(embedder),
        "dim": embedder.dim,
        "documents": dataset.documents,
        "shards": len(outputs),
        "shards_reused_from_cache": len(outputs) - len(computed),
        "embedding_seconds": round(seconds, 3),
        "documents_per_second": round(documents / seconds, 1) if seconds > 0 else None,
    }
