from rest_framework import serializers

from api.datasets.models import Contamination, Dataset, PredictionSet, Shard
from api.jobs.kinds.embed import EmbedderField
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


class SearchInputSerializer(serializers.Serializer):
    text = serializers.CharField(required=False, max_length=20_000, help_text="find the documents nearest this text")
    benchmark = serializers.UUIDField(required=False, help_text=(
        "find the documents nearest any example of this benchmark (a document scores its best cosine)"))
    k = serializers.IntegerField(default=10, min_value=1, max_value=1000)
    embedder = EmbedderField(help_text="the embedder of the corpus's store: minilm, hashing, hashing:DIM or a "
                             "name from the server's EXTRA_EMBEDDERS")

    def validate(self, data):
        if ("text" in data) == ("benchmark" in data):
            raise serializers.ValidationError({"text": "give a text or a benchmark, not both"})
        return data


class SearchIndexSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["flat", "ivf_sq8", "hnsw"])
    n = serializers.IntegerField()
    recall_at_10 = serializers.FloatField(help_text="measured against exact search when the store was built")
    params = serializers.DictField(help_text="nlist, nprobe (IVF), M, ef_search (HNSW)")


class SearchHitSerializer(serializers.Serializer):
    id = serializers.CharField()
    source = serializers.CharField(allow_null=True)
    score = serializers.FloatField(help_text="cosine similarity")
    position = serializers.IntegerField(help_text="the document's position in the corpus")
    text = serializers.CharField(help_text="the first 500 characters")


class SearchSerializer(serializers.Serializer):
    corpus = serializers.UUIDField()
    embedder = serializers.CharField()
    query = serializers.DictField(help_text="{text} or {benchmark, examples}")
    index = SearchIndexSerializer()
    results = SearchHitSerializer(many=True)


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
