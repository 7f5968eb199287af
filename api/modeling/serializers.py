import math

from rest_framework import serializers

from api.modeling.models import PilotRun


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
