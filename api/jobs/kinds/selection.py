"""``prune``, ``betr`` and ``index``: per-document selection scores and the corpus's vector store.

``prune`` scores every document with one method (DESIGN.md 3.2): ``prototypes``
(1 - cos to the nearest of k spherical k-means centroids, keep-hard or keep-easy by
data abundance, with a per-cluster balance floor), ``semdedup``, ``d4`` or ``el2n`` (from
an uploaded prediction set). ``betr`` (DESIGN.md 3.3) ranks a document sample against
every benchmark example, trains a fastText classifier on the top 10% against the rest,
scores every shard with it and keeps the best share of tokens. Both write one score
Parquet per shard (``id, score, kept, reason`` + extras; :mod:`curation.scores`) and a
summary as the job result (``score_metrics`` names the metric for
``GET /corpora/{id}/scores/?metric=``). ``index`` builds the corpus's FAISS store.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import asdict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from rest_framework import serializers

from api.core.artifacts import artifact_store
from api.core.errors import ApplicationError
from api.datasets.models import Dataset, PredictionSet
from api.datasets.selectors import dataset_shards
from api.jobs.kinds.base import JobKind, Stage, dataset_of, resolve_dataset
from api.jobs.kinds.common import (dataset_column, dataset_column_at, dataset_embeddings, dataset_embeddings_at,
                                   embedding_stage, run_embedding_unit)
from api.jobs.kinds.embed import embedder_spec, job_embedder
from api.jobs.models import Job, JobUnit
from curation import betr
from curation.el2n import corpus_scores, el2n_scores, select_highest
from curation.embedders import DEFAULT_EMBEDDER, embedder_key
from curation.pools import source_name
from curation.prototypes import d4, keep_policy, prototype_scores, select
from curation.scores import write_scores
from curation.semdedup import semdedup
from curation.storage import atomic_write_bytes
from curation.stores import build_store

PRUNE_METHODS = ("prototypes", "semdedup", "d4", "el2n")


class _EmbedderField(serializers.CharField):
    def __init__(self, **kwargs):
        super().__init__(default=DEFAULT_EMBEDDER, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        embedder_spec(value)
        return value


class PruneParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    method = serializers.ChoiceField(choices=PRUNE_METHODS, default="prototypes")
    embedder = _EmbedderField()
    fraction = serializers.FloatField(required=False, min_value=1e-4, max_value=1.0,
                                      help_text="share of documents to keep (prototypes, d4, el2n); default 0.7")
    budget_documents = serializers.FloatField(required=False, min_value=1.0, help_text="training budget in "
                                              "documents: decides keep-hard (abundant data) or keep-easy (scarce)")
    keep = serializers.ChoiceField(choices=["auto", "hard", "easy"], default="auto")
    k = serializers.IntegerField(required=False, min_value=2, max_value=100_000, help_text="prototypes (clusters)")
    eps = serializers.FloatField(default=0.01, min_value=0.0, max_value=0.5, help_text="SemDeDup: cos >= 1 - eps "
                                 "is a duplicate")
    floor = serializers.FloatField(default=0.5, min_value=0.0, max_value=1.0, help_text="per-cluster balance floor")
    predictions = serializers.UUIDField(required=False, help_text="an uploaded prediction set (el2n)")
    seed = serializers.IntegerField(default=0, min_value=0)


class BetrParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    embedder = _EmbedderField()
    sample_size = serializers.IntegerField(default=200_000, min_value=20, max_value=5_000_000,
                                           help_text="documents ranked against the benchmarks (all, up to this)")
    top_fraction = serializers.FloatField(default=0.1, min_value=0.01, max_value=0.5)
    keep_fraction = serializers.FloatField(required=False, min_value=1e-4, max_value=1.0,
                                           help_text="share of tokens to keep")
    flops = serializers.FloatField(required=False, min_value=1.0, help_text="training FLOPs: keep "
                                   "F_opt(C) = 4e-5 C^0.25 percent of tokens (default 0.1 of tokens without either)")
    equal_per_benchmark = serializers.BooleanField(default=False)
    seed = serializers.IntegerField(default=0, min_value=0)

    def validate(self, data):
        if data.get("keep_fraction") and data.get("flops"):
            raise serializers.ValidationError({"keep_fraction": "give keep_fraction or flops, not both"})
        return data


class IndexParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    embedder = _EmbedderField()
    index = serializers.ChoiceField(choices=["auto", "flat", "ivf_sq8", "hnsw"], default="auto")
    target_recall = serializers.FloatField(default=0.95, min_value=0.5, max_value=1.0)
    seed = serializers.IntegerField(default=0, min_value=0)


def _corpus(tenant, data) -> Dataset:
    return resolve_dataset(tenant, {"corpus": data["corpus"]}, kinds=("corpus",))


def _write_shard_scores(job: Job, corpus: Dataset, metric: str, ids: list, score, kept, reason, **extra) -> None:
    store = artifact_store()
    start = 0
    for shard in dataset_shards(dataset=corpus):
        end = start + shard.documents
        write_scores(store.scores_path(job.tenant_id, job.pk, metric, shard.index), ids=ids[start:end],
                     score=score[start:end], kept=kept[start:end], reason=list(reason[start:end]),
                     **{name: values[start:end] for name, values in extra.items()})
        start = end


def _summary(corpus: Dataset, score, kept, reason, extra: dict) -> dict:
    sources = [source_name(s) for s in dataset_column(corpus, "source")]
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


class PruneKind(JobKind):
    """Embed every shard, then score and select over the corpus's embeddings (one unit)."""

    name = "prune"
    params_serializer = PruneParams

    def normalise(self, *, tenant, data):
        corpus = _corpus(tenant, data)
        params = {**data, "corpus": str(corpus.pk)}
        if data["method"] == "el2n":
            if not data.get("predictions"):
                raise serializers.ValidationError({"predictions": "el2n needs an uploaded prediction set "
                                                                  "(POST /api/v1/corpora/{id}/predictions/)"})
            found = PredictionSet.objects.for_tenant(tenant).filter(pk=data["predictions"], dataset=corpus).exists()
            if not found:
                raise ApplicationError("not_found", f"no prediction set {data['predictions']} on this corpus",
                                       detail={"field": "params.predictions"}, status_code=404)
            params["predictions"] = str(data["predictions"])
        return params

    def plan(self, *, tenant, params):
        corpus = dataset_of(tenant.pk, params["corpus"])
        stages = [] if params["method"] == "el2n" else [embedding_stage([corpus])]
        return stages + [Stage("select", 1)]

    def run_unit(self, *, job, stage, index):
        corpus = dataset_of(job.tenant_id, job.params["corpus"])
        if stage == "embedding":
            return run_embedding_unit([corpus], index, job_embedder(job))
        return run_prune(job, corpus, job.params)


