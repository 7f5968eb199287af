"""Selection steps: the corpus's FAISS store, pruning scores (DESIGN.md 3.2) and BETR (3.3).

``prune`` and BETR's ``select`` write one score Parquet per shard (``id, score, kept,
reason`` + extras; :mod:`curation.scores`) under the run's ``scores/<metric>/`` and return a
summary (``score_metrics`` names the metric for ``GET /corpora/{id}/scores/?metric=``).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curation import betr
from curation.embedders import embedder_key
from curation.pipeline import embedding_paths, read_stored
from curation.pools import source_name
from curation.pruning import PruneInputs, PruneOptions, prune
from curation.scores import write_scores
from curation.steps import Context, DatasetRef
from curation.steps.decontaminate import STAGE as CONTAMINATION_STAGE, contaminated_mask
from curation.steps.data import dataset_column, dataset_column_at, dataset_embeddings, dataset_embeddings_at
from curation.storage import Keys
from curation.stores import META_FILE, build_store, open_store


@dataclass(frozen=True)
class IndexParams:
    corpus: DatasetRef
    embedder: str
    index: str = "auto"
    target_recall: float = 0.95
    seed: int = 0


@dataclass(frozen=True)
class PruneParams:
    corpus: DatasetRef
    method: str
    embedder: str
    options: PruneOptions
    predictions: str | None = None


@dataclass(frozen=True)
class BetrParams:
    """``sample_size`` documents ranked against every example of ``benchmarks``; the top
    ``top_fraction`` are positives; keep ``keep_fraction`` of tokens, else the share a training budget
    of ``budget_tokens`` needs (:func:`curation.betr.budget_token_fraction`, at ``flops`` or with
    ``parameters`` where given), else F_opt(``flops``), else 10%.
    ``decontaminated``: the run's contamination stage ran; its documents are neither sampled nor kept."""

    corpus: DatasetRef
    benchmarks: tuple[DatasetRef, ...]
    embedder: str
    sample_size: int = 200_000
    top_fraction: float = 0.1
    keep_fraction: float | None = None
    flops: float | None = None
    equal_per_benchmark: bool = False
    seed: int = 0
    decontaminated: bool = False
    budget_tokens: float | None = None
    parameters: float | None = None


def betr_fraction(params: BetrParams, available_tokens: float) -> tuple[float, str]:
    """The share of the clean documents' tokens to keep, and why (:class:`BetrParams`)."""
    if params.keep_fraction:
        return params.keep_fraction, f"keep_fraction {params.keep_fraction:g} asked for"
    if params.budget_tokens:
        return betr.budget_token_fraction(params.budget_tokens, max(available_tokens, 1.0), flops=params.flops,
                                          parameters=params.parameters)
    if params.flops:
        fraction = betr.optimal_token_fraction(params.flops)
        return fraction, f"F_opt(C) = {100 * fraction:.3g}% at C = {params.flops:.3g} FLOPs"
    return 0.1, "no budget: BETR's default 10% of tokens"


def _clean(ctx: Context, params: BetrParams) -> np.ndarray:
    """(documents,) bool: False for the documents this run's contamination stage found (``decontaminated``)."""
    if not params.decontaminated:
        return np.ones(params.corpus.documents, dtype=bool)
    return ~contaminated_mask(ctx.storage, ctx.run_id, params.corpus)


def index_unit(ctx: Context, index: int, params: IndexParams) -> dict:
    """The corpus's FAISS store under :meth:`Keys.vector_store` (exact or IVF/HNSW by size, recall measured)."""
    embedder = ctx.embedder(params.embedder)
    key = embedder_key(embedder)
    prefix = Keys.vector_store(params.corpus.id, key)
    with ctx.storage.staging() as folder:
        built = build_store(embedding_paths(ctx.storage, params.corpus.id, embedder, params.corpus.shard_count),
                            folder, kind=params.index, seed=params.seed, recall_target=params.target_recall,
                            embedder_key=key)
        old = [name for name in ctx.storage.list(prefix) if not name.endswith("/" + META_FILE)]
        with ctx.storage.writer(f"{prefix}/{built.meta.index_file}") as path:
            (folder / built.meta.index_file).replace(path)
        ctx.storage.write_bytes(f"{prefix}/{META_FILE}", (folder / META_FILE).read_bytes())  # the meta last
    for name in old:
        if not name.endswith("/" + built.meta.index_file):
            ctx.storage.delete_prefix(name)
    return {"store": asdict(built.meta)}


