"""Modelling steps: pools, OT distances, pilot observations, the performance-law fit and the
mixture at a budget (DESIGN.md 3.4-3.6), and the ``ot`` job's source-to-benchmark table.

Pools are sources, or source x quality decile, over the documents a pruning run kept
(:class:`~curation.steps.PoolSpec`). The fit's output carries the fitted law in stored
form (``output["model"]``), so the ``mixture`` step of the same run reads it from there and
a later run reads it back through ``ctx.model``.
"""
from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from curation.dataset import write_dataset
from curation.embedders import accelerator, embedder_key
from curation.manifest import select_documents, write_manifest
from curation.laws import Observation, Pool, budget_in_samples, restore_law
from curation.laws.backtest import backtest_summary, select_law
from curation.laws.base import metric_range
from curation.ot import distance_table
from curation.pipeline import read_stored
from curation.pilots import (METRIC as PROXY_METRIC, PILOT_METRICS, known_metric_range, metric_unit,
                             proxy_observations, stream_order, tiny_lm_design)
from curation.pools import assign_pools, source_name
from curation.steps import Context, DatasetRef, PoolSpec, ScoreRef, StoredModel
from curation.steps.decontaminate import contaminated_mask
from curation.steps.data import dataset_column, dataset_column_at, dataset_embeddings, dataset_rows
from curation.storage import Keys
from curation.tinylm import TinyLMConfig, tokenize, train_pilot

MAX_PILOT_SIZE = 20_000  # documents in the largest proxy pilot run
BAND_LEVEL = 0.95  # the probability the predicted metric's band is drawn for
#: The OT options of the fit's pool distances (cosine cost, curation.ot's defaults).
POOL_OT = {"metric": "cosine", "reg": 0.05, "n_resamples": 5}


@dataclass(frozen=True)
class FitParams:
    """Fit a law of ``corpus``'s pools to ``benchmarks``: the user's pilot runs of ``metric``,
    or (``metric`` None) pilot runs the service trains itself, by ``pilot_model``: ``bigram``
    (the proxy evaluator, one unit) or ``tiny_lm`` (``pilot_runs`` tiny language models of
    ``tiny_lm`` config, one unit each, the largest on ``pilot_tokens`` tokens); ``law`` (a kind
    of :data:`curation.laws.LAWS`) or, None, the one the backtest chooses."""

    corpus: DatasetRef
    benchmarks: tuple[DatasetRef, ...]
    embedder: str
    pools: PoolSpec = PoolSpec()
    metric: str | None = None
    ot_sample_size: int = 300
    seed: int = 0
    law: str | None = None
    pilot_model: str = "bigram"
    pilot_runs: int = 20
    pilot_tokens: int = 1_000_000
    tiny_lm: TinyLMConfig = TinyLMConfig()

    @property
    def trains_tiny_lms(self) -> bool:
        """Whether the pilots stage trains tiny LMs (one unit per run, on the ``gpu`` queue)."""
        return self.pilot_model == "tiny_lm" and not self.metric

    @property
    def pilot_units(self) -> int:
        """Units of the pilots stage: one per tiny-LM run, one for the proxy or the user's runs."""
        return self.pilot_runs if self.trains_tiny_lms else 1

    def tiny_lm_design(self, pool_documents: dict[str, int]) -> list[dict]:
        """The tiny-LM runs (:func:`curation.pilots.tiny_lm_design`): the largest has ``pilot_tokens``
        tokens at the corpus's tokens per document."""
        return tiny_lm_design(pool_documents, runs=self.pilot_runs, seed=self.seed,
                              largest=self.pilot_tokens / max(self.corpus.tokens_per_sample, 1.0))


@dataclass(frozen=True)
class MixtureParams:
    """Optimise a law at ``budget`` (in ``budget_unit``): the stored model ``performance_model``,
    or the one the run's ``fit_stage`` fitted; write the manifest of the selected documents and,
    with ``dataset``, the training-ready dataset (:mod:`curation.dataset`; its ``dataset.json``
    counts what the run's ``contamination_stage`` found, where it has one)."""

    budget: float
    budget_unit: str = "samples"
    model_parameters: float | None = None
    frontier_points: int = 25
    seed: int = 0
    performance_model: str | None = None
    fit_stage: str | None = None
    corpus: DatasetRef | None = None
    dataset: bool = True
    contamination_stage: str | None = None


