"""What a job kind is: parameters, a plan of stages, and the work of one unit.

A job runs its stages in order. A stage is a number of independent units (usually
one per shard, fanned out on Celery; a global step such as training a classifier is
a stage of one unit). The output of the last stage's unit 0 is the job's result.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from rest_framework import serializers

from api.core.errors import ApplicationError
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_get


@dataclass(frozen=True)
class Stage:
    name: str
    units: int
    queue: str = "cpu"

    def as_dict(self) -> dict:
        return asdict(self)


class JobKind:
    name: str
    params_serializer: type[serializers.Serializer]

    def validate(self, *, tenant, params: dict) -> dict:
        """Normalised params (ids as strings); raise ValidationError/ApplicationError."""
        form = self.params_serializer(data=params, context={"tenant": tenant})
        form.is_valid(raise_exception=True)
        return self.normalise(tenant=tenant, data=form.validated_data)

    def normalise(self, *, tenant, data: dict) -> dict:
        raise NotImplementedError

    def plan(self, *, tenant, params: dict) -> list[Stage]:
        raise NotImplementedError

    def run_unit(self, *, job, stage: str, index: int) -> dict:
        raise NotImplementedError


def resolve_dataset(tenant, params: dict, kinds: tuple[str, ...] = ("corpus", "benchmark")) -> Dataset:
    """Exactly one of ``kinds`` in ``params``, resolved to the tenant's dataset (404 otherwise)."""
    given = [(kind, params[kind]) for kind in kinds if params.get(kind)]
    if len(given) != 1:
        raise serializers.ValidationError({kinds[0]: f"give exactly one of {' or '.join(map(repr, kinds))} "
                                                     "(a dataset id)"})
    kind, dataset_id = given[0]
    dataset = dataset_get(tenant=tenant, dataset_id=dataset_id, kind=kind)
    if dataset is None:
        raise ApplicationError("not_found", f"no {kind} with id {dataset_id}", detail={"field": f"params.{kind}"},
                               status_code=404)
    return dataset


def dataset_of(tenant_id, dataset_id) -> Dataset:
    """A dataset a validated job names (scoped to the job's tenant)."""
    return Dataset.objects.for_tenant(tenant_id).get(pk=dataset_id)
