"""Template filters for the console: numbers, sizes, durations, statuses, charts."""
from __future__ import annotations

import datetime as dt

from django import template
from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from api.console import charts

register = template.Library()


@register.filter
def thousands(value) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "–"


@register.filter
def num(value, digits: int = 3) -> str:
    try:
        return charts.number(float(value), int(digits))
    except (TypeError, ValueError):
        return "–"


@register.filter
def param(value) -> str:
    """A fitted parameter: numbers compact, booleans and ranges as text."""
    if isinstance(value, bool) or value is None:
        return {True: "yes", False: "no", None: "–"}[value]
    if isinstance(value, (int, float)):
        return charts.number(float(value), 5)
    if isinstance(value, (list, tuple)):
        return " – ".join(param(v) for v in value)
    return str(value)


@register.filter
def percent(value, digits: int = 1) -> str:
    try:
        return f"{float(value) * 100:.{int(digits)}f}%"
    except (TypeError, ValueError):
        return "–"


@register.filter
def size(value) -> str:
    return filesizeformat(value) if value is not None else "–"


@register.filter
def seconds(value) -> str:
    """3725.2 -> '1 h 2 min 5 s'."""
    if value is None:
        return "–"
    value = float(value)
    if value < 60:
        return f"{value:.1f} s"
    minutes, secs = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min {secs} s" if hours else f"{minutes} min {secs} s"


@register.filter
def until(value) -> str:
    """A future datetime as 'in 5 min' (or 'due now')."""
    if not isinstance(value, dt.datetime):
        return ""
    delta = (value - timezone.now()).total_seconds()
    if delta <= 1:
        return "due now"
    return "in " + seconds(delta)


@register.filter
def get(mapping, key):
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.inclusion_tag("console/_chart.html")
def chart(value: charts.Chart, table_open: bool = False):
    return {"chart": value, "table_open": table_open}


@register.inclusion_tag("console/_multiples.html")
def multiples(value: charts.SmallMultiples, table_open: bool = False):
    return {"chart": value, "table_open": table_open}


@register.inclusion_tag("console/_status.html")
def status(value: str):
    return {"status": value}
