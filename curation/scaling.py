r"""Repetition-aware quality-quantity scaling laws (Goyal et al. 2024; DESIGN.md 3.5).

A pool of :math:`S` unique samples seen :math:`n` times in total is repeated
:math:`K = \lfloor n / S \rfloor` times; every repetition is worth less than the last, its
scaling exponent halving every :math:`\tau` repetitions. With parameters
:math:`(a, b < 0, \tau, d)`, for epochs :math:`k = 0..K`:

.. math::

    b_k = b \, 2^{-k/\tau}, \qquad
    s_k = a \, \min(S (k + 1), n) / 10^5, \qquad
    s'_k = a \, S k / 10^5,

.. math::

    \mathrm{error}(n) = \big(s_0^{\,b_0} + d\big) \prod_{k=1}^{K} \Big(\frac{s_k}{s'_k}\Big)^{b_k}.

Pools :math:`1..p` combined are one pool of :math:`S_1 + \dots + S_p` unique samples with

.. math::

    b_k^{\text{eff}} = \frac1p \sum_{i=1}^p b_i \, 2^{-k / (p \, \tau_i)},

each half-life scaled by the number of pools combined, as the reference code does (the
published figures depend on it). Accuracy is :math:`1 - \mathrm{error}`.

:class:`ScalingLaw` is the formula over named buckets, with the published fit
(:data:`TMARS_DATACOMP_MEDIUM`) and the best-pool frontier with its switch points (the
figures of DESIGN.md 3.5). :class:`GoyalLaw` is the same formula as a performance law of
:mod:`curation.laws` (kind ``goyal``): pools are the buckets, fitted to observations by
:func:`fit_goyal_law`, predicting with a band and optimising at a budget.

References
----------
S. Goyal, P. Maini, Z. C. Lipton, A. Raghunathan and J. Z. Kolter, "Scaling Laws for Data
Filtering -- Data Curation cannot be Compute Agnostic", CVPR 2024.

>>> law = TMARS_DATACOMP_MEDIUM
>>> round(100 * float(law.accuracy(TMARS_POOLS["top10"], 32e6)), 4)
18.2471
>>> law.frontier(TMARS_POOLS, [3e7, 3e8, 3e9]).best
['top10', 'top20', 'top30']
>>> goyal = GoyalLaw.from_scaling_law(law)
>>> round(100 * goyal.predict(union_weights(goyal.pools, TMARS_POOLS["top20"]), 128e6).value, 4)
29.6
>>> {name: round(float(w), 2) for name, w in zip(goyal.names, goyal.optimize(128e6).weights) if w}
{'top0-10': 0.5, 'top10-20': 0.5}
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares

from curation.laws.base import (Allocation, FitRange, Observation, PerformanceLaw, Pool, Prediction, check_budget,
                                check_pools, observation_arrays, origin_of, pool_of_row, pool_row, range_parameters,
                                register, stored_range)

_UNIT = 1e5
_HALF_LIVES_KEPT = 60  # 2**-60 ~ 1e-18: later repetitions change nothing in float64


class ExtrapolationWarning(UserWarning):
    """A prediction far outside the samples-seen or repetition range of the fitted observations."""


@dataclass(frozen=True)
class Bucket:
    """One pool's parameters: exponent ``b`` (< 0), half-life ``tau`` (repetitions) and unique ``size``."""

    b: float
    tau: float
    size: float


@dataclass(frozen=True)
class Frontier:
    """Best pool by budget: ``accuracy`` has shape (n_budgets, n_pools), columns in ``pools`` order."""

    budgets: np.ndarray
    pools: list[str]
    accuracy: np.ndarray
    best: list[str]
    switches: list[tuple[float, str, str]]