def write_shard_scores(ctx: Context, corpus: DatasetRef, metric: str, ids: list, score, kept, reason,
                       **extra) -> None:
    """Split corpus-order score arrays into the run's per-shard score files."""
    start = 0
    for index, documents in enumerate(corpus.shard_documents):
        end = start + documents
        write_scores(ctx.storage, Keys.scores(ctx.run_id, metric, index), ids=ids[start:end],
                     score=score[start:end], kept=kept[start:end], reason=list(reason[start:end]),
                     **{name: values[start:end] for name, values in extra.items()})
        start = end


def score_summary(ctx: Context, corpus: DatasetRef, score, kept, reason, extra: dict) -> dict:
    """Counts kept and dropped (per reason, per source) and a 20-bin histogram of all and kept scores."""
    sources = [source_name(s) for s in dataset_column(ctx, corpus, "source")]
    finite = np.asarray(score, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    edges = np.histogram_bin_edges(finite, bins=20) if len(finite) else np.zeros(0)
    kept_scores = np.asarray(score, dtype=np.float64)[np.asarray(kept)]
    kept_scores = kept_scores[np.isfinite(kept_scores)]
    return {
        "documents": len(kept), "kept": int(np.sum(kept)), "dropped": int(len(kept) - np.sum(kept)),
        "reasons": dict(Counter(reason)),
        "kept_per_source": dict(Counter(s for s, k in zip(sources, kept) if k)),
        "documents_per_source": dict(Counter(sources)),
        "histogram": {"bin_edges": edges.tolist(), "all": np.histogram(finite, edges)[0].tolist() if len(edges) else [],
                      "kept": np.histogram(kept_scores, edges)[0].tolist() if len(edges) else []},
        **extra,
    }


def prune_unit(ctx: Context, index: int, params: PruneParams) -> dict:
    """Score and select every document with ``params.method`` (:data:`curation.pruning.METHODS`)."""
    corpus = params.corpus
    ids = dataset_column(ctx, corpus, "id")
    inputs = PruneInputs(ids=ids, embeddings=lambda: dataset_embeddings(ctx, corpus, params.embedder),
                         predictions=ctx.storage.local_path(Keys.predictions(corpus.id, params.predictions))
                         if params.predictions else None)
    result = prune(params.method, inputs, params.options)
    write_shard_scores(ctx, corpus, params.method, ids, result.score, result.kept, result.reason, **result.columns)
    return {"score_metrics": [params.method], "lower_is_better": result.lower_is_better,
            **score_summary(ctx, corpus, result.score, result.kept, list(result.reason),
                            {"method": params.method, **result.summary})}


def _ranked_sample(ctx: Context, params: BetrParams, sample: np.ndarray, clean: int):
    """What BETR ranks, and how it is searched: the corpus's vector store (an ``index`` stage or job built
    it for this embedder) when the sample is every one of the ``clean`` documents, else exact search over
    the sample's embeddings (a store's rows are the whole corpus; a subset of them is not what it indexes)."""
    store = open_store(ctx.storage, Keys.vector_store(params.corpus.id, embedder_key(ctx.embedder(params.embedder))))
    if store is not None and store.meta.n == params.corpus.documents and len(sample) == clean:
        meta = store.meta
        return betr.StoreSample(store, sample), {"kind": meta.kind, "recall_at_10": meta.recall_at_10,
                                                 "reason": "the sample is every clean document: the corpus's store"}
    reason = ("no vector store for this embedder" if store is None else
              "the sample is a subset of the corpus: exact search over its embeddings")
    return dataset_embeddings_at(ctx, params.corpus, params.embedder, sample), {"kind": "exact", "recall_at_10": 1.0,
                                                                                 "reason": reason}


def betr_train(ctx: Context, index: int, params: BetrParams) -> dict:
    """Rank a seeded sample against every benchmark example (S_j = max_i 1/r_ij), label its top
    ``top_fraction``, train the fastText classifier; writes the classifier."""
    corpus, benchmarks = params.corpus, params.benchmarks
    rng = np.random.default_rng(params.seed)
    clean = np.flatnonzero(_clean(ctx, params))
    sample = np.sort(rng.permutation(clean)[: params.sample_size])
    names = [b.name for b in benchmarks]
    targets = {b.name + (f" ({b.id})" if names.count(b.name) > 1 else ""): dataset_embeddings(ctx, b, params.embedder)
               for b in benchmarks}
    ranked, search = _ranked_sample(ctx, params, sample, len(clean))
    ranking = betr.rank_scores(ranked, targets, equal_per_benchmark=params.equal_per_benchmark, seed=params.seed)
    labelled = betr.label_sample(ranking, top_fraction=params.top_fraction, seed=params.seed)
    texts = dataset_column_at(ctx, corpus, "text", sample)
    trained = betr.train_classifier([texts[i] for i in labelled.indices], labelled.labels, seed=params.seed)
    with ctx.storage.writer(Keys.job_file(ctx.run_id, "betr-classifier.bin")) as path:
        trained.classifier.save(path)
    return {"sample_size": int(len(sample)), "positives": int(len(labelled.positive)),
            "negatives": int(len(labelled.negative)), "examples": int(len(ranking.target_benchmark)),
            "k": int(ranking.k), "search": search, "holdout_accuracy": trained.holdout_accuracy,
            "epochs": trained.epoch, "lr": trained.lr}


def _raw_key(ctx: Context, index: int) -> str:
    return Keys.job_file(ctx.run_id, f"betr-raw-{index:05d}.parquet")


def betr_classify(ctx: Context, index: int, params: BetrParams) -> dict:
    """Score shard ``index`` with the trained classifier (and count its tokens)."""
    shard = read_stored(ctx.storage, Keys.shard(params.corpus.id, index), ["id", "text"])
    texts = shard.column("text").to_pylist()
    classifier = betr.BetrClassifier.load(ctx.storage.local_path(Keys.job_file(ctx.run_id, "betr-classifier.bin")))
    raw = pa.table({"id": shard.column("id"), "score": pa.array(classifier.score(texts).astype(np.float64)),
                    "tokens": pa.array(betr.count_tokens(texts))})
    with ctx.storage.writer(_raw_key(ctx, index)) as path:
        pq.write_table(raw, path)
    return {"shard": index, "documents": len(texts)}


def betr_select(ctx: Context, index: int, params: BetrParams, *, train_stage: str) -> dict:
    """Keep the best-scored share of the clean documents' tokens over every shard's scores (contaminated
    documents: reason ``contaminated``); write per-shard scores."""
    raws = [read_stored(ctx.storage, _raw_key(ctx, i)) for i in range(params.corpus.shard_count)]
    score = np.concatenate([t.column("score").to_numpy() for t in raws])
    tokens = np.concatenate([t.column("tokens").to_numpy() for t in raws])
    ids = [i for t in raws for i in t.column("id").to_pylist()]
    clean = _clean(ctx, params)
    fraction, why = betr_fraction(params, float(tokens[clean].sum()))
    chosen = betr.select_tokens(score[clean], tokens[clean], fraction=fraction)
    kept = np.zeros(len(score), dtype=bool)
    kept[clean] = chosen.kept
    reason = np.where(kept, "kept", np.where(clean, "below_threshold", "contaminated"))
    write_shard_scores(ctx, params.corpus, "betr", ids, score, kept, reason, tokens=tokens)
    return {"score_metrics": ["betr"], "lower_is_better": False, **score_summary(
        ctx, params.corpus, score, kept, list(reason),
        {"train": ctx.output(train_stage), "token_fraction": chosen.fraction, "fraction_reason": why,
         "threshold": chosen.threshold,
         "kept_tokens": chosen.kept_tokens, "total_tokens": chosen.total_tokens,
         "contamination": ctx.output(CONTAMINATION_STAGE)["contamination"] if params.decontaminated else None})}

