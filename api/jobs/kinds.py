"""Job kinds: how each kind validates its parameters, splits into shards and finishes.

A kind is a small object registered in :data:`KINDS`; the job services and the Celery
tasks are the same for every kind.
"""
from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from api.core.artifacts import artifact_store
from api.core.errors import ApplicationError
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_get
from api.jobs.models import Job, JobShard
from curation.embedders import DEFAULT_EMBEDDER, embedder_key, get_embedder, parse_embedder_spec
from curation.pipeline import embed_shard


class JobKind:
    name: str
    queue: str = "cpu"
    stage: str
    params_serializer: type[serializers.Serializer]

    def validate(self, *, tenant, params: dict) -> tuple[dict, int]:
        """Return ``(normalised params, number of shards)``; raise ValidationError."""
        raise NotImplementedError

    def run_shard(self, *, job: Job, index: int) -> dict:
        raise NotImplementedError

    def finalize(self, *, job: Job) -> dict:
        raise NotImplementedError


def _dataset_param(tenant, params: dict) -> Dataset:
    """Resolve exactly one of ``corpus`` / ``benchmark`` to the tenant's dataset."""
    given = [(kind, params[kind]) for kind in ("corpus", "benchmark") if params.get(kind)]
    if len(given) != 1:
        raise serializers.ValidationError({"corpus": "give exactly one of 'corpus' or 'benchmark' (a dataset id)"})
    kind, dataset_id = given[0]
    dataset = dataset_get(tenant=tenant, dataset_id=dataset_id, kind=kind)
    if dataset is None:
        raise ApplicationError("not_found", f"no {kind} with id {dataset_id}", detail={"field": f"params.{kind}"},
                               status_code=404)
    return dataset


def _embedder_spec(value: str) -> str:
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


class EmbedParams(serializers.Serializer):
    corpus = serializers.UUIDField(required=False)
    benchmark = serializers.UUIDField(required=False)
    embedder = serializers.CharField(default=DEFAULT_EMBEDDER, help_text="minilm, hashing, hashing:DIM or a "
                                     "name from the server's EXTRA_EMBEDDERS")
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=4096)

    def validate_embedder(self, value: str) -> str:
        _embedder_spec(value)
        return value


class EmbedKind(JobKind):
    """Embed every shard of a dataset and build one exact FAISS part per shard."""

    name = "embed"
    queue = "gpu"
    stage = "embedding"
    params_serializer = EmbedParams

    def validate(self, *, tenant, params):
        form = EmbedParams(data=params)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        dataset = _dataset_param(tenant, data)
        normalised = {dataset.kind: str(dataset.pk), "embedder": data["embedder"]}
        if data.get("batch_size"):
            normalised["batch_size"] = data["batch_size"]
        return normalised, dataset.shard_count

    @staticmethod
    def _dataset(job: Job) -> Dataset:
        dataset_id = job.params.get("corpus") or job.params.get("benchmark")
        return Dataset.objects.for_tenant(job.tenant_id).get(pk=dataset_id)

    def run_shard(self, *, job, index):
        dataset = self._dataset(job)
        embedder = get_embedder(_embedder_spec(job.params["embedder"]))
        key = embedder_key(embedder)
        store = artifact_store()
        return embed_shard(
            store.shard_path(job.tenant_id, dataset.pk, index),
            store.embedding_path(job.tenant_id, dataset.pk, key, index),
            store.index_part_path(job.tenant_id, dataset.pk, key, index),
            embedder,
            batch_size=job.params.get("batch_size"),
        )

    def finalize(self, *, job):
        dataset = self._dataset(job)
        embedder = get_embedder(_embedder_spec(job.params["embedder"]))
        outputs = list(JobShard.objects.for_tenant(job.tenant_id).filter(job=job).values_list("output", flat=True))
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


KINDS: dict[str, JobKind] = {kind.name: kind for kind in (EmbedKind(),)}
