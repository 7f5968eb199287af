"""The plan of every job kind: its stages, their units and queues, from typed params.

Both executors (Celery in ``api/jobs/services.py``, local in :mod:`curation.executor`)
run exactly these plans, so the service and ``python -m curation`` compute the same
results for the same inputs, params and seed. A stage's ``run`` is a step of
:mod:`curation.steps` bound to its params; stage names are wired here, in one place.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial

from curation.laws import budget_in_samples
from curation.pruning import NEEDS_EMBEDDINGS, PruneOptions
from curation.steps import DatasetRef, PoolSpec, ScoreRef, Stage
from curation.steps.decontaminate import (SCAN_STAGE, STAGE as CONTAMINATION_STAGE, ContaminationOptions,
                                           DecontaminateParams, contamination_scan, contamination_summary)
from curation.steps.embed import EmbedParams, embed_summary, embed_unit
from curation.steps.model import (FitParams, MixtureParams, OTParams, fit_performance_law, optimise_mixture,
                                  pilot_observations, pilot_summary, pool_distances, source_distances)
from curation.tinylm import TinyLMConfig
from curation.steps.select import (BetrParams, IndexParams, PruneParams, betr_classify, betr_select, betr_train,
                                   dedup_groups, index_add, index_train, index_unit, prune_assign, prune_dedup,
                                   prune_kmeans, prune_unit, sharded_store)


def route(stages: list[Stage], *, gpu_workers: bool) -> list[Stage]:
    """The stages on the queues a deployment serves: the stages that take their device from the
    worker they run on (embedding, OT's Sinkhorn, tiny-LM pilots) stay on ``gpu`` where the
    deployment runs GPU workers; a CPU-only deployment runs every unit on ``cpu``."""
    return stages if gpu_workers else [replace(stage, queue="cpu") for stage in stages]


def embedding(datasets, embedder: str, batch_size: int | None = None) -> Stage:
    """One unit per shard of every dataset, on the ``gpu`` queue; cached shards finish at once."""
    params = EmbedParams(tuple(datasets), embedder, batch_size)
    return Stage("embedding", params.units, partial(embed_unit, params=params), queue="gpu")


def embed_plan(params: EmbedParams) -> list[Stage]:
    return [embedding(params.datasets, params.embedder, params.batch_size),
            Stage("summary", 1, partial(embed_summary, params=params, embedding_stage="embedding"))]


def index_stages(params: IndexParams, final: str) -> list[Stage]:
    """The corpus's store, the stage ``final`` last: an IVF-SQ8 store trains on a sample
    (``index_train``), fills one part per shard (``index_add``) and merges them; a flat or HNSW
    store is built in ``final`` alone."""
    if not sharded_store(params):
        return [Stage(final, 1, partial(index_unit, params=params))]
    return [Stage("index_train", 1, partial(index_train, params=params)),
            Stage("index_add", params.corpus.shard_count, partial(index_add, params=params)),
            Stage(final, 1, partial(index_unit, params=params, train_stage="index_train"))]


def index_plan(params: IndexParams) -> list[Stage]:
    return [embedding([params.corpus], params.embedder)] + index_stages(params, "build")


def prune_stages(params: PruneParams, final: str) -> list[Stage]:
    """Pruning a shard at a time (:mod:`curation.steps.select`), the stage ``final`` last: k-means on a
    sample, one assignment unit per shard, SemDeDup (SemDeDup, D4) per group of clusters, D4's
    re-clustering and its assignment per shard, then the selection and the per-shard scores. EL2N
    reads no embeddings: ``final`` alone."""
    if params.method not in NEEDS_EMBEDDINGS:
        return [Stage(final, 1, partial(prune_unit, params=params))]
    shards = params.corpus.shard_count
    stages = [Stage("prune_kmeans", 1, partial(prune_kmeans, params=params, clustering=0)),
              Stage("prune_assign", shards, partial(prune_assign, params=params, clustering=0))]
    if params.method in ("semdedup", "d4"):
        stages.append(Stage("prune_dedup", dedup_groups(params), partial(prune_dedup, params=params)))
    if params.method == "d4":
        stages += [Stage("prune_rekmeans", 1, partial(prune_kmeans, params=params, clustering=1)),
                   Stage("prune_reassign", shards, partial(prune_assign, params=params, clustering=1))]
    return stages + [Stage(final, 1, partial(prune_unit, params=params))]


def prune_plan(params: PruneParams) -> list[Stage]:
    stages = [embedding([params.corpus], params.embedder)] if params.method in NEEDS_EMBEDDINGS else []
    return stages + prune_stages(params, "select")


def decontamination_stages(params: DecontaminateParams) -> list[Stage]:
    """The n-gram (and exact semantic) scan per corpus shard, then the store's semantic pass and the
    run's contamination files; none when ``params.options.enabled`` is False."""
    if not params.options.enabled:
        return []
    return [Stage(SCAN_STAGE, params.corpus.shard_count, partial(contamination_scan, params=params)),
            Stage(CONTAMINATION_STAGE, 1, partial(contamination_summary, params=params))]


def decontaminate_plan(params: DecontaminateParams) -> list[Stage]:
    embed = [embedding([params.corpus, *params.benchmarks], params.embedder)] if params.options.semantic else []
    return embed + decontamination_stages(params)


def betr_stages(params: BetrParams, prefix: str = "") -> list[Stage]:
    train = prefix + "train"
    return [Stage(train, 1, partial(betr_train, params=params)),
            Stage(prefix + "classify", params.corpus.shard_count, partial(betr_classify, params=params)),
            Stage(prefix + "select", 1, partial(betr_select, params=params, train_stage=train))]


def betr_plan(params: BetrParams, contamination: ContaminationOptions = ContaminationOptions()) -> list[Stage]:
    """Embed, decontaminate (unless disabled), then BETR without the contaminated documents."""
    decontaminate = DecontaminateParams(params.corpus, params.benchmarks, params.embedder, contamination)
    params = replace(params, decontaminated=contamination.enabled)
    return ([embedding([params.corpus, *params.benchmarks], params.embedder)]
            + decontamination_stages(decontaminate) + betr_stages(params))


def ot_plan(params: OTParams) -> list[Stage]:
    return [embedding([params.corpus, *params.benchmarks], params.embedder),
            Stage("distances", 1, partial(source_distances, params=params), queue="gpu")]


def fit_stages(params: FitParams) -> list[Stage]:
    return [Stage("ot", 1, partial(pool_distances, params=params), queue="gpu"),
            Stage("pilots", params.pilot_units, partial(pilot_observations, params=params),
                  queue="gpu" if params.trains_tiny_lms else "cpu"),
            Stage("fit", 1, partial(fit_performance_law, params=params, ot_stage="ot", pilots_stage="pilots"))]


def pilots_plan(params: FitParams) -> list[Stage]:
    """Tiny-LM pilot runs alone (``params.pilot_model`` tiny_lm), one unit each, then their summary."""
    return [Stage("pilots", params.pilot_units, partial(pilot_observations, params=params), queue="gpu"),
            Stage("summary", 1, partial(pilot_summary, params=params, pilots_stage="pilots"))]


def fit_plan(params: FitParams) -> list[Stage]:
    return [embedding([params.corpus, *params.benchmarks], params.embedder)] + fit_stages(params)


def decontaminated_fit(fit: FitParams, contamination: ContaminationOptions) -> FitParams:
    """``fit`` whose pools leave out what this run's contamination stage finds (when enabled)."""
    return replace(fit, pools=replace(fit.pools, decontaminated=contamination.enabled, contamination_run=None))


def mixture_plan(params: MixtureParams, fit: FitParams | None = None,
                 contamination: ContaminationOptions = ContaminationOptions()) -> list[Stage]:
    """Optimise a stored model (its pools exclude what the run that fitted it found), or (``fit``
    given) decontaminate, unless disabled, and fit one first in the same run."""
    if fit is None:
        return [Stage("mixture", 1, partial(optimise_mixture, params=params))]
    params = replace(params, fit_stage="fit", corpus=fit.corpus,
                     contamination_stage=CONTAMINATION_STAGE if contamination.enabled else None)
    decontaminate = DecontaminateParams(fit.corpus, fit.benchmarks, fit.embedder, contamination)
    return ([embedding([fit.corpus, *fit.benchmarks], fit.embedder)] + decontamination_stages(decontaminate)
            + fit_stages(decontaminated_fit(fit, contamination))
            + [Stage("mixture", 1, partial(optimise_mixture, params=params))])


@dataclass(frozen=True)
class CurateParams:
    """The whole pipeline (DESIGN.md 1 and 3): embed corpus and benchmarks, index, decontaminate
    (``contamination``; its documents are in no pool and never selected), prune
    (``prune_method``), BETR, pools (source x BETR decile over the kept documents, or sources
    with ``quality_pools=False``), OT, pilots (the user's runs of ``metric``, or ``pilot_model``'s:
    :class:`curation.steps.model.FitParams`), fit, and the mixture at ``budget``.

    The budget reaches the selection policies: prototypes and D4 keep the hard documents when the
    corpus holds at least one unique document per document of budget and the easy ones otherwise
    (:func:`curation.prototypes.keep_policy`; ``keep`` ``hard`` or ``easy`` overrides), and BETR keeps
    the share of tokens the budget needs (:func:`curation.betr.budget_token_fraction`;
    ``betr_keep_fraction`` overrides)."""

    corpus: DatasetRef
    benchmarks: tuple[DatasetRef, ...]
    budget: float
    embedder: str
    budget_unit: str = "samples"
    model_parameters: float | None = None
    frontier_points: int = 25
    metric: str | None = None
    prune_method: str = "semdedup"
    eps: float = 0.01
    prune_fraction: float = 0.8
    quality_pools: bool = True
    sample_size: int = 200_000
    ot_sample_size: int = 300
    seed: int = 0
    contamination: ContaminationOptions = field(default_factory=ContaminationOptions)
    law: str | None = None
    keep: str = "auto"
    betr_keep_fraction: float | None = None
    dataset: bool = True
    pilot_model: str = "bigram"
    pilot_runs: int = 20
    pilot_tokens: int = 1_000_000
    tiny_lm: TinyLMConfig = field(default_factory=TinyLMConfig)

    @property
    def budget_samples(self) -> float:
        """The budget in documents seen (:func:`curation.laws.budget_in_samples`)."""
        return budget_in_samples(self.budget, self.budget_unit, tokens_per_sample=self.corpus.tokens_per_sample,
                                 parameters=self.model_parameters)

    def index(self) -> IndexParams:
        return IndexParams(self.corpus, self.embedder, seed=self.seed)

    def prune(self) -> PruneParams:
        return PruneParams(self.corpus, self.prune_method, self.embedder,
                           PruneOptions(fraction=self.prune_fraction, eps=self.eps, seed=self.seed,
                                        budget_documents=self.budget_samples, keep=self.keep))

    def betr(self) -> BetrParams:
        return BetrParams(self.corpus, self.benchmarks, self.embedder, sample_size=self.sample_size,
                          keep_fraction=self.betr_keep_fraction, seed=self.seed,
                          decontaminated=self.contamination.enabled,
                          budget_tokens=self.budget_samples * self.corpus.tokens_per_sample,
                          flops=self.budget if self.budget_unit == "flops" else None,
                          parameters=self.model_parameters)

    def decontaminate(self) -> DecontaminateParams:
        return DecontaminateParams(self.corpus, self.benchmarks, self.embedder, self.contamination)

    def fit(self) -> FitParams:
        pools = PoolSpec(kept=ScoreRef(self.prune_method),
                         quality=ScoreRef("betr") if self.quality_pools else None)
        return decontaminated_fit(FitParams(self.corpus, self.benchmarks, self.embedder, pools=pools,
                                            metric=self.metric, ot_sample_size=self.ot_sample_size, seed=self.seed,
                                            law=self.law, pilot_model=self.pilot_model, pilot_runs=self.pilot_runs,
                                            pilot_tokens=self.pilot_tokens, tiny_lm=self.tiny_lm),
                                  self.contamination)

    def mixture(self) -> MixtureParams:
        return MixtureParams(self.budget, self.budget_unit, self.model_parameters, self.frontier_points, self.seed,
                             fit_stage="fit", corpus=self.corpus, dataset=self.dataset,
                             contamination_stage=CONTAMINATION_STAGE if self.contamination.enabled else None)


def curate_plan(params: CurateParams) -> list[Stage]:
    return [embedding([params.corpus, *params.benchmarks], params.embedder),
            *index_stages(params.index(), "index"),
            *decontamination_stages(params.decontaminate()),
            *prune_stages(params.prune(), "prune"),
            *betr_stages(params.betr(), prefix="betr_"),
            *fit_stages(params.fit()),
            Stage("mixture", 1, partial(curate_result, params=params))]


def curate_result(ctx, index: int, params: CurateParams) -> dict:
    """The mixture, plus a summary of every stage before it."""
    result = optimise_mixture(ctx, index, params.mixture())
    prune, selected, fit = ctx.output("prune"), ctx.output("betr_select"), ctx.output("fit")
    contamination = ctx.output(CONTAMINATION_STAGE)["contamination"] if params.contamination.enabled else None
    return {**result, "score_metrics": [params.prune_method, "betr"], "contamination": contamination, "stages": {
        "index": {k: ctx.output("index")["store"][k] for k in ("kind", "n", "recall_at_10")},
        "prune": {k: prune.get(k) for k in ("method", "kept", "dropped", "reasons", "eps_curve")},
        "betr": {"holdout_accuracy": selected["train"]["holdout_accuracy"],
                 "positives": selected["train"]["positives"], "kept_per_source": selected["kept_per_source"],
                 "search": selected["train"]["search"],
                 **{k: selected[k] for k in ("kept", "token_fraction", "kept_tokens", "total_tokens")}},
        "ot": ctx.output("ot")["pool_ot"], "pilots": pilots_summary(ctx.outputs("pilots")),
        "fit": {k: fit[k] for k in ("metric", "law", "fit_error", "parameters", "provenance", "at_bound",
                                    "backtest")}},
        "budget_policy": budget_policy(params, prune, selected)}


def pilots_summary(outputs: list[dict]) -> dict:
    """Who made the fit's observations: ``{"metric", "observations", "origin"}`` plus, for tiny-LM runs,
    tokens, seconds, throughput and device."""
    observations = [o for output in outputs for o in output["observations"]]
    result = {"metric": outputs[0]["metric"], "observations": len(observations),
              "origin": observations[0]["origin"] if observations else None}
    runs = [output["run"] for output in outputs if "run" in output]
    if runs:
        tokens, seconds = sum(r["tokens"] for r in runs), sum(r["seconds"] for r in runs)
        result |= {"tokens": tokens, "seconds": seconds, "tokens_per_second": tokens / max(seconds, 1e-9),
                   "device": runs[0]["device"], "parameters": runs[0]["parameters"]}
    return result


def budget_policy(params: CurateParams, prune: dict, selected: dict) -> dict:
    """How the budget decided the selection: the prune policy (keep hard or easy, the corpus's unique
    documents per document of budget; SemDeDup drops duplicates whatever the budget) and BETR's share
    of tokens, each with its reason."""
    policy = prune.get("policy") or {"keep": None, "abundance": params.corpus.documents / params.budget_samples,
                                     "reason": f"{params.prune_method} drops near-duplicates whatever the budget; "
                                               "prune_method prototypes or d4 keep the hard or the easy documents "
                                               "by the budget"}
    return {"budget_samples": params.budget_samples,
            "budget_tokens": params.budget_samples * params.corpus.tokens_per_sample,
            "prune": policy, "betr": {"token_fraction": selected["token_fraction"],
                                      "reason": selected["fraction_reason"]}}
