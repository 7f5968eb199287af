"""``embed``: float16 embeddings and an exact FAISS part for every shard of a dataset."""
from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from api.jobs.kinds.base import JobKind, Stage, dataset_of, resolve_dataset
from api.jobs.kinds.common import embedding_stage, run_embedding_unit
from api.jobs.models import JobUnit
from curation.embedders import DEFAULT_EMBEDDER, Embedder, embedder_key, get_embedder, parse_embedder_spec


def embedder_spec(value: str) -> str:
    """The embedder spec for a name a tenant may use (operator-configured models by name only)."""
    configured = settings.EXTRA_EMBEDDERS
    if value in configured:
        return f"st:{configured[value]}"
    try:
        kind, _ = parse_embedder_spec(value)
    except ValueError as exc:
        raise serializers.ValidationError(str(exc)) from None
    if kind == "st":
        raise serializers.ValidationError(
            f"local model paths are configured by the operator (EXTRA_EMBEDDERS); known: {sorted(configured)}"
        )
    return value


def job_embedder(job) -> Embedder:
    return get_embedder(embedder_spec(job.params["embedder"]))


class EmbedParams(serializers.Serializer):
    corpus = serializers.UUIDField(required=False)
    benchmark = serializers.UUIDField(required=False)
    embedder = serializers.CharField(default=DEFAULT_EMBEDDER, help_text="minilm, hashing, hashing:DIM or a "
                                     "name from the server's EXTRA_EMBEDDERS")
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=4096)

    def validate_embedder(self, value: str) -> str:
        embedder_spec(value)
        return value


class EmbedKind(JobKind):
    """Embed every shard (queue ``gpu``), then summarise (queue ``cpu``)."""

    name = "embed"
    params_serializer = EmbedParams

    def normalise(self, *, tenant, data):
        dataset = resolve_dataset(tenant, data)
        params = {dataset.kind: str(dataset.pk), "embedder": data["embedder"]}
        if data.get("batch_size"):
            params["batch_size"] = data["batch_size"]
        return params

    @staticmethod
    def dataset_id(params: dict) -> str:
        return params.get("corpus") or params["benchmark"]

    def plan(self, *, tenant, params):
        return [embedding_stage([dataset_of(tenant.pk, self.dataset_id(params))]), Stage("summary", 1)]

    def run_unit(self, *, job, stage, index):
        dataset = dataset_of(job.tenant_id, self.dataset_id(job.params))
        embedder = job_embedder(job)
        if stage == "embedding":
            return run_embedding_unit([dataset], index, embedder, job.params.get("batch_size"))
        outputs = list(JobUnit.objects.for_tenant(job.tenant_id).filter(job=job, stage="embedding")
                       .values_list("output", flat=True))
        computed = [o for o in outputs if not o["cached"]]
        seconds = sum(o["seconds"] for o in computed)
        documents = sum(o["documents"] for o in computed)
        return {
            "dataset": str(dataset.pk),
            "embedder": embedder.name,
            "embedder_version": embedder.version,
            "embedder_key": embedder_key(embedder),
            "dim": embedder.dim,
            "documents": dataset.documents,
            "shards": len(outputs),
            "shards_reused_from_cache": len(outputs) - len(computed),
            "embedding_seconds": round(seconds, 3),
            "documents_per_second": round(documents / seconds, 1) if seconds > 0 else None,
        }
