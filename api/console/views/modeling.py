"""Performance models and pilot runs: observations against size, with each mixture's fitted curve."""
from __future__ import annotations

from api.console import charts, selectors
from api.console.base import ConsoleView
from api.modeling.models import PerformanceModel
from api.modeling.services import performance_model_law
from curation.mixture import MixtureLaw


def _law(model: PerformanceModel) -> MixtureLaw | None:
    """The fitted model as an object that predicts, when the library can rebuild it; else ``None``."""
    try:
        return performance_model_law(model)
    except (KeyError, TypeError, ValueError):  # an older or foreign parameter set is shown without curves
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
            except (TypeError, ValueError):  # e.g. pools the model does not know: the stored fitted values
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
                          "mixtures": selectors.performance_model_mixtures(model=model, limit=20)})


class PilotRunsView(ConsoleView):
    template_name = "console/pilot_runs.html"
    section = "models"

    def get(self, request):
        groups = selectors.pilot_run_groups(tenant=self.tenant, corpus=request.GET.get("corpus", ""),
                                            metric=request.GET.get("metric", ""))
        for group in groups:
            runs = [{"mixture": r.mixture, "size": r.size, "value": r.value, "origin": r.origin}
                    for r in group["runs"]]
            group["chart"] = observations_chart(f"{group['metric']} on {group['corpus'].name}", runs,
                                                metric=group["metric"], connect_observed=True)
        return self.page({"groups": groups})
