from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, renderers, status
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response

from api.core.artifacts import tenant_storage
from api.core.errors import ApplicationError
from api.core.views import TenantScopedViewSet
from api.datasets import serializers, services
from api.core.pagination import CursorPagination
from api.datasets.selectors import dataset_contamination, dataset_score_jobs
from api.datasets.models import Dataset, PredictionSet
from api.jobs.kinds.embed import embedder_spec
from curation.ingest import FieldMapping
from curation.scores import iter_score_jsonl
from curation.storage import Keys


class ContaminationPagination(CursorPagination):
    """Matches in corpus order."""

    ordering = ("position", "id")


class NDJSONRenderer(renderers.BaseRenderer):
    """Streams pass through; errors on this endpoint still render as JSON."""

    media_type = "application/x-ndjson"
    format = "jsonl"
    charset = None

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return renderers.JSONRenderer().render(data)


class _DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    model = Dataset
    kind: str
    parser_classes = [MultiPartParser]  # a file: multipart/form-data only

    def scope_queryset(self, queryset):
        queryset = queryset.filter(kind=self.kind)
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("shards")
        return queryset

    def get_serializer_class(self):
        if self.action == "create":
            return serializers.DatasetUploadSerializer
        if self.action == "retrieve":
            return serializers.DatasetDetailSerializer
        return serializers.DatasetSerializer

    @extend_schema(request=serializers.DatasetUploadSerializer, responses={201: serializers.DatasetDetailSerializer})
    def create(self, request):
        form = serializers.DatasetUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        dataset = services.dataset_create(
            tenant=self.tenant,
            kind=self.kind,
            upload=data["file"],
            name=data.get("name", ""),
            mapping=FieldMapping(text_field=data["text_field"], id_field=data.get("id_field"),
                                 source_field=data.get("source_field")),
            declared_format=data.get("format"),
            shard_size=data.get("shard_size"),
        )
        return Response(serializers.DatasetDetailSerializer(dataset).data, status=status.HTTP_201_CREATED)

    def destroy(self, request, pk=None):
        services.dataset_delete(dataset=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


class CorpusViewSet(_DatasetViewSet):
    """Training corpora: upload, list, get, delete, and per-document scores."""

    kind = Dataset.Kind.CORPUS

    @extend_schema(methods=["post"], request=serializers.PredictionUploadSerializer,
                   responses={201: serializers.PredictionSetSerializer})
    @extend_schema(methods=["get"], responses={200: serializers.PredictionSetSerializer(many=True)})
    @action(detail=True, methods=["get", "post"])
    def predictions(self, request, pk=None):
        """Per-document probabilities and labels for EL2N: upload (POST) or list (GET)."""
        corpus = self.get_object()
        if request.method == "GET":
            sets = PredictionSet.objects.for_tenant(self.tenant).filter(dataset=corpus).order_by("-created_at")
            return Response(serializers.PredictionSetSerializer(sets, many=True).data)
        form = serializers.PredictionUploadSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        prediction_set = services.prediction_set_create(dataset=corpus, upload=form.validated_data["file"],
                                                        name=form.validated_data.get("name", ""))
        return Response(serializers.PredictionSetSerializer(prediction_set).data, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[serializers.ScoresQuerySerializer], responses={
        (200, "application/x-ndjson"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"], renderer_classes=[renderers.JSONRenderer, NDJSONRenderer])
    def scores(self, request, pk=None):
        """Stream one JSON line per document: ``{"id", "score", "kept", "reason", ...}``."""
        corpus = self.get_object()
        query = serializers.ScoresQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        metric = query.validated_data["metric"]
        job = dataset_score_jobs(dataset=corpus, job_id=query.validated_data.get("job")).get(metric)
        if job is None:
            raise ApplicationError("no_scores", f"no succeeded job has computed {metric!r} scores for this corpus; "
                                   "run a prune or betr job first", detail={"metric": metric}, status_code=404)
        store = tenant_storage(self.tenant.pk)
        names = [Keys.scores(job.pk, metric, i) for i in range(corpus.shard_count)]
        response = StreamingHttpResponse(iter_score_jsonl(store, names, kept=query.validated_data.get("kept")),
                                         content_type="application/x-ndjson")
        response["X-Scores-Job"] = str(job.pk)
        return response


    @extend_schema(request=serializers.SearchInputSerializer, responses={200: serializers.SearchSerializer})
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def search(self, request, pk=None):
        """The documents nearest a text or a benchmark's examples, through the corpus's FAISS store
        (synchronous), with the store's measured recall@10."""
        corpus = self.get_object()
        form = serializers.SearchInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        result = services.corpus_search(tenant=self.tenant, corpus=corpus, embedder=data["embedder"],
                               spec=embedder_spec(data["embedder"]), k=data["k"], text=data.get("text"),
                               benchmark_id=data.get("benchmark"))
        return Response(serializers.SearchSerializer(result).data)

    @extend_schema(parameters=[serializers.ContaminationQuerySerializer],
                   responses={200: serializers.ContaminationSerializer(many=True)})
    @action(detail=True, methods=["get"], pagination_class=ContaminationPagination)
    def contamination(self, request, pk=None):
        """Documents that hold a benchmark example (``decontaminate``, ``betr``, ``curate``, ``mixture``
        jobs): document id, benchmark example id, kind (``ngram`` with the matching span, ``semantic``
        with the similarity), in corpus order, paginated."""
        corpus = self.get_object()
        query = serializers.ContaminationQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        job, rows = dataset_contamination(dataset=corpus, job_id=query.validated_data.get("job"),
                                          benchmark_id=query.validated_data.get("benchmark"),
                                          kind=query.validated_data.get("kind"))
        if job is None:
            raise ApplicationError("no_contamination", "no job has decontaminated this corpus; run a decontaminate, "
                                   "betr, curate or mixture job first", status_code=404)
        page = self.paginate_queryset(rows)
        response = self.get_paginated_response(serializers.ContaminationSerializer(page, many=True).data)
        response["X-Contamination-Job"] = str(job.pk)
        return response


class BenchmarkViewSet(_DatasetViewSet):
    """Target benchmark examples: upload, list, get, delete."""

    kind = Dataset.Kind.BENCHMARK
