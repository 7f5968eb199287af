"""``decontaminate``: the corpus documents that hold benchmark examples (DESIGN.md 3.7).

Exact n-gram overlap (normalised words, 13-grams by default) and semantic near-duplicates
(cosine >= 0.9 by default, through the corpus's FAISS store when an ``index`` job built one)
between every corpus document and every benchmark example; the rows are stored
(:class:`api.datasets.models.Contamination`, ``GET /corpora/{id}/contamination/``) and counted
per benchmark. The same stages run first, by default, in ``betr``, ``curate`` and ``mixture``
(``contamination: {"enabled": false}`` turns them off), which then leave those documents out
of every selection and manifest. The steps are :mod:`curation.steps.decontaminate`.
"""
from __future__ import annotations

from rest_framework import serializers

from api.core.fields import StrictFloatField, StrictIntegerField
from api.jobs.kinds.base import JobKind, corpus_and_benchmarks, resolve_dataset
from api.jobs.kinds.embed import EmbedderField, embedder_spec
from curation import plans
from curation.decontamination import MIN_WORDS, NGRAM, SEMANTIC
from curation.steps.decontaminate import ContaminationOptions, DecontaminateParams as StepParams


class ContaminationParams(serializers.Serializer):
    enabled = serializers.BooleanField(default=True)
    ngram = StrictIntegerField(default=NGRAM, min_value=MIN_WORDS, max_value=50,
                               help_text="words per n-gram (examples shorter than this: all their words)")
    semantic = StrictFloatField(default=SEMANTIC, min_value=0.5, max_value=1.0, allow_null=True,
                                help_text="cosine at or above which a document is a near-duplicate; null: no "
                                          "semantic pass")


def ContaminationField() -> ContaminationParams:  # noqa: N802 - reads as a field class at its call sites
    """The ``contamination`` param of the kinds that decontaminate (all defaults when absent)."""
    return ContaminationParams(required=False, help_text="decontamination against the benchmarks "
                               f"(default {{'enabled': true, 'ngram': {NGRAM}, 'semantic': {SEMANTIC}}})")


def contamination_options(params: dict) -> ContaminationOptions:
    """The options a normalised job's params name (defaults for jobs stored before they existed)."""
    return ContaminationOptions.from_dict(params.get("contamination"))


def normalise_contamination(data: dict) -> dict:
    """``data`` with its ``contamination`` param complete (every default filled in)."""
    given = data.get("contamination") or {}
    return {**data, "contamination": {**ContaminationOptions().as_dict(), **given}}


class DecontaminateParams(serializers.Serializer):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    embedder = EmbedderField()
    contamination = ContaminationField()


class DecontaminateKind(JobKind):
    """Embed (for the semantic pass), scan every shard, then the store's pass and the rows."""

    name = "decontaminate"
    params_serializer = DecontaminateParams

    def normalise(self, *, tenant, data):
        corpus = resolve_dataset(tenant, {"corpus": data["corpus"]}, kinds=("corpus",))
        benchmarks = [resolve_dataset(tenant, {"benchmark": b}, kinds=("benchmark",)) for b in data["benchmarks"]]
        return normalise_contamination({**data, "corpus": str(corpus.pk), "benchmarks": [str(b.pk) for b in benchmarks]})

    def plan(self, *, tenant_id, params):
        corpus, benchmarks = corpus_and_benchmarks(tenant_id, params)
        options = contamination_options(params)
        return plans.decontaminate_plan(StepParams(corpus, benchmarks, embedder_spec(params["embedder"]),
                                                   ContaminationOptions(options.ngram, options.semantic, True)))

