"""Schedules: a job template fired on a cron expression or an interval.

Each ``Schedule`` owns one django-celery-beat ``PeriodicTask`` (beat reads those);
every firing is recorded as a ``ScheduleFiring``: a job created, or skipped (the
previous job is still going, the schedule is paused) or failed (the template no
longer validates, the tenant is at its concurrent-job quota), with the reason.
"""
from __future__ import annotations

import uuid

from django.db import models

from api.core.scope import TenantOwned


class Schedule(TenantOwned):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, blank=True)
    cron = models.CharField(max_length=100, blank=True,
                            help_text="five fields, minute hour day-of-month month day-of-week, in UTC")
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    job_kind = models.CharField(max_length=32)
    job_params = models.JSONField(default=dict, help_text="normalised like POST /api/v1/jobs/ stores them")
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    last_fired_at = models.DateTimeField(null=True, blank=True)
    last_job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"schedule {self.name or self.pk} ({self.timing})"

    @property
    def timing(self) -> str:
        return f"cron {self.cron}" if self.cron else f"every {self.interval_seconds} s"


class ScheduleFiring(TenantOwned):
    class Outcome(models.TextChoices):
        CREATED = "created"
        SKIPPED = "skipped"
        FAILED = "failed"

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="firings")
    fired_at = models.DateTimeField(auto_now_add=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-fired_at"]
        indexes = [models.Index(fields=["schedule", "-fired_at"])]
