"""Writes for schedules: create, update, pause, delete, and one firing.

A schedule's timing lives in a django-celery-beat ``PeriodicTask`` that this module
keeps in step with the ``Schedule`` row (same transaction). Beat sends the task
``schedules.fire`` with the schedule id; :func:`schedule_fire` then creates a normal
Job through the jobs service, in the schedule's tenant scope, unless a job this
schedule started is still queued or running (the firing is recorded as skipped).
"""
from __future__ import annotations

import json
import logging

from celery.schedules import crontab as celery_crontab
from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.utils import timezone
from django_celery_beat import validators as cron_validators
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from api.core.errors import ApplicationError, invalid_param
from api.core.scope import tenant_scope
from api.jobs import services as job_services
from api.jobs.kinds import KINDS
from api.jobs.models import Job
from api.schedules.models import Schedule, ScheduleFiring
from api.tenancy.models import Tenant

logger = logging.getLogger(__name__)

FIRE_TASK = "schedules.fire"
CRON_FIELDS = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
_CRON_VALIDATORS = (cron_validators.minute_validator, cron_validators.hour_validator,
                    cron_validators.day_of_month_validator, cron_validators.month_of_year_validator,
                    cron_validators.day_of_week_validator)
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


def cron_fields(expression: str) -> dict[str, str]:
    """``"*/15 2 * * 1-5"`` as crontab keyword arguments; :class:`ApplicationError` names the bad field."""
    parts = expression.split()
    if len(parts) != 5:
        raise ApplicationError(
            "invalid_cron", f"cron must have 5 fields (minute hour day-of-month month day-of-week, UTC); "
            f"got {len(parts)} in {expression!r}", field="cron")
    fields = dict(zip(CRON_FIELDS, parts))
    for (name, value), validator in zip(fields.items(), _CRON_VALIDATORS):
        try:
            validator(value)
        except (DjangoValidationError, ValueError) as exc:
            message = exc.messages[0] if isinstance(exc, DjangoValidationError) else str(exc)
            raise ApplicationError("invalid_cron", f"cron field {name.replace('_', '-')} {value!r} is invalid: "
                                   f"{message}", field="cron", detail={"part": name}) from None
    try:
        celery_crontab(**fields)
    except (ValueError, TypeError) as exc:
        raise ApplicationError("invalid_cron", f"cron {expression!r} is invalid: {exc}", field="cron") from None
    return fields


def _validate_timing(cron: str, interval_seconds: int | None) -> None:
    if bool(cron) == (interval_seconds is not None):
        raise ApplicationError("invalid_timing", "give exactly one of cron (e.g. '0 3 * * *') or interval_seconds",
                               field="cron" if cron else "interval_seconds")
    if cron:
        cron_fields(cron)
        return
    low = settings.SCHEDULE_MIN_INTERVAL_SECONDS
    if not low <= interval_seconds <= MAX_INTERVAL_SECONDS:
        raise invalid_param("interval_seconds", interval_seconds, code="invalid_interval",
                            expected=f"between {low} and {MAX_INTERVAL_SECONDS}",
                            detail={"min": low, "max": MAX_INTERVAL_SECONDS})


def job_template_validate(*, tenant: Tenant, kind: str, params: dict) -> dict:
    """The params normalised exactly as ``POST /api/v1/jobs/`` would (same errors), without creating a job."""
    if kind not in KINDS:
        raise invalid_param("kind", kind, allowed=sorted(KINDS), code="unknown_kind")
    return KINDS[kind].validate(tenant=tenant, params=params or {})


def _sync_periodic_task(schedule: Schedule) -> None:
    """Create or update the beat entry that fires ``schedule``."""
    task = schedule.periodic_task or PeriodicTask(name=f"schedule {schedule.pk}", task=FIRE_TASK)
    if schedule.cron:
        fields = cron_fields(schedule.cron)
        crontab = (CrontabSchedule.objects.filter(timezone=settings.TIME_ZONE, **fields).first()
                   or CrontabSchedule.objects.create(timezone=settings.TIME_ZONE, **fields))
        task.crontab, task.interval = crontab, None
    else:
        interval = (IntervalSchedule.objects.filter(every=schedule.interval_seconds,
                                                    period=IntervalSchedule.SECONDS).first()
                    or IntervalSchedule.objects.create(every=schedule.interval_seconds,
                                                       period=IntervalSchedule.SECONDS))
        task.interval, task.crontab = interval, None
    task.args = json.dumps([str(schedule.pk)])
    task.kwargs = "{}"
    task.queue = "cpu"
    task.enabled = schedule.enabled
    task.description = f"tenant {schedule.tenant_id}: {schedule.job_kind} job"
    task.save()
    if schedule.periodic_task_id != task.pk:
        schedule.periodic_task = task
        Schedule.objects.for_tenant(schedule.tenant_id).filter(pk=schedule.pk).update(periodic_task=task)
    _remove_unused_timings()


def _remove_unused_timings() -> None:
    IntervalSchedule.objects.filter(periodictask__isnull=True).delete()
    CrontabSchedule.objects.filter(periodictask__isnull=True).delete()


