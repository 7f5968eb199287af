from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from api.core.views import healthz, readyz
from api.datasets.views import BenchmarkViewSet, CorpusViewSet
from api.jobs.views import JobViewSet
from api.modeling.views import (MixtureViewSet, PerformanceModelViewSet, PilotDesignView, PilotRunViewSet,
                                PredictionView)
from api.schedules.views import ScheduleViewSet
from api.tenancy.views import UsageView

router = SimpleRouter(trailing_slash=True)
router.register("corpora", CorpusViewSet, basename="corpus")
router.register("benchmarks", BenchmarkViewSet, basename="benchmark")
router.register("jobs", JobViewSet, basename="job")
router.register("pilot-runs", PilotRunViewSet, basename="pilot-run")
router.register("performance-models", PerformanceModelViewSet, basename="performance-model")
router.register("mixtures", MixtureViewSet, basename="mixture")
router.register("schedules", ScheduleViewSet, basename="schedule")

urlpatterns = [
    path("api/v1/", include(router.urls)),
    path("api/v1/usage/", UsageView.as_view(), name="usage"),
    path("api/v1/predictions/", PredictionView.as_view(), name="predictions"),
    path("api/v1/pilot-designs/", PilotDesignView.as_view(), name="pilot-designs"),
    path("api/v1/schema/", SpectacularAPIView.as_view(permission_classes=[], authentication_classes=[]),
         name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema", permission_classes=[],
                                                     authentication_classes=[]), name="docs"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("console/", include("api.console.urls")),
]

handler400 = "api.core.errors.bad_request"
handler404 = "api.core.errors.json_not_found"
handler500 = "api.core.errors.json_server_error"
