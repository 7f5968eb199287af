import json

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from api.core.artifacts import tenant_storage
from api.core.errors import ApplicationError
from api.core.views import TenantScopedViewSet
from api.modeling import services
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from api.modeling.serializers import (
    ManifestQuerySerializer,
    MixtureSerializer,
    PerformanceModelSerializer,
    PilotDesignInputSerializer,
    PilotDesignSerializer,
    PilotRunInputSerializer,
    PilotRunSerializer,
    PredictionInputSerializer,
    PredictionSerializer,
    TrainingDatasetSerializer,
)
from curation.manifest import iter_manifest_jsonl
from curation.storage import Keys


class PilotRunViewSet(mixins.ListModelMixin, TenantScopedViewSet):
    """Observed (mixture, size, metric) triples used to fit performance models.

    POST one object or a list of them (all stored or none). Filter the list with
    ``?corpus=<id>`` and ``?metric=<name>``.
    """

    model = PilotRun
    serializer_class = PilotRunSerializer

    query_filters = ("corpus", "metric")

    @extend_schema(request=PilotRunInputSerializer(many=True), responses={201: PilotRunSerializer(many=True)})
    def create(self, request):
        items = request.data if isinstance(request.data, list) else [request.data]
        form = PilotRunInputSerializer(data=items, many=True)
        if not form.is_valid():
            errors = form.errors
            pairs = errors.items() if isinstance(errors, dict) else enumerate(errors)
            errors = {f"item {i}": e for i, e in pairs if e}
            raise ValidationError(errors)
        runs = services.pilot_runs_create(tenant=self.tenant, observations=form.validated_data)
        return Response(PilotRunSerializer(runs, many=True).data, status=status.HTTP_201_CREATED)


class PerformanceModelViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Fitted performance models: parameters, fit error, provenance and the observations fitted.

    Filter with ``?corpus=<id>`` and ``?metric=<name>``.
    """

    model = PerformanceModel
    serializer_class = PerformanceModelSerializer
    query_filters = ("corpus", "metric")


class MixtureViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Mixtures computed by ``mixture`` and ``curate`` jobs; ``documents/`` streams the manifest."""

    model = Mixture
    serializer_class = MixtureSerializer
    query_filters = ("corpus", "job")

    @extend_schema(parameters=[ManifestQuerySerializer], responses={
        (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR, description="The manifest: JSON lines "
                                                        "by default, a Parquet file with format=parquet"),
        (200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def documents(self, request, pk=None):
        """The manifest: one row per selected document ``{"id", "pool", "repeats"}``, as JSONL or Parquet."""
        mixture = self.get_object()
        query = ManifestQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        response = manifest_response(self.tenant.pk, mixture.pk, query.validated_data.get("format"))
        if response is None:
            raise ApplicationError("manifest_missing", "this mixture's manifest is not stored; re-run its job",
                                   status_code=404)
        return response


    @extend_schema(responses={200: TrainingDatasetSerializer})
    @action(detail=True, methods=["get"])
    def dataset(self, request, pk=None):
        """The training-ready dataset: ``dataset.json`` and the URL of each Parquet shard (``id, text, source,
        pool, repeat_index``, repeats expanded, shuffled with the recorded seed)."""
        mixture = self.get_object()
        store, folder = tenant_storage(self.tenant.pk), Keys.training_dataset(mixture.pk)
        if not store.exists(f"{folder}/dataset.json"):
            raise ApplicationError("dataset_missing", "this mixture has no training-ready dataset: its job ran "
                                   "with dataset false or before datasets were written; run a mixture job",
                                   status_code=404)
        content = json.loads(store.read_bytes(f"{folder}/dataset.json"))
        base = request.build_absolute_uri(request.path)
        content["shards"] = [{**shard, "url": f"{base}{shard['name']}/"} for shard in content["shards"]]
        return Response(TrainingDatasetSerializer(content).data)

    @extend_schema(responses={(200, "application/vnd.apache.parquet"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"], url_path=r"dataset/(?P<name>part-\d{5}\.parquet)")
    def dataset_shard(self, request, pk=None, name=None):
        """One Parquet shard of the training-ready dataset."""
        mixture = self.get_object()
        store, key = tenant_storage(self.tenant.pk), f"{Keys.training_dataset(mixture.pk)}/{name}"
        if not store.exists(key):
            raise ApplicationError("not_found", f"this mixture's dataset has no shard {name}", status_code=404)
        return FileResponse(store.open(key), as_attachment=True, filename=f"mixture-{mixture.pk}-{name}",
                            content_type="application/vnd.apache.parquet")


def manifest_response(tenant_id, mixture_id, file_format: str | None):
    """A mixture's stored manifest as a Parquet download or streamed JSONL (API and console); None if absent."""
    store, manifest = tenant_storage(tenant_id), Keys.manifest(mixture_id)
    if not store.exists(manifest):
        return None
    if file_format == "parquet":
        return FileResponse(store.open(manifest), as_attachment=True, filename=f"mixture-{mixture_id}.parquet",
                            content_type="application/vnd.apache.parquet")
    response = StreamingHttpResponse(iter_manifest_jsonl(store.open(manifest)), content_type="application/x-ndjson")
    response["Content-Disposition"] = f'attachment; filename="mixture-{mixture_id}.jsonl"'
    return response


class PilotDesignView(APIView):
    """The pilot runs to train so that every performance law can be fitted and backtested, or after a fit the
    runs to add (synchronous)."""

    @extend_schema(request=PilotDesignInputSerializer, responses={200: PilotDesignSerializer})
    def post(self, request):
        form = PilotDesignInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        if "performance_model" in data:
            result = services.pilot_next_runs_create(tenant=request.auth.tenant, model_id=data["performance_model"],
                                                     runs=data["runs"], sizes=data.get("sizes"), seed=data["seed"])
        else:
            result = services.pilot_design_create(tenant=request.auth.tenant, corpus_id=data["corpus"],
                                                  runs=data["runs"], sizes=data.get("sizes"), seed=data["seed"])
        return Response(PilotDesignSerializer(result).data)


class PredictionView(APIView):
    """Predicted metric and band for a mixture at a budget, from a fitted performance model (synchronous)."""

    @extend_schema(request=PredictionInputSerializer, responses={200: PredictionSerializer})
    def post(self, request):
        form = PredictionInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = form.validated_data
        result = services.prediction_create(tenant=request.auth.tenant, model_id=data["performance_model"],
                                            mixture=data["mixture"], budget=data["budget"],
                                            budget_unit=data["budget_unit"],
                                            model_parameters=data.get("model_parameters"), level=data["level"])
        return Response(PredictionSerializer(result).data)
