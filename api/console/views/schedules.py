"""Schedules: list, create, a schedule's page (its firings and the edit form), pause/resume, delete."""
from __future__ import annotations

import json

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse

from api.console import selectors
from api.console.base import ConsoleView, PostOnlyView, page_error
from api.console.forms import ScheduleForm, parse_params
from api.core.errors import ApplicationError, validated
from api.schedules import services as schedule_services
from api.schedules.models import Schedule
from api.schedules.selectors import schedule_firings, schedule_next_run
from api.schedules.serializers import ScheduleInputSerializer


def _schedule_arguments(post) -> dict:
    """The form as the schedule service's arguments, validated by the API's schedule input serializer."""
    payload = {"name": post.get("name", ""),
               "job_template": {"kind": post.get("kind", ""), "params": parse_params(post.get("params", ""))},
               "enabled": post.get("enabled") in ("on", "true", "1")}
    if post.get("timing") == "cron":
        payload["cron"] = post.get("cron", "")
    else:
        payload["interval_seconds"] = post.get("interval_seconds", "").strip() or None
    data = validated(ScheduleInputSerializer(data=payload))
    return {"name": data.get("name", ""), "enabled": data["enabled"], "job_kind": data["job_template"]["kind"],
            "job_params": data["job_template"].get("params", {}), "cron": data.get("cron", ""),
            "interval_seconds": data.get("interval_seconds")}


class ScheduleListView(ConsoleView):
    template_name = "console/schedule_list.html"
    section = "schedules"

    def get(self, request):
        return self.page({"schedules": selectors.schedules_with_next_run(tenant=self.tenant, limit=200)})


class ScheduleCreateView(ConsoleView):
    template_name = "console/schedule_form.html"
    section = "schedules"

    def get(self, request):
        params = {"corpus": request.GET["corpus"], "embedder": "minilm"} if request.GET.get("corpus") else {}
        form = ScheduleForm(initial={"params": json.dumps(params, indent=2), "interval_seconds": 86400,
                                     "cron": "0 3 * * *"})
        return self.page({"form": form, "creating": True})

    def post(self, request):
        try:
            schedule = schedule_services.schedule_create(tenant=self.tenant, **_schedule_arguments(request.POST))
        except ApplicationError as exc:
            return self.page({"form": ScheduleForm(request.POST), "creating": True, "error": page_error(exc)},
                             status=400)
        messages.success(request, "Created the schedule.")
        return redirect("console:schedule", self.tenant.pk, schedule.pk)


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
        try:
            schedule_services.schedule_update(schedule=schedule, **_schedule_arguments(request.POST))
        except ApplicationError as exc:
            return self._page(schedule, ScheduleForm(request.POST), page_error(exc), status=400)
        messages.success(request, "Saved the schedule.")
        return redirect("console:schedule", self.tenant.pk, schedule.pk)


class ScheduleToggleView(PostOnlyView):
    def post(self, request, pk):
        schedule = self.scoped(Schedule, pk)
        schedule = schedule_services.schedule_update(schedule=schedule, enabled=not schedule.enabled)
        messages.success(request, "Resumed the schedule." if schedule.enabled else "Paused the schedule.")
        return redirect(request.POST.get("next") or reverse("console:schedule", args=[self.tenant.pk, schedule.pk]))


class ScheduleDeleteView(PostOnlyView):
    def post(self, request, pk):
        schedule_services.schedule_delete(schedule=self.scoped(Schedule, pk))
        messages.success(request, "Deleted the schedule; jobs it started are kept.")
        return redirect("console:schedules", self.tenant.pk)
