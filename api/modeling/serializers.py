from rest_framework import serializers

from api.core.fields import (MAX_MODEL_PARAMETERS, BudgetField, MixtureField, SeedField, StrictFloatField,
                             StrictIntegerField, check_budget)
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from curation.laws import MAX_BUDGET

#: A metric's magnitude: losses, perplexities and accuracies are far inside it, and a fit of
#: larger values would overflow its squared errors.
MAX_METRIC = 1e12


class PilotRunInputSerializer(serializers.Serializer):
    corpus = serializers.UUIDField()
    mixture = MixtureField(help_text="{pool: weight}; pools are sources or source/q0..q9 (quality deciles, "
                           "q0 best); weights sum to 1")
    size = StrictFloatField(min_value=0.0, exclusive_min=True, max_value=MAX_BUDGET["tokens"],
                            help_text="samples (or tokens) seen in training; > 0, at most 1e15")
    metric = serializers.CharField(max_length=100)
    value = StrictFloatField(min_value=-MAX_METRIC, max_value=MAX_METRIC, help_text="|value| <= 1e12")
    higher_is_better = serializers.BooleanField(default=True)


class PilotRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = PilotRun
        fields = ["id", "corpus", "mixture", "size", "metric", "value", "higher_is_better", "origin", "created_at"]


class PerformanceModelSerializer(serializers.ModelSerializer):
    class Meta:
        model = PerformanceModel
        fields = ["id", "corpus", "benchmarks", "job", "metric", "higher_is_better", "kind", "parameters", "pools",
                  "fit_error", "provenance", "observations", "backtest", "created_at"]


class MixtureSerializer(serializers.ModelSerializer):
    class Meta:
        model = Mixture
        fields = ["id", "corpus", "job", "performance_model", "budget", "budget_unit", "weights", "pools",
                  "predicted", "frontier", "document_count", "created_at"]


class DatasetShardSerializer(serializers.Serializer):
    name = serializers.CharField()
    rows = serializers.IntegerField()
    url = serializers.CharField(help_text="GET it for the Parquet file")


class TrainingDatasetSerializer(serializers.Serializer):
    """A mixture's training-ready dataset (``dataset.json``, :mod:`curation.dataset`), with its shards' URLs."""

    mixture = serializers.UUIDField()
    corpus = serializers.CharField()
    weights = serializers.DictField(child=serializers.FloatField())
    budget = serializers.FloatField()
    budget_unit = serializers.CharField()
    budget_samples = serializers.FloatField()
    rows = serializers.IntegerField(help_text="samples: one row per document shown, repeats expanded")
    unique_documents = serializers.IntegerField()
    seed = serializers.IntegerField(help_text="the shuffle's seed (the mixture job's)")
    rows_per_shard = serializers.IntegerField()
    columns = serializers.ListField(child=serializers.CharField())
    shuffle = serializers.CharField()
    performance_model = serializers.UUIDField(allow_null=True)
    predicted = serializers.DictField(help_text="the mixture's prediction, as on the mixture")
    contamination = serializers.DictField(allow_null=True, help_text=(
        "{contaminated_documents, per_benchmark: {benchmark id: documents}} left out of the selection; null "
        "when the run did not decontaminate"))
    shards = DatasetShardSerializer(many=True)


class ManifestQuerySerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=["jsonl", "parquet"], default="jsonl", required=False)


class PredictionInputSerializer(serializers.Serializer):
    performance_model = serializers.UUIDField()
    mixture = MixtureField(help_text="{pool: weight}, weights sum to 1")
    budget = BudgetField(help_text="in budget_unit; > 0, at most 1e15 samples or tokens, 1e30 flops")
    budget_unit = serializers.ChoiceField(choices=["samples", "tokens", "flops"], default="samples")
    model_parameters = StrictFloatField(required=False, min_value=1.0, max_value=MAX_MODEL_PARAMETERS,
                                        help_text="model size, for a budget in flops")
    level = StrictFloatField(default=0.95, min_value=0.5, max_value=0.999)

    def validate(self, data):
        check_budget(data)
        return data


class CoverageSerializer(serializers.Serializer):
    level = serializers.FloatField(help_text="the band level whose coverage was measured")
    covered = serializers.FloatField(allow_null=True, help_text="share of held-out pilots inside that band")
    points = serializers.IntegerField(help_text="held-out pilots it was measured on")


class BacktestSummarySerializer(serializers.Serializer):
    law = serializers.CharField(help_text="the law's kind")
    selected_by = serializers.ChoiceField(choices=["both", "size", "mixtures", "fit_error", "requested", "only"],
                                          help_text="how it was chosen: the lowest worse held-out error over "
                                          "the largest pilot size and unseen mixtures (both), or the one split "
                                          "that could be made; lowest fit error; asked for; the only one that "
                                          "fits")
    size_rmse = serializers.FloatField(allow_null=True, help_text="RMS error predicting the largest pilot size "
                                       "from the smaller ones (metric units); null with one size")
    mixtures_rmse = serializers.FloatField(allow_null=True, help_text="RMS error on unseen mixtures at seen "
                                           "sizes (5-fold); null with one mixture")
    coverage = CoverageSerializer()


