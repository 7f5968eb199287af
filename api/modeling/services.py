"""Writes for pilot runs, and predictions from fitted performance models."""
from __future__ import annotations

from django.db import transaction

from api.core.errors import ApplicationError
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_get
from api.modeling.models import PerformanceModel, PilotRun
from api.modeling.selectors import performance_model_get
from api.tenancy.models import Tenant
from curation.laws import LAWS, Observation, PerformanceLaw, budget_in_samples, restore_law
from curation.laws.backtest import backtest_summary
from curation.pilots import metric_unit, next_runs, pilot_design
from curation.pools import known_pools, source_name, validate_mixture


def pilot_runs_create(*, tenant: Tenant, observations: list[dict], origin: str = PilotRun.Origin.USER
                      ) -> list[PilotRun]:
    """Store validated observations, all or none; errors name the item and field."""
    corpora: dict[str, Dataset] = {}
    runs = []
    for position, item in enumerate(observations):
        corpus_id = str(item["corpus"])
        if corpus_id not in corpora:
            corpus = dataset_get(tenant=tenant, dataset_id=corpus_id, kind=Dataset.Kind.CORPUS)
            if corpus is None:
                raise ApplicationError("not_found", f"item {position}: no corpus with id {corpus_id}",
                                       field="corpus", detail={"item": position}, status_code=404)
            corpora[corpus_id] = corpus
        corpus = corpora[corpus_id]
        try:
            mixture = validate_mixture(item["mixture"], known_pools(corpus.source_counts))
        except ValueError as exc:
            raise ApplicationError("invalid_mixture", f"item {position}: {exc}", field="mixture",
                                   detail={"item": position}) from None
        runs.append(PilotRun(tenant=tenant, corpus=corpus, mixture=mixture, size=item["size"],
                             metric=item["metric"], value=item["value"],
                             higher_is_better=item["higher_is_better"], origin=origin))
    with transaction.atomic():
        return PilotRun.objects.for_tenant(tenant).bulk_create(runs)


def pilot_design_create(*, tenant: Tenant, corpus_id, runs: int = 16, sizes: list[float] | None = None,
                        seed: int = 0) -> dict:
    """The pilot runs to train on ``corpus``'s source pools (:func:`curation.pilots.pilot_design`)."""
    corpus = dataset_get(tenant=tenant, dataset_id=corpus_id, kind=Dataset.Kind.CORPUS)
    if corpus is None:
        raise ApplicationError("not_found", f"no corpus with id {corpus_id}", field="corpus", status_code=404)
    pools = {source_name(source): int(n) for source, n in corpus.source_counts.items() if n > 0}
    if not pools:
        raise ApplicationError("empty_corpus", "the corpus has no documents to design pilot runs for",
                               field="corpus")
    per_sample = corpus.tokens_per_sample
    try:
        design = pilot_design(pools, runs=runs, sizes=sizes, seed=seed)
    except ValueError as exc:
        raise ApplicationError("invalid_pilot_design", str(exc), field="sizes") from None
    return {"corpus": str(corpus.pk), "performance_model": None, "pools": pools, "tokens_per_sample": per_sample,
            "runs": [run | {"tokens": run["size"] * per_sample} for run in design],
            "next_step": "train each run, then POST its result to /api/v1/pilot-runs/ ({corpus, mixture, size, "
                         "metric, value, higher_is_better}); a fit job with params.metric fits them"}


def pilot_next_runs_create(*, tenant: Tenant, model_id, runs: int = 8, sizes: list[float] | None = None,
                           seed: int = 0) -> dict:
    """After a fit: the pilot runs to add to ``model``'s (:func:`curation.pilots.next_runs`), with the
    laws fitted to the same pilots (the model's backtest) as the committee."""
    model = performance_model_get(tenant=tenant, model_id=model_id)
    if model is None:
        raise ApplicationError("not_found", f"no performance model with id {model_id}", field="performance_model",
                               status_code=404)
    law = performance_model_law(model)
    committee = [restore_law(kind, result["stored"]) for kind, result in sorted((model.backtest or {}).get(
        "laws", {}).items()) if "stored" in result and kind in LAWS] or [law]
    observations = [Observation(weights=o["weights"], size=o["size"], value=o["value"])
                    for o in model.observations]
    try:
        rows = next_runs(law, committee, observations, runs=runs, sizes=sizes, seed=seed)
    except ValueError as exc:
        raise ApplicationError("invalid_pilot_design", str(exc), field="sizes") from None
    corpus = model.corpus
    per_sample = corpus.tokens_per_sample
    return {"corpus": str(corpus.pk), "performance_model": str(model.pk),
            "pools": dict(zip(law.names, (int(u) for u in law.unique))), "tokens_per_sample": per_sample,
            "runs": [run | {"tokens": run["size"] * per_sample} for run in rows],
            "next_step": "train each run, then POST its result to /api/v1/pilot-runs/ and fit again (a fit job "
                         "with params.metric): the new model's backtest says how much the runs helped"}


def performance_model_law(model: PerformanceModel) -> PerformanceLaw:
    """The stored model's law, by its ``kind``; a kind this library has no law for is an ``ApplicationError``.

    A stored parameter set the law cannot read raises ``KeyError``, ``TypeError`` or ``ValueError``.
    """
    if model.kind not in LAWS:
        raise ApplicationError("unknown_model_kind", f"performance model {model.pk} is of kind {model.kind!r}; "
                               f"this server knows the kinds {sorted(LAWS)}", field="performance_model",
                               status_code=409)
    return restore_law(model.kind, {"parameters": model.parameters, "pools": model.pools,
                                    "provenance": model.provenance})


def _request_checked(field: str, check, *args, **kwargs):
    """``check(*args, **kwargs)``; its ``ValueError`` as an invalid prediction request about ``field``."""
    try:
        return check(*args, **kwargs)
    except ValueError as exc:
        raise ApplicationError("invalid_prediction_request", str(exc), field=field) from None


def prediction_create(*, tenant: Tenant, model_id, mixture: dict, budget: float, budget_unit: str = "samples",
                      model_parameters: float | None = None, level: float = 0.95) -> dict:
    """The predicted metric and band of ``mixture`` at ``budget`` under a fitted model (synchronous)."""
    model = performance_model_get(tenant=tenant, model_id=model_id)
    if model is None:
        raise ApplicationError("not_found", f"no performance model with id {model_id}", field="performance_model",
                               status_code=404)
    law = performance_model_law(model)
    corpus = model.corpus
    samples = _request_checked("budget", budget_in_samples, budget, budget_unit,
                               tokens_per_sample=corpus.tokens_per_sample, parameters=model_parameters)
    weights = _request_checked("mixture", validate_mixture, mixture, set(law.names))
    # Budget and mixture are valid here; what predict can still reject is the budget in samples (overflow).
    prediction = _request_checked("budget", law.predict, weights, samples, level=level)
    unique = dict(zip(law.names, law.unique))
    return {
        "performance_model": str(model.pk), "metric": model.metric, "unit": metric_unit(model.metric),
        "higher_is_better": model.higher_is_better, "law": model.kind,
        "value": prediction.value, "low": prediction.low, "high": prediction.high, "level": level,
        "extrapolated": prediction.extrapolated, "outside_doublings": prediction.outside,
        "clamped": prediction.clamped, "budget_samples": samples,
        "repetitions": {pool: w * samples / unique[pool] for pool, w in weights.items() if w > 0},
        "provenance": model.provenance, "at_bound": dict(law.at_bound),
        "backtest": backtest_summary(model.backtest),
    }
