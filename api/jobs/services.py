"""Writes for jobs: create, cancel, retry, and the unit of work the workers run.

A job is a plan of stages run in order (:mod:`curation.plans`); each stage fans out
into units (usually one per shard). This module is the Celery executor of those plans:
progress lives in the Job row. A unit counts as done when its JobUnit
row exists, and that row is written only after the unit's outputs are durable, so a
worker killed at any point leaves either no row (the redelivered task redoes the unit)
or a row (the redelivered task skips it). The task that completes a stage moves the
job on with one conditional UPDATE, so exactly one task dispatches the next stage.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from api.core.artifacts import tenant_storage
from api.core.errors import ApplicationError, invalid_param
from api.core.scope import tenant_scope
from api.jobs import dispatch
from api.jobs.estimates import job_estimate, unit_work
from api.jobs.kinds import KINDS
from api.jobs.models import Job, JobUnit
from api.jobs.selectors import unit_work_set
from api.modeling.selectors import pilot_observations, stored_model
from api.tenancy.models import Tenant
from curation.plans import route
from curation.steps import Context, Stage

logger = logging.getLogger(__name__)


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


def _kind_plan(kind: str, tenant_id, params: dict) -> list[Stage]:
    """A kind's plan on the queues this deployment serves (``GPU_WORKERS``: :func:`curation.plans.route`)."""
    return route(KINDS[kind].plan(tenant_id=tenant_id, params=params), gpu_workers=settings.GPU_WORKERS)


def _plan(job: Job) -> list[Stage]:
    return _kind_plan(job.kind, job.tenant_id, job.params)


def _context(job: Job, stage: str, index: int) -> Context:
    """What unit ``index`` of ``stage`` sees: the tenant's storage, earlier stages' outputs, its pilot runs and
    models, and a progress callback that keeps the unit's work done (at most once a second) for
    :func:`api.jobs.selectors.job_unit_work`."""
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done >= total or now - last[0] >= 1.0:
            last[0] = now
            unit_work_set(job.pk, stage, index, done, total)

    def outputs(stage: str) -> list[dict]:
        return list(JobUnit.objects.for_tenant(job.tenant_id).filter(job=job, stage=stage).order_by("index")
                    .values_list("output", flat=True))

    return Context(storage=tenant_storage(job.tenant_id), run_id=str(job.pk), outputs=outputs, progress=progress,
                   pilot_runs=lambda metric: pilot_observations(tenant_id=job.tenant_id,
                                                                corpus_id=job.params["corpus"], metric=metric),
                   model=lambda model_id: stored_model(tenant_id=job.tenant_id, model_id=model_id))


def _dispatch_stage(job: Job, stage: Stage, *, unsent: Callable[[], str] | None = None) -> None:
    """After commit, enqueue the units of ``stage`` that are not done yet.

    If all are done (a stage finished but the job was not moved on), unit 0 is
    enqueued again: it finds itself done and moves the job on.

    If the broker is unreachable, ``unsent`` undoes what the caller committed (so no job
    waits for messages that were never sent) and says what became of the job; the 503
    :class:`ApplicationError` (``queue_unavailable``, ``Retry-After``) carries it.
    """
    done = set(JobUnit.objects.for_tenant(job.tenant_id).filter(job=job, stage=stage.name)
               .values_list("index", flat=True))
    missing = [i for i in range(stage.units) if i not in done] or [0]
    job_id = str(job.pk)

    def send() -> None:
        try:
            dispatch.enqueue_units(job_id=job_id, stage=stage.name, indices=missing, queue=stage.queue)
        except ApplicationError as exc:
            if unsent is None or exc.code != "queue_unavailable":
                raise
            raise ApplicationError(exc.code, f"{exc.message}, so {unsent()}; try again in {exc.retry_after} s",
                                   detail=exc.detail, status_code=exc.status_code,
                                   retry_after=exc.retry_after) from exc

    transaction.on_commit(send)


def _unsent_create(job: Job) -> Callable[[], str]:
    """A new job whose first stage could not be sent is deleted: a 503 means nothing was done, and
    a client that retries on 503 would otherwise leave a job behind on every attempt. (A unit
    sent before the broker went away finds the job gone and skips.)"""
    def undo() -> str:
        if Job.objects.for_tenant(job.tenant_id).filter(pk=job.pk, status=Job.Status.QUEUED).delete()[0]:
            return "the job was not created"
        job_fail(job_id=job.pk, reason="only part of the first stage could be queued: the broker went away")
        return f"the job {job.pk}, queued only in part, was marked failed (retry it)"

    return undo


def _unsent_retry(job: Job, previous: dict) -> Callable[[], str]:
    """A retried job whose stage could not be sent goes back to how it was before the retry."""
    def undo() -> str:
        Job.objects.for_tenant(job.tenant_id).filter(pk=job.pk, status=Job.Status.QUEUED).update(**previous)
        return f"the job is still {previous['status']}"

    return undo


def _prepare(tenant: Tenant, kind: str, params: dict) -> tuple[dict, list[Stage], dict]:
    """What creating a job checks and computes before any row: the kind, its params (400, 404), the
    plan and the estimate (a quota it would exceed: 403)."""
    if kind not in KINDS:
        raise invalid_param("kind", kind, allowed=sorted(KINDS), code="unknown_kind")
    job_kind = KINDS[kind]
    normalised = job_kind.validate(tenant=tenant, params=params or {})
    plan = _kind_plan(kind, tenant.pk, normalised)
    return normalised, plan, job_estimate(tenant=tenant, kind=kind, params=normalised, plan=plan)


