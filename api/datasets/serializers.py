from rest_framework import serializers

from api.datasets.models import Contamination, Dataset, PredictionSet, Shard
from curation.ingest import FORMATS


class DatasetUploadSerializer(serializers.Serializer):
    """Multipart form: the file plus optional field mapping."""

    file = serializers.FileField(allow_empty_file=True, help_text="JSONL, CSV, TSV or Parquet; optionally gzip.")
    name = serializers.CharField(required=False, max_length=200, allow_blank=True)
    format = serializers.ChoiceField(choices=FORMATS, required=False, help_text="Default: from the file name.")
    text_field = serializers.CharField(required=False, default="text", max_length=200)
    id_field = serializers.CharField(required=False, max_length=200,
                                     help_text="Default: 'id' when present, else generated ids.")
    source_field = serializers.CharField(required=False, max_length=200,
                                         help_text="Default: 'source' when present.")
    shard_size = serializers.IntegerField(required=False, min_value=1, max_value=200_000,
                                          help_text="Documents per shard (default from the server settings).")


class ShardSerializer(serializers.ModelSerializer):
    class Meta:
        model = Shard
        fields = ["index", "documents", "text_bytes", "tokens", "file_bytes"]


class DatasetSerializer(serializers.ModelSerializer):
    sources = serializers.JSONField(source="source_counts", help_text="Documents per source ('' = no source).")
    field_mapping = serializers.JSONField(read_only=True, help_text=(
        "The fields the documents were read from: text_field, id_field (null: ids were generated), source_field "
        "(null: no source), and defaulted, the fields whose name came from the defaults (id, source)."))

    class Meta:
        model = Dataset
        fields = ["id", "kind", "name", "filename", "format", "compressed", "field_mapping", "documents",
                  "text_bytes", "tokens", "stored_bytes", "shard_count", "sources", "created_at"]


class DatasetDetailSerializer(DatasetSerializer):
    shards = ShardSerializer(many=True, read_only=True)

    class Meta(DatasetSerializer.Meta):
        fields = DatasetSerializer.Meta.fields + ["shards"]


class ScoresQuerySerializer(serializers.Serializer):
    metric = serializers.CharField(help_text="e.g. prototypes, semdedup, d4, el2n, betr")
    job = serializers.UUIDField(required=False, help_text="read this job's scores (default: the newest)")
    kept = serializers.BooleanField(required=False, allow_null=True, default=None,
                                    help_text="only kept (true) or only dropped (false) documents")


class PredictionUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, help_text='JSON lines {"id", "label", "probs"}; see the '
                                 "EL2N section of the README.")
    name = serializers.CharField(required=False, max_length=200, allow_blank=True)


class PredictionSetSerializer(serializers.ModelSerializer):
    class Meta:
        model = PredictionSet
        fields = ["id", "name", "filename", "documents", "classes", "runs", "created_at"]


class ContaminationQuerySerializer(serializers.Serializer):
    benchmark = serializers.UUIDField(required=False, help_text="only matches of this benchmark")
    kind = serializers.ChoiceField(choices=["ngram", "semantic"], required=False)
    job = serializers.UUIDField(required=False, help_text="read this job's matches (default: the newest job that "
                                "decontaminated the corpus)")


class ContaminationSerializer(serializers.ModelSerializer):
    document = serializers.CharField(source="document_id", help_text="the corpus document's id")
    item = serializers.CharField(source="item_id", help_text="the benchmark example's id")
    benchmark = serializers.UUIDField(source="benchmark_id")
    job = serializers.UUIDField(source="job_id")

    class Meta:
        model = Contamination
        fields = ["document", "position", "benchmark", "item", "kind", "span", "similarity", "job"]
