"""Console pages. Each view reads through selectors and writes through the same
services the REST API calls, so the console and the API cannot disagree."""
from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponseNotAllowed, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from rest_framework import serializers as drf_serializers

from api.console import charts, selectors
from api.console.access import console_tenants
from api.console.base import ConsoleView, not_found
from api.console.forms import ApiKeyForm, JobForm, ScheduleForm, UploadForm, parse_params
from api.core.artifacts import artifact_store
from api.core.errors import ApplicationError, _validation_message
from api.datasets import services as dataset_services
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_shards
from api.datasets.serializers import DatasetUploadSerializer
from api.jobs import services as job_services
from api.jobs.kinds import KINDS
from api.jobs.models import Job
from api.jobs.serializers import JobCreateSerializer, JobSerializer
from api.modeling.models import Mixture, PerformanceModel
from api.schedules import services as schedule_services
from api.schedules.models import Schedule
from api.schedules.selectors import schedule_firings, schedule_list, schedule_next_run
from api.schedules.serializers import ScheduleInputSerializer
from api.tenancy import services as tenancy_services
from api.tenancy.models import ApiKey
from curation.ingest import FieldMapping


def _error(exc: Exception) -> dict:
    """An API error as the page shows it: the same code and message the API returns."""
    if isinstance(exc, ApplicationError):
        return {"code": exc.code, "message": exc.message, "detail": exc.detail}
    if isinstance(exc, drf_serializers.ValidationError):
        return {"code": "validation_error", "message": _validation_message(exc.detail), "detail": exc.detail}
    raise exc


def _url(view: ConsoleView, name: str, *args) -> str:
    return reverse(f"console:{name}", args=[view.tenant.pk, *args])


class PostOnlyView(ConsoleView):
    def get(self, request, *args, **kwargs):
        return HttpResponseNotAllowed(["POST"])


# --- entry, login, tenant picker ---------------------------------------------------------

class LoginView(auth_views.LoginView):
    template_name = "console/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    pass


class HomeView(View):
    """Pick a tenant: ``?tenant=<id>`` switches, a single tenant opens directly."""

    def get(self, request):
        if not request.user.is_authenticated:
            return auth_views.redirect_to_login(request.get_full_path())
        tenants = console_tenants(request.user)
        wanted = request.GET.get("tenant")
        if wanted:
            try:
                tenant = tenants.filter(pk=wanted).first()
            except Exception:  # noqa: BLE001 - a malformed id is simply not one of the user's tenants
                tenant = None
            if tenant is None:
                return not_found(request)
            return redirect("console:overview", tenant.pk)
        if len(tenants) == 1 and not request.user.is_staff:
            return redirect("console:overview", tenants[0].pk)
        return render(request, "console/picker.html", {"tenants": tenants, "section": ""})


def page_not_found(request, path=""):
    return not_found(request)


# --- overview ----------------------------------------------------------------------------

class OverviewView(ConsoleView):
    template_name = "console/overview.html"
    section = "overview"

    def get(self, request):
        schedules = list(schedule_list(tenant=self.tenant)[:5])
        return self.page({
            "usage": selectors.usage(tenant=self.tenant),
            "dataset_counts": selectors.dataset_counts(tenant=self.tenant),
            "recent_jobs": selectors.jobs_filtered(tenant=self.tenant)[:8],
            "recent_mixtures": selectors.recent_mixtures(tenant=self.tenant),
            "schedules": [(s, schedule_next_run(s)) for s in schedules],
        })


# --- corpora and benchmarks ------------------------------------------------------------

class _DatasetView(ConsoleView):
    """Corpora and benchmarks share pages; the URL's ``plural`` (corpora|benchmarks) picks the kind."""

    kind: str = Dataset.Kind.CORPUS

    def setup(self, request, *args, **kwargs):
        super().setup(request, *args, **kwargs)
        self.kind = Dataset.Kind.CORPUS if kwargs.get("plural") == "corpora" else Dataset.Kind.BENCHMARK

    @property
    def plural(self) -> str:
        return "corpora" if self.kind == Dataset.Kind.CORPUS else "benchmarks"

    def page(self, context=None, **kwargs):
        return super().page({"kind": self.kind, "plural": self.plural, **(context or {})}, **kwargs)


