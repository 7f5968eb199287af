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