def run_prune(job: Job, corpus: Dataset, p: dict) -> dict:
    """Score and select every document of ``corpus`` with ``p["method"]``; write per-shard scores."""
    ids = dataset_column(corpus, "id")
    method = p["method"]
    fraction = p.get("fraction") or 0.7
    extra_columns, extra = {}, {"method": method}
    lower_is_better = False
    if method == "el2n":
        path = artifact_store().predictions_path(job.tenant_id, corpus.pk, p["predictions"])
        score = corpus_scores(el2n_scores(path), ids)
        chosen = select_highest(score, fraction=fraction)
        kept, reason = chosen.kept, chosen.reason
    else:
        vectors = dataset_embeddings(corpus, job_embedder(job))
        if method == "semdedup":
            result = semdedup(vectors, eps=p["eps"], k=p.get("k"), seed=p["seed"])
            score, kept = result.max_similarity, result.kept
            reason = np.where(kept, "kept", "duplicate")
            extra_columns = {"cluster": result.labels, "duplicate_of": result.duplicate_of}
            curve = result.kept_fraction_curve([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2])
            extra["eps_curve"] = [{"eps": eps, "kept_fraction": kept} for eps, kept in curve.items()]
            extra["duplicate_groups"] = len(result.groups())
        else:
            policy = keep_policy(unique_documents=len(ids), budget_documents=p.get("budget_documents") or len(ids),
                                 override=None if p["keep"] == "auto" else p["keep"])
            extra["policy"] = {"keep": policy.keep, "abundance": policy.abundance, "reason": policy.reason}
            lower_is_better = policy.keep == "easy"
            if method == "prototypes":
                scores = prototype_scores(vectors, k=p.get("k"), seed=p["seed"])
                chosen = select(scores.difficulty, scores.labels, keep=policy.keep, fraction=fraction,
                                floor=p["floor"])
                score, kept, reason, labels = scores.difficulty, chosen.kept, chosen.reason, scores.labels
                summary = chosen.summary
            else:  # d4
                result = d4(vectors, fraction=fraction, keep=policy.keep, eps=p["eps"], k=p.get("k"),
                            floor=p["floor"], seed=p["seed"])
                score, kept, reason, labels = result.difficulty, result.kept, result.reason, result.labels
                summary = result.selection.summary
            extra_columns = {"cluster": labels}
            extra["clusters"] = {"cluster": summary.clusters.tolist(), "documents": summary.documents.tolist(),
                                 "kept": summary.kept.tolist(), "floor": summary.floor.tolist()}
    score = np.asarray(score, dtype=np.float64)
    _write_shard_scores(job, corpus, method, ids, score, np.asarray(kept), np.asarray(reason), **extra_columns)
    return {"score_metrics": [method], "lower_is_better": lower_is_better,
            **_summary(corpus, score, kept, list(reason), extra)}