class DatasetListView(_DatasetView):
    template_name = "console/dataset_list.html"

    def get(self, request, plural):
        datasets = Dataset.objects.for_tenant(self.tenant).filter(kind=self.kind).order_by("-created_at")
        paginator = Paginator(datasets, 50)
        return self.page({"page_obj": paginator.get_page(request.GET.get("page")), "section": self.plural})


class DatasetUploadView(_DatasetView):
    template_name = "console/dataset_upload.html"

    def get(self, request, plural):
        return self.page({"form": UploadForm(), "section": self.plural})

    def post(self, request, plural):
        form = UploadForm(request.POST, request.FILES)
        # The API's serializer validates, so blank optional inputs count as "not given" like an API call.
        data = {key: value for key, value in request.POST.items() if value.strip() and key != "csrfmiddlewaretoken"}
        if "file" in request.FILES:
            data["file"] = request.FILES["file"]
        upload = DatasetUploadSerializer(data=data)
        error = None
        if not upload.is_valid():
            error = _error(drf_serializers.ValidationError(upload.errors))
        else:
            values = upload.validated_data
            try:
                dataset = dataset_services.dataset_create(
                    tenant=self.tenant, kind=self.kind, upload=values["file"], name=values.get("name", ""),
                    mapping=FieldMapping(text_field=values["text_field"], id_field=values.get("id_field"),
                                         source_field=values.get("source_field")),
                    declared_format=values.get("format"), shard_size=values.get("shard_size"))
            except ApplicationError as exc:
                error = _error(exc)
            else:
                messages.success(request, f"Uploaded {dataset.name}: {dataset.documents:,} documents in "
                                          f"{dataset.shard_count} shards.")
                return redirect("console:dataset", self.tenant.pk, self.plural, dataset.pk)
        return self.page({"form": form, "error": error, "section": self.plural}, status=400)


