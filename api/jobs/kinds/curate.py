"""``curate``: the whole pipeline as one job (DESIGN.md 1 and 3).

Stages: ``embedding`` (corpus and benchmarks; shards embedded before are reused) ->
``index`` (the corpus's FAISS store) -> ``prune`` (SemDeDup by default, or D4 /
prototypes) -> ``betr_train`` -> ``betr_classify`` (per shard) -> ``betr_select`` ->
``ot`` (distance of every pool to the benchmarks) -> ``pilots`` (proxy evaluator, or
the tenant's pilot runs of ``metric``) -> ``fit`` -> ``mixture``. Pools are source x
BETR-quality decile over the documents the prune stage kept (or sources, with
``quality_pools: false``). The result is the mixture's, plus a summary of every stage.
"""
from __future__ import annotations

from rest_framework import serializers

from api.jobs.kinds.base import JobKind, Stage
from api.jobs.kinds.common import embedding_stage, run_embedding_unit
from api.jobs.kinds.embed import job_embedder
from api.jobs.kinds.modeling import MixtureParams, fit_datasets, normalise_fit, run_fit_unit, run_mixture_unit
from api.jobs.models import JobUnit
from api.jobs.kinds.selection import build_corpus_store, run_betr_unit, run_prune


class CurateParams(MixtureParams):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    performance_model = None
    prune_method = serializers.ChoiceField(choices=["semdedup", "d4", "prototypes"], default="semdedup")
    eps = serializers.FloatField(default=0.01, min_value=0.0, max_value=0.5, help_text="SemDeDup / D4 threshold")
    prune_fraction = serializers.FloatField(default=0.8, min_value=0.01, max_value=1.0,
                                            help_text="documents kept by d4 / prototypes")
    quality_pools = serializers.BooleanField(default=True, help_text="pools are source x BETR decile")
    sample_size = serializers.IntegerField(default=200_000, min_value=20, max_value=5_000_000,
                                           help_text="documents BETR ranks against the benchmarks")


STAGES = ("index", "prune", "betr_train", "betr_classify", "betr_select", "ot", "pilots", "fit", "mixture")


class CurateKind(JobKind):
    name = "curate"
    params_serializer = CurateParams

    def normalise(self, *, tenant, data):
        params = normalise_fit(tenant, {**data, "quality_pools": False})
        params["quality_pools"] = data["quality_pools"]
        params["pool_scores"] = {"kept": ["self", data["prune_method"]],
                                 "quality": ["self", "betr", False] if data["quality_pools"] else None}
        return params

    def plan(self, *, tenant, params):
        datasets = fit_datasets(tenant.pk, params)
        units = {"betr_classify": datasets[0].shard_count}
        return [embedding_stage(datasets)] + [Stage(name, units.get(name, 1)) for name in STAGES]

    def run_unit(self, *, job, stage, index):
        p = job.params
        datasets = fit_datasets(job.tenant_id, p)
        corpus = datasets[0]
        if stage == "embedding":
            return run_embedding_unit(datasets, index, job_embedder(job))
        if stage == "index":
            return build_corpus_store(job, corpus, p)
        if stage == "prune":
            return run_prune(job, corpus, {**p, "method": p["prune_method"], "fraction": p["prune_fraction"],
                                           "keep": "auto", "floor": 0.5, "budget_documents": None})
        if stage.startswith("betr_"):
            betr_params = {**p, "top_fraction": 0.1, "equal_per_benchmark": False, "keep_fraction": 0.1}
            return run_betr_unit(job, betr_params, datasets, stage.removeprefix("betr_"), index,
                                 train_stage="betr_train")
        if stage in ("ot", "pilots", "fit"):
            return run_fit_unit(job, p, stage, index)
        fit = JobUnit.objects.for_tenant(job.tenant_id).get(job=job, stage="fit", index=0).output
        result = run_mixture_unit(job, p, fit["performance_model"])
        outputs = {u.stage: u.output for u in JobUnit.objects.for_tenant(job.tenant_id).filter(job=job, index=0)}
        prune, selected = outputs["prune"], outputs["betr_select"]
        return {**result, "score_metrics": [p["prune_method"], "betr"], "stages": {
            "index": {k: outputs["index"]["store"][k] for k in ("kind", "n", "recall_at_10")},
            "prune": {k: prune.get(k) for k in ("method", "kept", "dropped", "reasons", "eps_curve")},
            "betr": {"holdout_accuracy": selected["train"]["holdout_accuracy"],
                     "positives": selected["train"]["positives"], "kept_per_source": selected["kept_per_source"]},
            "ot": outputs["ot"]["pool_ot"],
            "fit": {k: fit[k] for k in ("metric", "fit_error", "provenance")}}}
