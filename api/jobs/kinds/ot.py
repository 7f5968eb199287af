"""``ot``: optimal-transport distances from every corpus source to every benchmark.

The debiased Sinkhorn divergence between embedding sets, on seeded subsamples with a
bootstrap band (:func:`curation.ot.distance_table`; DESIGN.md 3.4).
"""
from __future__ import annotations

import numpy as np
from rest_framework import serializers

from api.datasets.models import Dataset
from api.jobs.kinds.base import JobKind, Stage, dataset_of, resolve_dataset
from api.jobs.kinds.common import (dataset_column, dataset_embeddings, dataset_rows, embedding_stage,
                                   run_embedding_unit)
from api.jobs.kinds.embed import embedder_spec, job_embedder
from curation.embedders import DEFAULT_EMBEDDER, embedder_key
from curation.ot import distance_table
from curation.pools import source_name


class OTParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    embedder = serializers.CharField(default=DEFAULT_EMBEDDER)
    metric = serializers.ChoiceField(choices=["cosine", "sqeuclidean"], default="cosine")
    reg = serializers.FloatField(default=0.05, min_value=1e-4, max_value=10.0,
                                 help_text="entropic regularisation, in cost units")
    sample_size = serializers.IntegerField(default=500, min_value=10, max_value=5000,
                                           help_text="points drawn from each set per resample")
    n_resamples = serializers.IntegerField(default=20, min_value=2, max_value=200)
    seed = serializers.IntegerField(default=0, min_value=0)

    def validate_embedder(self, value: str) -> str:
        embedder_spec(value)
        return value


class OTKind(JobKind):
    name = "ot"
    params_serializer = OTParams

    def normalise(self, *, tenant, data):
        corpus = resolve_dataset(tenant, {"corpus": data["corpus"]}, kinds=("corpus",))
        benchmarks = [resolve_dataset(tenant, {"benchmark": b}, kinds=("benchmark",)) for b in data["benchmarks"]]
        return {**data, "corpus": str(corpus.pk), "benchmarks": [str(b.pk) for b in benchmarks]}

    @staticmethod
    def _datasets(tenant_id, params) -> list[Dataset]:
        return [dataset_of(tenant_id, params["corpus"])] + [dataset_of(tenant_id, b) for b in params["benchmarks"]]

    def plan(self, *, tenant, params):
        return [embedding_stage(self._datasets(tenant.pk, params)), Stage("distances", 1)]

    def run_unit(self, *, job, stage, index):
        datasets = self._datasets(job.tenant_id, job.params)
        embedder = job_embedder(job)
        if stage == "embedding":
            return run_embedding_unit(datasets, index, embedder)
        corpus, benchmarks = datasets[0], datasets[1:]
        sources = np.array([source_name(s) for s in dataset_column(corpus, "source")])
        by_source = {name: dataset_rows(corpus, embedder, np.flatnonzero(sources == name))
                     for name in sorted(set(sources))}  # only the sampled rows are read
        targets = {b.name: dataset_embeddings(b, embedder) for b in benchmarks}
        p = job.params
        table = distance_table(by_source, targets, seed=p["seed"], metric=p["metric"], reg=p["reg"],
                               sample_size=p["sample_size"], n_resamples=p["n_resamples"])
        distances = {
            source: {target: {"value": float(table.value[i, j]), "low": float(table.low[i, j]),
                              "high": float(table.high[i, j])}
                     for j, target in enumerate(table.targets)}
            for i, source in enumerate(table.sources)
        }
        closest = {target: table.sources[int(np.argmin(table.value[:, j]))] for j, target in enumerate(table.targets)}
        return {"embedder_key": embedder_key(embedder), "metric": p["metric"], "reg": p["reg"],
                "benchmarks": {b.name: str(b.pk) for b in benchmarks},
                "source_documents": {name: int(len(v)) for name, v in by_source.items()},
                "distances": distances, "closest_source": closest}
