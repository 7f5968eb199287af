"""Writes for pilot runs (and, as they land, performance models)."""
from __future__ import annotations

from django.db import transaction

from api.core.errors import ApplicationError
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_get
from api.modeling.models import PilotRun
from api.tenancy.models import Tenant
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
