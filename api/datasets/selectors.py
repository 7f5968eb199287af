"""Reads for corpora and benchmarks."""
from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from api.datasets.models import Dataset, Shard
from api.tenancy.models import Tenant


def dataset_get(*, tenant: Tenant, dataset_id, kind: str | None = None) -> Dataset | None:
    """The tenant's dataset with that id, or ``None`` (also for another tenant's id)."""
    queryset = Dataset.objects.for_tenant(tenant).filter(pk=dataset_id)
    if kind:
        queryset = queryset.filter(kind=kind)
    return queryset.first()


def dataset_shards(*, dataset: Dataset) -> QuerySet[Shard]:
    return Shard.objects.for_tenant(dataset.tenant_id).filter(dataset=dataset).order_by("index")


def dataset_usage(*, tenant: Tenant) -> dict:
    totals = Dataset.objects.for_tenant(tenant).aggregate(
        stored_bytes=Sum("stored_bytes"), documents=Sum("documents"), datasets=Count("id")
    )
    return {key: value or 0 for key, value in totals.items()}
