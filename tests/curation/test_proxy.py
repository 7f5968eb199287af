from __future__ import annotations

import math

import numpy as np
import pytest

from curation.proxy import BigramProxy, token_ids
from tests.shared import load_jsonl, shared_path


def test_probabilities_match_the_formula_by_hand():
    model = BigramProxy(buckets=1000, discount=0.5).fit(["a b a b a c"])
    a, b, c = (token_ids(w, 1000)[0] for w in "abc")
    # counts: a=3, b=2, c=1 (N=6); pairs ab=2, ba=2, ac=1; context a: c=3 with 2 types
    p1 = {t: (n + 1) / (6 + 1000) for t, n in ((a, 3), (b, 2), (c, 1))}
    expected_b_after_a = (2 - 0.5) / 3 + 0.5 * 2 / 3 * p1[b]
    expected_c_after_a = (1 - 0.5) / 3 + 0.5 * 2 / 3 * p1[c]
    logs = model.token_log_probs("a b a c")
    np.testing.assert_allclose(np.exp(logs[[0, 2]]), [expected_b_after_a, expected_c_after_a], rtol=1e-12)
    # b's only successor is a: P(a|b) = (2-.5)/2 + .5*1/2*P1(a)
    np.testing.assert_allclose(np.exp(logs[1]), 1.5 / 2 + 0.25 * p1[a], rtol=1e-12)


def test_distribution_sums_to_one_over_the_vocabulary():
    model = BigramProxy(buckets=50, discount=0.75).fit(["x y z x y", "y z z x"])
    everything = np.arange(50)
    for context in (token_ids("x", 50)[0], token_ids("unseen", 50)[0]):
        total = model.conditional(np.full(50, context), everything).sum()
        assert math.isclose(float(total), 1.0, rel_tol=1e-9), context


def test_in_domain_training_text_gives_lower_benchmark_cross_entropy():
    records = load_jsonl(shared_path("corpora/ag_news_test.jsonl"))
    science = [r["text"] for r in load_jsonl(shared_path("benchmarks/sciq_test.jsonl"))]
    sports = [r["text"] for r in load_jsonl(shared_path("benchmarks/bbh_sports_understanding.jsonl"))]
    by_source = {s: BigramProxy().fit(r["text"] for r in records if r["source"] == s)
                 for s in ("Sci/Tech", "Sports", "Business", "World")}
    sci_ce = {s: m.cross_entropy(science) for s, m in by_source.items()}
    sports_ce = {s: m.cross_entropy(sports) for s, m in by_source.items()}
    print("sciq CE by source", sci_ce, "\nbbh sports CE by source", sports_ce)
    assert min(sci_ce, key=sci_ce.get) == "Sci/Tech"
    assert min(sports_ce, key=sports_ce.get) == "Sports"


def test_rejects_bad_parameters_and_empty_evaluation():
    with pytest.raises(ValueError, match="discount"):
        BigramProxy(discount=1.5)
    with pytest.raises(ValueError, match="no token pairs"):
        BigramProxy(buckets=10).fit(["a b"]).cross_entropy(["single"])
