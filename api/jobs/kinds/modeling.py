"""``fit`` and ``mixture``: the performance model of a corpus for target benchmarks, and
the best mixture at a budget (DESIGN.md 3.4-3.6).

``fit`` splits the corpus into pools (sources, or source x quality decile from the
scores of an earlier ``betr`` or ``prune`` job; documents that job dropped are left
out), measures the OT distance of every pool to the benchmarks, gathers observations
(the tenant's pilot runs for ``metric``, or the built-in proxy evaluator) and fits
:class:`curation.mixture.MixtureLaw`. ``mixture`` optimises the fitted model at a
budget and writes the manifest of document ids. Both steps are reused by ``curate``.
"""
from __future__ import annotations

import hashlib
import json
import math
import uuid

import numpy as np
import pyarrow.parquet as pq
from rest_framework import serializers

from api.core.artifacts import artifact_store
from api.core.errors import ApplicationError
from api.datasets.models import Dataset
from api.jobs.kinds.base import JobKind, Stage, dataset_of, resolve_dataset
from api.jobs.kinds.common import (
    dataset_column,
    dataset_column_at,
    dataset_embeddings,
    dataset_rows,
    embedding_stage,
    run_embedding_unit,
)
from api.jobs.kinds.embed import embedder_spec, job_embedder
from api.jobs.models import Job, JobUnit
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from api.modeling.services import performance_model_law
from curation.embedders import DEFAULT_EMBEDDER, embedder_key
from curation.manifest import select_documents, write_manifest
from curation.mixture import Observation, Pool, budget_in_samples, fit_mixture_law
from curation.ot import distance_table
from curation.pilots import METRIC as PROXY_METRIC, proxy_observations
from curation.pools import assign_pools
from curation.storage import atomic_write_bytes


MAX_PILOT_SIZE = 20_000  # documents in the largest proxy pilot run


class FitParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    embedder = serializers.CharField(default=DEFAULT_EMBEDDER)
    metric = serializers.CharField(required=False, max_length=100, help_text="fit the tenant's pilot runs of "
                                   "this metric; without it the proxy evaluator makes the observations")
    scores_job = serializers.UUIDField(required=False, help_text="a succeeded betr or prune job on the corpus: "
                                       "its dropped documents are left out, its scores make quality pools")
    quality_pools = serializers.BooleanField(default=False, help_text="pools are source x quality decile "
                                             "(needs scores_job) instead of sources")
    ot_sample_size = serializers.IntegerField(default=300, min_value=20, max_value=5000)
    seed = serializers.IntegerField(default=0, min_value=0)

    def validate_embedder(self, value: str) -> str:
        embedder_spec(value)
        return value


class MixtureParams(FitParams):
    corpus = serializers.UUIDField(required=False)
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20, required=False)
    performance_model = serializers.UUIDField(required=False, help_text="a fitted model; else one is fitted")
    budget = serializers.FloatField(help_text="training budget in budget_unit")
    budget_unit = serializers.ChoiceField(choices=["samples", "tokens", "flops"], default="samples")
    model_parameters = serializers.FloatField(required=False, min_value=1.0, help_text="for a budget in flops")
    frontier_points = serializers.IntegerField(default=25, min_value=3, max_value=200)

    def validate_budget(self, value):
        if not math.isfinite(value) or value <= 0:
            raise serializers.ValidationError(f"budget must be a finite number > 0; got {value}")
        return value

    def validate(self, data):
        if data.get("budget_unit") == "flops" and not data.get("model_parameters"):
            raise serializers.ValidationError({"model_parameters": "a budget in flops needs the model size "
                                                                   "(tokens = flops / (6 * parameters))"})
        if not data.get("performance_model") and not (data.get("corpus") and data.get("benchmarks")):
            raise serializers.ValidationError({"performance_model": "give a performance_model, or a corpus and "
                                                                    "benchmarks to fit one"})
        return data


# -- the fitting step, shared with ``curate`` ------------------------------------------------------

