"""Mixtures: list, a mixture's page (weights, repetitions, the compute frontier) and its manifest."""
from __future__ import annotations

from django.core.paginator import Paginator

from api.console import charts, selectors
from api.console.base import ConsoleView
from api.modeling.models import Mixture
from api.modeling.views import manifest_response
from curation.pilots import metric_unit


def _band(predicted: dict) -> str:
    low, high = selectors.finite(predicted.get("low")), selectors.finite(predicted.get("high"))
    return f"{charts.number(low, 4)} – {charts.number(high, 4)}" if low is not None and high is not None else ""


def _used(pool: dict) -> str:
    """``28 / 32 unique used``: what a pool's repetitions count."""
    used, available = pool.get("unique_documents"), pool.get("available_documents")
    if used is None or available is None:
        return ""
    return f"{int(used):,} / {int(available):,} unique used"


def _level(predicted: dict) -> str:
    level = selectors.finite(predicted.get("level"))
    return f"{level:.0%}" if level is not None and 0 < level < 1 else ""


class MixtureListView(ConsoleView):
    template_name = "console/mixture_list.html"
    section = "mixtures"

    def get(self, request):
        mixtures = selectors.mixtures_list(tenant=self.tenant, corpus=request.GET.get("corpus", ""))
        return self.page({"page_obj": Paginator(mixtures, 50).get_page(request.GET.get("page"))})

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
            "band_level": _level(predicted), "unit": predicted.get("unit") or metric_unit(metric),
            "weights_chart": charts.bar_chart("Weight per pool", weights, value_label="weight",
                                              fmt=lambda v: f"{v:.1%}"),
            "repetitions_chart": charts.bar_chart(
                "Repetitions per pool", [(p.get("pool", "?"), float(p.get("repetitions") or 0)) for p in pools],
                value_label="repetitions", fmt=lambda v: f"{v:.2f}×",
                notes=("unique used / available", [_used(p) for p in pools]),
                description="Samples of each pool the budget shows per available document: below 1, some "
                            "documents are not used; above 1, documents repeat."),
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
        response = manifest_response(self.tenant.pk, mixture.pk, request.GET.get("format"))
        if response is None:
            return self.page({"message": "This mixture's manifest is not stored; re-run its job."}, status=404,
                             template="console/404.html")
        return response
