"""Selection steps: the corpus's FAISS store, pruning scores (DESIGN.md 3.2) and BETR (3.3).

``prune`` and BETR's ``select`` write one score Parquet per shard (``id, score, kept,
reason`` + extras; :mod:`curation.scores`) under the run's ``scores/<metric>/`` and return a
summary (``score_metrics`` names the metric for ``GET /corpora/{id}/scores/?metric=``).
"""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import asdict, dataclass

import faiss
import numpy as np
import pyarrow as pa

from curation import betr
from curation.embedders import embedder_key
from curation.pipeline import embedding_paths, embeddings_at, load_embeddings, read_stored, write_stored
from curation.pools import source_name
from curation.prototypes import d4_selection, default_k as default_prototypes_k
from curation.pruning import (NEEDS_EMBEDDINGS, PruneInputs, PruneOptions, PruneResult, d4_result, finish, policy_of,
                              prototypes_result, prune, semdedup_result)
from curation.semdedup import SemDeDupResult, check_eps, cluster_members, dedup_cluster, default_k as default_dedup_k
from curation.scores import write_scores
from curation.steps import Context, DatasetRef
from curation.steps.decontaminate import STAGE as CONTAMINATION_STAGE, contaminated_mask
from curation.steps.data import dataset_column, dataset_column_at, dataset_embeddings, dataset_embeddings_at
from curation.storage import Keys
from curation.stores import (META_FILE, add_shard, build_store, finish_store, merge_parts, open_store, resolve_kind,
                             train_index)
from numeric_kernels.kmeans import assign, fit_sample_size, normalise_rows, spherical_kmeans


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


def sharded_store(params: IndexParams) -> bool:
    """Whether the store is built over several units (IVF-SQ8: trained on a sample, a part per shard, merged);
    flat and HNSW stores are built in one unit."""
    return resolve_kind(params.index, params.corpus.documents) == "ivf_sq8"


def _store_key(ctx: Context, part: str, index: int) -> str:
    return Keys.job_part(ctx.run_id, "store", part, index, ".faiss")


def _read_index(ctx: Context, name: str) -> faiss.Index:
    return faiss.read_index(str(ctx.storage.local_path(name)))


def index_train(ctx: Context, index: int, params: IndexParams) -> dict:
    """The store's empty IVF-SQ8 index trained on its seeded sample (:func:`curation.stores.train_index`)."""
    paths = embedding_paths(ctx.storage, params.corpus.id, ctx.embedder(params.embedder), params.corpus.shard_count)
    trained, kind, store_params = train_index(paths, kind=params.index, seed=params.seed)
    ctx.storage.write_bytes(_store_key(ctx, "trained", 0), faiss.serialize_index(trained).tobytes())
    return {"kind": kind, "params": store_params}


def index_add(ctx: Context, index: int, params: IndexParams) -> dict:
    """Shard ``index``'s vectors in a copy of the trained index, under their global rows."""
    path = ctx.storage.local_path(Keys.embedding(params.corpus.id, embedder_key(ctx.embedder(params.embedder)), index))
    part = add_shard(_read_index(ctx, _store_key(ctx, "trained", 0)), path, sum(params.corpus.shard_documents[:index]))
    ctx.storage.write_bytes(_store_key(ctx, "part", index), faiss.serialize_index(part).tobytes())
    return {"shard": index, "documents": int(part.ntotal)}


def index_unit(ctx: Context, index: int, params: IndexParams, *, train_stage: str | None = None) -> dict:
    """The corpus's FAISS store under :meth:`Keys.vector_store` (exact or IVF/HNSW by size, recall measured);
    with ``train_stage`` the IVF index that stage trained, with every shard's part merged into it."""
    embedder = ctx.embedder(params.embedder)
    key = embedder_key(embedder)
    prefix = Keys.vector_store(params.corpus.id, key)
    paths = embedding_paths(ctx.storage, params.corpus.id, embedder, params.corpus.shard_count)
    with ctx.storage.staging() as folder:
        if train_stage is None:
            built = build_store(paths, folder, kind=params.index, seed=params.seed,
                                recall_target=params.target_recall, embedder_key=key)
        else:
            trained = ctx.output(train_stage)
            merged = merge_parts(_read_index(ctx, _store_key(ctx, "trained", 0)),
                                 (_read_index(ctx, _store_key(ctx, "part", i)) for i in range(params.corpus.shard_count)))
            built = finish_store(merged, trained["kind"], trained["params"], paths, folder, seed=params.seed,
                                 recall_target=params.target_recall, embedder_key=key)
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