class BetrKind(JobKind):
    """Embed corpus and benchmarks; rank a sample and train the classifier; score every shard; select tokens."""

    name = "betr"
    params_serializer = BetrParams

    def normalise(self, *, tenant, data):
        corpus = _corpus(tenant, data)
        benchmarks = [resolve_dataset(tenant, {"benchmark": b}, kinds=("benchmark",)) for b in data["benchmarks"]]
        return {**data, "corpus": str(corpus.pk), "benchmarks": [str(b.pk) for b in benchmarks]}

    @staticmethod
    def _datasets(tenant_id, params) -> list[Dataset]:
        return [dataset_of(tenant_id, params["corpus"])] + [dataset_of(tenant_id, b) for b in params["benchmarks"]]

    def plan(self, *, tenant, params):
        datasets = self._datasets(tenant.pk, params)
        return [embedding_stage(datasets), Stage("train", 1), Stage("classify", datasets[0].shard_count),
                Stage("select", 1)]

    def run_unit(self, *, job, stage, index):
        datasets = self._datasets(job.tenant_id, job.params)
        if stage == "embedding":
            return run_embedding_unit(datasets, index, job_embedder(job))
        return run_betr_unit(job, job.params, datasets, stage, index)


def run_betr_unit(job: Job, p: dict, datasets: list[Dataset], step: str, index: int, *,
                  train_stage: str = "train") -> dict:
    """One unit of BETR's ``step`` (``train``, ``classify`` or ``select``); ``curate`` reuses it."""
    corpus, benchmarks = datasets[0], datasets[1:]
    store = artifact_store()
    model_path = store.job_file(job.tenant_id, job.pk, "betr-classifier.bin")
    if step == "train":
        embedder = job_embedder(job)  # only the sample's rows are read, a shard at a time
        rng = np.random.default_rng(p["seed"])
        sample = np.sort(rng.permutation(corpus.documents)[: p["sample_size"]])
        targets = {b.name + (f" ({b.pk})" if [x.name for x in benchmarks].count(b.name) > 1 else ""):
                   dataset_embeddings(b, embedder) for b in benchmarks}
        ranking = betr.rank_scores(dataset_embeddings_at(corpus, embedder, sample), targets,
                                   equal_per_benchmark=p["equal_per_benchmark"], seed=p["seed"])
        labelled = betr.label_sample(ranking, top_fraction=p["top_fraction"], seed=p["seed"])
        texts = dataset_column_at(corpus, "text", sample)
        trained = betr.train_classifier([texts[i] for i in labelled.indices], labelled.labels, seed=p["seed"])
        trained.classifier.save(model_path)
        table = pa.table({"id": pa.array(dataset_column_at(corpus, "id", sample), pa.string()),
                          "rank_score": pa.array(ranking.scores), "best_rank": pa.array(ranking.best_rank)})
        buffer = pa.BufferOutputStream()
        pq.write_table(table, buffer)
        atomic_write_bytes(store.job_file(job.tenant_id, job.pk, "betr-sample.parquet"),
                           buffer.getvalue().to_pybytes())
        return {"sample_size": int(len(sample)), "positives": int(len(labelled.positive)),
                "negatives": int(len(labelled.negative)), "examples": int(len(ranking.target_benchmark)),
                "k": int(ranking.k), "holdout_accuracy": trained.holdout_accuracy, "epochs": trained.epoch}
    if step == "classify":
        shard = pq.read_table(store.shard_path(job.tenant_id, corpus.pk, index), columns=["id", "text"])
        texts = shard.column("text").to_pylist()
        scores = betr.BetrClassifier.load(model_path).score(texts)
        raw = pa.table({"id": shard.column("id"), "score": pa.array(scores.astype(np.float64)),
                        "tokens": pa.array(betr.count_tokens(texts))})
        buffer = pa.BufferOutputStream()
        pq.write_table(raw, buffer)
        atomic_write_bytes(store.job_file(job.tenant_id, job.pk, f"betr-raw-{index:05d}.parquet"),
                           buffer.getvalue().to_pybytes())
        return {"shard": index, "documents": len(texts)}
    raws = [pq.read_table(store.job_file(job.tenant_id, job.pk, f"betr-raw-{i:05d}.parquet"))
            for i in range(corpus.shard_count)]
    score = np.concatenate([t.column("score").to_numpy() for t in raws])
    tokens = np.concatenate([t.column("tokens").to_numpy() for t in raws])
    ids = [i for t in raws for i in t.column("id").to_pylist()]
    fraction = p.get("keep_fraction") or (None if p.get("flops") else 0.1)
    chosen = betr.select_tokens(score, tokens, fraction=fraction, flops=p.get("flops"))
    reason = np.where(chosen.kept, "kept", "below_threshold")
    _write_shard_scores(job, corpus, "betr", ids, score, chosen.kept, reason, tokens=tokens)
    train = JobUnit.objects.for_tenant(job.tenant_id).get(job=job, stage=train_stage, index=0).output
    return {"score_metrics": ["betr"], "lower_is_better": False, **_summary(corpus, score, chosen.kept,
            list(reason), {"train": train, "token_fraction": chosen.fraction, "threshold": chosen.threshold,
                           "kept_tokens": chosen.kept_tokens, "total_tokens": chosen.total_tokens})}


