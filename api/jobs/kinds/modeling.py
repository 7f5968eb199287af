"""``fit`` and ``mixture``: the performance model of a corpus for target benchmarks, and
the best mixture at a budget (DESIGN.md 3.4-3.6).

``fit`` splits the corpus into pools (sources, or source x quality decile from the
scores of an earlier ``betr`` or ``prune`` job; documents that job dropped are left
out), measures the OT distance of every pool to the benchmarks, gathers observations
(the tenant's pilot runs for ``metric``, or the built-in proxy evaluator) and fits a
performance law; the fitted law is stored as a PerformanceModel. ``mixture`` optimises
a stored model (or one it fits first) at a budget, writes the manifest and stores the
Mixture. The steps are :mod:`curation.steps.model`.
"""
from __future__ import annotations

import uuid

from rest_framework import serializers

from api.core.errors import ApplicationError, validation_error
from api.core.fields import (MAX_MODEL_PARAMETERS, BudgetField, SeedField, StrictFloatField, StrictIntegerField,
                              check_budget)
from api.datasets.models import Dataset
from api.jobs.kinds.base import JobKind, corpus_and_benchmarks, resolve_dataset
from api.jobs.kinds.decontaminate import ContaminationField, contamination_options, normalise_contamination
from api.jobs.kinds.embed import EmbedderField, embedder_spec
from api.jobs.kinds.tinylm import PilotFields, check_and_estimate, config_of, record_throughput
from api.jobs.models import Job
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from curation import plans
from curation.laws import LAWS, budget_in_samples
from curation.pools import DECILES
from curation.steps import PoolSpec, ScoreRef
from curation.steps.model import FitParams as FitStepParams, MixtureParams as MixtureStepParams


class FitParams(PilotFields):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    embedder = EmbedderField()
    metric = serializers.CharField(required=False, max_length=100, help_text="fit the tenant's pilot runs of "
                                   "this metric; without it the service trains pilots itself (pilot_model)")
    scores_job = serializers.UUIDField(required=False, help_text="a succeeded betr or prune job on the corpus: "
                                       "its dropped documents are left out, its scores make quality pools")
    quality_pools = serializers.BooleanField(default=False, help_text="pools are source x quality decile "
                                             "(needs scores_job) instead of sources")
    ot_sample_size = StrictIntegerField(default=300, min_value=20, max_value=5000)
    law = serializers.ChoiceField(choices=sorted(LAWS), required=False, error_messages={
        "invalid_choice": f'"{{input}}" is not a performance law; the laws are {", ".join(sorted(LAWS))}'}, help_text=(
        "the performance law to fit: effective_data (utility-weighted, repetition-discounted data), goyal "
        "(Goyal et al.'s multi-pool recursion; an error rate or accuracy in [0, 1]) or mixing_law (Data Mixing "
        "Laws per size; needs pools + 2 pilots at each of two sizes); default: every law that fits, the one "
        "with the lowest backtest error kept"))
    seed = SeedField()

    def validate(self, data):
        if data.get("metric") and "pilot_model" in self.initial_data:
            raise serializers.ValidationError({"pilot_model": "metric fits the tenant's own pilot runs, pilot_model "
                                                              "chooses the pilots the service trains: give one"})
        return data


class MixtureParams(FitParams):
    corpus = serializers.UUIDField(required=False)
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20, required=False)
    performance_model = serializers.UUIDField(required=False, help_text="a fitted model; else one is fitted")
    budget = BudgetField(help_text="training budget in budget_unit: > 0, at most 1e15 samples or tokens, 1e30 "
                         "flops, and at most 1e15 samples of the corpus")
    budget_unit = serializers.ChoiceField(choices=["samples", "tokens", "flops"], default="samples")
    model_parameters = StrictFloatField(required=False, min_value=1.0, max_value=MAX_MODEL_PARAMETERS,
                                        help_text="for a budget in flops")
    frontier_points = StrictIntegerField(default=25, min_value=3, max_value=200)
    contamination = ContaminationField()
    dataset = serializers.BooleanField(default=True, help_text=(
        "write the training-ready dataset (GET /mixtures/{id}/dataset/: Parquet shards of id, text, source, pool, "
        "repeat_index, repeats expanded and shuffled); false keeps only the id manifest"))

    def validate(self, data):
        data = super().validate(data)
        check_budget(data)
        if data.get("budget_unit") == "flops" and not data.get("model_parameters"):
            raise serializers.ValidationError({"model_parameters": "a budget in flops needs the model size "
                                                                   "(tokens = flops / (6 * parameters))"})
        if not data.get("performance_model") and not (data.get("corpus") and data.get("benchmarks")):
            raise serializers.ValidationError({"performance_model": "give a performance_model, or a corpus and "
                                                                    "benchmarks to fit one"})
        return data


