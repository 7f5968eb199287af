"""The tiny-LM pilot trainer on real data (:mod:`curation.tinylm`): it learns, it is deterministic,
and it measures repetition (what a bigram proxy cannot: tests/curation/test_law_real_proxy.py)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from curation.laws import Observation, Pool
from curation.mixture import BOUNDS, fit_mixture_law
from curation.tinylm import TinyLMConfig, tokenize, train_pilot
from tests.shared import load_jsonl, shared_path

#: CPU-sized: 1,024 tokens a step. At 5e-3 a few thousand tokens repeated 4 times already score worse than
#: one pass over them (memorisation outweighs the extra steps, which no half-life can describe); at 2e-3
#: repetition helps less and less, the regime of Muennighoff et al.
SMALL = TinyLMConfig(context=128, batch_size=8, learning_rate=2e-3)
FAST = TinyLMConfig(context=128, batch_size=8, learning_rate=5e-3)


@pytest.fixture(scope="module")
def bbc():
    rows = load_jsonl(shared_path("corpora/bbc_news.jsonl"))
    order = np.random.default_rng(0).permutation(len(rows))
    return [rows[i] for i in order]


def unigram_entropy(documents: list[np.ndarray]) -> float:
    """The entropy (nats per token) of the texts' own unigram distribution: what a unigram model fitted
    to the evaluation texts themselves would score."""
    counts = np.bincount(np.concatenate(documents))
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def test_the_trainer_learns_and_the_same_seed_gives_the_same_loss(bbc):
    train, held = tokenize([r["text"] for r in bbc[:1500]]), tokenize([r["text"] for r in bbc[2100:2200]])
    entropy = unigram_entropy(held)
    result = train_pilot(train, held, FAST, seed=0, max_tokens=300_000)
    assert result.tokens == 300_000 and result.device == "cpu"
    assert result.value < entropy - 0.2, (result.value, entropy)
    assert result.curve[0][1] > result.curve[-1][1] + 1.5, "the training loss falls"
    assert [t for t, _ in result.curve] == sorted(t for t, _ in result.curve) and result.curve[-1][0] == 300_000

    again = [train_pilot(train, held, SMALL, seed=seed, max_tokens=6_000).value for seed in (1, 1, 2)]
    assert abs(again[0] - again[1]) <= 1e-6, again
    assert abs(again[0] - again[2]) > 1e-4, "another seed, another initialisation"


def test_bad_input_fails_before_training():
    with pytest.raises(ValueError, match="budget"):
        train_pilot([np.arange(2, 50)], [np.arange(2, 9)], SMALL, max_tokens=0)
    with pytest.raises(ValueError, match="target"):
        train_pilot([np.arange(2, 50)], [np.zeros(0, dtype=np.int64)], SMALL)
    with pytest.raises(ValueError, match="no tokens"):
        train_pilot([], [np.arange(2, 9)], SMALL)


def test_it_measures_repetition_and_the_fit_places_the_half_life_inside_its_bounds(bbc):
    business = [r["text"] for r in bbc if r["source"] == "business"]
    n = 64
    pool, held = tokenize(business[:n]), tokenize(business[400:460])

    def run(unique: int, size: int) -> float:
        order = np.resize(np.random.default_rng(unique).permutation(unique), size)
        return train_pilot([pool[i] for i in order], held, SMALL, seed=0).value

    same_budget = {k: run(k, n) for k in (n, n // 4, n // 16)}
    # the same tokens on fewer unique documents (4 and 16 repetitions): worse than on n unique documents,
    # and the gap grows with the repetitions
    gaps = [same_budget[n // 4] - same_budget[n], same_budget[n // 16] - same_budget[n]]
    assert gaps[1] > gaps[0] > 0.05, (gaps, same_budget)
    fresh = {size: run(n, size) for size in (n // 4, n // 2)}
    # a pool per unique count (the smaller ones are the first documents of the larger): one source, so one
    # utility and one half-life (no per-pool offsets), the pools differ only in their unique documents
    pools = [Pool(f"first_{k}", k) for k in same_budget]
    observations = ([Observation({f"first_{k}": 1.0}, n, value, origin="tiny_lm") for k, value in same_budget.items()]
                    + [Observation({f"first_{n}": 1.0}, size, value, origin="tiny_lm") for size, value in fresh.items()])
    law = fit_mixture_law(pools, observations, higher_is_better=False, per_pool=False)
    low, high = BOUNDS["tau"]
    assert low < law.tau < high and "tau" not in law.at_bound, (law.tau, law.at_bound)
    assert law.provenance["tau"] == "tiny_lm"
    assert math.isfinite(law.rmse)