def normalise_fit(tenant, data: dict) -> dict:
    corpus = resolve_dataset(tenant, {"corpus": data["corpus"]}, kinds=("corpus",))
    benchmarks = [resolve_dataset(tenant, {"benchmark": b}, kinds=("benchmark",)) for b in data["benchmarks"]]
    params = {**data, "corpus": str(corpus.pk), "benchmarks": [str(b.pk) for b in benchmarks]}
    if data.get("scores_job"):
        job = Job.objects.for_tenant(tenant).filter(pk=data["scores_job"], status=Job.Status.SUCCEEDED,
                                                    params__corpus=str(corpus.pk)).first()
        if job is None or not (job.result or {}).get("score_metrics"):
            raise ApplicationError("not_found", f"no succeeded betr or prune job {data['scores_job']} on this corpus",
                                   detail={"field": "params.scores_job"}, status_code=404)
        params["scores_job"] = str(job.pk)
        params["pool_scores"] = score_sources(job, data.get("quality_pools", False))
    elif data.get("quality_pools"):
        raise serializers.ValidationError({"quality_pools": "quality pools need scores_job (a betr or prune job)"})
    if data.get("metric"):
        runs = PilotRun.objects.for_tenant(tenant).filter(corpus=corpus, metric=data["metric"]).count()
        if runs < 4:
            raise ApplicationError("not_enough_pilot_runs", f"{runs} pilot runs of metric {data['metric']!r} on "
                                   "this corpus; fitting needs at least 4 (or leave metric out to use the proxy)",
                                   detail={"field": "params.metric"})
    return params


def fit_stages(datasets: list[Dataset]) -> list[Stage]:
    return [embedding_stage(datasets), Stage("ot", 1), Stage("pilots", 1), Stage("fit", 1)]


def fit_datasets(tenant_id, params) -> list[Dataset]:
    return [dataset_of(tenant_id, params["corpus"])] + [dataset_of(tenant_id, b) for b in params["benchmarks"]]


def score_sources(scores_job: Job | None, quality_pools: bool) -> dict:
    """Where a fit reads kept flags and quality: ``{"kept": [job, metric] | None, "quality": [job, metric,
    lower_is_better] | None}``. A ``prune`` job's dropped documents are left out; a ``betr`` job only ranks."""
    if scores_job is None:
        return {"kept": None, "quality": None}
    metric = scores_job.result["score_metrics"][0]
    quality = [str(scores_job.pk), metric, bool(scores_job.result.get("lower_is_better"))] if quality_pools else None
    return {"kept": None if scores_job.kind == "betr" else [str(scores_job.pk), metric], "quality": quality}


def read_scores(tenant_id, corpus: Dataset, job_id: str, metric: str, column: str) -> np.ndarray:
    """One column of a job's per-shard scores of ``corpus``, in document order."""
    store = artifact_store()
    return np.concatenate([pq.read_table(store.scores_path(tenant_id, job_id, metric, i), columns=[column])
                           .column(column).to_numpy(zero_copy_only=False) for i in range(corpus.shard_count)])


def pool_inputs(job: Job, corpus: Dataset, sources: dict) -> dict:
    """Each document's pool and quality (higher is better; ``None`` without quality pools).

    ``sources`` is :func:`score_sources`' answer; a job id ``"self"`` means ``job`` itself (``curate``)."""
    def job_id(value: str) -> str:
        return str(job.pk) if value == "self" else value

    kept = quality = None
    if sources.get("kept"):
        kept = read_scores(job.tenant_id, corpus, job_id(sources["kept"][0]), sources["kept"][1], "kept").astype(bool)
    if sources.get("quality"):
        identifier, metric, lower_is_better = sources["quality"]
        quality = read_scores(job.tenant_id, corpus, job_id(identifier), metric, "score").astype(np.float64)
        quality = np.nan_to_num(-quality if lower_is_better else quality, nan=-np.inf)
    pools = assign_pools(dataset_column(corpus, "source"), kept=kept, quality=quality)
    return {"corpus": corpus, "pools": pools, "quality": quality}


def pool_distances(job: Job, corpus: Dataset, benchmarks: list[Dataset], pools: np.ndarray, names: list[str],
                   params: dict) -> dict:
    """OT distance of every pool to every benchmark, cached per (corpus, pools, benchmarks, embedder, options).

    Corpora and benchmarks are immutable, so a cached table stays valid; the key hashes the
    pool of every document, so other pools (another prune or BETR run) get their own entry.
    """
    embedder = job_embedder(job)
    key = hashlib.sha256(json.dumps({
        "pools": hashlib.sha256("\x1f".join(map(str, pools)).encode()).hexdigest(),
        "benchmarks": [str(b.pk) for b in benchmarks], "embedder": embedder_key(embedder),
        "sample_size": params["ot_sample_size"], "seed": params["seed"], "reg": 0.05, "metric": "cosine",
        "n_resamples": 5}, sort_keys=True).encode()).hexdigest()[:24]
    store = artifact_store()
    cache = store.path(job.tenant_id, "datasets", corpus.pk, "ot-cache", f"{key}.json")
    if cache.is_file():
        return json.loads(cache.read_text()) | {"cached": True}
    targets = {str(b.pk): dataset_embeddings(b, embedder) for b in benchmarks}
    table = distance_table({name: dataset_rows(corpus, embedder, np.flatnonzero(pools == name)) for name in names},
                           targets, seed=params["seed"],
                           metric="cosine", reg=0.05, sample_size=params["ot_sample_size"], n_resamples=5)
    result = {"pool_ot": {name: float(table.value[i].mean()) for i, name in enumerate(table.sources)},
              "distances": {name: {t: float(table.value[i, j]) for j, t in enumerate(table.targets)}
                            for i, name in enumerate(table.sources)}}
    atomic_write_bytes(cache, json.dumps(result).encode())
    return result | {"cached": False}


