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

References
----------
S. Goyal, P. Maini, Z. C. Lipton, A. Raghunathan and J. Z. Kolter, "Scaling Laws for Data
Filtering -- Data Curation cannot be Compute Agnostic", CVPR 2024.

>>> law = TMARS_DATACOMP_MEDIUM
>>> round(100 * float(law.accuracy(TMARS_POOLS["top10"], 32e6)), 4)
18.2471
>>> law.frontier(TMARS_POOLS, [3e7, 3e8, 3e9]).best
['top10', 'top20', 'top30']
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import norm

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
        total = sizes.sum()
        n = np.asarray(samples_seen, dtype=np.float64)
        if np.any(~np.isfinite(n)) or np.any(n <= 0):
            raise ValueError(f"samples_seen must be finite and > 0; got {samples_seen!r}")
        p = len(b)
        k_cap = int(math.ceil(_HALF_LIVES_KEPT * p * tau.max()))
        out = np.empty(n.shape)
        for index, n_i in np.ndenumerate(n):
            repetitions = int(n_i // total)
            k = np.arange(1, min(repetitions, k_cap) + 1, dtype=np.float64)
            b_k = (b[None, :] * 0.5 ** (k[:, None] / (p * tau[None, :]))).mean(1)
            ratio = np.minimum(total * (k + 1), n_i) / (total * k)
            s_0 = self.a * min(total, n_i) / _UNIT
            out[index] = (s_0 ** b.mean() + self.d) * np.exp(np.sum(b_k * np.log(ratio)))
        return out

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


@dataclass(frozen=True)
class Observation:
    """A measured ``error`` (1 - accuracy) of a model trained on ``pool`` for ``samples_seen`` samples."""

    pool: tuple[str, ...]
    samples_seen: float
    error: float


@dataclass(frozen=True)
class Prediction:
    """Predicted accuracy with a band; arrays shaped like the requested ``samples_seen``.

    ``outside`` is how far each request lies outside the fitted observations, in doublings
    of samples seen or of repetitions (0 inside); ``extrapolated`` flags ``outside`` above
    the fit's ``far`` threshold. The band's half-width is ``z * rmse * (1 + outside)``.
    """

    accuracy: np.ndarray
    low: np.ndarray
    high: np.ndarray
    outside: np.ndarray
    extrapolated: np.ndarray


@dataclass(frozen=True)
class ScalingFit:
    """A :class:`ScalingLaw` fitted to observations, with its error and observed range."""

    law: ScalingLaw
    rmse: float
    residuals: np.ndarray
    samples_range: tuple[float, float]
    max_repetitions: float
    far: float = 1.0
    cost: float = field(default=math.nan)

    def predict(self, pool: Sequence[str], samples_seen, *, level: float = 0.95, warn: bool = True) -> Prediction:
        """Accuracy of ``pool`` at ``samples_seen``, with a band widened outside the observed range.

        Emits :class:`ExtrapolationWarning` (unless ``warn=False``) when any request lies more
        than ``far`` doublings outside the samples-seen or repetition range of the fit.
        """
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1); got {level}")
        n = np.asarray(samples_seen, dtype=np.float64)
        accuracy = self.law.accuracy(pool, n)
        sizes, _, _ = self.law._pool(pool)
        low_n, high_n = self.samples_range
        outside = np.maximum.reduce([np.zeros_like(n), np.log2(n / high_n), np.log2(low_n / n),
                                     np.log2((n / sizes.sum()) / max(self.max_repetitions, 1.0))])
        extrapolated = outside > self.far
        if warn and np.any(extrapolated):
            warnings.warn(f"predicting at up to {float(outside.max()):.1f} doublings outside the observed range "
                          f"(samples seen {low_n:.3g}..{high_n:.3g}, up to {self.max_repetitions:.3g} repetitions); "
                          "the band is widened accordingly", ExtrapolationWarning, stacklevel=2)
        half = norm.ppf(0.5 + level / 2) * self.rmse * (1.0 + outside)
        return Prediction(accuracy=accuracy, low=accuracy - half, high=accuracy + half, outside=outside,
                          extrapolated=extrapolated)


