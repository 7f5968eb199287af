"""Writes for jobs: create, cancel, retry, and the per-shard steps the workers run.

Progress lives in the Job row. A shard counts as done when its JobShard row exists;
that row is written only after the shard's outputs are durably in place, so a worker
killed at any point leaves either no row (the redelivered task redoes the shard) or
a row (the redelivered task skips it). Whichever task sees every shard done enqueues
finalisation; finalising is idempotent and its closing UPDATE is conditional on the
job still running, so a duplicate finalisation changes nothing.
"""
from __future__ import annotations

import logging
import time

from django.db import IntegrityError, transaction
from django.utils import timezone

from api.core.errors import ApplicationError
from api.core.scope import tenant_scope
from api.jobs import dispatch
from api.jobs.kinds import KINDS
from api.jobs.models import Job, JobShard
from api.tenancy.models import Tenant

logger = logging.getLogger(__name__)
FINALIZING = "finalizing"


def _check_concurrency(tenant: Tenant) -> None:
    active = Job.objects.for_tenant(tenant).filter(status__in=Job.ACTIVE).count()
    if active >= tenant.max_concurrent_jobs:
        raise ApplicationError(
            "quota_exceeded",
            f"the tenant already runs {active} jobs, its limit is {tenant.max_concurrent_jobs}; "
            "wait for one to finish or cancel one",
            detail={"quota": "concurrent_jobs", "used": active, "limit": tenant.max_concurrent_jobs},
            status_code=429,
        )


def _dispatch_missing(job: Job) -> None:
    done = set(JobShard.objects.for_tenant(job.tenant_id).filter(job=job).values_list("index", flat=True))
    missing = [i for i in range(job.shards_total) if i not in done]
    kind = KINDS[job.kind]
    job_id = str(job.pk)
    if missing:
        transaction.on_commit(lambda: dispatch.enqueue_shards(job_id=job_id, indices=missing, queue=kind.queue))
    else:
        transaction.on_commit(lambda: dispatch.enqueue_finalize(job_id=job_id))


def job_create(*, tenant: Tenant, kind: str, params: dict) -> Job:
    if kind not in KINDS:
        raise ApplicationError("unknown_kind", f"kind must be one of {sorted(KINDS)}; got {kind!r}",
                               detail={"field": "kind", "allowed": sorted(KINDS)})
    normalised, shards = KINDS[kind].validate(tenant=tenant, params=params or {})
    with transaction.atomic():
        _check_concurrency(tenant)
        job = Job.objects.for_tenant(tenant).create(tenant=tenant, kind=kind, params=normalised, shards_total=shards)
        _dispatch_missing(job)
    return job


def job_cancel(*, job: Job) -> Job:
    updated = Job.objects.for_tenant(job.tenant_id).filter(pk=job.pk, status__in=Job.ACTIVE).update(
        status=Job.Status.CANCELLED, stage="cancelled", finished_at=timezone.now()
    )
    job.refresh_from_db()
    if not updated:
        raise ApplicationError("job_not_active", f"the job is {job.status}; only queued or running jobs can be "
                               "cancelled", status_code=409)
    return job


def job_retry(*, job: Job) -> Job:
    """Requeue a failed or cancelled job; shards already done are not redone."""
    with transaction.atomic():
        _check_concurrency(job.tenant)
        updated = Job.objects.for_tenant(job.tenant_id).filter(
            pk=job.pk, status__in=(Job.Status.FAILED, Job.Status.CANCELLED)
        ).update(status=Job.Status.QUEUED, stage="queued", error="", finished_at=None)
        job.refresh_from_db()
        if not updated:
            raise ApplicationError("job_not_retryable", f"the job is {job.status}; only failed or cancelled jobs "
                                   "can be retried", status_code=409)
        _dispatch_missing(job)
    return job


def job_fail(*, job_id, reason: str) -> None:
    Job.unscoped_objects.filter(pk=job_id, status__in=Job.ACTIVE).update(
        status=Job.Status.FAILED, stage="failed", error=reason[:4000], finished_at=timezone.now()
    )


def job_run_shard(*, job_id, index: int) -> str:
    """Run one shard of a job (idempotent); the last shard to finish claims finalisation."""
    job = Job.unscoped_objects.filter(pk=job_id).first()
    if job is None or job.status not in Job.ACTIVE:
        return "skipped: job is gone or no longer active"
    kind = KINDS[job.kind]
    with tenant_scope(job.tenant_id):
        Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, stage=kind.stage, started_at=timezone.now()
        )
        outcome = "already done"
        if not JobShard.objects.filter(job=job, index=index).exists():
            started = time.perf_counter()
            output = kind.run_shard(job=job, index=index)
            try:
                JobShard.objects.create(tenant_id=job.tenant_id, job=job, index=index,
                                        seconds=time.perf_counter() - started, output=output)
                outcome = "done"
            except IntegrityError:
                outcome = "done concurrently by another delivery"
        done = JobShard.objects.filter(job=job).count()
        Job.objects.filter(pk=job.pk).update(shards_done=done)
        if done >= job.shards_total:
            Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(stage=FINALIZING)
            dispatch.enqueue_finalize(job_id=str(job.pk))
    return outcome


def job_finalize(*, job_id) -> str:
    job = Job.unscoped_objects.filter(pk=job_id).first()
    if job is None or job.status not in Job.ACTIVE:
        return "skipped: job is gone or no longer active"
    with tenant_scope(job.tenant_id):
        if job.status == Job.Status.QUEUED:  # a job with no shards
            Job.objects.filter(pk=job.pk).update(status=Job.Status.RUNNING, started_at=timezone.now())
        result = KINDS[job.kind].finalize(job=job)
        Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING).update(
            status=Job.Status.SUCCEEDED, stage="done", result=result, finished_at=timezone.now()
        )
    return "succeeded"