class IndexKind(JobKind):
    """Embed every shard, then build the corpus's FAISS store (exact or IVF/HNSW by size, recall measured)."""

    name = "index"
    params_serializer = IndexParams

    def normalise(self, *, tenant, data):
        return {**data, "corpus": str(_corpus(tenant, data).pk)}

    def plan(self, *, tenant, params):
        return [embedding_stage([dataset_of(tenant.pk, params["corpus"])]), Stage("build", 1)]

    def run_unit(self, *, job, stage, index):
        corpus = dataset_of(job.tenant_id, job.params["corpus"])
        if stage == "embedding":
            return run_embedding_unit([corpus], index, job_embedder(job))
        return build_corpus_store(job, corpus, job.params)


def build_corpus_store(job: Job, corpus: Dataset, p: dict) -> dict:
    """The corpus's FAISS store under ``datasets/<corpus>/store/<embedder key>/``; ``curate`` reuses it."""
    store = artifact_store()
    key = embedder_key(job_embedder(job))
    directory = store.path(job.tenant_id, "datasets", corpus.pk, "store", key)
    built = build_store([store.embedding_path(job.tenant_id, corpus.pk, key, i) for i in range(corpus.shard_count)],
                        directory, kind=p.get("index", "auto"), seed=p["seed"],
                        recall_target=p.get("target_recall", 0.95), embedder_key=key)
    return {"store": asdict(built.meta)}