def check_budget_in_samples(corpus: Dataset, data: dict) -> None:
    """Refuse a budget that is more than ``MAX_BUDGET["samples"]`` samples of ``corpus`` (a budget in
    tokens or flops converts to samples at the corpus's tokens per sample, as the mixture stage does),
    so that it fails at creation, not after the whole pipeline has run."""
    try:
        budget_in_samples(data["budget"], data["budget_unit"], tokens_per_sample=corpus.tokens_per_sample,
                          parameters=data.get("model_parameters"))
    except ValueError as exc:
        raise validation_error({"budget": str(exc)}) from None


def normalise_fit(tenant, data: dict) -> dict:
    corpus = resolve_dataset(tenant, {"corpus": data["corpus"]}, kinds=("corpus",))
    if "budget" in data:  # mixture and curate: the model they fit is this corpus's
        check_budget_in_samples(corpus, data)
    benchmarks = [resolve_dataset(tenant, {"benchmark": b}, kinds=("benchmark",)) for b in data["benchmarks"]]
    params = {**data, "corpus": str(corpus.pk), "benchmarks": [str(b.pk) for b in benchmarks]}
    params.pop("scores_job", None)
    if data.get("scores_job"):
        job = Job.objects.for_tenant(tenant).filter(pk=data["scores_job"], status=Job.Status.SUCCEEDED,
                                                    params__corpus=str(corpus.pk)).first()
        if job is None or not (job.result or {}).get("score_metrics"):
            raise ApplicationError("not_found", f"no succeeded betr or prune job {data['scores_job']} on this corpus",
                                   detail={"field": "params.scores_job"}, status_code=404)
        params["scores_job"] = str(job.pk)
        params["pools"] = score_pools(job, data.get("quality_pools", False)).as_dict()
    elif data.get("quality_pools"):
        raise validation_error({"quality_pools": "quality pools need scores_job (a betr or prune job)"})
    if data.get("metric"):
        runs = PilotRun.objects.for_tenant(tenant).filter(corpus=corpus, metric=data["metric"]).count()
        # the pools: the corpus's sources, each split into deciles with quality pools (prune may drop some)
        pools = sum(1 for n in corpus.source_counts.values() if n > 0) * (DECILES if data.get("quality_pools") else 1)
        law = data.get("law") or "effective_data"  # without law, the effective-data law (it fits any metric)
        minimum = LAWS[law].minimum_observations(pools)
        if runs < minimum:
            raise ApplicationError("not_enough_pilot_runs", f"{runs} pilot runs of metric {data['metric']!r} on "
                                   f"this corpus; the {law} law over {pools} pools needs at least {minimum} (or "
                                   "leave metric out to use the proxy)", detail={"field": "params.metric",
                                                                                  "minimum": minimum})
    return params


def score_pools(scores_job: Job, quality_pools: bool) -> PoolSpec:
    """Pools from an earlier job's scores: a ``prune`` job's dropped documents are left out (a ``betr``
    job only ranks); with ``quality_pools`` its score splits each source into deciles."""
    metric = scores_job.result["score_metrics"][0]
    run = str(scores_job.pk)
    quality = ScoreRef(metric, run, bool(scores_job.result.get("lower_is_better"))) if quality_pools else None
    return PoolSpec(kept=None if scores_job.kind == "betr" else ScoreRef(metric, run), quality=quality)


def fit_params(tenant_id, params: dict) -> FitStepParams:
    corpus, benchmarks = corpus_and_benchmarks(tenant_id, params)
    return FitStepParams(corpus, benchmarks, embedder_spec(params["embedder"]),
                         pools=PoolSpec.from_dict(params.get("pools")), metric=params.get("metric"),
                         ot_sample_size=params["ot_sample_size"], seed=params["seed"], law=params.get("law"),
                         **pilot_params(params))


def pilot_params(params: dict) -> dict:
    """The pilot fields of :class:`curation.steps.model.FitParams` from normalised job params."""
    return {"pilot_model": params.get("pilot_model", "bigram"), "pilot_runs": params.get("pilot_runs", 20),
            "pilot_tokens": params.get("pilot_tokens", 1_000_000), "tiny_lm": config_of(params)}


