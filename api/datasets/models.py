"""Corpora and benchmarks (one table, two kinds) and their immutable shards."""
from __future__ import annotations

import uuid

from django.db import models

from api.core.scope import TenantOwned


class Dataset(TenantOwned):
    class Kind(models.TextChoices):
        CORPUS = "corpus"
        BENCHMARK = "benchmark"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=200)
    filename = models.CharField(max_length=255)
    format = models.CharField(max_length=16)
    compressed = models.BooleanField(default=False)
    field_mapping = models.JSONField(default=dict)
    documents = models.BigIntegerField()
    text_bytes = models.BigIntegerField()
    tokens = models.BigIntegerField()
    stored_bytes = models.BigIntegerField()
    shard_count = models.PositiveIntegerField()
    source_counts = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "kind", "-created_at"])]

    @property
    def tokens_per_sample(self) -> float:
        """Tokens per document (0 for an empty dataset): what converts a budget in tokens to samples."""
        return self.tokens / max(self.documents, 1)

    def __str__(self) -> str:
        return f"{self.kind} {self.name}"


class Shard(TenantOwned):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="shards")
    index = models.PositiveIntegerField()
    documents = models.PositiveIntegerField()
    text_bytes = models.BigIntegerField()
    tokens = models.BigIntegerField()
    file_bytes = models.BigIntegerField()

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["dataset", "index"], name="unique_shard_index")]


class PredictionSet(TenantOwned):
    """Per-document model probabilities and labels uploaded for EL2N scoring."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="prediction_sets")
    name = models.CharField(max_length=200)
    filename = models.CharField(max_length=255)
    documents = models.PositiveIntegerField()
    classes = models.PositiveIntegerField()
    runs = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)


class Contamination(TenantOwned):
    """A corpus document that holds a benchmark example, as a job's contamination stage found it
    (DESIGN.md 3.7): one row per document, benchmark and kind."""

    class Kind(models.TextChoices):
        NGRAM = "ngram"
        SEMANTIC = "semantic"

    corpus = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="contamination")
    benchmark = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey("jobs.Job", on_delete=models.CASCADE, related_name="+")
    document_id = models.TextField()
    position = models.BigIntegerField(help_text="the document's position in the corpus")
    item_id = models.TextField(help_text="the benchmark example's id")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    span = models.TextField(null=True, blank=True, help_text="ngram: the matching normalised words")
    similarity = models.FloatField(null=True, blank=True, help_text="semantic: cosine similarity")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "corpus", "job", "benchmark"])]