# Pruning shard by shard ------------------------------------------------------------------------
#
# Prototypes, SemDeDup and D4 run as stages whose units each hold a shard's embeddings, a
# cluster group's or a seeded sample, never the corpus's (``curation.plans.prune_stages``):
#
# 1. ``prune_kmeans`` (1 unit): spherical k-means on a seeded sample of the documents
#    (:func:`numeric_kernels.kmeans.fit_sample_size` of ``PruneOptions.sample_*``), read a shard at
#    a time (only the sampled rows); the centroids go to ``Keys.job_part(run, "prune", "centroids", 0, ".npy")``.
# 2. ``prune_assign`` (1 unit per shard): every row's nearest centroid and its cosine,
#    ``Keys.job_part(run, "prune", "assign0", shard)`` (Parquet ``cluster``, ``similarity``).
# 3. ``prune_dedup`` (SemDeDup, D4; 1 unit per group of clusters, :func:`dedup_groups`): the group's
#    members gathered shard by shard (only their rows), SemDeDup's rule within each cluster,
#    ``Keys.job_part(run, "prune", "dedup", group)`` (Parquet ``position``, ``duplicate_of``, ``max_similarity``).
# 4. D4 only: ``prune_rekmeans`` and ``prune_reassign``, steps 1 and 2 again on the SemDeDup survivors
#    (clustering 1: ``centroids`` 1, ``assign1``; every row is assigned, duplicates are masked at the end).
# 5. The final unit (``prune_unit``): the method's selection over per-document scalars (cluster,
#    score; no embeddings), then the per-shard score files and the summary as for any method.
#
# A corpus of up to ``sample_floor`` documents trains on every row, in corpus order, so its clusters,
# scores and kept sets are exactly those of the in-memory methods of :mod:`curation.pruning`.

def _unit_rows(params: PruneParams, clustering: int) -> bool:
    """Whether a clustering clusters L2-normalised rows (prototypes do; SemDeDup clusters the stored rows)."""
    return params.method == "prototypes" or clustering == 1


def first_k(params: PruneParams) -> int:
    """Clusters of clustering 0: ``options.k`` or the method's default for the corpus's size (D4's dedup
    clusters take SemDeDup's default; its ``k`` is the re-clustering's)."""
    n = params.corpus.documents
    if params.method == "prototypes":
        return params.options.k or default_prototypes_k(n)
    return (params.options.k if params.method == "semdedup" else None) or default_dedup_k(n)


def dedup_groups(params: PruneParams) -> int:
    """Units of ``prune_dedup``: one group of consecutive clusters per shard of the corpus (at most one
    per cluster), so a unit holds about a shard's worth of documents when clusters are even."""
    return max(1, min(first_k(params), params.corpus.shard_count))


def _embedding_paths(ctx: Context, params: PruneParams) -> list:
    return embedding_paths(ctx.storage, params.corpus.id, ctx.embedder(params.embedder), params.corpus.shard_count)


def _prune_key(ctx: Context, part: str, index: int, suffix: str = ".parquet") -> str:
    return Keys.job_part(ctx.run_id, "prune", part, index, suffix)


def _read_columns(ctx: Context, part: str, units: int, *columns: str) -> tuple[np.ndarray, ...]:
    """``columns`` of the ``part`` files ``0..units-1``, each concatenated (every file read once)."""
    tables = [read_stored(ctx.storage, _prune_key(ctx, part, i), list(columns)) for i in range(units)]
    return tuple(np.concatenate([t.column(column).to_numpy() for t in tables]) for column in columns)


