from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from api.core.views import TenantScopedViewSet
from api.datasets import serializers, services
from api.datasets.models import Dataset
from curation.ingest import FieldMapping


class _DatasetViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    model = Dataset
    kind: str
    parser_classes = [MultiPartParser, FormParser]

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
    """Training corpora: upload, list, get, delete."""

    kind = Dataset.Kind.CORPUS


class BenchmarkViewSet(_DatasetViewSet):
    """Target benchmark examples: upload, list, get, delete."""

    kind = Dataset.Kind.BENCHMARK
