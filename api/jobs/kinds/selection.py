"""``prune``, ``betr`` and ``index``: per-document selection scores and the corpus's vector store.

``prune`` scores every document with one method of :data:`curation.pruning.METHODS`
(DESIGN.md 3.2); ``betr`` (DESIGN.md 3.3) ranks a document sample against every
benchmark example, trains a fastText classifier on the top 10% against the rest, scores
every shard with it and keeps the best share of tokens, all without the documents its
decontamination stages find (:mod:`api.jobs.kinds.decontaminate`); ``index`` builds the corpus's
FAISS store. The steps are :mod:`curation.steps.select`.
"""
from __future__ import annotations

from rest_framework import serializers

from api.core.errors import ApplicationError, validation_error
from api.core.fields import SeedField, StrictFloatField, StrictIntegerField
from api.datasets.models import PredictionSet
from api.jobs.kinds.base import JobKind, corpus_and_benchmarks, dataset_of, resolve_dataset
from api.jobs.kinds.decontaminate import ContaminationField, contamination_options, normalise_contamination
from api.jobs.kinds.embed import EmbedderField, embedder_spec
from curation import plans, pruning
from curation.laws import MAX_BUDGET
from curation.steps import select


class PruneParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    method = serializers.ChoiceField(choices=sorted(pruning.METHODS), default="prototypes")
    embedder = EmbedderField()
    fraction = StrictFloatField(required=False, min_value=1e-4, max_value=1.0,
                                      help_text="share of documents to keep (prototypes, d4, el2n); default 0.7")
    budget_documents = StrictFloatField(required=False, min_value=1.0, max_value=MAX_BUDGET["samples"], help_text="training budget in "
                                              "documents: decides keep-hard (abundant data) or keep-easy (scarce)")
    keep = serializers.ChoiceField(choices=["auto", "hard", "easy"], default="auto")
    k = StrictIntegerField(required=False, min_value=2, max_value=100_000, help_text="prototypes (clusters)")
    eps = StrictFloatField(default=0.01, min_value=0.0, max_value=0.5, help_text="SemDeDup: cos >= 1 - eps "
                                 "is a duplicate")
    floor = StrictFloatField(default=0.5, min_value=0.0, max_value=1.0, help_text="per-cluster balance floor")
    predictions = serializers.UUIDField(required=False, help_text="an uploaded prediction set (el2n)")
    seed = SeedField()


class BetrParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    embedder = EmbedderField()
    sample_size = StrictIntegerField(default=200_000, min_value=20, max_value=5_000_000,
                                           help_text="documents ranked against the benchmarks (all, up to this)")
    top_fraction = StrictFloatField(default=0.1, min_value=0.01, max_value=0.5)
    keep_fraction = StrictFloatField(required=False, min_value=1e-4, max_value=1.0,
                                           help_text="share of tokens to keep")
    flops = StrictFloatField(required=False, min_value=1.0, max_value=MAX_BUDGET["flops"], help_text="training FLOPs: keep "
                                   "F_opt(C) = 4e-5 C^0.25 percent of tokens (default 0.1 of tokens without either)")
    equal_per_benchmark = serializers.BooleanField(default=False)
    seed = SeedField()
    contamination = ContaminationField()

    def validate(self, data):
        if data.get("keep_fraction") and data.get("flops"):
            raise serializers.ValidationError({"keep_fraction": "give keep_fraction or flops, not both"})
        return data


class IndexParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    embedder = EmbedderField()
    index = serializers.ChoiceField(choices=["auto", "flat", "ivf_sq8", "hnsw"], default="auto")
    target_recall = StrictFloatField(default=0.95, min_value=0.5, max_value=1.0)
    seed = SeedField()


def corpus_id(tenant, data) -> str:
    return str(resolve_dataset(tenant, {"corpus": data["corpus"]}, kinds=("corpus",)).pk)


def prune_options(params: dict) -> pruning.PruneOptions:
    return pruning.PruneOptions(fraction=params.get("fraction") or 0.7, budget_documents=params.get("budget_documents"),
                                keep=params["keep"], eps=params["eps"], k=params.get("k"), floor=params["floor"],
                                seed=params["seed"])


class PruneKind(JobKind):
    """Embed every shard (unless the method scores uploaded predictions), then score and select (one unit)."""

    name = "prune"
    params_serializer = PruneParams

    def normalise(self, *, tenant, data):
        params = {**data, "corpus": corpus_id(tenant, data)}
        if data["method"] == "el2n":
            if not data.get("predictions"):
                raise validation_error({"predictions": "el2n needs an uploaded prediction set "
                                                                  "(POST /api/v1/corpora/{id}/predictions/)"})
            found = PredictionSet.objects.for_tenant(tenant).filter(pk=data["predictions"],
                                                                    dataset_id=params["corpus"]).exists()
            if not found:
                raise ApplicationError("not_found", f"no prediction set {data['predictions']} on this corpus",
                                       detail={"field": "params.predictions"}, status_code=404)
            params["predictions"] = str(data["predictions"])
        return params

    def plan(self, *, tenant_id, params):
        return plans.prune_plan(select.PruneParams(dataset_of(tenant_id, params["corpus"]), params["method"],
                                                   embedder_spec(params["embedder"]), prune_options(params),
                                                   params.get("predictions")))


class BetrKind(JobKind):
    """Embed corpus and benchmarks; rank a sample and train the classifier; score every shard; select tokens."""

    name = "betr"
    params_serializer = BetrParams

    def normalise(self, *, tenant, data):
        benchmarks = [resolve_dataset(tenant, {"benchmark": b}, kinds=("benchmark",)) for b in data["benchmarks"]]
        return normalise_contamination({**data, "corpus": corpus_id(tenant, data),
                                        "benchmarks": [str(b.pk) for b in benchmarks]})

    def plan(self, *, tenant_id, params):
        corpus, benchmarks = corpus_and_benchmarks(tenant_id, params)
        return plans.betr_plan(select.BetrParams(
            corpus, benchmarks, embedder_spec(params["embedder"]), sample_size=params["sample_size"],
            top_fraction=params["top_fraction"], keep_fraction=params.get("keep_fraction"),
            flops=params.get("flops"), equal_per_benchmark=params["equal_per_benchmark"], seed=params["seed"]),
            contamination_options(params))


class IndexKind(JobKind):
    """Embed every shard, then build the corpus's FAISS store (exact or IVF/HNSW by size, recall measured)."""

    name = "index"
    params_serializer = IndexParams

    def normalise(self, *, tenant, data):
        return {**data, "corpus": corpus_id(tenant, data)}

    def plan(self, *, tenant_id, params):
        return plans.index_plan(select.IndexParams(dataset_of(tenant_id, params["corpus"]),
                                                   embedder_spec(params["embedder"]), params["index"],
                                                   params["target_recall"], params["seed"]))
