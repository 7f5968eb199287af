"""``ot``: optimal-transport distances from every corpus source to every benchmark.

The debiased Sinkhorn divergence between embedding sets, on seeded subsamples with a
bootstrap band (:func:`curation.ot.distance_table`; DESIGN.md 3.4).
"""
from __future__ import annotations

from rest_framework import serializers

from api.core.fields import SeedField, StrictFloatField, StrictIntegerField
from api.jobs.kinds.base import JobKind, corpus_and_benchmarks, resolve_dataset
from api.jobs.kinds.embed import EmbedderField, embedder_spec
from curation import plans
from curation.steps import model


class OTParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    embedder = EmbedderField()
    metric = serializers.ChoiceField(choices=["cosine", "sqeuclidean"], default="cosine")
    reg = StrictFloatField(default=0.05, min_value=1e-4, max_value=10.0,
                                 help_text="entropic regularisation, in cost units")
    sample_size = StrictIntegerField(default=500, min_value=10, max_value=5000,
                                           help_text="points drawn from each set per resample")
    n_resamples = StrictIntegerField(default=20, min_value=2, max_value=200)
    seed = SeedField()


class OTKind(JobKind):
    name = "ot"
    params_serializer = OTParams

    def normalise(self, *, tenant, data):
        corpus = resolve_dataset(tenant, {"corpus": data["corpus"]}, kinds=("corpus",))
        benchmarks = [resolve_dataset(tenant, {"benchmark": b}, kinds=("benchmark",)) for b in data["benchmarks"]]
        return {**data, "corpus": str(corpus.pk), "benchmarks": [str(b.pk) for b in benchmarks]}

    def plan(self, *, tenant_id, params):
        corpus, benchmarks = corpus_and_benchmarks(tenant_id, params)
        p = params
        return plans.ot_plan(model.OTParams(corpus, benchmarks, embedder_spec(p["embedder"]), p["metric"], p["reg"],
                                            p["sample_size"], p["n_resamples"], p["seed"]))
