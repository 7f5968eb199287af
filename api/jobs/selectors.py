"""Reads for jobs."""
from __future__ import annotations

from django.db.models import Count

from api.jobs.models import Job, JobUnit
from api.tenancy.models import Tenant


def job_counts(*, tenant: Tenant) -> dict[str, int]:
    rows = Job.objects.for_tenant(tenant).values("status").annotate(n=Count("id"))
    counts = {status: 0 for status in Job.Status.values}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def job_units_done(*, job: Job) -> dict[str, int]:
    """Units done per stage name."""
    rows = JobUnit.objects.for_tenant(job.tenant_id).filter(job=job).values("stage").annotate(n=Count("id"))
    return {row["stage"]: row["n"] for row in rows}


def job_with_scores(*, tenant: Tenant, dataset_id, metric: str, job_id=None) -> Job | None:
    """The job whose per-document ``metric`` scores to read for a corpus.

    ``job_id`` picks one job; otherwise the newest succeeded job on that corpus that
    produced the metric (its result lists it under ``score_metrics``).
    """
    jobs = Job.objects.for_tenant(tenant).filter(status=Job.Status.SUCCEEDED, params__corpus=str(dataset_id))
    if job_id is not None:
        jobs = jobs.filter(pk=job_id)
    for job in jobs.order_by("-finished_at")[:50]:
        if metric in (job.result or {}).get("score_metrics", []):
            return job
    return None
