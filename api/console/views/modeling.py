"""Performance models and pilot runs: observations against size, with each mixture's fitted curve."""
from __future__ import annotations

from django.core.paginator import Paginator

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


#: Mixtures drawn per page of small multiples; the others are one link away (``?panels=2``).
PANELS_PER_PAGE = 24
OBSERVED, FITTED = charts.PALETTE[0], charts.PALETTE[5]


def _drawable(observation: dict) -> bool:
    """Whether a point can be drawn on the log-size axis (else it is counted as not drawn)."""
    size = selectors.finite(observation.get("size"))
    return size is not None and size > 0 and selectors.finite(observation.get("value")) is not None


def observations_chart(title: str, observations: list[dict], *, metric: str, query, law=None,
                       connect_observed: bool = False) -> dict:
    """Observed (size, value) points, one small panel per mixture on shared axes, with the
    fitted curve of that mixture over size; ``PANELS_PER_PAGE`` panels a page.

    ``query`` is the request's query string (a ``QueryDict``): ``panels`` picks the page
    and the page's links keep its other parameters. Returns the chart and what it covers:
    ``mixtures``, ``first``/``last`` shown, links to the other pages, and ``not_drawn``
    (observations without a finite value or a positive size, which only the table lists).
    """
    groups: dict[str, list[dict]] = {}
    for item in observations:
        groups.setdefault(selectors.mixture_key(_weights(item)), []).append(item)
    page = Paginator(sorted(groups.items()), PANELS_PER_PAGE).get_page(query.get("panels"))
    panels = []
    for label, items in page.object_list:
        points = [(float(o["size"]), float(o["value"])) for o in items if _drawable(o)]
        series = [charts.Series(label, points, connect=connect_observed, color=OBSERVED, in_legend=False)]
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
                     if _drawable(o) and selectors.finite(o.get("fitted")) is not None]
        if curve:
            series.append(charts.Series(f"fitted: {label}", curve, color=FITTED, dashed=True, marker=False,
                                        in_legend=False))
        panels.append((label, series))
    key = [("observed, joined by size", OBSERVED, "line")] if connect_observed else [
        ("observed (pilot runs)", OBSERVED, "points"), ("the fitted model's curve for the same mixture", FITTED,
                                                        "dashed")]
    chart = charts.small_multiples(
        title, panels, x_label="size (samples seen)", y_label=metric, x_log=True, key=key,
        description=f"Observed {metric} of pilot runs (circles) against training size, one panel per mixture on "
                    "shared axes" + (", with the fitted model's curve for the same mixture (dashed)"
                                     if not connect_observed else "") + ".")

    def link(number: int) -> str:
        params = query.copy()
        params["panels"] = str(number)
        return "?" + params.urlencode()

    return {"chart": chart, "mixtures": len(groups), "first": page.start_index(), "last": page.end_index(),
            "previous": link(page.previous_page_number()) if page.has_previous() else "",
            "next": link(page.next_page_number()) if page.has_next() else "",
            "not_drawn": sum(not _drawable(o) for o in observations)}


SPLITS = {"size": ("held out: the largest pilot size, predicted from the smaller ones", charts.PALETTE[0]),
          "mixtures": ("held out: unseen mixtures at seen sizes (5-fold)", charts.PALETTE[1])}


def backtest_rows(backtest: dict) -> list[dict]:
    """One row per law the fit tried: its fit error and held-out errors, or why it could not be fitted."""
    rows = []
    for kind, result in sorted(backtest.get("laws", {}).items()):
        split = {name: (result.get(name) or {}) for name in SPLITS}
        rows.append({"kind": kind, "chosen": kind == backtest.get("chosen"), "error": result.get("error", ""),
                     "fit_error": result.get("fit_error"),
                     "size": split["size"].get("rmse"), "size_points": split["size"].get("points"),
                     "mixtures": split["mixtures"].get("rmse"), "mixtures_points": split["mixtures"].get("points")})
    return rows


def backtest_chart(backtest: dict, *, metric: str) -> charts.Chart | None:
    """The chosen law's held-out predictions against what was observed, by split, with the identity
    line (a perfect law puts every point on it); ``None`` without held-out points."""
    heldout = [r for r in backtest.get("heldout", []) if selectors.finite(r.get("observed")) is not None
               and selectors.finite(r.get("predicted")) is not None]
    if not heldout:
        return None
    series = [charts.Series(label, [(float(r["observed"]), float(r["predicted"])) for r in heldout
                                    if r.get("split") == split], connect=False, color=color)
              for split, (label, color) in SPLITS.items() if any(r.get("split") == split for r in heldout)]
    values = [v for r in heldout for v in (float(r["observed"]), float(r["predicted"]))]
    series.append(charts.Series("predicted = observed", [(min(values), min(values)), (max(values), max(values))],
                                dashed=True, marker=False, color=charts.PALETTE[7]))
    return charts.line_chart(
        f"Backtest of {backtest.get('chosen')}: predicted against observed {metric}", series,
        x_label=f"observed {metric}", y_label=f"predicted {metric}",
        description="Each point is a pilot run the law did not see when it was refitted: the largest pilot size "
                    "predicted from the smaller ones, and unseen mixtures; the dashed line is a perfect prediction.")


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
                                   query=request.GET, law=_law(model))
        parameters = [(name, value, model.provenance.get(name, "")) for name, value in model.parameters.items()]
        backtest = model.backtest or {}
        return self.page({"model": model, "chart": chart, "parameters": parameters, "backtest": backtest,
                          "backtest_rows": backtest_rows(backtest),
                          "backtest_chart": backtest_chart(backtest, metric=model.metric),
                          "at_bound": sorted((model.parameters.get("at_bound") or {}).items()),
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
            query = request.GET.copy()  # the links of a group's pages show that group only
            query["corpus"], query["metric"] = str(group["corpus"].pk), group["metric"]
            group["chart"] = observations_chart(f"{group['metric']} on {group['corpus'].name}", runs,
                                                metric=group["metric"], query=query, connect_observed=True)
        return self.page({"groups": groups})
