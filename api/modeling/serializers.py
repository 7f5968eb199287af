from rest_framework import serializers

from api.core.fields import MAX_MODEL_PARAMETERS, BudgetField, MixtureField, StrictFloatField, check_budget
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
                  "fit_error", "provenance", "observations", "created_at"]


class MixtureSerializer(serializers.ModelSerializer):
    class Meta:
        model = Mixture
        fields = ["id", "corpus", "job", "performance_model", "budget", "budget_unit", "weights", "pools",
                  "predicted", "frontier", "document_count", "created_at"]


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


class PredictionSerializer(serializers.Serializer):
    performance_model = serializers.UUIDField()
    metric = serializers.CharField()
    higher_is_better = serializers.BooleanField()
    value = serializers.FloatField()
    low = serializers.FloatField()
    high = serializers.FloatField()
    level = serializers.FloatField()
    extrapolated = serializers.BooleanField()
    outside_doublings = serializers.FloatField()
    budget_samples = serializers.FloatField()
    repetitions = serializers.DictField(child=serializers.FloatField())
    provenance = serializers.DictField(child=serializers.CharField())
