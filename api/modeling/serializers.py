import math

from rest_framework import serializers

from api.modeling.models import Mixture, PerformanceModel, PilotRun


class PilotRunInputSerializer(serializers.Serializer):
    corpus = serializers.UUIDField()
    mixture = serializers.DictField(child=serializers.JSONField(), help_text="{pool: weight}; pools are sources "
                                    "or source/q0..q9 (quality deciles, q0 best); weights sum to 1")
    size = serializers.FloatField(help_text="samples (or tokens) seen in training; > 0")
    metric = serializers.CharField(max_length=100)
    value = serializers.FloatField()
    higher_is_better = serializers.BooleanField(default=True)

    def validate_size(self, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise serializers.ValidationError(f"size must be a finite number > 0; got {value}")
        return value

    def validate_value(self, value: float) -> float:
        if not math.isfinite(value):
            raise serializers.ValidationError(f"value must be finite; got {value}")
        return value


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
    mixture = serializers.DictField(child=serializers.JSONField(), help_text="{pool: weight}, weights sum to 1")
    budget = serializers.FloatField(help_text="in budget_unit; > 0")
    budget_unit = serializers.ChoiceField(choices=["samples", "tokens", "flops"], default="samples")
    model_parameters = serializers.FloatField(required=False, help_text="model size, for a budget in flops")
    level = serializers.FloatField(default=0.95, min_value=0.5, max_value=0.999)

    def validate_budget(self, value: float) -> float:
        if not math.isfinite(value) or value <= 0:
            raise serializers.ValidationError(f"budget must be a finite number > 0; got {value}")
        return value


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
