"""Writes for pilot runs, and predictions from fitted performance models."""
from __future__ import annotations

from django.db import transaction

from api.core.errors import ApplicationError
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_get
from api.modeling.models import PerformanceModel, PilotRun
from api.modeling.selectors import performance_model_get
from api.tenancy.models import Tenant
from curation.mixture import MixtureLaw, budget_in_samples
from curation.pools import known_pools, validate_mixture


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
                                       detail={"item": position, "field": "corpus"}, status_code=404)
            corpora[corpus_id] = corpus
        corpus = corpora[corpus_id]
        try:
            mixture = validate_mixture(item["mixture"], known_pools(corpus.source_counts))
        except ValueError as exc:
            raise ApplicationError("invalid_mixture", f"item {position}: {exc}",
                                   detail={"item": position, "field": "mixture"}) from None
        runs.append(PilotRun(tenant=tenant, corpus=corpus, mixture=mixture, size=item["size"],
                             metric=item["metric"], value=item["value"],
                             higher_is_better=item["higher_is_better"], origin=origin))
    with transaction.atomic():
        return PilotRun.objects.for_tenant(tenant).bulk_create(runs)


def performance_model_law(model: PerformanceModel) -> MixtureLaw:
    return MixtureLaw.from_stored(model.parameters, model.pools, model.provenance)


def prediction_create(*, tenant: Tenant, model_id, mixture: dict, budget: float, budget_unit: str = "samples",
                      model_parameters: float | None = None, level: float = 0.95) -> dict:
    """The predicted metric and band of ``mixture`` at ``budget`` under a fitted model (synchronous)."""
    model = performance_model_get(tenant=tenant, model_id=model_id)
    if model is None:
        raise ApplicationError("not_found", f"no performance model with id {model_id}",
                               detail={"field": "performance_model"}, status_code=404)
    law = performance_model_law(model)
    corpus = model.corpus
    try:
        samples = budget_in_samples(budget, budget_unit, tokens_per_sample=corpus.tokens / max(corpus.documents, 1),
                                    parameters=model_parameters)
        weights = validate_mixture(mixture, set(law.names))
        prediction = law.predict(weights, samples, level=level)
    except ValueError as exc:
        field = "mixture" if "pool" in str(exc) or "weight" in str(exc) else "budget"
        raise ApplicationError("invalid_prediction_request", str(exc), detail={"field": field}) from None
    unique = dict(zip(law.names, law.unique))
    return {
        "performance_model": str(model.pk), "metric": model.metric, "higher_is_better": model.higher_is_better,
        "value": prediction.value, "low": prediction.low, "high": prediction.high, "level": level,
        "extrapolated": prediction.extrapolated, "outside_doublings": prediction.outside,
        "budget_samples": samples,
        "repetitions": {pool: w * samples / unique[pool] for pool, w in weights.items() if w > 0},
        "provenance": model.provenance,
    }
