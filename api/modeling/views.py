from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from api.core.views import TenantScopedViewSet
from api.modeling import services
from api.modeling.models import PilotRun
from api.modeling.serializers import PilotRunInputSerializer, PilotRunSerializer


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
