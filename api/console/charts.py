"""Server-side SVG charts for the console: bars, stacked histograms, lines with bands.

Nothing is loaded at run time: each chart is an inline ``<svg role="img">`` with a
``<title>`` and ``<desc>`` for screen readers, and carries its data as a table
(``Chart.headers`` / ``Chart.rows``) that the page shows under the chart.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from html import escape
from typing import Callable, Sequence

from django.utils.safestring import SafeString, mark_safe

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_ids = itertools.count(1)


@dataclass
class Chart:
    title: str
    svg: SafeString
    headers: list[str]
    rows: list[list[str]]
    description: str = ""


@dataclass
class Series:
    """A named line (``points`` joined) or scatter (``connect=False``), optionally with a band."""

    name: str
    points: Sequence[tuple[float, float]]
    band: Sequence[tuple[float, float, float]] = ()
    connect: bool = True
    dashed: bool = False
    color: str | None = None
    marker: bool = True
    in_legend: bool = True
    extra: dict = field(default_factory=dict)


def number(value: float | None, digits: int = 3, *, scale: float | None = None) -> str:
    """Compact human number: 1234567 -> 1.23M, 0.01234 -> 0.0123.

    ``scale`` is the span of the axis (or range) the value belongs to: a value below the
    precision shown at that scale (``scale * 10**-digits / 2``) is floating residue, e.g. a
    bin edge of ``3.7e-05`` on an axis from -0.5 to 0.5, and prints as ``0``.
    """
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if scale is not None and math.isfinite(scale) and abs(value) < abs(scale) * 10.0**-digits / 2:
        value = 0.0
    magnitude = abs(value)
    for size, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= size:
            return f"{value / size:.{digits}g}{suffix}"
    if magnitude == 0 or magnitude >= 1e-3:
        return f"{value:.{digits}g}"
    return f"{value:.{digits - 1}e}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round ticks (multiples of 1, 2, 2.5 or 5 times a power of ten) covering ``[low, high]``;
    a tick within floating residue of 0 is exactly 0."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = [float(f"{k * step:.12g}") for k in range(first, last + 1)]
    return [0.0 if abs(t) < step * 1e-9 else t for t in ticks]


def log_ticks(low: float, high: float) -> list[float]:
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    ticks = [10.0**e for e in range(first, last + 1)]
    if len(ticks) <= 3:
        ticks = sorted({m * 10.0**e for e in range(first, last + 1) for m in (1, 2, 5)})
    return [t for t in ticks if low / 1.0001 <= t <= high * 1.0001] or [low, high]


def _open(title: str, description: str, width: int, height: int) -> tuple[str, list[str]]:
    n = next(_ids)
    head = (f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" preserveAspectRatio="xMinYMin meet" '
            f'aria-labelledby="chart-{n}-title chart-{n}-desc" xmlns="http://www.w3.org/2000/svg">'
            f'<title id="chart-{n}-title">{escape(title)}</title><desc id="chart-{n}-desc">{escape(description)}</desc>')
    return head, []


def bar_chart(title: str, items: Sequence[tuple[str, float]], *, value_label: str = "value",
              fmt: Callable[[float], str] = number, description: str = "",
              notes: tuple[str, Sequence[str]] | None = None) -> Chart:
    """Horizontal bars, one per ``(label, value)``, largest first as given.

    ``notes`` (a column name, one text per item) puts a note beside each value, and a
    column in the data table: what the value counts, e.g. ``28 / 32 unique used``.
    """
    items = list(items)
    note_label, note_texts = notes or ("", [""] * len(items))
    width, left, right, row = 960, 200, 260 if notes else 90, 26
    height = 20 + row * max(len(items), 1)
    head, body = _open(title, description or f"{title}: " + ", ".join(f"{k} {fmt(v)}" for k, v in items[:20]),
                       width, height)
    top = max((v for _, v in items), default=0) or 1.0
    span = width - left - right
    for i, (label, value) in enumerate(items):
        y = 10 + i * row
        bar = max(span * value / top, 1.0 if value > 0 else 0.0)
        short = label if len(label) <= 28 else label[:26] + "…"
        body.append(f'<text x="{left - 8}" y="{y + 16}" text-anchor="end" class="label">{escape(short or "(none)")}'
                    f'<title>{escape(label)}</title></text>'
                    f'<rect x="{left}" y="{y + 3}" width="{bar:.1f}" height="{row - 8}" rx="2" '
                    f'fill="{PALETTE[0]}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
                    f'<text x="{left + bar + 6:.1f}" y="{y + 16}" class="value">{escape(fmt(value))}'
                    + (f' <tspan class="note">{escape(note_texts[i])}</tspan>' if note_texts[i] else "")
                    + '</text>')
    if not items:
        body.append(f'<text x="{width / 2}" y="24" text-anchor="middle" class="muted">no data</text>')
    svg = head + "".join(body) + "</svg>"
    if notes:
        return Chart(title, mark_safe(svg), ["label", value_label, note_label],
                     [[k or "(none)", fmt(v), note] for (k, v), note in zip(items, note_texts)], description)
    return Chart(title, mark_safe(svg), ["label", value_label], [[k or "(none)", fmt(v)] for k, v in items],
                 description)


def histogram(title: str, edges: Sequence[float], series: dict[str, Sequence[int]], *, x_label: str = "score",
              description: str = "") -> Chart:
    """Stacked vertical bars over ``len(edges) - 1`` bins, one colour per series."""
    width, height, left, bottom, right = 960, 320, 60, 48, 16
    legend, top_pad = _legend(list(series), [PALETTE[i % len(PALETTE)] for i in range(len(series))], left, width)
    names = list(series)
    totals = [sum(values[i] for values in series.values()) for i in range(len(edges) - 1)]
    ymax = max(totals, default=0) or 1
    yticks = nice_ticks(0, ymax)
    ymax = max(yticks[-1], ymax)
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    head, body = _open(title, description or f"{title}: {sum(totals)} documents in {len(totals)} bins of {x_label}",
                       width, height)
    body.append(legend)
    for tick in yticks:
        y = top_pad + plot_h * (1 - tick / ymax)
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                    f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{number(tick)}</text>')
    bins = len(edges) - 1
    bar_w = plot_w / max(bins, 1)
    span = (edges[-1] - edges[0]) if bins > 0 else 0.0

    def edge(value: float) -> str:
        return number(value, scale=span)

    for i in range(bins):
        base = 0
        for j, name in enumerate(names):
            count = series[name][i]
            if count <= 0:
                continue
            y0 = top_pad + plot_h * (1 - base / ymax)
            y1 = top_pad + plot_h * (1 - (base + count) / ymax)
            body.append(f'<rect x="{left + i * bar_w + 0.5:.1f}" y="{y1:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                        f'height="{y0 - y1:.1f}" fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(name)} '
                        f'{edge(edges[i])}–{edge(edges[i + 1])}: {count}</title></rect>')
            base += count
    # Round x ticks where they fall, not the bin edges' own values (rarely round numbers).
    low, high = edges[0], edges[-1]
    for tick in nice_ticks(low, high, 8) if high > low else []:
        if low - span * 1e-9 <= tick <= high + span * 1e-9:
            x = left + plot_w * (tick - low) / (high - low)
            body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h + 4}" '
                        f'class="axis"/><text x="{x:.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                        f'class="tick">{edge(tick)}</text>')
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{top_pad + plot_h}" y2="{top_pad + plot_h}" class="axis"/>'
                f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" class="axis-label">'
                f'{escape(x_label)}</text>')
    svg = head + "".join(body) + "</svg>"
    rows = [[f"{edge(edges[i])} – {edge(edges[i + 1])}", *[str(series[n][i]) for n in names]]
            for i in range(bins)]
    return Chart(title, mark_safe(svg), [x_label, *names], rows, description)


def extent(series: Sequence[Series], *, x_log: bool = False,
           extra_x: Sequence[float] = ()) -> tuple[float, float, float, float] | None:
    """``(x_min, x_max, y_min, y_max)`` of the drawable points and bands, or ``None`` when
    there are none; panels given the same extent share their axes."""
    xs = [x for s in series for x, _ in s.points] + [x for s in series for x, _, _ in s.band] + list(extra_x)
    ys = ([y for s in series for _, y in s.points] + [v for s in series for _, lo, hi in s.band for v in (lo, hi)])
    xs = [x for x in xs if math.isfinite(x) and (x > 0 or not x_log)]
    ys = [y for y in ys if math.isfinite(y)]
    return (min(xs), max(xs), min(ys), max(ys)) if xs and ys else None


def line_chart(title: str, series: Sequence[Series], *, x_label: str, y_label: str, x_log: bool = False,
               description: str = "", vertical_marker: tuple[float, str] | None = None, width: int = 960,
               plot_height: int = 300, axes: tuple[float, float, float, float] | None = None) -> Chart:
    """Lines and scatters on shared axes; bands drawn as translucent areas; optional log x.

    ``axes`` (an :func:`extent`) fixes the data range the axes cover instead of this
    chart's own, so that small multiples compare at a glance.
    """
    left, bottom, right = 64, 48, 20
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    shown = [(s, c) for s, c in zip(series, colors) if s.in_legend]
    legend, top_pad = _legend([s.name for s, _ in shown], [c for _, c in shown], left, width,
                              dashed=[s.dashed for s, _ in shown], points=[not s.connect for s, _ in shown])
    height = top_pad + plot_height + bottom
    plot_w, plot_h = width - left - right, height - top_pad - bottom
    marker_x = [vertical_marker[0]] if vertical_marker and math.isfinite(vertical_marker[0]) else []
    head, body = _open(title, description or title, width, height)
    if extent(series, x_log=x_log) is None:
        body.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="muted">no data</text>')
        return Chart(title, mark_safe(head + "".join(body) + "</svg>"), [], [], description)
    x0, x1, y0, y1 = axes or extent(series, x_log=x_log, extra_x=marker_x)
    if x_log:
        if x1 <= x0:
            x0, x1 = x0 / 2, x1 * 2
        lx0, lx1 = math.log10(x0), math.log10(x1)
        xticks = log_ticks(x0, x1)

        def sx(x):
            return left + plot_w * (math.log10(x) - lx0) / (lx1 - lx0)
    else:
        xticks = nice_ticks(x0, x1)
        x0, x1 = min(x0, xticks[0]), max(x1, xticks[-1])
        if x1 <= x0:
            x1 = x0 + 1

        def sx(x):
            return left + plot_w * (x - x0) / (x1 - x0)
    pad = (y1 - y0) * 0.08 or abs(y1) * 0.1 or 1.0
    yticks = nice_ticks(y0 - pad, y1 + pad)
    y0, y1 = yticks[0], yticks[-1]

    def sy(y):
        return top_pad + plot_h * (1 - (y - y0) / (y1 - y0))

    body.append(legend)
    for tick in yticks:
        body.append(f'<line x1="{left}" x2="{width - right}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}" class="grid"/>'
                    f'<text x="{left - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end" class="tick">{number(tick, scale=y1 - y0)}</text>')
    for tick in xticks:
        body.append(f'<line x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" y1="{top_pad}" y2="{top_pad + plot_h}" '
                    f'class="grid"/><text x="{sx(tick):.1f}" y="{top_pad + plot_h + 16}" text-anchor="middle" '
                    f'class="tick">{number(tick, scale=None if x_log else x1 - x0)}</text>')
    body.append(f'<rect x="{left}" y="{top_pad}" width="{plot_w}" height="{plot_h}" class="frame"/>'
                f'<text x="{left + plot_w / 2}" y="{height - 8}" text-anchor="middle" class="axis-label">'
                f'{escape(x_label)}{" (log scale)" if x_log else ""}</text>'
                f'<text transform="translate(14 {top_pad + plot_h / 2}) rotate(-90)" text-anchor="middle" '
                f'class="axis-label">{escape(y_label)}</text>')
    ok = (lambda x: math.isfinite(x) and x > 0) if x_log else math.isfinite
    for s, color in zip(series, colors):
        band = [(x, lo, hi) for x, lo, hi in sorted(s.band) if ok(x) and math.isfinite(lo) and math.isfinite(hi)]
        if len(band) >= 2:
            upper = " ".join(f"{sx(x):.1f},{sy(hi):.1f}" for x, _, hi in band)
            lower = " ".join(f"{sx(x):.1f},{sy(lo):.1f}" for x, lo, _ in reversed(band))
            body.append(f'<polygon points="{upper} {lower}" fill="{color}" fill-opacity="0.15" stroke="none">'
                        f'<title>{escape(s.name)}: uncertainty band</title></polygon>')
        points = [(x, y) for x, y in (sorted(s.points) if s.connect else s.points) if ok(x) and math.isfinite(y)]
        if s.connect and len(points) >= 2:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
            dash = ' stroke-dasharray="6 4"' if s.dashed else ""
            body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"{dash}/>')
        if s.marker:
            for x, y in points:
                body.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{3.5 if s.connect else 4.5}" '
                            f'fill="{color if s.connect else "white"}" stroke="{color}" stroke-width="2">'
                            f'<title>{escape(s.name)}: {escape(x_label)} {number(x)}, {escape(y_label)} {number(y, 4)}</title>'
                            f'</circle>')
    if vertical_marker and ok(vertical_marker[0]):
        x = sx(vertical_marker[0])
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top_pad}" y2="{top_pad + plot_h}" class="marker"/>'
                    f'<text x="{x + 4:.1f}" y="{top_pad + 14}" class="marker-label">{escape(vertical_marker[1])}</text>')
    svg = head + "".join(body) + "</svg>"
    rows = []
    for s in series:
        bands = {x: (lo, hi) for x, lo, hi in s.band}
        for x, y in sorted(s.points):
            lo, hi = bands.get(x, (None, None))
            rows.append([s.name, number(x), number(y, 4), "" if lo is None else f"{number(lo, 4)} – {number(hi, 4)}"])
    return Chart(title, mark_safe(svg), ["series", x_label, y_label, "band"], rows, description)


@dataclass
class SmallMultiples:
    """One small chart per group (``panels``, each titled with the group's full name) on shared
    axes, and one data table for all of them."""

    title: str
    panels: list[Chart]
    headers: list[str]
    rows: list[list[str]]
    description: str = ""
    #: An SVG key for what every panel draws (e.g. observed points, a fitted curve).
    key: SafeString = mark_safe("")


def small_multiples(title: str, groups: Sequence[tuple[str, Sequence[Series]]], *, x_label: str, y_label: str,
                    x_log: bool = False, description: str = "",
                    key: Sequence[tuple[str, str, str]] = ()) -> SmallMultiples:
    """A :func:`line_chart` per ``(name, series)`` group, every one on the same axes; ``key``
    lists ``(name, colour, style)`` for the styles the panels share (style ``line``,
    ``dashed`` or ``points``)."""
    axes = extent([s for _, series in groups for s in series], x_log=x_log)
    panels = [line_chart(name, series, x_label=x_label, y_label=y_label, x_log=x_log, width=400, plot_height=200,
                         axes=axes, description=f"{description} Panel: {name}.")
              for name, series in groups]
    headers = next((p.headers for p in panels if p.headers), [])
    legend = ""
    if key:
        entries, height = _legend([n for n, _, _ in key], [c for _, c, _ in key], 0, 960,
                                  dashed=[style == "dashed" for *_, style in key],
                                  points=[style == "points" for *_, style in key])
        head, _ = _open(f"Key: {title}", ", ".join(n for n, _, _ in key), 960, int(height))
        legend = head.replace('class="chart"', 'class="chart key"', 1) + entries + "</svg>"
    return SmallMultiples(title, panels, headers, [row for p in panels for row in p.rows], description,
                          mark_safe(legend))


def _legend(names: Sequence[str], colors: Sequence[str], left: float, width: float,
            dashed: Sequence[bool] = (), points: Sequence[bool] = ()) -> tuple[str, float]:
    """Legend entries flowing left to right, wrapping into rows; returns the SVG and the space it takes.

    A name is shown whole unless it is wider than the chart (then cut, whole in its tooltip);
    ``points`` marks the entries drawn as circles (scatters) rather than lines.
    """
    parts, x, y = [], left, 18.0
    fits = max(int((width - left - 44) / 7), 8)
    for i, (name, color) in enumerate(zip(names, colors)):
        label = name if len(name) <= fits else name[:fits - 1] + "…"
        item = 34 + 7 * len(label)
        if x > left and x + item > width - 10:
            x, y = left, y + 20
        if i < len(points) and points[i]:
            swatch = f'<circle cx="{x + 9:.0f}" cy="{y - 4}" r="4.5" fill="white" stroke="{color}" stroke-width="2"/>'
        else:
            dash = ' stroke-dasharray="6 4"' if i < len(dashed) and dashed[i] else ""
            swatch = (f'<line x1="{x:.0f}" x2="{x + 18:.0f}" y1="{y - 4}" y2="{y - 4}" stroke="{color}" '
                      f'stroke-width="{3 if dash else 6}"{dash}/>')
        parts.append(f'{swatch}<text x="{x + 24:.0f}" y="{y}" class="legend">{escape(label)}'
                     f'<title>{escape(name)}</title></text>')
        x += item
    return "".join(parts), (y + 16 if names else 16)
