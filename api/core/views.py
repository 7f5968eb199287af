"""The one base view that scopes every API object to the caller's tenant, and the health
endpoints probes call (no authentication, no tenant data)."""
from __future__ import annotations

from django.db import DatabaseError, connection, models
from django.http import JsonResponse
from django.views.decorators.http import require_GET
from rest_framework import viewsets

UUID_PATTERN = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class TenantScopedViewSet(viewsets.GenericViewSet):
    """Subclasses set ``model`` and may narrow the queryset in :meth:`scope_queryset`.

    ``get_queryset``/``get_object`` are owned here and cannot be overridden, so no view
    can forget the tenant filter; another tenant's object is simply not found (404).
    """

    model: type[models.Model]
    lookup_value_regex = UUID_PATTERN
    #: Fields a list may be filtered on with ``?field=value``.
    query_filters: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("get_queryset", "get_object"):
            if name in cls.__dict__:
                raise TypeError(f"{cls.__name__} must not override {name}; customise scope_queryset instead")

    @property
    def tenant(self):
        return self.request.auth.tenant

    def get_queryset(self) -> models.QuerySet:
        queryset = self.model.objects.for_tenant(self.tenant)
        if self.action == "list":
            for field in self.query_filters:
                value = self.request.query_params.get(field)
                if value:
                    queryset = queryset.filter(**{field: value})
        return self.scope_queryset(queryset)

    def scope_queryset(self, queryset: models.QuerySet) -> models.QuerySet:
        """Hook: filter or annotate further (never widen)."""
        return queryset


@require_GET
def healthz(request):
    """Liveness: the process serves requests (whatever the database or the broker do)."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request):
    """Readiness: the process serves and its database answers; 503 in the API's error shape
    otherwise, so a load balancer sends no requests to a web process that cannot answer them."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return JsonResponse({"error": {"code": "database_unavailable", "message": f"the database did not answer: "
                                       f"{type(exc).__name__}", "detail": {}}}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
