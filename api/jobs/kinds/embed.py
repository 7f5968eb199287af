"""``embed``: float16 embeddings and an exact FAISS part for every shard of a dataset."""
from __future__ import annotations

import re

from django.conf import settings
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from api.core.fields import StrictIntegerField
from api.jobs.kinds.base import JobKind, dataset_of, resolve_dataset
from curation.embedders import DEFAULT_EMBEDDER, parse_embedder_spec
from curation.plans import embed_plan
from curation.steps.embed import EmbedParams as EmbedStepParams


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


class EmbedderField(serializers.CharField):
    """An embedder name a tenant may use (checked by :func:`embedder_spec`)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "minilm, hashing, hashing:DIM or a name from the server's EXTRA_EMBEDDERS")
        super().__init__(default=DEFAULT_EMBEDDER, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        embedder_spec(value)
        return value


#: ``hashing:DIM`` with 8 <= DIM <= 4096 (leading zeros allowed, as ``int()`` reads them).
HASHING_DIM = r"0*([89]|[1-9][0-9]{1,2}|[1-3][0-9]{3}|40[0-8][0-9]|409[0-6])"


class EmbedderFieldSchema(OpenApiSerializerFieldExtension):
    """Documents :class:`EmbedderField` as the names :func:`embedder_spec` accepts, the server's
    ``EXTRA_EMBEDDERS`` included (read when the schema is generated)."""

    target_class = EmbedderField

    def map_serializer_field(self, auto_schema, direction):
        names = "|".join(re.escape(name) for name in ("minilm", *sorted(settings.EXTRA_EMBEDDERS)))
        return {"type": "string", "pattern": f"^({names}|hashing(:{HASHING_DIM})?)$", "default": DEFAULT_EMBEDDER}


class EmbedParams(serializers.Serializer):
    corpus = serializers.UUIDField(required=False)
    benchmark = serializers.UUIDField(required=False)
    embedder = EmbedderField()
    batch_size = StrictIntegerField(required=False, min_value=1, max_value=4096)


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

    def plan(self, *, tenant_id, params):
        dataset = dataset_of(tenant_id, params.get("corpus") or params["benchmark"])
        return embed_plan(EmbedStepParams((dataset,), embedder_spec(params["embedder"]), params.get("batch_size")))