def pilot_estimate(tenant, params: dict, fit: FitStepParams) -> dict | None:
    """:func:`api.jobs.kinds.tinylm.check_and_estimate` of the pilots ``fit`` (its plan's) trains."""
    corpus = Dataset.objects.for_tenant(tenant).get(pk=params["corpus"])
    benchmarks = [Dataset.objects.for_tenant(tenant).get(pk=b) for b in params["benchmarks"]]
    return check_and_estimate(tenant, corpus, benchmarks, params, fit.tiny_lm_design)


def mixture_params(params: dict) -> MixtureStepParams:
    return MixtureStepParams(params["budget"], params["budget_unit"], params.get("model_parameters"),
                             params["frontier_points"], params.get("seed", 0), params.get("performance_model"),
                             dataset=params.get("dataset", True))


def record_model(job: Job, output: dict) -> dict:
    """Store a fit's law as the job's PerformanceModel (one per job: a redelivered unit updates it)."""
    m = output["model"]
    model, _ = PerformanceModel.objects.for_tenant(job.tenant_id).update_or_create(
        pk=uuid.uuid5(job.pk, "performance-model"),
        defaults={"tenant_id": job.tenant_id, "corpus_id": job.params["corpus"], "benchmarks": job.params["benchmarks"],
                  "job": job, "metric": m["metric"], "higher_is_better": m["higher_is_better"], "kind": m["kind"],
                  "parameters": m["parameters"], "pools": m["pools"], "fit_error": m["fit_error"],
                  "provenance": m["provenance"], "observations": m["observations"], "backtest": m["backtest"]})
    return {"performance_model": str(model.pk), **output}


def record_mixture(job: Job, output: dict) -> dict:
    """Store the optimised mixture (its manifest is already written under its id)."""
    rows = output["pools"]
    Mixture.objects.for_tenant(job.tenant_id).update_or_create(
        pk=output["mixture"],
        defaults={"tenant_id": job.tenant_id, "corpus_id": output["corpus"], "job": job,
                  "performance_model_id": output["performance_model"], "budget": output["budget"],
                  "budget_unit": output["budget_unit"], "weights": output["weights"], "pools": rows,
                  "predicted": output["predicted"], "frontier": output["frontier"],
                  "document_count": output["documents"]})
    return output


class RecordsModels(JobKind):
    """Kinds with a ``fit`` stage (stored as a PerformanceModel) and maybe a ``mixture`` stage (a Mixture);
    their tiny-LM pilot units record the workers' throughput for later estimates."""

    def estimate(self, *, tenant, params):
        if not params.get("corpus"):  # a mixture of a stored model trains nothing
            return None
        return pilot_estimate(tenant, params, fit_params(tenant.pk, params))

    def record(self, *, job, stage, output):
        if stage == "pilots" and "run" in output:
            record_throughput(output["run"], config_of(job.params))
            return output
        if stage == "fit":
            return record_model(job, output)
        return record_mixture(job, output) if stage == "mixture" else super().record(job=job, stage=stage,
                                                                                      output=output)


class FitKind(RecordsModels):
    """Embed, OT per pool, observations (pilot runs or proxy), fit: a PerformanceModel."""

    name = "fit"
    params_serializer = FitParams

    def normalise(self, *, tenant, data):
        return normalise_fit(tenant, data)

    def plan(self, *, tenant_id, params):
        return plans.fit_plan(fit_params(tenant_id, params))


class MixtureKind(RecordsModels):
    """Optimise a fitted model at a budget (fitting one first when none is given); write the manifest."""

    name = "mixture"
    params_serializer = MixtureParams

    def normalise(self, *, tenant, data):
        if data.get("performance_model"):
            model = PerformanceModel.objects.for_tenant(tenant).filter(pk=data["performance_model"]).first()
            if model is None:
                raise ApplicationError("not_found", f"no performance model with id {data['performance_model']}",
                                       detail={"field": "params.performance_model"}, status_code=404)
            check_budget_in_samples(model.corpus, data)
            keep = ("performance_model", "budget", "budget_unit", "model_parameters", "frontier_points", "seed")
            return {key: (str(value) if key == "performance_model" else value)
                    for key, value in data.items() if key in keep}
        return normalise_contamination(normalise_fit(tenant, data))

    def plan(self, *, tenant_id, params):
        fit = None if params.get("performance_model") else fit_params(tenant_id, params)
        return plans.mixture_plan(mixture_params(params), fit, contamination_options(params))