@dataclass(frozen=True)
class ScalingLaw:
    """Shared ``a`` and ``d`` and per-bucket ``(b, tau, size)``.

    A pool is a sequence of bucket names, combined as in the module docstring.
    """

    a: float
    d: float
    buckets: Mapping[str, Bucket]

    def error(self, pool: Sequence[str], samples_seen) -> np.ndarray:
        """Predicted error for ``pool`` at each ``samples_seen`` (array-like, > 0)."""
        sizes, b, tau = self._pool(pool)
        n = np.asarray(samples_seen, dtype=np.float64)
        if np.any(~np.isfinite(n)) or np.any(n <= 0):
            raise ValueError(f"samples_seen must be finite and > 0; got {samples_seen!r}")
        chosen = np.ones((n.size, len(sizes)), dtype=bool)
        return combined_error(self.a, self.d, b, tau, sizes, chosen, n.ravel()).reshape(n.shape)

    def accuracy(self, pool: Sequence[str], samples_seen) -> np.ndarray:
        """``1 - error``."""
        return 1.0 - self.error(pool, samples_seen)

    def frontier(self, pools: Mapping[str, Sequence[str]], budgets) -> Frontier:
        """The best of ``pools`` (name -> buckets) at each budget, and where the best one changes.

        Switch points are located by bisection in log-budget between neighbouring budgets
        whose best pool differs (to a relative 1e-6).
        """
        names = list(pools)
        budgets = np.asarray(budgets, dtype=np.float64)
        accuracy = np.stack([self.accuracy(pools[name], budgets) for name in names], axis=-1)
        best_index = accuracy.argmax(-1)
        switches = []
        for i in range(len(budgets) - 1):
            if best_index[i] != best_index[i + 1]:
                low, high = math.log(budgets[i]), math.log(budgets[i + 1])
                while high - low > 1e-6:
                    mid = 0.5 * (low + high)
                    scores = [float(self.accuracy(pools[name], math.exp(mid))) for name in names]
                    low, high = (mid, high) if int(np.argmax(scores)) == best_index[i] else (low, mid)
                switches.append((math.exp(0.5 * (low + high)), names[best_index[i]], names[best_index[i + 1]]))
        return Frontier(budgets=budgets, pools=names, accuracy=accuracy, best=[names[j] for j in best_index],
                        switches=switches)

    def _pool(self, pool: Sequence[str]):
        if isinstance(pool, str):
            pool = (pool,)
        unknown = [name for name in pool if name not in self.buckets]
        if not pool or unknown:
            raise ValueError(f"pool must be a non-empty sequence of bucket names from {sorted(self.buckets)}; "
                             f"got {list(pool)!r}")
        chosen = [self.buckets[name] for name in pool]
        return (np.array([c.size for c in chosen], dtype=np.float64), np.array([c.b for c in chosen]),
                np.array([c.tau for c in chosen]))


