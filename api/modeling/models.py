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
        TINY_LM = "tiny_lm"

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


class PerformanceModel(TenantOwned):
    """A fitted performance model for one corpus, target benchmarks and metric.

    ``kind`` is the law (:data:`curation.laws.LAWS`), chosen by ``backtest`` or asked for;
    ``parameters`` are that law's, with its fit-quality fields (band scales, observed range,
    value range, parameters that ended on a bound); ``provenance`` maps each parameter to
    where it came from (``pilot_runs``, ``tiny_lm``, ``proxy`` or ``defaults``).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    corpus = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="performance_models")
    benchmarks = models.JSONField(default=list, help_text="target benchmark ids")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    metric = models.CharField(max_length=100)
    higher_is_better = models.BooleanField(default=True)
    kind = models.CharField(max_length=32, default="effective_data")
    parameters = models.JSONField(default=dict)
    pools = models.JSONField(default=list, help_text="[{pool, unique_documents, tokens, features...}]")
    fit_error = models.FloatField(null=True, blank=True, help_text="RMS residual over the observations")
    provenance = models.JSONField(default=dict, help_text="{parameter: pilot_runs | tiny_lm | proxy | defaults}")
    observations = models.JSONField(default=list, help_text="[{weights, size, value, fitted, origin}]")
    backtest = models.JSONField(null=True, blank=True, help_text=(
        "how the law was chosen and how well it predicts held-out pilots: {chosen, selected_by, laws: {kind: "
        "{fit_error, size, mixtures} | {error}}, heldout: [{weights, size, observed, predicted, outside, "
        "split}], coverage: {level, covered, points}, band: {in_range, per_growth}}; null for a model fitted "
        "before backtests"))
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]


class Mixture(TenantOwned):
    """The service's answer: pool weights at a budget, repetitions, prediction, frontier and manifest."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    corpus = models.ForeignKey("datasets.Dataset", on_delete=models.CASCADE, related_name="mixtures")
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    performance_model = models.ForeignKey(PerformanceModel, null=True, blank=True, on_delete=models.SET_NULL,
                                          related_name="mixtures")
    budget = models.FloatField(help_text="samples (documents) seen in training")
    budget_unit = models.CharField(max_length=16, default="samples")
    weights = models.JSONField(default=dict, help_text="{pool: weight}")
    pools = models.JSONField(default=list, help_text="[{pool, weight, unique_documents, available_documents, "
                                                     "repetitions}]")
    predicted = models.JSONField(default=dict, help_text="{metric, value, low, high, provenance}")
    frontier = models.JSONField(default=list, help_text="[{budget, value, low, high, weights}]")
    document_count = models.PositiveIntegerField(default=0, help_text="unique documents in the manifest")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
