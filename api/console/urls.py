"""``/console/``: login, the tenant picker, and every page under ``/console/<tenant id>/``."""
from django.urls import include, path, re_path

from api.console.views import datasets, entry, jobs, keys, mixtures, modeling, overview, schedules

app_name = "console"

tenant_pages = [
    path("", overview.OverviewView.as_view(), name="overview"),
    re_path(r"^(?P<plural>corpora|benchmarks)/$", datasets.DatasetListView.as_view(), name="datasets"),
    re_path(r"^(?P<plural>corpora|benchmarks)/upload/$", datasets.DatasetUploadView.as_view(), name="dataset_upload"),
    re_path(r"^(?P<plural>corpora|benchmarks)/(?P<pk>[0-9a-f-]{36})/$", datasets.DatasetDetailView.as_view(),
            name="dataset"),
    re_path(r"^(?P<plural>corpora|benchmarks)/(?P<pk>[0-9a-f-]{36})/delete/$", datasets.DatasetDeleteView.as_view(),
            name="dataset_delete"),
    path("jobs/", jobs.JobListView.as_view(), name="jobs"),
    path("jobs/new/", jobs.JobCreateView.as_view(), name="job_new"),
    path("jobs/<uuid:pk>/", jobs.JobDetailView.as_view(), name="job"),
    path("jobs/<uuid:pk>/progress.json", jobs.JobProgressView.as_view(), name="job_progress"),
    path("jobs/<uuid:pk>/cancel/", jobs.JobCancelView.as_view(), name="job_cancel"),
    path("jobs/<uuid:pk>/retry/", jobs.JobRetryView.as_view(), name="job_retry"),
    path("mixtures/", mixtures.MixtureListView.as_view(), name="mixtures"),
    path("mixtures/<uuid:pk>/", mixtures.MixtureDetailView.as_view(), name="mixture"),
    path("mixtures/<uuid:pk>/manifest/", mixtures.MixtureManifestView.as_view(), name="mixture_manifest"),
    path("models/", modeling.ModelListView.as_view(), name="models"),
    path("models/<uuid:pk>/", modeling.ModelDetailView.as_view(), name="model"),
    path("pilot-runs/", modeling.PilotRunsView.as_view(), name="pilot_runs"),
    path("schedules/", schedules.ScheduleListView.as_view(), name="schedules"),
    path("schedules/new/", schedules.ScheduleCreateView.as_view(), name="schedule_new"),
    path("schedules/<uuid:pk>/", schedules.ScheduleDetailView.as_view(), name="schedule"),
    path("schedules/<uuid:pk>/toggle/", schedules.ScheduleToggleView.as_view(), name="schedule_toggle"),
    path("schedules/<uuid:pk>/delete/", schedules.ScheduleDeleteView.as_view(), name="schedule_delete"),
    path("keys/", keys.ApiKeyListView.as_view(), name="keys"),
    path("keys/new/", keys.ApiKeyCreateView.as_view(), name="key_new"),
    path("keys/<uuid:pk>/revoke/", keys.ApiKeyRevokeView.as_view(), name="key_revoke"),
]

#: The first part of every page's path below ``/console/<tenant id>/``: typed without the
#: tenant (``/console/jobs/``), such a path opens the current tenant's page.
SECTIONS = ("corpora", "benchmarks", "jobs", "mixtures", "models", "pilot-runs", "schedules", "keys")

urlpatterns = [
    path("", entry.HomeView.as_view(), name="home"),
    path("login/", entry.LoginView.as_view(), name="login"),
    path("logout/", entry.LogoutView.as_view(), name="logout"),
    path("<uuid:tenant_id>/", include(tenant_pages)),
    re_path(rf"^(?P<path>(?:{'|'.join(SECTIONS)})(?:/.*)?)$", entry.SectionRedirectView.as_view(), name="section"),
    re_path(r"^(?P<path>.*)$", entry.page_not_found, name="not_found"),
]
