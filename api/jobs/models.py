"""Jobs and their per-shard completion records."""
from __future__ import annotations

import uuid

from django.db import models

from api.core.scope import TenantOwned


class Job(TenantOwned):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=32)
    params = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    plan = models.JSONField(default=list, help_text="[{name, units, queue}] in order")
    stage = models.CharField(max_length=32)
    shards_total = models.PositiveIntegerField(default=0, help_text="units in all stages")
    shards_done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    estimate = models.JSONField(null=True, blank=True, help_text=(
        "what the job will cost, estimated at creation (api.jobs.estimates): seconds per stage with its basis, "
        "the total, and for tiny-LM pilots tokens and seconds per run"))
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "status"]), models.Index(fields=["tenant", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"


class JobUnit(TenantOwned):
    """One unit (usually a shard) of one stage of a job, recorded once its output is durable; its
    seconds and amount of work (``work``, in the unit :func:`curation.executor.work_unit_of` its
    ``stage_kind`` counts) are what estimates measure throughput from (:mod:`api.jobs.estimates`)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="units")
    stage = models.CharField(max_length=32)
    index = models.PositiveIntegerField()
    seconds = models.FloatField(help_text="time the unit's step (and its record) took")
    stage_kind = models.CharField(max_length=48, blank=True, default="", help_text=(
        "the step it ran, named alike in every plan (curation.executor.stage_kind)"))
    work = models.FloatField(null=True, blank=True, help_text=(
        "its amount of work (documents, tokens or 1); null when it did none (a cached shard) or could not be "
        "counted in its kind's unit"))
    output = models.JSONField(default=dict)
    finished_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["stage", "index"]
        indexes = [models.Index(fields=["stage_kind", "-finished_at"], name="jobunit_kind_recent")]
        constraints = [models.UniqueConstraint(fields=["job", "stage", "index"], name="unique_job_unit")]
