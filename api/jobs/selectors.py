"""Reads for jobs."""
from __future__ import annotations

from django.core.cache import cache
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


WORK_SECONDS = 7 * 24 * 3600  # how long a unit's work done is kept


def _work_key(job_id, stage: str, index: int) -> str:
    return f"job-work:{job_id}:{stage}:{index}"


def unit_work_set(job_id, stage: str, index: int, done: int, total: int) -> None:
    """Record the work unit ``index`` of ``stage`` has done (e.g. tokens trained) out of ``total``
    (a key per unit: units on different workers never overwrite each other)."""
    cache.set(_work_key(job_id, stage, index), [int(done), int(total)], WORK_SECONDS)


def job_unit_work(*, job: Job, stage: str, units: int) -> dict | None:
    """The work done inside ``stage``'s units that report it: ``{"done", "total", "units"}`` summed over
    them (a long unit's progress between its start and its JobUnit row); None when none reported."""
    work = cache.get_many([_work_key(job.pk, stage, i) for i in range(units)]).values()
    if not work:
        return None
    return {"done": sum(d for d, _ in work), "total": sum(t for _, t in work), "units": len(work)}
