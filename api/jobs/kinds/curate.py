"""``curate``: the whole pipeline as one job (DESIGN.md 1 and 3).

Stages: ``embedding`` (corpus and benchmarks; shards embedded before are reused) ->
``index`` (the corpus's FAISS store) -> ``contamination_scan`` (per shard) -> ``contamination``
(documents holding benchmark examples, left out of every pool; ``contamination: {"enabled":
false}`` skips both) -> ``prune`` (SemDeDup by default, or D4 /
prototypes) -> ``betr_train`` -> ``betr_classify`` (per shard) -> ``betr_select`` ->
``ot`` (distance of every pool to the benchmarks) -> ``pilots`` (the tenant's pilot runs of
``metric``, or the bigram proxy, or with ``pilot_model: tiny_lm`` one tiny LM trained per run
on the ``gpu`` queue) -> ``fit`` -> ``mixture``. Pools are source x
BETR-quality decile over the documents the prune stage kept (or sources, with
``quality_pools: false``). The budget decides prototypes' and D4's keep-hard or keep-easy and
BETR's share of tokens (``budget_policy`` in the result says how, :class:`curation.plans.CurateParams`).
The result is the mixture's, plus a summary of every stage.
"""
from __future__ import annotations

from rest_framework import serializers

from api.core.fields import StrictFloatField, StrictIntegerField
from api.jobs.kinds.base import corpus_and_benchmarks
from api.jobs.kinds.decontaminate import contamination_options, normalise_contamination
from api.jobs.kinds.embed import embedder_spec
from api.jobs.kinds.modeling import MixtureParams, RecordsModels, normalise_fit, pilot_params
from curation import plans
from curation.pruning import NEEDS_EMBEDDINGS


class CurateParams(MixtureParams):
    corpus = serializers.UUIDField()
    benchmarks = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=20)
    performance_model = None
    prune_method = serializers.ChoiceField(choices=sorted(NEEDS_EMBEDDINGS), default="semdedup")
    eps = StrictFloatField(default=0.01, min_value=0.0, max_value=0.5, help_text="SemDeDup / D4 threshold")
    prune_fraction = StrictFloatField(default=0.8, min_value=0.01, max_value=1.0,
                                            help_text="documents kept by d4 / prototypes")
    quality_pools = serializers.BooleanField(default=True, help_text="pools are source x BETR decile")
    sample_size = StrictIntegerField(default=200_000, min_value=20, max_value=5_000_000,
                                           help_text="documents BETR ranks against the benchmarks")
    keep = serializers.ChoiceField(choices=["auto", "hard", "easy"], default="auto", help_text=(
        "prototypes / d4: auto keeps the hard documents when the corpus has at least one unique document per "
        "document of budget (abundant), the easy ones otherwise (Sorscher et al. 2022)"))
    betr_keep_fraction = StrictFloatField(required=False, min_value=0.001, max_value=1.0, help_text=(
        "share of tokens BETR keeps; default from the budget: F_opt(C) = 4e-5 C^0.25 percent at the budget's "
        "compute (C = 0.3 D^2 for D budget tokens without flops or model_parameters), raised so that the budget "
        "sees the kept tokens at most 4 times"))


class CurateKind(RecordsModels):
    name = "curate"
    params_serializer = CurateParams

    def normalise(self, *, tenant, data):
        params = normalise_fit(tenant, {**data, "quality_pools": False})
        params["quality_pools"] = data["quality_pools"]
        return normalise_contamination(params)

    def plan(self, *, tenant_id, params):
        corpus, benchmarks = corpus_and_benchmarks(tenant_id, params)
        p = params
        return plans.curate_plan(plans.CurateParams(
            corpus, benchmarks, p["budget"], embedder_spec(p["embedder"]), budget_unit=p["budget_unit"],
            model_parameters=p.get("model_parameters"), frontier_points=p["frontier_points"], metric=p.get("metric"),
            prune_method=p["prune_method"], eps=p["eps"], prune_fraction=p["prune_fraction"],
            quality_pools=p["quality_pools"], sample_size=p["sample_size"], ot_sample_size=p["ot_sample_size"],
            seed=p["seed"], contamination=contamination_options(p), law=p.get("law"), keep=p["keep"],
            betr_keep_fraction=p.get("betr_keep_fraction"), dataset=p.get("dataset", True), **pilot_params(p)))