class PilotDesignInputSerializer(serializers.Serializer):
    corpus = serializers.UUIDField(required=False, help_text="design the first pilot runs over this corpus's "
                                   "source pools")
    performance_model = serializers.UUIDField(required=False, help_text=(
        "after a fit: the runs to add to this model's pilots (its optimum and space-filling mixtures at twice "
        "its largest pilot size unless sizes are given)"))
    runs = StrictIntegerField(required=False, min_value=1, max_value=500, help_text=(
        "pilot runs to propose (default 16 over a corpus, at least one more than sizes; 8 after a fit)"))
    sizes = serializers.ListField(child=StrictFloatField(min_value=1.0, max_value=MAX_BUDGET["samples"]),
                                  min_length=1, max_length=5, required=False, help_text=(
                                      "training sizes in samples (each >= 1). Over a corpus: 2 to 5, default 0.1, "
                                      "0.4 and 1.6 times its documents; after a fit: 1 to 5, default twice the "
                                      "largest pilot size"))
    seed = SeedField()

    def validate(self, data):
        if ("corpus" in data) == ("performance_model" in data):
            raise serializers.ValidationError({"corpus": "give a corpus (a first design) or a performance_model "
                                                         "(the next runs after a fit), not both"})
        if "performance_model" in data:
            data.setdefault("runs", 8)
            return data
        if "sizes" in data and len(set(data["sizes"])) < 2:
            raise serializers.ValidationError({"sizes": "give at least two different sizes"})
        data.setdefault("runs", 16)
        if data["runs"] < len(data.get("sizes") or (0, 0, 0)) + 1:
            raise serializers.ValidationError({"runs": "at least one more run than sizes"})
        return data


class PilotDesignRunSerializer(serializers.Serializer):
    mixture = serializers.DictField(child=serializers.FloatField(min_value=0.0, max_value=1.0))
    size = serializers.FloatField(help_text="samples to train on")
    tokens = serializers.FloatField(help_text="size x the corpus's tokens per sample")
    purpose = serializers.ChoiceField(choices=["natural", "single_pool", "space_filling", "optimum"], help_text=(
        "natural: the corpus's own proportions at every size; single_pool: one pool alone at the largest size "
        "(repeated: identifies the half-life and the pool's worth); space_filling: mixtures spread over the "
        "simplex (what the unseen-mixture backtest needs); optimum (after a fit): the model's best mixture at "
        "that size, the run that checks its recommendation"))
    repetitions = serializers.FloatField(help_text="the most any pool is shown per document")
    predicted = serializers.FloatField(required=False, help_text="after a fit: the model's prediction for the run")
    band = serializers.FloatField(required=False, help_text="after a fit: the half-width of its 95% band")
    disagreement = serializers.FloatField(required=False, help_text=(
        "after a fit: the standard deviation of the predictions of every law fitted to the same pilots"))


class PilotDesignSerializer(serializers.Serializer):
    corpus = serializers.UUIDField()
    performance_model = serializers.UUIDField(allow_null=True, help_text="the model whose next runs these are; "
                                              "null for a first design")
    pools = serializers.DictField(child=serializers.IntegerField(), help_text="{pool: documents}")
    tokens_per_sample = serializers.FloatField()
    runs = PilotDesignRunSerializer(many=True)
    next_step = serializers.CharField(help_text="what to do with the runs")


class PredictionSerializer(serializers.Serializer):
    performance_model = serializers.UUIDField()
    metric = serializers.CharField()
    unit = serializers.CharField(allow_null=True, help_text="e.g. nats per token for proxy_cross_entropy; null "
                                 "for a pilot-run metric (the user's own)")
    higher_is_better = serializers.BooleanField()
    law = serializers.CharField(help_text="the performance law's kind")
    value = serializers.FloatField()
    low = serializers.FloatField()
    high = serializers.FloatField()
    level = serializers.FloatField(help_text="the probability the band [low, high] is drawn for")
    extrapolated = serializers.BooleanField(help_text="the budget or a pool's repetitions lie outside what the "
                                            "observations covered; the band is widened")
    outside_doublings = serializers.FloatField(help_text="doublings beyond the observed sizes or repetitions")
    clamped = serializers.BooleanField(help_text="the law's value left the metric's possible range and was "
                                       "put back at its edge")
    budget_samples = serializers.FloatField()
    repetitions = serializers.DictField(child=serializers.FloatField())
    provenance = serializers.DictField(child=serializers.CharField(), help_text="{parameter: pilot_runs | tiny_lm | proxy "
                                       "| defaults}; a default is a parameter the observations cannot identify")
    at_bound = serializers.DictField(child=serializers.CharField(), help_text="{parameter: what happened} for "
                                     "fitted parameters that ended on a bound")
    backtest = BacktestSummarySerializer(allow_null=True)
