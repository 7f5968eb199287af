"""Reads for corpora and benchmarks."""
from __future__ import annotations

from django.db.models import Count, QuerySet, Sum

from api.datasets.models import Contamination, Dataset, Shard
from api.jobs.models import Job
from api.tenancy.models import Tenant
from curation.steps import DatasetRef
from curation.steps.decontaminate import STAGE as CONTAMINATION_STAGE


def dataset_get(*, tenant: Tenant, dataset_id, kind: str | None = None) -> Dataset | None:
    """The tenant's dataset with that id, or ``None`` (also for another tenant's id)."""
    queryset = Dataset.objects.for_tenant(tenant).filter(pk=dataset_id)
    if kind:
        queryset = queryset.filter(kind=kind)
    return queryset.first()


def dataset_list(*, tenant: Tenant, kind: str) -> QuerySet[Dataset]:
    """The tenant's corpora or benchmarks, newest first."""
    return Dataset.objects.for_tenant(tenant).filter(kind=kind).order_by("-created_at")


def dataset_shards(*, dataset: Dataset) -> QuerySet[Shard]:
    return Shard.objects.for_tenant(dataset.tenant_id).filter(dataset=dataset).order_by("index")


def dataset_ref(dataset: Dataset) -> DatasetRef:
    """The library's handle of a stored dataset."""
    return DatasetRef(id=str(dataset.pk), name=dataset.name, kind=dataset.kind, documents=dataset.documents,
                      tokens=dataset.tokens,
                      shard_documents=tuple(dataset_shards(dataset=dataset).values_list("documents", flat=True)))


def dataset_usage(*, tenant: Tenant) -> dict:
    totals = Dataset.objects.for_tenant(tenant).aggregate(
        stored_bytes=Sum("stored_bytes"), documents=Sum("documents"), datasets=Count("id")
    )
    return {key: value or 0 for key, value in totals.items()}


def dataset_score_jobs(*, dataset: Dataset, job_id=None) -> dict[str, Job]:
    """For each metric with per-document scores on the corpus, the job whose scores to read.

    The newest succeeded job on the corpus that produced the metric (its result lists it
    under ``score_metrics``); ``job_id`` considers that one job only.
    """
    jobs = Job.objects.for_tenant(dataset.tenant_id).filter(status=Job.Status.SUCCEEDED,
                                                             params__corpus=str(dataset.pk))
    if job_id is not None:
        jobs = jobs.filter(pk=job_id)
    found: dict[str, Job] = {}
    for job in jobs.order_by("-finished_at")[:50]:
        for metric in (job.result or {}).get("score_metrics", []):
            found.setdefault(metric, job)
    return found


def dataset_contamination(*, dataset: Dataset, job_id=None, benchmark_id=None, kind: str | None = None
                          ) -> tuple[Job | None, QuerySet[Contamination]]:
    """The contamination rows of the newest job that decontaminated the corpus (or of job ``job_id``),
    optionally of one benchmark and one kind; ``(None, empty)`` when no job did."""
    rows = Contamination.objects.for_tenant(dataset.tenant_id).filter(corpus=dataset)
    jobs = Job.objects.for_tenant(dataset.tenant_id).filter(params__corpus=str(dataset.pk),
                                                             units__stage=CONTAMINATION_STAGE)
    if job_id is not None:
        jobs = jobs.filter(pk=job_id)
    job = jobs.order_by("-created_at").first()
    if job is None:
        return None, rows.none()
    rows = rows.filter(job=job)
    if benchmark_id is not None:
        rows = rows.filter(benchmark_id=benchmark_id)
    if kind:
        rows = rows.filter(kind=kind)
    return job, rows
