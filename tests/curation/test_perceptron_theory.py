"""Reference test of DESIGN.md 3.2: the teacher-student perceptron of Sorscher et al. 2022
("Beyond neural scaling laws: beating power law scaling via data pruning", section 2).

A teacher ``T`` (unit vector in ``R^N``, ``N = 100``) labels ``P = alpha_tot * N`` inputs
``x ~ N(0, I_N)`` with ``sign(T . x)``. A probe ``T'`` at angle ``theta`` from ``T``
(``theta = 0``: the teacher itself) ranks them by margin ``|T' . x|``; keep-hard keeps the
fraction ``f`` of smallest margins, keep-easy the largest, so the student sees
``alpha_prune = f * alpha_tot`` examples per dimension. The student is L2-regularised
logistic regression with a weak penalty (``C = 1e4``: on separable data close to the
max-margin perceptron of the paper's theory), and its generalisation error is the
angle to the teacher over ``pi``:

.. math::

    \\varepsilon = \\frac{1}{\\pi} \\arccos \\frac{J \\cdot T}{\\lVert J \\rVert \\lVert T \\rVert}

Every figure is the mean over the same six seeds (the same pools for every policy, so
the comparisons are paired). The claims checked are the paper's Fig. 1 and 2 in
miniature: keep-easy wins at small ``alpha_tot``, keep-hard at large; at fixed
``alpha_prune`` the error with a perfect probe falls faster than a power law as the pool
grows; with a probe 20 degrees off, aggressive keep-hard collapses.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

N = 100
SEEDS = range(6)


@lru_cache(maxsize=None)
def _error(alpha_tot: int, fraction: float, keep: str, probe_degrees: float, seed: int) -> float:
    """Generalisation error of the student trained on the pruned pool of one seed."""
    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=N)
    teacher /= np.linalg.norm(teacher)
    other = rng.normal(size=N)
    other -= (other @ teacher) * teacher
    other /= np.linalg.norm(other)
    angle = np.deg2rad(probe_degrees)
    probe = np.cos(angle) * teacher + np.sin(angle) * other
    x = rng.normal(size=(alpha_tot * N, N))
    y = np.sign(x @ teacher)
    order = np.argsort(np.abs(x @ probe), kind="stable")  # easiest last
    kept = round(fraction * len(x))
    chosen = order[:kept] if keep == "hard" else order[len(x) - kept:]
    with threadpool_limits(1):
        student = LogisticRegression(C=1e4, fit_intercept=False, max_iter=1000).fit(x[chosen], y[chosen]).coef_[0]
    return float(np.arccos(np.clip(student @ teacher / np.linalg.norm(student), -1.0, 1.0)) / np.pi)


def error(alpha_tot: int, fraction: float, keep: str, probe_degrees: float = 0.0) -> float:
    return float(np.mean([_error(alpha_tot, fraction, keep, probe_degrees, seed) for seed in SEEDS]))


def pareto_error(alpha_tot: int, alpha_prune: int, probe_degrees: float = 0.0) -> float:
    """Best error with ``alpha_prune`` examples kept from a pool of at most ``alpha_tot``: over
    the kept fractions ``alpha_prune / a`` for pools ``a`` on a doubling grid, and both policies."""
    pools = [a for a in (4, 8, 16, 32) if alpha_prune <= a <= alpha_tot]
    return min(error(a, alpha_prune / a, keep, probe_degrees) for a in pools for keep in ("hard", "easy"))


def test_keep_easy_wins_when_data_is_scarce_and_keep_hard_when_abundant():
    table = {alpha: {keep: float(np.mean([error(alpha, f, keep) for f in (0.5, 0.6)])) for keep in ("easy", "hard")}
             for alpha in (2, 4, 8, 16, 32)}
    print("alpha_tot: error keep-easy / keep-hard (mean over f = 0.5, 0.6):",
          {alpha: (round(e["easy"], 4), round(e["hard"], 4)) for alpha, e in table.items()})
    for alpha in (2, 4):
        assert table[alpha]["easy"] < 0.85 * table[alpha]["hard"], alpha
    for alpha in (8, 16, 32):
        assert table[alpha]["hard"] < 0.95 * table[alpha]["easy"], alpha


def test_with_the_teacher_as_probe_the_error_at_fixed_alpha_prune_at_least_halves_from_8_to_32():
    errors = {alpha: pareto_error(alpha, 4) for alpha in (4, 8, 16, 32)}
    print("alpha_prune = 4, teacher probe, Pareto error by alpha_tot:", {a: round(e, 4) for a, e in errors.items()})
    assert errors[8] < errors[4]
    assert errors[32] <= 0.5 * errors[8]


def test_with_a_20_degree_probe_aggressive_keep_hard_collapses():
    mild, aggressive = error(8, 0.5, "hard", 20.0), error(32, 0.125, "hard", 20.0)
    unpruned = error(4, 1.0, "hard")
    pareto = {alpha: pareto_error(alpha, 4, 20.0) for alpha in (8, 32)}
    print(f"20-degree probe, alpha_prune = 4: keep-hard of half of alpha_tot = 8 {mild:.4f}, of an eighth of "
          f"alpha_tot = 32 {aggressive:.4f}; no pruning {unpruned:.4f}; Pareto error 8 -> 32 "
          f"{pareto[8]:.4f} -> {pareto[32]:.4f}; teacher probe at 32: {error(32, 0.125, 'hard'):.4f}")
    assert aggressive > mild
    assert aggressive > unpruned, "keeping the probe's hardest eighth is worse than not pruning at all"
    assert aggressive > 3 * error(32, 0.125, "hard")
    assert pareto[32] > 0.5 * pareto[8], "no better-than-power-law gain with an imperfect probe"