def run_fit_unit(job: Job, params: dict, stage: str, index: int) -> dict:
    datasets = fit_datasets(job.tenant_id, params)
    corpus, benchmarks = datasets[0], datasets[1:]
    if stage == "embedding":
        return run_embedding_unit(datasets, index, job_embedder(job))
    inputs = pool_inputs(job, corpus, params.get("pool_scores", {}))
    pools = inputs["pools"]
    names = sorted({p for p in pools if p is not None})
    if stage == "ot":
        return pool_distances(job, corpus, benchmarks, pools, names, params)
    if stage == "pilots":
        if params.get("metric"):
            runs = PilotRun.objects.for_tenant(job.tenant_id).filter(corpus=corpus, metric=params["metric"])
            return {"metric": params["metric"], "higher_is_better": bool(runs[0].higher_is_better),
                    "observations": [{"weights": r.mixture, "size": r.size, "value": r.value,
                                      "origin": "pilot_runs" if r.origin == PilotRun.Origin.USER else "proxy"}
                                     for r in runs]}
        rng = np.random.default_rng(params["seed"])
        # at most MAX_PILOT_SIZE documents of each pool are ever drawn: read only those
        chosen = {name: np.sort(rng.permutation(np.flatnonzero(pools == name))[:MAX_PILOT_SIZE]) for name in names}
        positions = np.sort(np.concatenate(list(chosen.values())))
        texts = dict(zip(positions.tolist(), dataset_column_at(corpus, "text", positions)))
        target_texts = [t for b in benchmarks for t in dataset_column(b, "text")]
        target_texts = [target_texts[i] for i in sorted(rng.permutation(len(target_texts))[:1000])]
        observations = proxy_observations({name: [texts[i] for i in chosen[name].tolist()] for name in names},
                                          target_texts, unique={name: int((pools == name).sum()) for name in names},
                                          seed=params["seed"], max_size=MAX_PILOT_SIZE)
        return {"metric": PROXY_METRIC, "higher_is_better": False,
                "observations": [{"weights": dict(o.weights), "size": o.size, "value": o.value, "origin": o.origin}
                                 for o in observations]}
    # stage "fit"
    ot = _unit_output(job, "ot")["pool_ot"]
    pilots = _unit_output(job, "pilots")
    quality = inputs["quality"]
    pool_list = [Pool(name=name, unique=int((pools == name).sum()), ot=ot[name],
                      quality=float(np.mean(quality[pools == name])) if quality is not None else math.nan)
                 for name in names]
    observations = [Observation(weights=o["weights"], size=o["size"], value=o["value"], origin=o["origin"])
                    for o in pilots["observations"]]
    try:
        law = fit_mixture_law(pool_list, observations, higher_is_better=pilots["higher_is_better"])
    except ValueError as exc:
        raise ApplicationError("fit_failed", f"the performance model could not be fitted: {exc}") from None
    fitted = law.metric_of(law.effective_data(np.stack([law.weights_vector(o.weights) * o.size
                                                        for o in observations])))
    model, _ = PerformanceModel.objects.for_tenant(job.tenant_id).update_or_create(
        pk=uuid.uuid5(job.pk, "performance-model"),
        defaults={"tenant_id": job.tenant_id, "corpus": corpus, "benchmarks": params["benchmarks"], "job": job,
                  "metric": pilots["metric"], "higher_is_better": pilots["higher_is_better"],
                  "parameters": law.parameters(), "pools": law.pool_rows(), "fit_error": law.rmse,
                  "provenance": dict(law.provenance),
                  "observations": [o | {"fitted": float(f)} for o, f in zip(pilots["observations"], fitted)]})
    return {"performance_model": str(model.pk), "metric": model.metric, "fit_error": law.rmse,
            "parameters": law.parameters(), "provenance": model.provenance,
            "pools": {row["name"]: {"unique_documents": row["unique"], "utility": row["utility"]}
                      for row in law.pool_rows()}}


