"""Jobs: list with filters, the new-job form, a job's page and its progress feed, cancel and retry."""
from __future__ import annotations

import json

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import redirect

from api.console import charts, selectors
from api.console.base import ConsoleView, PostOnlyView, page_error
from api.console.forms import JobForm, parse_params
from api.core.errors import ApplicationError, validated
from api.jobs import services as job_services
from api.jobs.kinds import KINDS
from api.jobs.models import Job
from api.jobs.serializers import JobCreateSerializer, JobSerializer


class JobListView(ConsoleView):
    template_name = "console/job_list.html"
    section = "jobs"

    def get(self, request):
        filters = {key: request.GET.get(key, "").strip() for key in ("status", "kind", "dataset")}
        page = Paginator(selectors.jobs_filtered(tenant=self.tenant, **filters), 50).get_page(request.GET.get("page"))
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
        try:
            payload = validated(JobCreateSerializer(data={"kind": request.POST.get("kind", ""),
                                                          "params": parse_params(request.POST.get("params", ""))}))
            job = job_services.job_create(tenant=self.tenant, kind=payload["kind"], params=payload["params"])
        except ApplicationError as exc:
            return self.page({"form": JobForm(request.POST), "error": page_error(exc)}, status=400)
        messages.success(request, f"Started {job.kind} job.")
        return redirect("console:job", self.tenant.pk, job.pk)


def job_progress(job: Job) -> dict:
    """What the job page shows and its script polls: the API's job document plus per-unit progress,
    each stage with its estimated seconds and their basis (None for a job without an estimate)."""
    figures = {s["name"]: s for s in (job.estimate or {}).get("stages", [])}
    units = []
    for stage in selectors.job_unit_progress(job=job):
        figure = figures.get(stage["name"], {})
        units.append({**stage, "estimated_seconds": figure.get("seconds"), "basis": figure.get("basis"),
                      "measured_units": figure.get("measured_units")})
    return {**JobSerializer(job).data, "units": units, "active": job.status in Job.ACTIVE}


def budget_policy(result) -> dict | None:
    """A curate result's budget decisions, BETR's share of tokens as a percentage; None for other jobs."""
    policy = (result or {}).get("budget_policy") if isinstance(result, dict) else None
    if not policy:
        return None
    return {**policy, "betr": {**policy["betr"], "token_fraction": 100 * policy["betr"]["token_fraction"]}}


def pilot_charts(job: Job) -> dict | None:
    """A tiny-LM job's pilot runs: the training loss against tokens of every run, and each run's
    target loss against its size with the fit's value on top; None for jobs without such runs."""
    runs, fitted, law = selectors.job_pilot_runs(job=job)
    if not runs:
        return None
    curves = [charts.Series(f"run {r['index']} ({r['purpose']})", [(float(t), float(v)) for t, v in r["curve"]],
                            marker=False, in_legend=len(runs) <= 12) for r in runs]
    metric = "target cross-entropy (nats per token)"
    measured = [charts.Series("measured", [(float(r["size"]), float(r["value"])) for r in runs], connect=False)]
    if fitted:
        measured.append(charts.Series(f"fitted ({law})",
                                      [(float(r["size"]), float(fitted[r["index"]])) for r in runs if r["index"] in fitted],
                                      connect=False, color=charts.PALETTE[3]))
    return {
        "curves": charts.line_chart(
            "Pilot runs: training loss against tokens", curves, x_label="tokens trained",
            y_label="training loss (nats per token)", x_log=True,
            description=f"{len(runs)} tiny language models ({charts.number(runs[0]['parameters'])} parameters, "
                        f"{runs[0]['device']}), one per designed mixture, each from the same random initialisation"),
        "values": charts.line_chart(
            "Pilot runs: target loss against size", measured, x_label="pilot size (documents)", y_label=metric,
            x_log=True, description="Each run's cross-entropy on the target benchmarks"
                                    + (" and the fitted law's value for it" if fitted else "")),
        "tokens": sum(r["tokens"] for r in runs), "seconds": sum(r["seconds"] for r in runs), "runs": len(runs)}


class JobDetailView(ConsoleView):
    template_name = "console/job_detail.html"
    section = "jobs"

    def get(self, request, pk):
        job = self.scoped(Job, pk)
        return self.page({
            "job": job, "progress": job_progress(job), "datasets": selectors.job_datasets(job=job),
            "params_text": json.dumps(job.params, indent=2, sort_keys=True),
            "result_text": json.dumps(job.result, indent=2, sort_keys=True) if job.result is not None else "",
            "schedule": selectors.job_started_by(job=job),
            "budget_policy": budget_policy(job.result), "pilots": pilot_charts(job),
        })


class JobProgressView(ConsoleView):
    def get(self, request, pk):
        response = JsonResponse(job_progress(self.scoped(Job, pk)))
        response["Cache-Control"] = "no-store"
        return response


class _JobActionView(PostOnlyView):
    """A job action from its page; a refusal (e.g. cancelling a finished job) is shown as a message."""

    done_message = ""

    def act(self, job: Job) -> None:
        raise NotImplementedError

    def post(self, request, pk):
        try:
            self.act(self.scoped(Job, pk))
            messages.success(request, self.done_message)
        except ApplicationError as exc:
            messages.error(request, exc.message)
        return redirect("console:job", self.tenant.pk, pk)


class JobCancelView(_JobActionView):
    done_message = "Cancelled the job."

    def act(self, job: Job) -> None:
        job_services.job_cancel(job=job)


class JobRetryView(_JobActionView):
    done_message = "Requeued the job; finished shards are not redone."

    def act(self, job: Job) -> None:
        job_services.job_retry(job=job)