def _survivors(ctx: Context, params: PruneParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SemDeDup's answer from the dedup groups: ``(positions, duplicate_of, max_similarity)`` in corpus order."""
    columns = _read_columns(ctx, "dedup", dedup_groups(params), "position", "duplicate_of", "max_similarity")
    order = np.argsort(columns[0])
    return tuple(column[order] for column in columns)


def prune_kmeans(ctx: Context, index: int, params: PruneParams, *, clustering: int) -> dict:
    """Spherical k-means on a seeded sample of the clustering's documents (every document, or D4's survivors)."""
    options = params.options
    if clustering == 0:
        documents, k = np.arange(params.corpus.documents), first_k(params)
    else:
        positions, duplicate_of, _ = _survivors(ctx, params)
        documents = positions[duplicate_of < 0]
        k = options.k or default_prototypes_k(len(documents))
    size = min(len(documents), max(k, fit_sample_size(len(documents), fraction=options.sample_fraction,
                                                      floor=options.sample_floor, cap=options.sample_cap)))
    sample = documents if size == len(documents) else np.sort(
        np.random.default_rng(options.seed).choice(documents, size=size, replace=False))
    x = embeddings_at(_embedding_paths(ctx, params), sample)
    clusters = spherical_kmeans(normalise_rows(x) if _unit_rows(params, clustering) else x, k, seed=options.seed)
    buffer = io.BytesIO()
    np.save(buffer, clusters.centroids_)
    ctx.storage.write_bytes(_prune_key(ctx, "centroids", clustering, ".npy"), buffer.getvalue())
    return {"clustering": clustering, "k": int(k), "documents": int(len(documents)), "sample": int(size)}


def prune_assign(ctx: Context, index: int, params: PruneParams, *, clustering: int) -> dict:
    """Shard ``index``'s rows: the nearest centroid of clustering ``clustering`` and the cosine to it."""
    centroids = np.load(io.BytesIO(ctx.storage.read_bytes(_prune_key(ctx, "centroids", clustering, ".npy"))))
    path = ctx.storage.local_path(Keys.embedding(params.corpus.id, embedder_key(ctx.embedder(params.embedder)), index))
    x = np.asarray(load_embeddings(path), dtype=np.float32)
    found = assign(normalise_rows(x) if _unit_rows(params, clustering) else x, centroids)
    write_stored(ctx.storage, _prune_key(ctx, f"assign{clustering}", index),
                 pa.table({"cluster": found.labels_, "similarity": found.similarity_}))
    return {"shard": index, "documents": len(x)}


def prune_dedup(ctx: Context, index: int, params: PruneParams) -> dict:
    """SemDeDup within each cluster of group ``index`` (:func:`dedup_groups`), its members read shard by shard."""
    check_eps(params.options.eps)
    k, groups = first_k(params), dedup_groups(params)
    low, high = index * k // groups, (index + 1) * k // groups
    positions, labels, similarity, start = [], [], [], 0
    for shard, documents in enumerate(params.corpus.shard_documents):
        table = read_stored(ctx.storage, _prune_key(ctx, "assign0", shard))
        cluster = table.column("cluster").to_numpy()
        inside = np.flatnonzero((cluster >= low) & (cluster < high))
        positions.append(start + inside)
        labels.append(cluster[inside] - low)
        similarity.append(table.column("similarity").to_numpy()[inside])
        start += documents
    positions, labels, similarity = map(np.concatenate, (positions, labels, similarity))
    vectors = embeddings_at(_embedding_paths(ctx, params), positions)
    duplicate_of = np.full(len(positions), -1, dtype=np.int64)
    max_similarity = np.full(len(positions), -1.0)
    for members in cluster_members(labels, high - low):
        members = members[np.argsort(similarity[members], kind="stable")]
        duplicate_of[members], max_similarity[members] = dedup_cluster(vectors[members], eps=params.options.eps,
                                                                         positions=positions[members])
    write_stored(ctx.storage, _prune_key(ctx, "dedup", index),
                 pa.table({"position": positions, "duplicate_of": duplicate_of, "max_similarity": max_similarity}))
    return {"clusters": [int(low), int(high)], "documents": int(len(positions)),
            "duplicates": int(np.sum(duplicate_of >= 0))}


def _sharded_result(ctx: Context, params: PruneParams) -> PruneResult:
    """The method's result from the stages' per-shard and per-group artifacts (per-document scalars only)."""
    shards, options = params.corpus.shard_count, params.options
    labels, similarity = _read_columns(ctx, "assign0", shards, "cluster", "similarity")
    if params.method == "prototypes":
        return prototypes_result(np.clip(1.0 - similarity, 0.0, 2.0), labels, options)
    _, duplicate_of, max_similarity = _survivors(ctx, params)
    dedup = SemDeDupResult(kept=duplicate_of < 0, duplicate_of=duplicate_of, max_similarity=max_similarity,
                           labels=labels, eps=options.eps)
    if params.method == "semdedup":
        return semdedup_result(dedup)
    survivors = dedup.kept
    clusters, similarity = _read_columns(ctx, "assign1", shards, "cluster", "similarity")
    difficulty = np.clip(1.0 - similarity[survivors], 0.0, 2.0)
    keep = policy_of(params.corpus.documents, options).keep
    return d4_result(d4_selection(dedup, difficulty, clusters[survivors],
                                  fraction=options.fraction, keep=keep, floor=options.floor), options)


def prune_unit(ctx: Context, index: int, params: PruneParams) -> dict:
    """Score and select every document with ``params.method`` (:data:`curation.pruning.METHODS`): from the
    sharded stages' artifacts for the methods that score embeddings, from the uploaded predictions for EL2N."""
    corpus = params.corpus
    ids = dataset_column(ctx, corpus, "id")
    if params.method in NEEDS_EMBEDDINGS:
        result = finish(_sharded_result(ctx, params))
    else:
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
    write_stored(ctx.storage, _raw_key(ctx, index), raw)
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

