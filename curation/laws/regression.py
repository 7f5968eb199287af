r"""A regression law for users with many pilot runs: Data Mixing Laws per size, extrapolated in log N.

At each pilot size :math:`N_s` the metric of a mixture :math:`w` on the simplex follows the
exponential mixing law of Ye et al. (2024),

.. math::

    \mathrm{metric}_s(w) = c_s \mp \exp\Big(\sum_j t_{s,j} \, w_j\Big)
    \qquad (- \text{ for a score}, + \text{ for a loss}),

(their :math:`c + k \exp(\sum_j t_j r_j)`, with :math:`\log k` folded into :math:`t` since
:math:`\sum_j w_j = 1`), fitted by least squares to the pilot mixtures of that size; between and
beyond the sizes the metric is Projektor's parameter-free stage 2 (Kang et al. 2023, DESIGN.md
3.4), linear in :math:`\log N` between the two nearest sizes :math:`N_0 < N_1`:

.. math::

    P(N, w) = \frac{\log(N / N_0) \, P(N_1, w) - \log(N / N_1) \, P(N_0, w)}{\log(N_1 / N_0)}.

Why this form and not a gradient-boosted regressor (RegMix's LightGBM): with the tens of pilots
per size our users have, :math:`P + 1` parameters per size are identifiable where a tree
ensemble over-fits; the exponential form is monotone in each pool's weight and smooth on the
simplex, so its optimum is found by gradient methods and generalises to mixtures no pilot ran;
Ye et al. report it predicting held-out mixtures of 1B-parameter runs, and RegMix's ranking
study (Spearman 0.96-0.97 from tiny proxies to 1B models) holds for any regressor that ranks
mixtures well. What it cannot do is know a pool's size: repetition enters only as far as the
pilots show it, and far outside their sizes the log-linear extrapolation is flagged (the band
widens by the doublings outside, :mod:`curation.laws.base`).

References
----------
J. Ye, P. Liu, T. Sun, Y. Zhou, J. Zhan and X. Qiu, "Data Mixing Laws: Optimizing Data
Mixtures by Predicting Language Modeling Performance", 2024.
Q. Liu et al., "RegMix: Data Mixture as Regression for Language Model Pre-training", 2024.
F. Kang et al., "Performance Scaling via Optimal Transport", NeurIPS 2023 (stage 2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares, minimize

from curation.laws.base import (Allocation, FitRange, Observation, PerformanceLaw, Pool, check_budget, check_pools,
                                observation_arrays, origin_of, pool_of_row, pool_row, range_parameters, register,
                                stored_range)

#: Two pilot sizes within this relative difference are one size.
SIZE_TOLERANCE = 1e-6
_T_BOUND = 50.0


@register
@dataclass(frozen=True)
class MixingLaw(FitRange, PerformanceLaw):
    """The law of the module docstring: kind ``mixing_law``; ``sizes`` (S,) ascending, ``c`` (S,)
    and ``t`` (S, P) per size."""

    kind = "mixing_law"

    pools: tuple[Pool, ...]
    sizes: tuple[float, ...]
    c: tuple[float, ...]
    t: tuple[tuple[float, ...], ...]
    higher_is_better: bool
    value_range: tuple[float, float] = (-math.inf, math.inf)

    @property
    def _sign(self) -> float:
        return -1.0 if self.higher_is_better else 1.0

    def per_size(self, weights) -> np.ndarray:
        """:math:`\\mathrm{metric}_s(w)` (..., S) for ``weights`` (..., P)."""
        exponent = np.asarray(weights, dtype=np.float64) @ np.asarray(self.t).T
        return np.asarray(self.c) + self._sign * np.exp(np.minimum(exponent, 700.0))

    def _segment(self, n) -> tuple[np.ndarray, np.ndarray]:
        """Index j (...) of the segment [N_j, N_j+1] used at ``n`` and the weight of N_j+1 in it."""
        log_sizes = np.log(self.sizes)
        log_n = np.log(np.asarray(n, dtype=np.float64))
        j = np.clip(np.searchsorted(log_sizes, log_n) - 1, 0, len(log_sizes) - 2)
        alpha = (log_n - log_sizes[j]) / (log_sizes[j + 1] - log_sizes[j])
        return j, alpha

    def metric_at(self, shown) -> np.ndarray:
        shown = np.asarray(shown, dtype=np.float64)
        n = shown.sum(-1)
        values = self.per_size(shown / n[..., None])
        j, alpha = self._segment(n)
        low = np.take_along_axis(values, j[..., None], -1)[..., 0]
        high = np.take_along_axis(values, (j + 1)[..., None], -1)[..., 0]
        return (1 - alpha) * low + alpha * high

    def optimize(self, budget: float) -> Allocation:
        """The best mixture at ``budget``: SLSQP on the simplex from the uniform mixture and the five best
        single pools, with the analytic gradient; the best end point is kept."""
        check_budget(budget)
        j, alpha = self._segment(budget)
        t = np.asarray(self.t)[[j, j + 1]]  # (2, P)
        mix = np.array([1 - alpha, alpha])
        # the metric is sum_k mix_k (c_k -+ exp(t_k w)): for a score (-) and a loss (+) alike the best
        # mixture minimises sum_k mix_k exp(t_k w)

        def objective(w):
            e = np.exp(np.minimum(t @ w, 700.0))
            return float(mix @ e), (mix * e) @ t

        p = len(self.pools)
        singles = np.eye(p)
        order = np.argsort([objective(v)[0] for v in singles])[:5]
        starts = [np.full(p, 1.0 / p)] + [0.9 * singles[i] + 0.1 / p for i in order]
        best = None
        for start in starts:
            result = minimize(objective, start, jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * p,
                              constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1.0, "jac": lambda w: np.ones(p)}],
                              options={"maxiter": 200, "ftol": 1e-12})
            w = np.clip(result.x, 0.0, None)
            w = w / w.sum()
            value = objective(w)[0]
            if best is None or value < best[0]:
                best = (value, w)
        for i in order:  # a vertex the solver may miss
            if objective(singles[i])[0] < best[0]:
                best = (objective(singles[i])[0], singles[i])
        weights = np.where(best[1] < 1e-6, 0.0, best[1])
        return self._allocation(budget, budget * weights / weights.sum())

    def parameters(self) -> dict:
        return {"sizes": list(self.sizes), "c": list(self.c)} | range_parameters(self)

    def pool_rows(self) -> list[dict]:
        t = np.asarray(self.t)
        return [pool_row(p) | {"t": [float(v) for v in t[:, i]]} for i, p in enumerate(self.pools)]

    @classmethod
    def from_stored(cls, parameters: Mapping, pools: Sequence[Mapping], provenance: Mapping[str, str]) -> "MixingLaw":
        t = np.array([[float(v) for v in p["t"]] for p in pools]).T
        return cls(pools=tuple(pool_of_row(p) for p in pools), sizes=tuple(map(float, parameters["sizes"])),
                   c=tuple(map(float, parameters["c"])), t=tuple(tuple(map(float, row)) for row in t),
                   **stored_range(parameters), provenance=dict(provenance))

    @classmethod
    def minimum_observations(cls, pools: int) -> int:
        """``pools + 2`` at each of two sizes."""
        return 2 * (pools + 2)

    @classmethod
    def fit(cls, pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
            **options) -> "MixingLaw":
        """:func:`fit_mixing_law`."""
        return fit_mixing_law(pools, observations, higher_is_better=higher_is_better, **options)


def size_groups(sizes: np.ndarray) -> list[np.ndarray]:
    """Indices of the observations at each distinct size (ascending), sizes equal within :data:`SIZE_TOLERANCE`."""
    order = np.argsort(sizes, kind="stable")
    groups, current = [], [order[0]]
    for i in order[1:]:
        if sizes[i] <= sizes[current[0]] * (1 + SIZE_TOLERANCE):
            current.append(i)
        else:
            groups.append(np.array(current))
            current = [i]
    return groups + [np.array(current)]


def _fit_size(w: np.ndarray, y: np.ndarray, sign: float) -> tuple[float, np.ndarray]:
    """``(c, t)`` of one size: a grid over ``c`` beyond the best observation with ``t`` by linear least
    squares on ``log |y - c|``, refined by nonlinear least squares on the metric itself."""
    spread = max(float(np.ptp(y)), 1e-9 * max(1.0, float(np.abs(y).max())))
    edge = float(y.max()) if sign < 0 else float(y.min())  # c lies beyond the best observation
    best = None
    for q in np.geomspace(1e-3, 1e2, 16):
        c = edge - sign * q * spread
        t, *_ = np.linalg.lstsq(w, np.log(np.abs(y - c)), rcond=None)
        cost = float(np.sum((c + sign * np.exp(np.clip(w @ t, -700, 700)) - y) ** 2))
        if best is None or cost < best[0]:
            best = (cost, c, t)
    _, c, t = best
    x0 = np.concatenate([[c], np.clip(t, -_T_BOUND + 1e-9, _T_BOUND - 1e-9)])
    lower = np.concatenate([[-np.inf], np.full(len(t), -_T_BOUND)])
    upper = np.concatenate([[np.inf], np.full(len(t), _T_BOUND)])
    result = least_squares(lambda x: x[0] + sign * np.exp(w @ x[1:]) - y, x0, bounds=(lower, upper),
                           x_scale="jac", max_nfev=400)
    return float(result.x[0]), result.x[1:]


def fit_mixing_law(pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
                   far: float = 0.0, start: MixingLaw | None = None) -> MixingLaw:
    """Fit :math:`(c_s, t_s)` at every pilot size with at least ``P + 2`` observations (each size's fit
    is cheap and starts from its own grid: ``start`` is accepted like the other laws' and not needed).

    ``ValueError`` unless two sizes have that many (the law extrapolates in size between two).
    """
    pools = check_pools(pools)
    p = len(pools)
    law0 = MixingLaw(pools=pools, sizes=(1.0, 2.0), c=(0.0, 0.0), t=((0.0,) * p,) * 2,
                     higher_is_better=higher_is_better)
    w, n, y = observation_arrays(law0, observations, minimum=MixingLaw.minimum_observations(p))
    groups = [g for g in size_groups(n) if len(g) >= p + 2]
    if len(groups) < 2:
        raise ValueError(f"the mixing law needs at least {p + 2} observations (pools + 2) at each of two sizes; "
                         f"the sizes observed have {sorted(len(g) for g in size_groups(n))}")
    sign = law0._sign
    fits = [_fit_size(w[g], y[g], sign) for g in groups]
    sizes = tuple(float(np.median(n[g])) for g in groups)
    used = np.concatenate(groups)
    law = replace(law0, sizes=sizes, c=tuple(c for c, _ in fits), t=tuple(tuple(map(float, t)) for _, t in fits),
                  far=far)
    shown = w[used] * n[used, None]
    residual = law.metric_at(shown) - y[used]
    t = np.asarray(law.t)
    at_bound = {f"t[{pool.name}]": f"fit ended on its bound +-{_T_BOUND:g} at some size; kept"
                for i, pool in enumerate(pools) if np.any(np.abs(t[:, i]) >= _T_BOUND - 1e-6)}
    origin = origin_of(observations)
    return replace(law, rmse=float(np.sqrt(np.mean(residual ** 2))), observed_sizes=(sizes[0], sizes[-1]),
                   observed_repetitions=float((shown / law.unique).max()), provenance={"c": origin, "t": origin},
                   at_bound=at_bound)
