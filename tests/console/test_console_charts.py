"""The console's SVG charts on their own: tick labels and the values they print."""
from __future__ import annotations

import re

import numpy as np

from api.console import charts


def _ticks(svg: str) -> list[str]:
    return re.findall(r'class="tick">([^<]*)</text>', svg)


def test_a_histogram_prints_zero_where_a_bin_edge_is_floating_residue():
    # Scores from -1/3 to 2/3 (float32 scores read back as float64): the tenth of 30 bin
    # edges, where the axis crosses 0, is 3.7e-05 away from it.
    edges = (np.linspace(-1 / 3, 2 / 3, 31) + 3.7e-05).tolist()
    assert abs(edges[10]) < 1e-4 and edges[10] != 0
    chart = charts.histogram("scores", edges, {"kept": [1] * 30, "dropped": [2] * 30})
    x_ticks = [t for t in _ticks(chart.svg) if not t.isdigit()]  # the y ticks count documents
    assert "0" in _ticks(chart.svg) and x_ticks == ["-0.2", "0.2", "0.4", "0.6"], _ticks(chart.svg)
    assert "e-0" not in chart.svg, "no residue in tick labels or bar titles"
    assert chart.rows[10][0] == "0 – 0.0334", chart.rows[9:11]


def test_number_snaps_residue_only_at_the_scale_given():
    assert charts.number(3.7e-05) == "3.70e-05", "without a scale a small value is a small value"
    assert charts.number(3.7e-05, scale=1.0) == "0"
    assert charts.number(3.7e-05, scale=0.01) == "3.70e-05", "on a narrow axis it is real"
    assert charts.number(-1e-17, scale=2.0) == "0"


def test_nice_ticks_are_round_and_cross_zero_exactly():
    assert charts.nice_ticks(-0.3, 0.7) == [-0.4, -0.2, 0.0, 0.2, 0.4, 0.6, 0.8]
    assert charts.nice_ticks(-3e-13, 7e-13) == [-4e-13, -2e-13, 0.0, 2e-13, 4e-13, 6e-13, 8e-13], \
        "tiny ranges keep distinct ticks"
    ticks = charts.nice_ticks(0.1 - 1e-10, 0.9)
    assert ticks[0] == 0.0 and str(ticks[1]) == "0.2"


def test_bar_notes_stand_beside_the_value_and_in_the_table():
    chart = charts.bar_chart("Repetitions per pool", [("web", 0.875)], fmt=lambda v: f"{v:.2f}×",
                             value_label="repetitions", notes=("unique used / available", ["28 / 32 unique used"]))
    assert re.search(r'class="value">0\.88× <tspan class="note">28 / 32 unique used</tspan>', chart.svg)
    assert chart.headers == ["label", "repetitions", "unique used / available"]
    assert chart.rows == [["web", "0.88×", "28 / 32 unique used"]]


def test_small_multiples_share_their_axes_and_key():
    near = charts.Series("a", [(10.0, 0.1), (20.0, 0.2)])
    far = charts.Series("b", [(1000.0, 0.8), (2000.0, 0.9)])
    multiples = charts.small_multiples("runs", [("a", [near]), ("b", [far])], x_label="size", y_label="value",
                                       x_log=True, key=[("observed", "#000000", "points"), ("fitted", "#111111",
                                                                                            "dashed")])
    assert [p.title for p in multiples.panels] == ["a", "b"]
    assert _ticks(multiples.panels[0].svg) == _ticks(multiples.panels[1].svg)
    assert "10" in _ticks(multiples.panels[0].svg) and "1k" in _ticks(multiples.panels[0].svg)
    assert [row[0] for row in multiples.rows] == ["a", "a", "b", "b"]
    assert '<circle cx="9"' in multiples.key and 'stroke-dasharray="6 4"' in multiples.key


def test_legend_names_are_whole_unless_wider_than_the_chart():
    name = "science 0.36 · travel 0.23 · finance 0.15 · web 0.093 · sports 0.081 · cooking 0.078"
    chart = charts.line_chart("t", [charts.Series(name, [(1.0, 1.0), (2.0, 2.0)])], x_label="x", y_label="y")
    assert f'class="legend">{name}<title>' in chart.svg
    huge = "x" * 400
    chart = charts.line_chart("t", [charts.Series(huge, [(1.0, 1.0), (2.0, 2.0)])], x_label="x", y_label="y")
    assert "…<title>" + huge + "</title>" in chart.svg
