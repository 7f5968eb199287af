"""``/console/``: login, the tenant picker, and every page under ``/console/<tenant id>/``."""
from django.urls import include, path, re_path

from api.console import views

app_name = "console"

tenant_pages = [
    path("", views.OverviewView.as_view(), name="overview"),
    re_path(r"^(?P<plural>corpora|benchmarks)/$", views.DatasetListView.as_view(), name="datasets"),
    re_path(r"^(?P<plural>corpora|benchmarks)/upload/$", views.DatasetUploadView.as_view(), name="dataset_upload"),
    re_path(r"^(?P<plural>corpora|benchmarks)/(?P<pk>[0-9a-f-]{36})/$", views.DatasetDetailView.as_view(),
            name="dataset"),
    re_path(r"^(?P<plural>corpora|benchmarks)/(?P<pk>[0-9a-f-]{36})/delete/$", views.DatasetDeleteView.as_view(),
            name="dataset_delete"),
    path("jobs/", views.JobListView.as_view(), name="jobs"),
    path("jobs/new/", views.JobCreateView.as_view(), name="job_new"),
    path("jobs/<uuid:pk>/", views.JobDetailView.as_view(), name="job"),
    path("jobs/<uuid:pk>/progress.json", views.JobProgressView.as_view(), name="job_progress"),
    path("jobs/<uuid:pk>/cancel/", views.JobCancelView.as_view(), name="job_cancel"),
    path("jobs/<uuid:pk>/retry/", views.JobRetryView.as_view(), name="job_retry"),
    path("mixtures/", views.MixtureListView.as_view(), name="mixtures"),
    path("mixtures/<uuid:pk>/", views.MixtureDetailView.as_view(), name="mixture"),
    path("mixtures/<uuid:pk>/manifest/", views.MixtureManifestView.as_view(), name="mixture_manifest"),
    path("models/", views.ModelListView.as_view(), name="models"),
    path("models/<uuid:pk>/", views.ModelDetailView.as_view(), name="model"),
    path("pilot-runs/", views.PilotRunsView.as_view(), name="pilot_runs"),
    path("schedules/", views.ScheduleListView.as_view(), name="schedules"),
    path("schedules/new/", views.ScheduleCreateView.as_view(), name="schedule_new"),
    path("schedules/<uuid:pk>/", views.ScheduleDetailView.as_view(), name="schedule"),
    path("schedules/<uuid:pk>/toggle/", views.ScheduleToggleView.as_view(), name="schedule_toggle"),
    path("schedules/<uuid:pk>/delete/", views.ScheduleDeleteView.as_view(), name="schedule_delete"),
    path("keys/", views.ApiKeyListView.as_view(), name="keys"),
    path("keys/new/", views.ApiKeyCreateView.as_view(), name="key_new"),
    path("keys/<uuid:pk>/revoke/", views.ApiKeyRevokeView.as_view(), name="key_revoke"),
]

urlpatterns = [
    path("", views.HomeView.as_view(), name="home"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("<uuid:tenant_id>/", include(tenant_pages)),
    re_path(r"^(?P<path>.*)$", views.page_not_found, name="not_found"),
]
