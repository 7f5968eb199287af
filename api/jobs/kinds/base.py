"""What a job kind is in the service: an adapter around a plan of :mod:`curation.plans`.

A kind validates its params (a DRF serializer, which also documents them in the OpenAPI
schema), resolves the datasets they name within the tenant, builds the typed params of
its plan, and records what a stage's output means for the database (a fitted model, a
mixture). The stages themselves are library steps, run by the Celery executor in
``api/jobs/services.py``.
"""
from __future__ import annotations

from rest_framework import serializers

from api.core.errors import ApplicationError, validated, validation_error
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_get, dataset_ref
from api.datasets.services import contamination_record
from curation.steps import DatasetRef, Stage
from curation.steps.decontaminate import STAGE as CONTAMINATION_STAGE


class JobKind:
    name: str
    params_serializer: type[serializers.Serializer]

    def validate(self, *, tenant, params: dict) -> dict:
        """Normalised params (ids as strings); raises :class:`ApplicationError` naming the field."""
        data = validated(self.params_serializer(data=params, context={"tenant": tenant}))
        return self.normalise(tenant=tenant, data=data)

    def normalise(self, *, tenant, data: dict) -> dict:
        raise NotImplementedError

    def estimate(self, *, tenant, params: dict) -> dict | None:
        """What the job will cost, before any work (None: nothing to estimate); raises
        :class:`ApplicationError` for a job the tenant's quotas do not allow."""
        return None

    def plan(self, *, tenant_id, params: dict) -> list[Stage]:
        """The stages of a job with these (normalised) params."""
        raise NotImplementedError

    def record(self, *, job, stage: str, output: dict) -> dict:
        """Store what a finished unit's output means beyond the job (rows); returns the output to keep.
        The contamination stage of any kind that decontaminates stores its rows here."""
        if stage == CONTAMINATION_STAGE:
            return contamination_record(job=job, corpus_id=job.params["corpus"], output=output)
        return output


def resolve_dataset(tenant, params: dict, kinds: tuple[str, ...] = ("corpus", "benchmark")) -> Dataset:
    """Exactly one of ``kinds`` in ``params``, resolved to the tenant's dataset (404 otherwise)."""
    given = [(kind, params[kind]) for kind in kinds if params.get(kind)]
    if len(given) != 1:
        raise validation_error({kinds[0]: f"give exactly one of {' or '.join(map(repr, kinds))} "
                                                     "(a dataset id)"})
    kind, dataset_id = given[0]
    dataset = dataset_get(tenant=tenant, dataset_id=dataset_id, kind=kind)
    if dataset is None:
        raise ApplicationError("not_found", f"no {kind} with id {dataset_id}", detail={"field": f"params.{kind}"},
                               status_code=404)
    return dataset


def dataset_of(tenant_id, dataset_id) -> DatasetRef:
    """A dataset a validated job names (scoped to the job's tenant)."""
    return dataset_ref(Dataset.objects.for_tenant(tenant_id).get(pk=dataset_id))


def corpus_and_benchmarks(tenant_id, params: dict) -> tuple[DatasetRef, tuple[DatasetRef, ...]]:
    return dataset_of(tenant_id, params["corpus"]), tuple(dataset_of(tenant_id, b) for b in params["benchmarks"])
