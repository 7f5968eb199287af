"""The product's proxy path on real data: BBC News sources as pools, two MMLU groups as targets
(the question ``Predictions you can trust``): no fitted parameter sits on a bound unreported,
the frontier stays in the metric's range, and a prediction is flagged extrapolated exactly when
its budget or repetitions leave what the proxy pilots covered."""
from __future__ import annotations

import math

import numpy as np
import pytest

from curation.laws import Pool
from curation.laws.backtest import select_law
from curation.laws.base import metric_range
from curation.mixture import BOUNDS, MixtureLaw
from curation.pilots import METRIC, known_metric_range, proxy_observations
from tests.shared import load_jsonl, shared_path


@pytest.fixture(scope="module")
def bbc_proxy():
    rows = load_jsonl(shared_path("corpora/bbc_news.jsonl"))
    targets = [r["text"] for name in ("mmlu_business_economics", "mmlu_politics_world")
               for r in load_jsonl(shared_path(f"benchmarks/{name}.jsonl"))[:300]]
    sources = sorted({r["source"] for r in rows})
    texts = {s: [r["text"] for r in rows if r["source"] == s] for s in sources}
    observations = proxy_observations(texts, targets, seed=0)
    pools = [Pool(s, len(texts[s])) for s in sources]
    values = [o.value for o in observations]
    value_range = metric_range(values, higher_is_better=False, known=known_metric_range(METRIC))
    law, report = select_law(pools, observations, higher_is_better=False, value_range=value_range)
    return law, report, observations


def test_no_parameter_sits_on_a_bound_unreported(bbc_proxy):
    law, report, _ = bbc_proxy
    assert report["chosen"] == law.kind and report["selected_by"] == "both"
    if isinstance(law, MixtureLaw):
        for name, (low, high) in BOUNDS.items():
            if law.provenance[name] == "defaults" and name not in law.at_bound:
                continue  # not fitted (e.g. gamma without an OT feature): it keeps its default
            value = getattr(law, name)
            on_bound = any(math.isfinite(b) and abs(value - b) <= 1e-6 * max(1.0, abs(b)) for b in (low, high))
            assert not on_bound or name in law.at_bound, f"{name}={value} sits on its bound unreported"
            if name in law.at_bound and law.provenance[name] == "defaults":
                assert "default" in law.at_bound[name]
    assert law.provenance.get("half_lives", "defaults") == "defaults", "a bigram proxy cannot identify them"


def test_the_frontier_stays_in_range_and_flags_exactly_what_lies_outside(bbc_proxy):
    law, _, observations = bbc_proxy
    low_n, high_n = law.observed_sizes
    assert (low_n, high_n) == (min(o.size for o in observations), max(o.size for o in observations))
    budgets = np.geomspace(low_n / 100, high_n * 100, 15)
    rows = law.frontier(budgets)
    for row in rows:
        assert 0.0 <= row["low"] <= row["value"] <= row["high"] < math.inf, row
        assert not row["clamped"], "a best mixture's cross-entropy the law puts below 0"
        allocation = law.optimize(row["budget"])
        repetitions = float(allocation.repetitions.max())
        outside = (row["budget"] < low_n * (1 - 1e-9) or row["budget"] > high_n * (1 + 1e-9)
                   or repetitions > max(law.observed_repetitions, 1.0) * (1 + 1e-9))
        assert row["extrapolated"] == outside, (row["budget"], repetitions, law.observed_repetitions)
    values = [row["value"] for row in rows]
    assert np.all(np.diff(values) <= 1e-9), "more budget never raises the best mixture's cross-entropy"
    assert rows[0]["extrapolated"] and rows[-1]["extrapolated"]
    assert any(not row["extrapolated"] for row in rows), "budgets inside the pilots' sizes are not flagged"