@transaction.atomic
def schedule_create(*, tenant: Tenant, job_kind: str, job_params: dict | None = None, cron: str = "",
                    interval_seconds: int | None = None, name: str = "", enabled: bool = True) -> Schedule:
    cron = " ".join((cron or "").split())
    _validate_timing(cron, interval_seconds)
    params = job_template_validate(tenant=tenant, kind=job_kind, params=job_params or {})
    schedule = Schedule.objects.for_tenant(tenant).create(
        tenant=tenant, name=name, cron=cron, interval_seconds=None if cron else interval_seconds,
        job_kind=job_kind, job_params=params, enabled=enabled)
    _sync_periodic_task(schedule)
    logger.info("tenant %s created %s", tenant.pk, schedule)
    return schedule


_UPDATABLE = {"name", "cron", "interval_seconds", "job_kind", "job_params", "enabled"}


@transaction.atomic
def schedule_update(*, schedule: Schedule, **changes) -> Schedule:
    """Change any of name, cron / interval_seconds (giving one clears the other), the job
    template (re-validated as a whole) and enabled (pause or resume)."""
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise TypeError(f"schedule_update got unknown fields {sorted(unknown)}")
    # A firing may have moved last_job / last_fired_at since the caller read the row.
    schedule = Schedule.objects.for_tenant(schedule.tenant_id).select_for_update().get(pk=schedule.pk)
    cron, interval = schedule.cron, schedule.interval_seconds
    if "cron" in changes:
        cron = " ".join((changes["cron"] or "").split())
    if "interval_seconds" in changes:
        interval = changes["interval_seconds"]
    if changes.get("cron") and "interval_seconds" not in changes:
        interval = None
    if changes.get("interval_seconds") is not None and "cron" not in changes:
        cron = ""
    _validate_timing(cron, interval)
    if "job_kind" in changes or "job_params" in changes:
        kind = changes.get("job_kind", schedule.job_kind)
        schedule.job_params = job_template_validate(tenant=schedule.tenant, kind=kind,
                                                    params=changes.get("job_params", schedule.job_params))
        schedule.job_kind = kind
    schedule.cron, schedule.interval_seconds = cron, None if cron else interval
    if "name" in changes:
        schedule.name = changes["name"]
    if "enabled" in changes:
        schedule.enabled = bool(changes["enabled"])
    schedule.save(update_fields=["name", "cron", "interval_seconds", "job_kind", "job_params", "enabled",
                                 "updated_at"])
    _sync_periodic_task(schedule)
    return schedule


@transaction.atomic
def schedule_delete(*, schedule: Schedule) -> None:
    task = schedule.periodic_task
    schedule.delete()
    if task is not None:
        task.delete()
    _remove_unused_timings()


def _record(schedule: Schedule, outcome: str, *, job: Job | None = None, reason: str = "") -> ScheduleFiring:
    return ScheduleFiring.objects.for_tenant(schedule.tenant_id).create(
        tenant_id=schedule.tenant_id, schedule=schedule, outcome=outcome, job=job, reason=reason[:2000])


def schedule_fire(*, schedule_id) -> str:
    """One firing: create the template's job unless this schedule's last job is still going.

    The schedule row is locked for the firing, so two deliveries of the same firing (or
    two firings in quick succession) cannot both start a job.
    """
    with transaction.atomic():
        schedule = (Schedule.unscoped_objects.select_for_update().filter(pk=schedule_id).first())
        if schedule is None:
            return "skipped: the schedule is gone"
        tenant = Tenant.objects.get(pk=schedule.tenant_id)
        with tenant_scope(tenant.pk):
            Schedule.objects.filter(pk=schedule.pk).update(last_fired_at=timezone.now())
            if not schedule.enabled:
                _record(schedule, ScheduleFiring.Outcome.SKIPPED, reason="the schedule is paused")
                return "skipped: paused"
            started = ScheduleFiring.objects.filter(schedule=schedule, outcome=ScheduleFiring.Outcome.CREATED,
                                                    job__isnull=False).values("job")
            running = Job.objects.filter(pk__in=started, status__in=Job.ACTIVE).order_by("-created_at").first()
            if running is not None:
                _record(schedule, ScheduleFiring.Outcome.SKIPPED, job=running,
                        reason=f"the previous job {running.pk} is still {running.status}")
                return f"skipped: job {running.pk} is still {running.status}"
            try:
                job = job_services.job_create(tenant=tenant, kind=schedule.job_kind, params=schedule.job_params)
            except ApplicationError as exc:
                _record(schedule, ScheduleFiring.Outcome.FAILED, reason=f"{exc.code}: {exc.message}")
                return f"failed: {exc.code}"
            except Exception as exc:  # noqa: BLE001 - the firing records why, the operator sees it
                logger.exception("schedule %s could not create its job", schedule.pk)
                _record(schedule, ScheduleFiring.Outcome.FAILED, reason=f"{type(exc).__name__}: {exc}")
                return "failed"
            Schedule.objects.filter(pk=schedule.pk).update(last_job=job)
            _record(schedule, ScheduleFiring.Outcome.CREATED, job=job)
    logger.info("schedule %s created job %s", schedule_id, job.pk)
    return f"created job {job.pk}"