class DatasetDetailView(_DatasetView):
    template_name = "console/dataset_detail.html"

    def get(self, request, plural, pk):
        dataset = self.scoped(Dataset, pk, kind=self.kind)
        sources = sorted(dataset.source_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        histograms = []
        for metric, job in selectors.score_metrics(dataset=dataset):
            data = selectors.score_histogram(dataset=dataset, job=job, metric=metric)
            if data:
                chart = charts.histogram(f"{metric} scores ({data['documents']:,} documents)", data["edges"],
                                         {"kept": data["kept"], "dropped": data["dropped"]}, x_label=metric,
                                         description=f"Distribution of {metric} scores from job {job.pk}: "
                                                     f"{data['kept_total']:,} kept of {data['documents']:,}.")
                histograms.append({"data": data, "chart": chart, "job": job})
        return self.page({
            "dataset": dataset, "shards": dataset_shards(dataset=dataset), "section": self.plural,
            "sources_chart": charts.bar_chart("Documents per source", sources, value_label="documents",
                                              fmt=lambda v: f"{int(v):,}"),
            "histograms": histograms, "jobs": selectors.dataset_jobs(dataset=dataset),
            "job_kinds": sorted(KINDS),
        })


class DatasetDeleteView(_DatasetView, PostOnlyView):
    def post(self, request, plural, pk):
        dataset = self.scoped(Dataset, pk, kind=self.kind)
        dataset_services.dataset_delete(dataset=dataset)
        messages.success(request, f"Deleted {dataset.name} and its artifacts.")
        return redirect("console:datasets", self.tenant.pk, self.plural)


# --- jobs --------------------------------------------------------------------------------

class JobListView(ConsoleView):
    template_name = "console/job_list.html"
    section = "jobs"

    def get(self, request):
        filters = {key: request.GET.get(key, "").strip() for key in ("status", "kind", "dataset")}
        try:
            jobs = selectors.jobs_filtered(tenant=self.tenant, **filters)
            page = Paginator(jobs, 50).get_page(request.GET.get("page"))
        except Exception:  # noqa: BLE001 - a malformed dataset id matches nothing
            filters["dataset"] = ""
            page = Paginator(Job.objects.none(), 50).get_page(1)
        return self.page({"page_obj": page, "filters": filters, "statuses": Job.Status.values,
                          "kinds": sorted(set(KINDS) | set(selectors.job_kinds_used(tenant=self.tenant)))})


class JobCreateView(ConsoleView):
    template_name = "console/job_new.html"
    section = "jobs"

    def get(self, request):
        params = {key: request.GET[key] for key in ("corpus", "benchmark") if request.GET.get(key)}
        if params and request.GET.get("kind", "embed") == "embed":
            params["embedder"] = "hashing" if request.GET.get("embedder") == "hashing" else "minilm"
        form = JobForm(initial={"kind": request.GET.get("kind", "embed"), "params": json.dumps(params, indent=2)})
        return self.page({"form": form})

    def post(self, request):
        form = JobForm(request.POST)
        error = None
        try:
            params = parse_params(request.POST.get("params", ""))
        except ValueError as exc:
            error = {"code": "validation_error", "message": str(exc), "detail": {"field": "params"}}
        else:
            payload = JobCreateSerializer(data={"kind": request.POST.get("kind", ""), "params": params})
            try:
                payload.is_valid(raise_exception=True)
                job = job_services.job_create(tenant=self.tenant, kind=payload.validated_data["kind"],
                                              params=payload.validated_data["params"])
            except (ApplicationError, drf_serializers.ValidationError) as exc:
                error = _error(exc)
            else:
                messages.success(request, f"Started {job.kind} job.")
                return redirect("console:job", self.tenant.pk, job.pk)
        return self.page({"form": form, "error": error}, status=400)


def job_progress(job: Job) -> dict:
    """What the job page shows and its script polls: the API's job document plus per-unit progress."""
    return {**JobSerializer(job).data, "units": selectors.job_unit_progress(job=job),
            "active": job.status in Job.ACTIVE}


class JobDetailView(ConsoleView):
    template_name = "console/job_detail.html"
    section = "jobs"

    def get(self, request, pk):
        job = self.scoped(Job, pk)
        progress = job_progress(job)
        datasets = []
        for key, plural in (("corpus", "corpora"), ("benchmark", "benchmarks")):
            dataset = Dataset.objects.for_tenant(self.tenant).filter(pk=job.params[key]).first() if isinstance(
                job.params.get(key), str) else None
            if dataset is not None:
                datasets.append((key, dataset, plural))
        return self.page({
            "job": job, "progress": progress, "datasets": datasets,
            "params_text": json.dumps(job.params, indent=2, sort_keys=True),
            "result_text": json.dumps(job.result, indent=2, sort_keys=True) if job.result is not None else "",
            "schedule": selectors.job_started_by(job=job),
        })


class JobProgressView(ConsoleView):
    def get(self, request, pk):
        response = JsonResponse(job_progress(self.scoped(Job, pk)))
        response["Cache-Control"] = "no-store"
        return response


class JobCancelView(PostOnlyView):
    def post(self, request, pk):
        try:
            job_services.job_cancel(job=self.scoped(Job, pk))
            messages.success(request, "Cancelled the job.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("console:job", self.tenant.pk, pk)


class JobRetryView(PostOnlyView):
    def post(self, request, pk):
        try:
            job_services.job_retry(job=self.scoped(Job, pk))
            messages.success(request, "Requeued the job; finished shards are not redone.")
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("console:job", self.tenant.pk, pk)


# --- mixtures ----------------------------------------------------------------------------

def _band(predicted: dict) -> str:
    low, high = selectors.finite(predicted.get("low")), selectors.finite(predicted.get("high"))
    return f"{charts.number(low, 4)} – {charts.number(high, 4)}" if low is not None and high is not None else ""


class MixtureListView(ConsoleView):
    template_name = "console/mixture_list.html"
    section = "mixtures"

    def get(self, request):
        corpus = request.GET.get("corpus", "")
        try:
            page = Paginator(selectors.mixtures_list(tenant=self.tenant, corpus=corpus), 50).get_page(
                request.GET.get("page"))
        except Exception:  # noqa: BLE001 - a malformed corpus id matches nothing
            page = Paginator(Mixture.objects.none(), 50).get_page(1)
        return self.page({"page_obj": page})


class MixtureDetailView(ConsoleView):
    template_name = "console/mixture_detail.html"
    section = "mixtures"

    def get(self, request, pk):
        mixture = self.scoped(Mixture, pk)
        pools = sorted(mixture.pools or [], key=lambda p: -float(p.get("weight") or 0))
        weights = [(p.get("pool", "?"), float(p.get("weight") or 0)) for p in pools] or sorted(
            ((k, float(v)) for k, v in (mixture.weights or {}).items()), key=lambda kv: -kv[1])
        predicted = mixture.predicted or {}
        metric = predicted.get("metric") or "predicted metric"
        frontier = [f for f in (mixture.frontier or []) if selectors.finite(f.get("budget"))]
        series = [charts.Series(
            "best mixture at each budget", [(float(f["budget"]), float(f["value"])) for f in frontier
                                            if selectors.finite(f.get("value")) is not None],
            band=[(float(f["budget"]), float(f["low"]), float(f["high"])) for f in frontier
                  if selectors.finite(f.get("low")) is not None and selectors.finite(f.get("high")) is not None])]
        value = selectors.finite(predicted.get("value"))
        if value is not None:
            series.append(charts.Series("this mixture", [(float(mixture.budget), value)], connect=False,
                                        color=charts.PALETTE[5]))
        frontier_chart = charts.line_chart(
            f"Predicted {metric} against budget", series, x_label=f"budget ({mixture.budget_unit})", y_label=metric,
            x_log=True, vertical_marker=(float(mixture.budget), "chosen budget"),
            description=f"The compute frontier: the best predicted {metric} at each budget, with its uncertainty "
                        f"band; this mixture's budget {charts.number(mixture.budget)} is marked.")
        frontier_rows = [{"budget": f["budget"], "value": f.get("value"), "band": _band(f),
                          "weights": selectors.mixture_key(f.get("weights") or {})} for f in frontier]
        return self.page({
            "mixture": mixture, "pools": pools, "predicted": predicted, "band": _band(predicted),
            "weights_chart": charts.bar_chart("Weight per pool", weights, value_label="weight",
                                              fmt=lambda v: f"{v:.1%}"),
            "repetitions_chart": charts.bar_chart(
                "Repetitions per pool", [(p.get("pool", "?"), float(p.get("repetitions") or 0)) for p in pools],
                value_label="repetitions", fmt=lambda v: f"{v:.2f}×"),
            "frontier_chart": frontier_chart, "frontier_rows": frontier_rows,
            "provenance": sorted((predicted.get("provenance") or {}).items()),
            "manifest_formats": ("jsonl", "parquet"),
        })


class MixtureManifestView(ConsoleView):
    """The manifest (one row per selected document: id, pool, repeats) as JSONL or Parquet.

    The same stored file and JSONL encoding as ``GET /api/v1/mixtures/{id}/documents/``.
    """

    def get(self, request, pk):
        mixture = self.scoped(Mixture, pk)
        store = artifact_store()
        path = store.manifest_path(self.tenant.pk, mixture.pk) if hasattr(store, "manifest_path") else None
        if path is None or not path.is_file():
            return self.page({"message": "This mixture's manifest is not stored; re-run its job."}, status=404,
                             template="console/404.html")
        if request.GET.get("format") == "parquet":
            return FileResponse(open(path, "rb"), as_attachment=True, filename=f"mixture-{mixture.pk}.parquet",
                                content_type="application/vnd.apache.parquet")
        from curation.manifest import iter_manifest_jsonl

        response = StreamingHttpResponse(iter_manifest_jsonl(path), content_type="application/x-ndjson")
        response["Content-Disposition"] = f'attachment; filename="mixture-{mixture.pk}.jsonl"'
        return response


# --- performance models and pilot runs -------------------------------------------------

def _law(model: PerformanceModel):
    """The fitted model as an object that predicts, when the library can rebuild it; else ``None``."""
    try:
        from curation.mixture import MixtureLaw

        return MixtureLaw.from_stored(model.parameters, model.pools, model.provenance)
    except Exception:  # noqa: BLE001 - an older or foreign parameter set is shown without curves
        return None


def _weights(observation: dict) -> dict:
    """An observation's mixture: ``weights`` as fit jobs store it, ``mixture`` as pilot runs do."""
    return observation.get("weights") or observation.get("mixture") or {}


def observations_chart(title: str, observations: list[dict], *, metric: str, law=None,
                       connect_observed: bool = False) -> charts.Chart:
    """Observed (size, value) points per mixture, and the fitted curve of each mixture over size."""
    groups: dict[str, list[dict]] = {}
    for item in observations:
        groups.setdefault(selectors.mixture_key(_weights(item)), []).append(item)
    series = []
    for i, (label, items) in enumerate(sorted(groups.items())[:8]):
        color = charts.PALETTE[i % len(charts.PALETTE)]
        points = [(float(o["size"]), float(o["value"])) for o in items
                  if selectors.finite(o.get("size")) and selectors.finite(o.get("value")) is not None]
        series.append(charts.Series(label, points, connect=connect_observed, color=color))
        curve = []
        sizes = [p[0] for p in points]
        if law is not None and sizes:
            low, high = min(sizes) / 2, max(sizes) * 2
            grid = [low * (high / low) ** (k / 24) for k in range(25)]
            try:
                curve = [(n, law.predict(_weights(items[0]), n).value) for n in grid]
            except Exception:  # noqa: BLE001 - fall back to the stored fitted values
                curve = []
        if not curve:
            curve = [(float(o["size"]), float(o["fitted"])) for o in items
                     if selectors.finite(o.get("size")) and selectors.finite(o.get("fitted")) is not None]
        if curve:
            series.append(charts.Series(f"fitted: {label}", curve, color=color, dashed=True, marker=False,
                                        in_legend=False))
    return charts.line_chart(title, series, x_label="size (samples seen)", y_label=metric, x_log=True,
                             description=f"Observed {metric} of pilot runs (circles) against training size, one "
                                         "colour per mixture" + (", with the fitted model's curve for the same "
                                                                 "mixture (dashed)" if not connect_observed else "")
                             + ".")


class ModelListView(ConsoleView):
    template_name = "console/model_list.html"
    section = "models"

    def get(self, request):
        return self.page({"models": selectors.performance_models_list(tenant=self.tenant)[:100],
                          "groups": selectors.pilot_run_groups(tenant=self.tenant)})


class ModelDetailView(ConsoleView):
    template_name = "console/model_detail.html"
    section = "models"

    def get(self, request, pk):
        model = self.scoped(PerformanceModel, pk)
        observations = model.observations or []
        chart = observations_chart(f"Observations and fitted {model.metric}", observations, metric=model.metric,
                                   law=_law(model))
        parameters = [(name, value, model.provenance.get(name, "")) for name, value in model.parameters.items()]
        return self.page({"model": model, "chart": chart, "parameters": parameters,
                          "observation_rows": [{**o, "mixture_label": selectors.mixture_key(_weights(o))}
                                               for o in observations],
                          "mixtures": model.mixtures.all().order_by("-created_at")[:20]})


class PilotRunsView(ConsoleView):
    template_name = "console/pilot_runs.html"
    section = "models"

    def get(self, request):
        corpus, metric = request.GET.get("corpus", ""), request.GET.get("metric", "")
        try:
            groups = selectors.pilot_run_groups(tenant=self.tenant, corpus=corpus, metric=metric)
        except Exception:  # noqa: BLE001 - a malformed corpus id matches nothing
            groups = []
        for group in groups:
            runs = [{"mixture": r.mixture, "size": r.size, "value": r.value, "origin": r.origin}
                    for r in group["runs"]]
            group["chart"] = observations_chart(f"{group['metric']} on {group['corpus'].name}", runs,
                                                metric=group["metric"], connect_observed=True)
        return self.page({"groups": groups})


# --- schedules ---------------------------------------------------------------------------

def _schedule_payload(post) -> tuple[dict | None, dict | None]:
    """The form as the API's schedule input, or an error shaped like the API's."""
    try:
        params = parse_params(post.get("params", ""))
    except ValueError as exc:
        return None, {"code": "validation_error", "message": str(exc), "detail": {"field": "params"}}
    payload = {"name": post.get("name", ""), "job_template": {"kind": post.get("kind", ""), "params": params},
               "enabled": post.get("enabled") in ("on", "true", "1")}
    if post.get("timing") == "cron":
        payload["cron"] = post.get("cron", "")
    else:
        interval = post.get("interval_seconds", "").strip()
        payload["interval_seconds"] = interval or None
    form = ScheduleInputSerializer(data=payload)
    if not form.is_valid():
        return None, _error(drf_serializers.ValidationError(form.errors))
    data = form.validated_data
    arguments = {"name": data.get("name", ""), "enabled": data["enabled"], "job_kind": data["job_template"]["kind"],
                 "job_params": data["job_template"].get("params", {})}
    arguments["cron"] = data.get("cron", "")
    arguments["interval_seconds"] = data.get("interval_seconds")
    return arguments, None


class ScheduleListView(ConsoleView):
    template_name = "console/schedule_list.html"
    section = "schedules"

    def get(self, request):
        schedules = [(s, schedule_next_run(s)) for s in schedule_list(tenant=self.tenant)[:200]]
        return self.page({"schedules": schedules})


class ScheduleCreateView(ConsoleView):
    template_name = "console/schedule_form.html"
    section = "schedules"

    def get(self, request):
        params = {"corpus": request.GET["corpus"], "embedder": "minilm"} if request.GET.get("corpus") else {}
        form = ScheduleForm(initial={"params": json.dumps(params, indent=2), "interval_seconds": 86400,
                                     "cron": "0 3 * * *"})
        return self.page({"form": form, "creating": True})

    def post(self, request):
        arguments, error = _schedule_payload(request.POST)
        if error is None:
            try:
                schedule = schedule_services.schedule_create(tenant=self.tenant, **arguments)
            except (ApplicationError, drf_serializers.ValidationError) as exc:
                error = _error(exc)
            else:
                messages.success(request, "Created the schedule.")
                return redirect("console:schedule", self.tenant.pk, schedule.pk)
        return self.page({"form": ScheduleForm(request.POST), "creating": True, "error": error}, status=400)


class ScheduleDetailView(ConsoleView):
    """The schedule, its firings, and the edit form (POST saves)."""

    template_name = "console/schedule_detail.html"
    section = "schedules"

    def _form(self, schedule: Schedule) -> ScheduleForm:
        return ScheduleForm(initial={
            "name": schedule.name, "timing": "cron" if schedule.cron else "interval", "cron": schedule.cron,
            "interval_seconds": schedule.interval_seconds, "kind": schedule.job_kind, "enabled": schedule.enabled,
            "params": json.dumps(schedule.job_params, indent=2, sort_keys=True)})

    def _page(self, schedule, form, error=None, status=200):
        return self.page({"schedule": schedule, "next_run": schedule_next_run(schedule), "form": form,
                          "error": error, "firings": schedule_firings(schedule=schedule, limit=50)}, status=status)

    def get(self, request, pk):
        schedule = self.scoped(Schedule, pk)
        return self._page(schedule, self._form(schedule))

    def post(self, request, pk):
        schedule = self.scoped(Schedule, pk)
        arguments, error = _schedule_payload(request.POST)
        if error is None:
            try:
                schedule_services.schedule_update(schedule=schedule, **arguments)
            except (ApplicationError, drf_serializers.ValidationError) as exc:
                error = _error(exc)
            else:
                messages.success(request, "Saved the schedule.")
                return redirect("console:schedule", self.tenant.pk, schedule.pk)
        return self._page(schedule, ScheduleForm(request.POST), error, status=400)


class ScheduleToggleView(PostOnlyView):
    def post(self, request, pk):
        schedule = self.scoped(Schedule, pk)
        schedule = schedule_services.schedule_update(schedule=schedule, enabled=not schedule.enabled)
        messages.success(request, "Resumed the schedule." if schedule.enabled else "Paused the schedule.")
        return redirect(request.POST.get("next") or _url(self, "schedule", schedule.pk))


class ScheduleDeleteView(PostOnlyView):
    def post(self, request, pk):
        schedule_services.schedule_delete(schedule=self.scoped(Schedule, pk))
        messages.success(request, "Deleted the schedule; jobs it started are kept.")
        return redirect("console:schedules", self.tenant.pk)


# --- API keys ----------------------------------------------------------------------------

class ApiKeyListView(ConsoleView):
    template_name = "console/key_list.html"
    section = "keys"

    def get(self, request):
        keys = ApiKey.objects.for_tenant(self.tenant).order_by("revoked_at", "-created_at")
        return self.page({"keys": keys, "form": ApiKeyForm()})


class ApiKeyCreateView(PostOnlyView):
    template_name = "console/key_created.html"
    section = "keys"

    def post(self, request):
        form = ApiKeyForm(request.POST)
        if not form.is_valid():
            return redirect("console:keys", self.tenant.pk)
        issued = tenancy_services.api_key_create(tenant=self.tenant, name=form.cleaned_data["name"])
        response = self.page({"key": issued.api_key, "secret": issued.secret,
                              "api_base": request.build_absolute_uri("/api/v1/")})
        response["Cache-Control"] = "no-store"
        return response


class ApiKeyRevokeView(PostOnlyView):
    def post(self, request, pk):
        key = self.scoped(ApiKey, pk)
        tenancy_services.api_key_revoke(tenant=self.tenant, key_id=key.pk)
        messages.success(request, f"Revoked key cur_{key.prefix}_…; calls with it now get 401.")
        return redirect("console:keys", self.tenant.pk)