@dataclass(frozen=True)
class OTParams:
    corpus: DatasetRef
    benchmarks: tuple[DatasetRef, ...]
    embedder: str
    metric: str = "cosine"
    reg: float = 0.05
    sample_size: int = 500
    n_resamples: int = 20
    seed: int = 0


def mixture_id(run_id: str) -> uuid.UUID:
    """The id of the mixture a run makes (names its manifest)."""
    return uuid.uuid5(uuid.UUID(run_id), "mixture")


def _read_scores(ctx: Context, corpus: DatasetRef, ref: ScoreRef, column: str) -> np.ndarray:
    run = ref.run or ctx.run_id
    return np.concatenate([read_stored(ctx.storage, Keys.scores(run, ref.metric, i), [column])
                           .column(column).to_numpy(zero_copy_only=False) for i in range(corpus.shard_count)])


def pool_inputs(ctx: Context, corpus: DatasetRef, spec: PoolSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """Each document's pool (n,) (None where left out: dropped by ``spec.kept`` or contaminated) and quality (n,) (higher is better; None
    without quality pools)."""
    kept = _read_scores(ctx, corpus, spec.kept, "kept").astype(bool) if spec.kept else None
    if spec.decontaminated:  # documents holding a benchmark example are in no pool
        clean = ~contaminated_mask(ctx.storage, spec.contamination_run or ctx.run_id, corpus)
        kept = clean if kept is None else kept & clean
    quality = None
    if spec.quality:
        quality = _read_scores(ctx, corpus, spec.quality, "score").astype(np.float64)
        quality = np.nan_to_num(-quality if spec.quality.lower_is_better else quality, nan=-np.inf)
    return assign_pools(dataset_column(ctx, corpus, "source"), kept=kept, quality=quality), quality


def _names(pools: np.ndarray) -> list[str]:
    return sorted({p for p in pools if p is not None})


def pool_distances(ctx: Context, index: int, params: FitParams) -> dict:
    """OT distance of every pool to every benchmark, cached per (corpus, pools, benchmarks, embedder, options).

    Corpora and benchmarks are immutable, so a cached table stays valid; the key hashes the
    pool of every document, so other pools (another prune or BETR run) get their own entry.
    """
    pools, _ = pool_inputs(ctx, params.corpus, params.pools)
    names = _names(pools)
    digest = hashlib.sha256(json.dumps({
        "pools": hashlib.sha256("\x1f".join(map(str, pools)).encode()).hexdigest(),
        "benchmarks": [b.id for b in params.benchmarks], "embedder": embedder_key(ctx.embedder(params.embedder)),
        "sample_size": params.ot_sample_size, "seed": params.seed, **POOL_OT}, sort_keys=True).encode()).hexdigest()[:24]
    cache = Keys.ot_cache(params.corpus.id, digest)
    if ctx.storage.exists(cache):
        return json.loads(ctx.storage.read_bytes(cache)) | {"cached": True}
    targets = {b.id: dataset_embeddings(ctx, b, params.embedder) for b in params.benchmarks}
    table = distance_table({name: dataset_rows(ctx, params.corpus, params.embedder, np.flatnonzero(pools == name))
                            for name in names}, targets, seed=params.seed, sample_size=params.ot_sample_size,
                           device=accelerator(), **POOL_OT)
    result = {"pool_ot": {name: float(table.value[i].mean()) for i, name in enumerate(table.sources)},
              "distances": {name: {t: float(table.value[i, j]) for j, t in enumerate(table.targets)}
                            for i, name in enumerate(table.sources)}}
    ctx.storage.write_bytes(cache, json.dumps(result).encode())
    return result | {"cached": False}


def target_sample(ctx: Context, benchmarks, rng: np.random.Generator, limit: int = 1000) -> list[str]:
    """At most ``limit`` texts of the target benchmarks, a seeded sample in benchmark order."""
    texts = [t for b in benchmarks for t in dataset_column(ctx, b, "text")]
    return [texts[i] for i in sorted(rng.permutation(len(texts))[:limit])]


def pilot_observations(ctx: Context, index: int, params: FitParams) -> dict:
    """The user's pilot runs of ``params.metric``, or proxy observations on designed mixtures, or
    (``pilot_model`` tiny_lm) the tiny-LM run ``index`` of the design."""
    if params.metric:
        if ctx.pilot_runs is None:
            raise ValueError(f"no pilot runs of metric {params.metric!r} are available to this run")
        higher_is_better, observations = ctx.pilot_runs(params.metric)
        return {"metric": params.metric, "higher_is_better": higher_is_better, "observations": observations}
    if params.trains_tiny_lms:
        return tiny_lm_pilot(ctx, index, params)
    pools, _ = pool_inputs(ctx, params.corpus, params.pools)
    names = _names(pools)
    rng = np.random.default_rng(params.seed)
    # at most MAX_PILOT_SIZE documents of each pool are ever drawn: read only those
    chosen = {name: np.sort(rng.permutation(np.flatnonzero(pools == name))[:MAX_PILOT_SIZE]) for name in names}
    positions = np.sort(np.concatenate(list(chosen.values())))
    texts = dict(zip(positions.tolist(), dataset_column_at(ctx, params.corpus, "text", positions)))
    target_texts = target_sample(ctx, params.benchmarks, rng)
    observations = proxy_observations({name: [texts[i] for i in chosen[name].tolist()] for name in names},
                                      target_texts, unique={name: int((pools == name).sum()) for name in names},
                                      seed=params.seed, max_size=MAX_PILOT_SIZE, progress=ctx.progress)
    return {"metric": PROXY_METRIC, "higher_is_better": False,
            "observations": [{"weights": dict(o.weights), "size": o.size, "value": o.value, "origin": o.origin}
                             for o in observations]}


def tiny_lm_pilot(ctx: Context, index: int, params: FitParams) -> dict:
    """Train the tiny LM of design run ``index`` (:meth:`FitParams.tiny_lm_design`) on the run's documents
    in :func:`curation.pilots.stream_order` (each pool's in a seeded order, cycled when repeated, shuffled
    into one stream), and the target benchmarks' cross-entropy as the observation; ``ctx.progress``
    counts tokens. Only the run's documents are read."""
    pools, _ = pool_inputs(ctx, params.corpus, params.pools)
    members = {name: np.flatnonzero(pools == name) for name in _names(pools)}
    run = params.tiny_lm_design({name: len(m) for name, m in members.items()})[index]
    positions = np.asarray(stream_order(members, run, seed=params.seed, index=index), dtype=np.int64)
    if not len(positions):
        raise ValueError(f"pilot run {index} draws no document (size {run['size']:.3g} samples): raise pilot_tokens")
    unique, stream = np.unique(positions, return_inverse=True)
    documents = tokenize(dataset_column_at(ctx, params.corpus, "text", unique), params.tiny_lm.vocab_size)
    targets = tokenize(target_sample(ctx, params.benchmarks, np.random.default_rng(params.seed), limit=500),
                       params.tiny_lm.vocab_size)
    result = train_pilot((documents[i] for i in stream), targets, params.tiny_lm, seed=params.seed,
                         progress=ctx.progress)
    observation = {"weights": run["mixture"], "size": run["size"], "value": result.value, "origin": "tiny_lm"}
    return {"metric": PILOT_METRICS["tiny_lm"], "higher_is_better": False, "observations": [observation],
            "run": {**run, **result.as_dict(), "index": index, "documents": int(len(positions)),
                    "unique_documents": int(len(unique))}}


def pilot_results(outputs: list[dict]) -> dict:
    """The pilots stage's units as one ``{"metric", "higher_is_better", "observations"}`` (one unit for
    the user's runs and the proxy, one observation a unit for tiny-LM runs)."""
    return {"metric": outputs[0]["metric"], "higher_is_better": outputs[0]["higher_is_better"],
            "observations": [o for output in outputs for o in output["observations"]]}


def pilot_runs(outputs: list[dict]) -> list[dict]:
    """The tiny-LM runs among a pilots stage's unit outputs, in unit (design) order, each with its
    observed value: mixture, size, value, tokens, seconds, device, loss curve."""
    return [output["run"] | {"value": output["observations"][0]["value"]} for output in outputs if "run" in output]


def pilot_summary(ctx: Context, index: int, params: FitParams, *, pilots_stage: str) -> dict:
    """The pilots stage's runs in design order (:func:`pilot_runs`), their tokens and seconds."""
    outputs = ctx.outputs(pilots_stage)
    runs = pilot_runs(outputs)
    return {**{k: v for k, v in pilot_results(outputs).items() if k != "observations"}, "runs": runs,
            "tokens": sum(r["tokens"] for r in runs), "seconds": sum(r["seconds"] for r in runs)}


def fit_performance_law(ctx: Context, index: int, params: FitParams, *, ot_stage: str, pilots_stage: str) -> dict:
    """Fit every performance law the observations allow (OT and quality are pool features), backtest
    each and keep the one whose worse held-out error (largest size; unseen mixtures) is lowest, or
    the one ``params.law`` asks for
    (:func:`curation.laws.backtest.select_law`); the output carries the backtest report."""
    pools, quality = pool_inputs(ctx, params.corpus, params.pools)
    ot = ctx.output(ot_stage)["pool_ot"]
    pilots = pilot_results(ctx.outputs(pilots_stage))
    pool_list = [Pool(name=name, unique=int((pools == name).sum()), ot=ot[name],
                      quality=float(np.mean(quality[pools == name])) if quality is not None else math.nan)
                 for name in _names(pools)]
    observations = [Observation(weights=o["weights"], size=o["size"], value=o["value"], origin=o["origin"])
                    for o in pilots["observations"]]
    higher_is_better = pilots["higher_is_better"]
    value_range = metric_range([o.value for o in observations], higher_is_better=higher_is_better,
                               known=known_metric_range(pilots["metric"]))
    try:
        # thousands of small least-squares steps: BLAS threads only contend (with torch's, in a worker)
        with threadpool_limits(limits=1):
            law, report = select_law(pool_list, observations, higher_is_better=higher_is_better, kind=params.law,
                                     value_range=value_range, seed=params.seed)
    except ValueError as exc:
        raise ValueError(f"the performance model could not be fitted: {exc}") from None
    fitted = law.fitted(observations)
    model = {**law.to_stored(), "metric": pilots["metric"], "higher_is_better": higher_is_better,
             "pool_spec": params.pools.as_dict(), "backtest": report,
             "observations": [o | {"fitted": float(f)} for o, f in zip(pilots["observations"], fitted)]}
    return {"metric": pilots["metric"], "law": law.kind, "fit_error": law.rmse, "parameters": law.parameters(),
            "provenance": model["provenance"], "at_bound": dict(law.at_bound),
            "backtest": backtest_summary(report),
            "pools": {row["name"]: {"unique_documents": row["unique"], "utility": row.get("utility")}
                      for row in law.pool_rows()},
            "model": model}


def _stored(ctx: Context, params: MixtureParams) -> tuple[StoredModel, str | None]:
    if params.performance_model:
        return ctx.model(params.performance_model), params.performance_model
    fit = ctx.output(params.fit_stage)
    m = fit["model"]
    return StoredModel(kind=m["kind"], metric=m["metric"], higher_is_better=m["higher_is_better"],
                       parameters=m["parameters"], pools=m["pools"], provenance=m["provenance"],
                       corpus=params.corpus, pool_spec=PoolSpec.from_dict(m["pool_spec"]),
                       backtest=backtest_summary(m["backtest"])), fit.get("performance_model")


def optimise_mixture(ctx: Context, index: int, params: MixtureParams) -> dict:
    """The law's best mixture at the budget, its predicted metric with band, the frontier, and the
    manifest of the selected documents (:meth:`Keys.manifest`)."""
    stored, model_id = _stored(ctx, params)
    law = restore_law(stored.kind, {"parameters": stored.parameters, "pools": stored.pools,
                                    "provenance": stored.provenance})
    corpus = stored.corpus
    budget = budget_in_samples(params.budget, params.budget_unit, tokens_per_sample=corpus.tokens_per_sample,
                               parameters=params.model_parameters)
    allocation = law.optimize(budget)
    prediction = law.predict(dict(zip(allocation.pools, allocation.weights)), budget, level=BAND_LEVEL)
    frontier = law.frontier(np.geomspace(budget / 100, budget * 100, params.frontier_points))
    pools, quality = pool_inputs(ctx, corpus, stored.pool_spec)
    selection = select_documents(pools, allocation, quality=quality, seed=params.seed)
    identifier = mixture_id(ctx.run_id)
    ids = dataset_column(ctx, corpus, "id")
    documents = write_manifest(ctx.storage, Keys.manifest(identifier), ids=ids, selection=selection)
    rows = [row for row in allocation.as_rows(law.unique.astype(int)) if row["weight"] > 0]
    predicted = {"metric": stored.metric, "unit": metric_unit(stored.metric),
                 "higher_is_better": stored.higher_is_better, "value": prediction.value,
                 "low": prediction.low, "high": prediction.high, "level": BAND_LEVEL,
                 "extrapolated": prediction.extrapolated, "outside_doublings": prediction.outside,
                 "clamped": prediction.clamped, "provenance": stored.provenance,
                 "at_bound": dict(law.at_bound), "law": stored.kind, "backtest": stored.backtest}
    result = {"mixture": str(identifier), "performance_model": model_id, "corpus": corpus.id,
              "budget": params.budget, "budget_unit": params.budget_unit, "budget_samples": budget, "pools": rows,
              "weights": {row["pool"]: row["weight"] for row in rows}, "predicted": predicted, "frontier": frontier,
              "documents": documents}
    if params.dataset:
        result["dataset"] = _training_dataset(ctx, params, corpus, identifier, result, selection=selection, ids=ids)
    return result


def _training_dataset(ctx: Context, params: MixtureParams, corpus: DatasetRef, identifier, result: dict, *,
                      selection: dict, ids: list) -> dict:
    """Write the mixture's training-ready dataset of the manifest's ``selection``; its ``dataset.json``
    without the per-shard rows."""
    contamination = None
    if params.contamination_stage:
        found = ctx.output(params.contamination_stage)["contamination"]
        contamination = {"contaminated_documents": found["contaminated"],
                         "per_benchmark": {b: v["documents"] for b, v in found["benchmarks"].items()}}
    about = {"mixture": str(identifier), "corpus": corpus.id, "weights": result["weights"],
             "budget": params.budget, "budget_unit": params.budget_unit, "budget_samples": result["budget_samples"],
             "performance_model": result["performance_model"], "predicted": result["predicted"],
             "contamination": contamination}

    def read_rows(wanted: np.ndarray) -> dict:
        return {column: dataset_column_at(ctx, corpus, column, wanted) for column in ("text", "source")}

    content = write_dataset(ctx.storage, Keys.training_dataset(identifier), selection=selection, ids=ids,
                            read_rows=read_rows, seed=params.seed, about=about)
    return {k: content[k] for k in ("rows", "unique_documents", "seed", "rows_per_shard")} | {
        "shards": len(content["shards"])}


def source_distances(ctx: Context, index: int, params: OTParams) -> dict:
    """The debiased Sinkhorn divergence from every corpus source to every benchmark, with a
    bootstrap band (:func:`curation.ot.distance_table`); only the sampled rows are read."""
    corpus = params.corpus
    sources = np.array([source_name(s) for s in dataset_column(ctx, corpus, "source")])
    by_source = {name: dataset_rows(ctx, corpus, params.embedder, np.flatnonzero(sources == name))
                 for name in sorted(set(sources))}
    targets = {b.name: dataset_embeddings(ctx, b, params.embedder) for b in params.benchmarks}
    table = distance_table(by_source, targets, seed=params.seed, metric=params.metric, reg=params.reg,
                           sample_size=params.sample_size, n_resamples=params.n_resamples, device=accelerator())
    distances = {source: {target: {"value": float(table.value[i, j]), "low": float(table.low[i, j]),
                                   "high": float(table.high[i, j])}
                          for j, target in enumerate(table.targets)}
                 for i, source in enumerate(table.sources)}
    closest = {target: table.sources[int(np.argmin(table.value[:, j]))] for j, target in enumerate(table.targets)}
    return {"embedder_key": embedder_key(ctx.embedder(params.embedder)), "metric": params.metric, "reg": params.reg,
            "benchmarks": {b.name: b.id for b in params.benchmarks},
            "source_documents": {name: int(len(v)) for name, v in by_source.items()},
            "distances": distances, "closest_source": closest}