def combined_error(a: float, d: float, b, tau, sizes, chosen, n) -> np.ndarray:
    """The error of the module docstring for ``m`` trainings at once: pools ``chosen`` (m, P) bool
    combined, ``n`` (m,) samples seen; ``b``, ``tau`` and ``sizes`` (P,) per pool. Returns (m,).

    Repetitions past :data:`_HALF_LIVES_KEPT` half-lives of the slowest pool change nothing in
    float64 and are not summed; the sum runs in chunks of repetitions, so memory stays bounded.
    """
    chosen = np.asarray(chosen, dtype=np.float64)
    b, tau, sizes = (np.asarray(x, dtype=np.float64) for x in (b, tau, sizes))
    n = np.asarray(n, dtype=np.float64)
    total = chosen @ sizes
    p = chosen.sum(1)
    tau_max = np.where(chosen > 0, tau, 0.0).max(1)
    repetitions = np.minimum(np.floor(n / total), np.ceil(_HALF_LIVES_KEPT * p * tau_max))
    log_product = np.zeros(len(n))
    chunk = max(1, 2_000_000 // max(1, len(n) * len(sizes)))
    for first in range(1, int(repetitions.max(initial=0)) + 1, chunk):
        k = np.arange(first, min(first + chunk, int(repetitions.max()) + 1), dtype=np.float64)
        decay = 0.5 ** (k[None, :, None] / (p[:, None, None] * tau[None, None, :]))  # (m, k, P)
        b_k = (chosen[:, None, :] * b * decay).sum(-1) / p[:, None]
        ratio = np.minimum(total[:, None] * (k + 1), n[:, None]) / (total[:, None] * k)
        log_product += np.where(k[None, :] <= repetitions[:, None], b_k * np.log(ratio), 0.0).sum(1)
    s_0 = a * np.minimum(total, n) / _UNIT
    return (s_0 ** ((chosen * b).sum(1) / p) + d) * np.exp(log_product)


#: Published fit on the T-MARS 10% buckets of DataComp-medium, ImageNet zero-shot error
#: (Goyal et al. 2024): a = 0.025, d = 0.1, buckets of 12.8M samples.
TMARS_DATACOMP_MEDIUM = ScalingLaw(
    a=0.025,
    d=0.1,
    buckets={
        "top0-10": Bucket(b=-0.16, tau=6.7273, size=12.8e6),
        "top10-20": Bucket(b=-0.125, tau=8.5455, size=12.8e6),
        "top20-30": Bucket(b=-0.10, tau=5.2727, size=12.8e6),
        "top30-40": Bucket(b=-0.085, tau=2.2727, size=12.8e6),
    },
)
#: The nested pools of the paper: the best bucket, the best two, ...
TMARS_POOLS = {
    "top10": ("top0-10",),
    "top20": ("top0-10", "top10-20"),
    "top30": ("top0-10", "top10-20", "top20-30"),
    "top40": ("top0-10", "top10-20", "top20-30", "top30-40"),
}


#: How far (in weight) a mixture may be from its pools' size proportions and still be "those pools combined".
_PROPORTION_TOLERANCE = 1e-4
_FIT_PARAMETERS = ("a", "d", "b", "tau")


def union_weights(pools: Sequence[Pool], names: Sequence[str]) -> dict[str, float]:
    """The weights of training on the pools ``names`` combined: each in proportion to its unique documents.

    >>> union_weights([Pool("hi", 100), Pool("lo", 300), Pool("off", 5)], ["hi", "lo"])
    {'hi': 0.25, 'lo': 0.75}
    """
    sizes = {p.name: float(p.unique) for p in pools}
    unknown = sorted(set(names) - set(sizes))
    if unknown or not names:
        raise ValueError(f"names must be a non-empty subset of the pools {sorted(sizes)}; unknown: {unknown}")
    total = sum(sizes[name] for name in names)
    return {name: sizes[name] / total for name in names}


@register
@dataclass(frozen=True)
class GoyalLaw(FitRange, PerformanceLaw):
    """The recursion of the module docstring as the performance law of kind ``goyal`` (:mod:`curation.laws`).

    Every pool is a bucket with its own ``b`` and ``tau`` (tuples in ``pools`` order) and
    its unique size; ``a`` and ``d`` are shared. A mixture is read as the pools it gives
    weight to, combined: the law says nothing about other proportions, so the weights must
    be those of :func:`union_weights` (each pool in proportion to its unique documents),
    else :meth:`predict` and :meth:`fit` raise ``ValueError``. The metric is the accuracy
    :math:`1 - \\mathrm{error}` when ``higher_is_better``, else the error itself (both
    fractions in [0, 1]).

    :meth:`optimize` ranks the pools by their predicted metric alone at the budget and
    chooses the best of the nested combinations "best pool", "best two", ... (the search
    of Goyal et al.; not all :math:`2^P` subsets). :meth:`predict` warns with
    :class:`ExtrapolationWarning` (unless ``warn=False``) when the request is flagged
    ``extrapolated``.
    """

    kind = "goyal"

    pools: tuple[Pool, ...]
    a: float
    d: float
    b: tuple[float, ...]
    tau: tuple[float, ...]
    higher_is_better: bool = True
    value_range: tuple[float, float] = (0.0, 1.0)

    def __post_init__(self):
        if not (len(self.b) == len(self.tau) == len(self.pools)):
            raise ValueError(f"b and tau need one value per pool; got {len(self.b)} and {len(self.tau)} "
                             f"for {len(self.pools)} pools")

    @cached_property
    def scaling_law(self) -> ScalingLaw:
        """The same law as a :class:`ScalingLaw` over buckets named like the pools."""
        return ScalingLaw(a=self.a, d=self.d, buckets={p.name: Bucket(b=b, tau=tau, size=float(p.unique))
                                                       for p, b, tau in zip(self.pools, self.b, self.tau)})

    def chosen(self, shown) -> np.ndarray:
        """The pools (m, P) bool that samples ``shown`` (m, P) train on; ``ValueError`` unless each row is in
        its pools' size proportions."""
        shown = np.atleast_2d(np.asarray(shown, dtype=np.float64))
        chosen = shown > 0
        if not chosen.any(1).all():
            raise ValueError("a mixture needs at least one pool with weight > 0")
        union = self.unique * chosen / (self.unique * chosen).sum(1, keepdims=True)
        off = np.abs(shown / shown.sum(1, keepdims=True) - union).max(1) > _PROPORTION_TOLERANCE
        if off.any():
            names = [name for name, c in zip(self.names, chosen[int(np.argmax(off))]) if c]
            raise ValueError("the goyal law predicts pools combined whole, each weighted by its unique documents: "
                             f"the weights of {names} must be {union_weights(self.pools, names)}")
        return chosen

    def metric_at(self, shown) -> np.ndarray:
        shown = np.asarray(shown, dtype=np.float64)
        rows = shown.reshape(-1, shown.shape[-1])
        error = combined_error(self.a, self.d, self.b, self.tau, self.unique, self.chosen(rows), rows.sum(1))
        return (1.0 - error if self.higher_is_better else error).reshape(shown.shape[:-1])

    def predict(self, weights: Mapping[str, float], budget: float, *, level: float = 0.95,
                warn: bool = True) -> Prediction:
        prediction = super().predict(weights, budget, level=level)
        if warn and prediction.extrapolated:
            low_n, high_n = self.observed_sizes
            warnings.warn(f"predicting at {prediction.outside:.1f} doublings outside the observed range "
                          f"(samples seen {low_n:.3g}..{high_n:.3g}, up to {self.observed_repetitions:.3g} "
                          "repetitions); the band is widened accordingly", ExtrapolationWarning, stacklevel=2)
        return prediction

    def optimize(self, budget: float) -> Allocation:
        """The best nested combination of pools at ``budget`` (class docstring)."""
        check_budget(budget)
        law = self.scaling_law
        order = sorted(self.names, key=lambda name: float(law.error((name,), budget)))
        candidates = {str(k): tuple(order[:k]) for k in range(1, len(order) + 1)}
        best = candidates[law.frontier(candidates, [budget]).best[0]]
        chosen = np.isin(self.names, best)
        return self._allocation(budget, budget * self.unique * chosen / (self.unique * chosen).sum())

    def parameters(self) -> dict:
        return {"a": float(self.a), "d": float(self.d)} | range_parameters(self)

    def pool_rows(self) -> list[dict]:
        return [pool_row(p) | {"b": float(b), "tau": float(tau)} for p, b, tau in zip(self.pools, self.b, self.tau)]

    @classmethod
    def from_stored(cls, parameters: Mapping, pools: Sequence[Mapping], provenance: Mapping[str, str]) -> "GoyalLaw":
        return cls(pools=tuple(pool_of_row(p) for p in pools), a=float(parameters["a"]), d=float(parameters["d"]),
                   b=tuple(float(p["b"]) for p in pools), tau=tuple(float(p["tau"]) for p in pools),
                   **stored_range(parameters), provenance=dict(provenance))

    @classmethod
    def from_scaling_law(cls, law: ScalingLaw, *, higher_is_better: bool = True,
                         provenance: str = "published") -> "GoyalLaw":
        """A :class:`ScalingLaw` (e.g. :data:`TMARS_DATACOMP_MEDIUM`) as a law, one pool per bucket.

        It has no observations: no fit error (a zero-width band) and no observed range (never flagged).
        """
        buckets = list(law.buckets.items())
        return cls(pools=tuple(Pool(name, int(bucket.size)) for name, bucket in buckets), a=law.a, d=law.d,
                   b=tuple(bucket.b for _, bucket in buckets), tau=tuple(bucket.tau for _, bucket in buckets),
                   higher_is_better=higher_is_better, provenance={name: provenance for name in _FIT_PARAMETERS})

    @classmethod
    def minimum_observations(cls, pools: int) -> int:
        return 3

    @classmethod
    def fit(cls, pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
            **options) -> "GoyalLaw":
        """:func:`fit_goyal_law`."""
        return fit_goyal_law(pools, observations, higher_is_better=higher_is_better, **options)


def fit_goyal_law(
    pools: Sequence[Pool],
    observations: Sequence[Observation],
    *,
    higher_is_better: bool,
    loss: str = "soft_l1",
    f_scale: float = 0.01,
    far: float = 0.0,
    start: GoyalLaw | None = None,
) -> GoyalLaw:
    """Fit shared ``(a, d)`` and per-pool ``(b, tau)`` to observed metrics by robust least squares.

    Minimises :math:`\\sum_o \\rho\\big((\\mathrm{error}(o) - \\mathrm{observed}_o)^2\\big)` in error
    units (``1 - value`` when ``higher_is_better``) with SciPy's bounded trust-region least
    squares (``loss`` as in ``scipy.optimize.least_squares``, ``f_scale`` its residual scale),
    started from a grid of 24 points over ``(a, b, tau)`` (every pool starting alike), or from
    ``start``, and keeping the best end point.

    Parameters
    ----------
    pools : sequence of Pool
        The buckets and their unique sizes (``ot`` and ``quality`` are not used).
    observations : sequence of Observation
        Each on pools combined whole (:func:`union_weights`); every pool must appear in one.
    higher_is_better : bool
        ``True`` when the values are accuracies, ``False`` when they are errors.
    loss : str
        ``"linear"`` for plain least squares, or a robust loss (``"soft_l1"``, ``"huber"``, ``"cauchy"``).
    f_scale : float
        Residual scale of the robust loss, in error units.
    far : float
        Doublings outside the observed range beyond which a prediction is flagged ``extrapolated``.
    start : GoyalLaw, optional
        A law over the same pools to start from instead of the grid (one start: a backtest's
        refits start from the full fit).

    Returns
    -------
    GoyalLaw
        ``rmse`` is the root-mean-square residual (metric units) over the observations; every
        parameter has the provenance of the observations; a parameter that ended on a bound of
        the search is named in ``at_bound`` (kept: the law has no default to fall back to).
    """
    pools = check_pools(pools)
    k = len(pools)
    law0 = GoyalLaw(pools=pools, a=1.0, d=0.0, b=(-0.1,) * k, tau=(1.0,) * k, higher_is_better=higher_is_better)
    w, n, y = observation_arrays(law0, observations, minimum=GoyalLaw.minimum_observations(k))
    shown = w * n[:, None]
    chosen = law0.chosen(shown)
    unseen = [name for name, seen in zip(law0.names, chosen.any(0)) if not seen]
    if unseen:
        raise ValueError(f"pool(s) {unseen} appear in no observation: their (b, tau) cannot be fitted")
    if len(observations) < 2 + 2 * k:
        raise ValueError(f"{k} pools have {2 + 2 * k} parameters; got only {len(observations)} observations")
    if np.abs(y).max() > 1.5:  # noise may put a fraction a little outside [0, 1]; a percentage is far outside
        raise ValueError("the goyal law models a fraction in [0, 1] (an accuracy or an error); "
                         f"the observations range over [{y.min():g}, {y.max():g}]: give fractions")
    observed = 1.0 - y if higher_is_better else y
    sizes = law0.unique

    def residuals(theta: np.ndarray) -> np.ndarray:
        b, tau = theta[2:].reshape(k, 2).T
        return combined_error(theta[0], theta[1], b, tau, sizes, chosen, n) - observed

    lower = np.array([1e-8, 0.0] + [-5.0, 1e-2] * k)
    upper = np.array([1e8, 1.0] + [-1e-6, 1e3] * k)
    if start is not None:
        starts = [np.array([start.a, start.d] + [x for pair in zip(start.b, start.tau) for x in pair])]
    else:
        starts = [np.array([a0, max(observed.min() / 2, 0.0)] + [b0, tau0] * k)
                  for a0 in (1e-3, 1e-2, 1e-1, 1.0) for b0 in (-0.05, -0.2) for tau0 in (1.0, 5.0, 20.0)]
    best = None
    for x0 in starts:
        result = least_squares(residuals, np.clip(x0, lower, upper), bounds=(lower, upper), loss=loss,
                               f_scale=f_scale, x_scale="jac", max_nfev=400)
        if best is None or result.cost < best.cost:
            best = result
    res = residuals(best.x)
    b, tau = best.x[2:].reshape(k, 2).T
    names = ["a", "d"] + [f"{name}[{pool.name}]" for pool in pools for name in ("b", "tau")]
    at_bound = {name: f"fit ended on its bound {edge:g}; kept" for name, x, lo, hi in zip(names, best.x, lower, upper)
                for edge in (lo, hi) if abs(x - edge) <= 1e-6 * max(1.0, abs(edge)) and name != "d"}
    origin = origin_of(observations)
    return replace(law0, a=float(best.x[0]), d=float(best.x[1]), b=tuple(map(float, b)), tau=tuple(map(float, tau)),
                   rmse=float(np.sqrt(np.mean(res ** 2))), observed_sizes=(float(n.min()), float(n.max())),
                   observed_repetitions=float((shown / law0.unique).max()),
                   provenance={name: origin for name in _FIT_PARAMETERS}, far=far, at_bound=at_bound)
