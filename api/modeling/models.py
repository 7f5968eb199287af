"""Observed pilot runs and the performance models fitted from them."""
from __future__ import annotations

import uuid

from django.db import models

from api.core.scope import TenantOwned


class PilotRun(TenantOwned):
    """One observation: training on ``mixture`` of a corpus's pools for ``size`` gave ``value``."""

    class Origin(models.TextChoices):
        USER = "user"
        PROXY = "proxy"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    corpus = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="pilot_runs")
    mixture = models.JSONField(help_text="{pool name: weight}, weights on the simplex")
    size = models.FloatField(help_text="samples (or tokens) seen in training")
    metric = models.CharField(max_length=100)
    value = models.FloatField()
    higher_is_better = models.BooleanField(default=True)
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.USER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "corpus", "metric"])]