def fit_scaling_law(
    observations: Sequence[Observation],
    sizes: Mapping[str, float],
    *,
    loss: str = "soft_l1",
    f_scale: float = 0.01,
    far: float = 1.0,
) -> ScalingFit:
    """Fit shared ``(a, d)`` and per-bucket ``(b, tau)`` to observed errors by robust least squares.

    Minimises :math:`\\sum_o \\rho\\big((\\mathrm{error}(o) - \\mathrm{observed}_o)^2\\big)` with
    SciPy's bounded trust-region least squares (``loss`` as in ``scipy.optimize.least_squares``,
    ``f_scale`` its residual scale), started from a grid of 24 points over
    ``(a, b, tau)`` (every bucket starting alike) and keeping the best end point.

    Parameters
    ----------
    observations : sequence of Observation
        Pools may combine buckets; each bucket must appear in ``sizes``.
    sizes : mapping of bucket name to unique size
        Unique samples per bucket.
    loss : str
        ``"linear"`` for plain least squares, or a robust loss (``"soft_l1"``, ``"huber"``, ``"cauchy"``).
    f_scale : float
        Residual scale of the robust loss, in error units.
    far : float
        Doublings outside the observed range beyond which :meth:`ScalingFit.predict` warns.

    Returns
    -------
    ScalingFit
        ``rmse`` is the root-mean-square residual (error units) over the observations.
    """
    if len(observations) < 3:
        raise ValueError(f"observations must hold at least 3 measurements; got {len(observations)}")
    names = sorted({name for o in observations for name in o.pool})
    missing = [name for name in names if name not in sizes]
    if missing:
        raise ValueError(f"sizes has no unique size for bucket(s) {missing}")
    for o in observations:
        if not (math.isfinite(o.samples_seen) and o.samples_seen > 0 and math.isfinite(o.error)):
            raise ValueError(f"observations need finite samples_seen > 0 and a finite error; got {o!r}")
    if len(observations) < 2 + 2 * len(names):
        raise ValueError(f"{len(names)} buckets have {2 + 2 * len(names)} parameters; got only "
                         f"{len(observations)} observations")
    observed = np.array([o.error for o in observations])

    def law_of(theta: np.ndarray) -> ScalingLaw:
        a, d, rest = theta[0], theta[1], theta[2:].reshape(len(names), 2)
        return ScalingLaw(a=a, d=d, buckets={name: Bucket(b=b, tau=tau, size=float(sizes[name]))
                                             for name, (b, tau) in zip(names, rest)})

    def residuals(theta: np.ndarray) -> np.ndarray:
        law = law_of(theta)
        return np.array([law.error(o.pool, o.samples_seen) for o in observations]) - observed

    lower = np.array([1e-8, 0.0] + [-5.0, 1e-2] * len(names))
    upper = np.array([1e8, 1.0] + [-1e-6, 1e3] * len(names))
    best = None
    for a0 in (1e-3, 1e-2, 1e-1, 1.0):
        for b0 in (-0.05, -0.2):
            for tau0 in (1.0, 5.0, 20.0):
                start = np.array([a0, max(observed.min() / 2, 0.0)] + [b0, tau0] * len(names))
                result = least_squares(residuals, start, bounds=(lower, upper), loss=loss, f_scale=f_scale,
                                       x_scale="jac", max_nfev=400)
                if best is None or result.cost < best.cost:
                    best = result
    res = residuals(best.x)
    seen = np.array([o.samples_seen for o in observations])
    reps = np.array([o.samples_seen / sum(sizes[name] for name in o.pool) for o in observations])
    return ScalingFit(law=law_of(best.x), rmse=float(np.sqrt(np.mean(res ** 2))), residuals=res,
                      samples_range=(float(seen.min()), float(seen.max())), max_repetitions=float(reps.max()),
                      far=far, cost=float(best.cost))