def job_dry_run(*, tenant: Tenant, kind: str, params: dict) -> dict:
    """What :func:`job_create` would create, checked exactly as it checks (quotas included), without
    creating, enqueueing or storing anything: ``{"dry_run", "kind", "params", "plan", "estimate"}``."""
    normalised, plan, estimate = _prepare(tenant, kind, params)
    _check_concurrency(tenant)
    return {"dry_run": True, "kind": kind, "params": normalised, "plan": [s.as_dict() for s in plan],
            "estimate": estimate}


def job_create(*, tenant: Tenant, kind: str, params: dict) -> Job:
    normalised, plan, estimate = _prepare(tenant, kind, params)
    with transaction.atomic():
        _check_concurrency(tenant)
        job = Job.objects.for_tenant(tenant).create(
            tenant=tenant, kind=kind, params=normalised, plan=[s.as_dict() for s in plan], stage=plan[0].name,
            shards_total=sum(s.units for s in plan), estimate=estimate,
        )
        _dispatch_stage(job, plan[0], unsent=_unsent_create(job))
    return job


def job_cancel(*, job: Job) -> Job:
    updated = Job.objects.for_tenant(job.tenant_id).filter(pk=job.pk, status__in=Job.ACTIVE).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now()
    )
    job.refresh_from_db()
    if not updated:
        raise ApplicationError("job_not_active", f"the job is {job.status}; only queued or running jobs can be "
                               "cancelled", status_code=409)
    return job


def job_retry(*, job: Job) -> Job:
    """Requeue a failed or cancelled job from its current stage; done units are not redone."""
    with transaction.atomic():
        _check_concurrency(job.tenant)
        previous = {"status": job.status, "error": job.error, "finished_at": job.finished_at}
        updated = Job.objects.for_tenant(job.tenant_id).filter(
            pk=job.pk, status__in=(Job.Status.FAILED, Job.Status.CANCELLED)
        ).update(status=Job.Status.QUEUED, error="", finished_at=None)
        job.refresh_from_db()
        if not updated:
            raise ApplicationError("job_not_retryable", f"the job is {job.status}; only failed or cancelled jobs "
                                   "can be retried", status_code=409)
        _dispatch_stage(job, next(s for s in _plan(job) if s.name == job.stage), unsent=_unsent_retry(job, previous))
    return job


def job_fail(*, job_id, reason: str) -> None:
    Job.unscoped_objects.filter(pk=job_id, status__in=Job.ACTIVE).update(
        status=Job.Status.FAILED, error=reason[:4000], finished_at=timezone.now()
    )


def _advance(job: Job, plan: list[Stage], stage: Stage) -> str:
    """Move a job whose ``stage`` of ``plan`` is complete to the next stage, or finish it."""
    position = [s.name for s in plan].index(stage.name)
    moving = Job.objects.filter(pk=job.pk, status=Job.Status.RUNNING, stage=stage.name)
    if position == len(plan) - 1:
        result = JobUnit.objects.get(job=job, stage=stage.name, index=0).output
        moved = moving.update(status=Job.Status.SUCCEEDED, stage="done", result=result, finished_at=timezone.now())
        return "job succeeded" if moved else "already finished"
    following = plan[position + 1]
    with transaction.atomic():
        if not moving.update(stage=following.name):
            return "already moved on"
        _dispatch_stage(job, following)
    return f"moved on to {following.name}"


def _late_delivery(job: Job, plan: list[Stage], stage: str) -> str:
    """A unit of a stage the job has moved past: a second delivery of a done unit (a retry,
    or a message delivered again after a fault). Its first delivery may have moved the job
    on and then failed to enqueue the next stage (the broker went away after the commit),
    so the current stage's missing units are enqueued again; a duplicate finds its unit done."""
    names = [s.name for s in plan]
    if stage not in names or job.stage not in names or names.index(job.stage) < names.index(stage):
        return f"skipped: the job is at stage {job.stage}"
    current = plan[names.index(job.stage)]
    _dispatch_stage(job, current)
    return f"skipped: the job is at stage {job.stage}; enqueued its units not yet done again"


def job_run_unit(*, job_id, stage: str, index: int) -> str:
    """Run one unit of a job's stage (idempotent); the stage's last unit moves the job on."""
    job = Job.unscoped_objects.filter(pk=job_id).first()
    if job is None or job.status not in Job.ACTIVE:
        return "skipped: the job is gone or no longer active"
    plan = _plan(job)
    if job.stage != stage:
        return _late_delivery(job, plan, stage)
    current = next(s for s in plan if s.name == stage)
    with tenant_scope(job.tenant_id):
        Job.objects.filter(pk=job.pk, status=Job.Status.QUEUED).update(
            status=Job.Status.RUNNING, started_at=Coalesce(F("started_at"), Value(timezone.now()))
        )
        outcome = "already done"
        if not JobUnit.objects.filter(job=job, stage=stage, index=index).exists():
            started = time.perf_counter()
            output = KINDS[job.kind].record(job=job, stage=stage, output=current.run(_context(job, stage, index), index))
            seconds = time.perf_counter() - started
            stage_kind, work = unit_work(job=job, plan=plan, stage=stage, index=index, output=output)
            try:
                JobUnit.objects.create(tenant_id=job.tenant_id, job=job, stage=stage, index=index, seconds=seconds,
                                       stage_kind=stage_kind, work=work, output=output)
                outcome = "done"
            except IntegrityError:
                outcome = "done concurrently by another delivery"
        Job.objects.filter(pk=job.pk).update(shards_done=JobUnit.objects.filter(job=job).count())
        if JobUnit.objects.filter(job=job, stage=stage).count() >= current.units:
            outcome += "; " + _advance(job, plan, current)
    return outcome