def _unit_output(job: Job, stage: str) -> dict:
    return JobUnit.objects.for_tenant(job.tenant_id).get(job=job, stage=stage, index=0).output


# -- the mixture step, shared with ``curate`` ------------------------------------------------------

def run_mixture_unit(job: Job, params: dict, model_id: str) -> dict:
    model = PerformanceModel.objects.for_tenant(job.tenant_id).get(pk=model_id)
    law = performance_model_law(model)
    corpus = model.corpus
    budget = budget_in_samples(params["budget"], params["budget_unit"],
                               tokens_per_sample=corpus.tokens / max(corpus.documents, 1),
                               parameters=params.get("model_parameters"))
    allocation = law.optimize(budget)
    prediction = law.predict(dict(zip(allocation.pools, allocation.weights)), budget)
    frontier = law.frontier(np.geomspace(budget / 100, budget * 100, params["frontier_points"]))
    fit_job = model.job or job
    inputs = pool_inputs(fit_job, corpus, fit_job.params.get("pool_scores", {}))
    selection = select_documents(inputs["pools"], allocation, quality=inputs["quality"], seed=params.get("seed", 0))
    mixture_id = uuid.uuid5(job.pk, "mixture")
    ids = dataset_column(corpus, "id")
    documents = write_manifest(artifact_store().manifest_path(job.tenant_id, mixture_id), ids=ids,
                               selection=selection)
    rows = [row for row in allocation.as_rows(law.unique.astype(int)) if row["weight"] > 0]
    predicted = {"metric": model.metric, "higher_is_better": model.higher_is_better, "value": prediction.value,
                 "low": prediction.low, "high": prediction.high, "extrapolated": prediction.extrapolated,
                 "provenance": model.provenance}
    Mixture.objects.for_tenant(job.tenant_id).update_or_create(
        pk=mixture_id,
        defaults={"tenant_id": job.tenant_id, "corpus": corpus, "job": job, "performance_model": model,
                  "budget": params["budget"], "budget_unit": params["budget_unit"],
                  "weights": {row["pool"]: row["weight"] for row in rows}, "pools": rows, "predicted": predicted,
                  "frontier": frontier, "document_count": documents})
    return {"mixture": str(mixture_id), "performance_model": str(model.pk), "budget": params["budget"],
            "budget_unit": params["budget_unit"], "budget_samples": budget, "pools": rows, "predicted": predicted,
            "documents": documents}


class FitKind(JobKind):
    """Embed, OT per pool, observations (pilot runs or proxy), fit: a PerformanceModel."""

    name = "fit"
    params_serializer = FitParams

    def normalise(self, *, tenant, data):
        return normalise_fit(tenant, data)

    def plan(self, *, tenant, params):
        return fit_stages(fit_datasets(tenant.pk, params))

    def run_unit(self, *, job, stage, index):
        return run_fit_unit(job, job.params, stage, index)


class MixtureKind(JobKind):
    """Optimise a fitted model at a budget (fitting one first when none is given); write the manifest."""

    name = "mixture"
    params_serializer = MixtureParams

    def normalise(self, *, tenant, data):
        if data.get("performance_model"):
            model = PerformanceModel.objects.for_tenant(tenant).filter(pk=data["performance_model"]).first()
            if model is None:
                raise ApplicationError("not_found", f"no performance model with id {data['performance_model']}",
                                       detail={"field": "params.performance_model"}, status_code=404)
            keep = ("performance_model", "budget", "budget_unit", "model_parameters", "frontier_points", "seed")
            return {key: (str(value) if key == "performance_model" else value)
                    for key, value in data.items() if key in keep}
        return normalise_fit(tenant, data)

    def plan(self, *, tenant, params):
        stages = [] if params.get("performance_model") else fit_stages(fit_datasets(tenant.pk, params))
        return stages + [Stage("mixture", 1)]

    def run_unit(self, *, job, stage, index):
        if stage != "mixture":
            return run_fit_unit(job, job.params, stage, index)
        model_id = job.params.get("performance_model") or _unit_output(job, "fit")["performance_model"]
        return run_mixture_unit(job, job.params, model_id)
