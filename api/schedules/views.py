from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api.core.views import TenantScopedViewSet
from api.schedules import services
from api.schedules.models import Schedule
from api.schedules.selectors import schedule_firings, schedule_get, with_firing_counts
from api.schedules.serializers import ScheduleFiringSerializer, ScheduleInputSerializer, ScheduleSerializer


def _service_arguments(data: dict) -> dict:
    arguments = {key: data[key] for key in ("name", "cron", "interval_seconds", "enabled") if key in data}
    if "job_template" in data:
        arguments["job_kind"] = data["job_template"]["kind"]
        arguments["job_params"] = data["job_template"].get("params", {})
    return arguments


@extend_schema_view(list=extend_schema(parameters=[
    OpenApiParameter("enabled", OpenApiTypes.BOOL, description="only enabled (true) or only paused (false) ones")]))
class ScheduleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantScopedViewSet):
    """Run a job template on a cron expression (UTC) or every N seconds.

    Each firing creates a normal job; while the job a schedule started last is still
    queued or running, further firings are skipped (and recorded). ``enabled: false``
    pauses. Filter the list with ``?enabled=true|false``.
    """

    model = Schedule
    serializer_class = ScheduleSerializer
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scope_queryset(self, queryset):
        enabled = self.request.query_params.get("enabled")
        if self.action == "list" and enabled:
            if enabled.lower() not in ("true", "false"):
                raise ValidationError({"enabled": [f"must be true or false; got {enabled!r}"]})
            queryset = queryset.filter(enabled=enabled.lower() == "true")
        return with_firing_counts(queryset)

    def _reloaded(self, schedule: Schedule) -> Schedule:
        return schedule_get(tenant=self.tenant, schedule_id=schedule.pk)

    @extend_schema(request=ScheduleInputSerializer, responses={201: ScheduleSerializer})
    def create(self, request):
        form = ScheduleInputSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        schedule = services.schedule_create(tenant=self.tenant, **_service_arguments(form.validated_data))
        return Response(ScheduleSerializer(self._reloaded(schedule)).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ScheduleInputSerializer(partial=True), responses={200: ScheduleSerializer})
    def partial_update(self, request, pk=None):
        schedule = self.get_object()
        form = ScheduleInputSerializer(data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        services.schedule_update(schedule=schedule, **_service_arguments(form.validated_data))
        return Response(ScheduleSerializer(self._reloaded(schedule)).data)

    def destroy(self, request, pk=None):
        services.schedule_delete(schedule=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses={200: ScheduleFiringSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def firings(self, request, pk=None):
        """The latest 100 firings, newest first: created (with the job), skipped or failed (with why)."""
        return Response(ScheduleFiringSerializer(schedule_firings(schedule=self.get_object(), limit=100),
                                                 many=True).data)
