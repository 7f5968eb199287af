"""Reads for schedules: lists with firing counts, and when each fires next."""
from __future__ import annotations

import datetime as dt

from celery.schedules import crontab as celery_crontab
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from api.schedules.models import Schedule, ScheduleFiring
from api.schedules.services import cron_fields
from api.tenancy.models import Tenant


def with_firing_counts(queryset: QuerySet[Schedule]) -> QuerySet[Schedule]:
    outcome = ScheduleFiring.Outcome
    return queryset.select_related("last_job", "periodic_task").annotate(
        jobs_created=Count("firings", filter=Q(firings__outcome=outcome.CREATED)),
        firings_skipped=Count("firings", filter=Q(firings__outcome=outcome.SKIPPED)),
        firings_failed=Count("firings", filter=Q(firings__outcome=outcome.FAILED)),
    )


def schedule_list(*, tenant: Tenant) -> QuerySet[Schedule]:
    return with_firing_counts(Schedule.objects.for_tenant(tenant)).order_by("-created_at")


def schedule_get(*, tenant: Tenant, schedule_id) -> Schedule | None:
    return with_firing_counts(Schedule.objects.for_tenant(tenant)).filter(pk=schedule_id).first()


def schedule_firings(*, schedule: Schedule, limit: int = 50) -> list[ScheduleFiring]:
    return list(ScheduleFiring.objects.for_tenant(schedule.tenant_id).filter(schedule=schedule)
                .select_related("job").order_by("-fired_at")[:limit])


def schedule_next_run(schedule: Schedule, *, now: dt.datetime | None = None) -> dt.datetime | None:
    """When beat fires the schedule next (``None`` while paused).

    Cron: the next matching minute after now (UTC). Interval: the last firing (or the
    last change of the schedule, from which beat counts) plus the interval; a firing
    that is already due is reported as now.
    """
    if not schedule.enabled:
        return None
    now = now or timezone.now()
    if schedule.cron:
        remaining = celery_crontab(**cron_fields(schedule.cron), nowfun=lambda: now).remaining_estimate(now)
        return (now + remaining).replace(microsecond=0)
    task = schedule.periodic_task
    starts = [t for t in (schedule.last_fired_at, task.date_changed if task else schedule.updated_at) if t]
    upcoming = max(starts) + dt.timedelta(seconds=schedule.interval_seconds)
    return max(upcoming, now)
