r"""The mixture optimiser: which pools to train on, and how often to repeat each, at a budget.

A corpus is split into pools :math:`i = 1..P` (sources, or source x quality bucket;
:mod:`curation.pools`) of :math:`S_i` unique documents. Training for :math:`n`
samples on weights :math:`w` shows pool :math:`i` :math:`m_i = w_i n` times, i.e.
:math:`m_i / S_i` repetitions. Following Goyal et al. (2024), a sample's utility halves
every :math:`\tau` repetitions, so the *effective data* of a pool is

.. math::

    E_i(m) = \sum_{k \ge 0} 2^{-k/\tau} \, \mathrm{clip}(m - k S_i, 0, S_i),

and pools differ in how much an effective sample is worth for the target,
:math:`u_i = \exp(-\gamma \, z^{\mathrm{ot}}_i + \eta \, z^{\mathrm{q}}_i)`, from the
standardised OT distance of the pool to the target benchmarks (Kang et al. 2023) and
its mean quality score (BETR or pruning). The metric follows a power law in the
utility-weighted effective data :math:`D(w, n) = \sum_i u_i E_i(w_i n)`:

.. math::

    \mathrm{metric}(w, n) = c \mp A \, (D(w, n) / 10^5)^{-\beta}
    \qquad (- \text{ for a score}, + \text{ for a loss}).

The metric is monotone in :math:`D`, and :math:`D` is concave and piecewise linear in
:math:`w` with slopes :math:`u_i 2^{-k/\tau}` on the :math:`k`-th repetition of pool
:math:`i`; so the best mixture fills the budget with the highest-value
(pool, repetition) slabs first (:meth:`MixtureLaw.optimize`, exact, no iteration over
the simplex). At a small budget all of it goes to the pool worth most to the target; as
that pool is repeated, its later repetitions fall below fresh samples of the next pool
and the weights spread: the repetition-aware behaviour "curation cannot be compute
agnostic" of Goyal et al.

The parameters :math:`(c, A, \beta, \gamma, \eta, \tau)` are fitted by robust least
squares to pilot observations (the user's pilot runs, or the built-in proxy evaluator);
a parameter the observations cannot identify keeps a documented default, and every
prediction states the provenance of each parameter.

References
----------
S. Goyal, P. Maini, Z. C. Lipton, A. Raghunathan and J. Z. Kolter, "Scaling Laws for Data
Filtering -- Data Curation cannot be Compute Agnostic", CVPR 2024.
F. Kang et al., "Performance Scaling via Optimal Transport: Enabling Data Selection from
Partially Revealed Sources", NeurIPS 2023.
N. Muennighoff et al., "Scaling Data-Constrained Language Models", NeurIPS 2023 (effective
data under repetition).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np
from scipy.optimize import least_squares

from curation.laws.base import (Allocation, Observation, PerformanceLaw, Pool, Prediction, budget_in_samples,
                                check_budget, check_pools, observation_arrays, origin_of, pool_of_row, pool_row,
                                range_parameters, register, stored_range)

__all__ = ["DEFAULT_TAU", "PARAMETERS", "Allocation", "MixtureLaw", "Observation", "Pool", "Prediction",
           "budget_in_samples", "effective_samples", "fit_mixture_law", "standardised_features"]

_UNIT = 1e5
#: Half-life (repetitions) when no observation repeats a pool: the median of the
#: published T-MARS bucket fits (2.3 to 8.5; Goyal et al. 2024).
DEFAULT_TAU = 6.0
PARAMETERS = ("c", "A", "beta", "gamma", "eta", "tau")


@register
@dataclass(frozen=True)
class MixtureLaw(PerformanceLaw):
    """The fitted model of the module docstring over named ``pools``: the performance law of kind
    ``effective_data`` (:mod:`curation.laws`).

    ``rmse`` is the fit's RMS residual (metric units), ``observed_sizes`` and
    ``observed_repetitions`` the range of the observations, ``provenance`` maps each
    parameter to ``pilot_runs``, ``proxy`` or ``defaults``.
    """

    kind = "effective_data"

    pools: tuple[Pool, ...]
    c: float
    A: float
    beta: float
    gamma: float
    eta: float
    tau: float
    higher_is_better: bool
    rmse: float = 0.0
    observed_sizes: tuple[float, float] = (math.nan, math.nan)
    observed_repetitions: float = math.nan
    provenance: Mapping[str, str] = field(default_factory=dict)
    far: float = 1.0

    # -- the model -------------------------------------------------------------------
    @property
    def utility(self) -> np.ndarray:
        """:math:`u_i` (P,)."""
        z_ot, z_q = standardised_features(self.pools)
        return np.exp(-self.gamma * z_ot + self.eta * z_q)

    def effective_data(self, shown) -> np.ndarray:
        """:math:`D` for samples ``shown`` (..., P) per pool; returns shape (...)."""
        return (effective_samples(shown, self.unique, self.tau) * self.utility).sum(-1)

    def metric_of(self, effective) -> np.ndarray:
        sign = -1.0 if self.higher_is_better else 1.0
        return self.c + sign * self.A * (np.maximum(effective, 1e-12) / _UNIT) ** (-self.beta)

    def metric_at(self, shown) -> np.ndarray:
        """The metric for samples ``shown`` (..., P) per pool: :meth:`metric_of` :meth:`effective_data`."""
        return self.metric_of(self.effective_data(shown))

    # -- the optimiser ---------------------------------------------------------------
    def optimize(self, budget: float) -> Allocation:
        """The mixture of highest predicted metric at ``budget`` samples (exact; module docstring).

        Fills the budget with (pool, repetition) slabs of value :math:`u_i 2^{-k/\\tau}` in
        decreasing order: finds the value threshold :math:`\\lambda` by bisection in
        :math:`\\log\\lambda`, gives every pool its slabs above it, and splits what is left
        over the slabs at the threshold in proportion to their sizes.
        """
        check_budget(budget)
        u, size = self.utility, self.unique
        log_decay = math.log(2.0) / self.tau  # value of repetition k: u * exp(-k log_decay)

        def slabs_above(log_lambda: float) -> np.ndarray:
            """Number of whole repetitions per pool whose value exceeds exp(log_lambda)."""
            return np.maximum(np.ceil((np.log(u) - log_lambda) / log_decay), 0.0)

        high = float(np.log(u).max())
        low = high - log_decay * (budget / size.min() + 2)
        for _ in range(200):
            mid = 0.5 * (low + high)
            if (slabs_above(mid) * size).sum() >= budget:
                low = mid
            else:
                high = mid
            if high - low < 1e-12:
                break
        full = slabs_above(high)  # strictly above the threshold: taken whole; their total < budget
        shown = full * size
        remaining = budget - shown.sum()
        at_threshold = slabs_above(low) > full
        if remaining > 0:
            if not at_threshold.any():  # numerical corner: the next slab of the best remaining value
                next_value = np.log(u) - full * log_decay
                at_threshold = next_value == next_value.max()
            shown = shown + remaining * size * at_threshold / (size * at_threshold).sum()
        return self._allocation(budget, shown)

    # -- serialisation ---------------------------------------------------------------
    def parameters(self) -> dict:
        return {name: float(getattr(self, name)) for name in PARAMETERS} | range_parameters(self)

    def pool_rows(self) -> list[dict]:
        return [pool_row(p) | {"utility": float(u)} for p, u in zip(self.pools, self.utility)]

    @classmethod
    def from_stored(cls, parameters: Mapping, pools: Sequence[Mapping], provenance: Mapping[str, str]) -> "MixtureLaw":
        return cls(pools=tuple(pool_of_row(p) for p in pools), **{name: float(parameters[name]) for name in PARAMETERS},
                   **stored_range(parameters), provenance=dict(provenance))

    @classmethod
    def fit(cls, pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
            **options) -> "MixtureLaw":
        """:func:`fit_mixture_law`."""
        return fit_mixture_law(pools, observations, higher_is_better=higher_is_better, **options)


def effective_samples(shown, unique, tau: float) -> np.ndarray:
    """:math:`E_i(m)` elementwise for samples ``shown`` (..., P) of pools of ``unique`` (P,) documents."""
    m = np.asarray(shown, dtype=np.float64)
    s = np.asarray(unique, dtype=np.float64)
    r = 0.5 ** (1.0 / tau)
    full = np.floor(m / s)
    whole = s * (1.0 - r ** full) / (1.0 - r)
    return whole + (m - full * s) * r ** full


def standardised_features(pools: Sequence[Pool]) -> tuple[np.ndarray, np.ndarray]:
    """z-scores of ``ot`` and ``quality`` over pools (0 where a feature is unknown or constant)."""
    out = []
    for name in ("ot", "quality"):
        values = np.array([getattr(p, name) for p in pools], dtype=np.float64)
        if np.any(~np.isfinite(values)) or values.std() == 0:
            out.append(np.zeros(len(pools)))
        else:
            out.append((values - values.mean()) / values.std())
    return out[0], out[1]


def fit_mixture_law(pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
                    loss: str = "soft_l1", far: float = 1.0) -> MixtureLaw:
    """Fit :math:`(c, A, \\beta, \\gamma, \\eta, \\tau)` to observations by robust least squares.

    ``gamma`` (OT) and ``eta`` (quality) are fitted only when the pools have that feature
    and the observations mix pools that differ in it; ``tau`` only when some observation
    repeats a pool; otherwise they keep their defaults (0, 0, :data:`DEFAULT_TAU`) and
    are marked ``defaults``. Fitted parameters take the provenance of the observations
    (``pilot_runs`` when any came from the user, else ``proxy``). Multi-start from a
    small grid; the best end point is kept.
    """
    pools = check_pools(pools)
    law0 = MixtureLaw(pools=pools, c=0.0, A=1.0, beta=0.3, gamma=0.0, eta=0.0, tau=DEFAULT_TAU,
                      higher_is_better=higher_is_better)
    w, n, y = observation_arrays(law0, observations, minimum=4)
    shown = w * n[:, None]
    z_ot, z_q = standardised_features(pools)
    varies = lambda z: np.ptp(w @ z) > 1e-9  # noqa: E731 - the observed mixtures differ in this feature
    free = ["c", "A", "beta"] + [name for name, ok in (("gamma", varies(z_ot)), ("eta", varies(z_q)),
                                                        ("tau", bool((shown > law0.unique * 1.01).any()))) if ok]
    if len(observations) < len(free) + 1:
        free = free[:max(3, len(observations) - 1)]
    bounds = {"c": (-np.inf, np.inf), "A": (-20.0, 20.0), "beta": (1e-3, 3.0), "gamma": (0.0, 10.0),
              "eta": (0.0, 10.0), "tau": (math.log(0.05), math.log(1e3))}
    defaults = {"gamma": 0.0, "eta": 0.0, "tau": DEFAULT_TAU}

    def values_of(theta: np.ndarray) -> dict:
        values = dict(defaults)
        for name, t in zip(free, theta):
            values[name] = math.exp(t) if name in ("A", "tau") else float(t)
        return values

    sign = -1.0 if higher_is_better else 1.0
    unique = law0.unique

    def residuals(theta: np.ndarray) -> np.ndarray:  # the model of MixtureLaw.metric_of, inlined for speed
        v = values_of(theta)
        utility = np.exp(-v["gamma"] * z_ot + v["eta"] * z_q)
        effective = (effective_samples(shown, unique, v["tau"]) * utility).sum(-1)
        return v["c"] + sign * v["A"] * (np.maximum(effective, 1e-12) / _UNIT) ** (-v["beta"]) - y

    spread = max(float(np.std(y)), 1e-6)
    best = None
    for beta0 in (0.1, 0.5):
        for tau0 in (0.5, 5.0):
            for gamma0 in (0.3,):
                start = {"c": float(y.max() if higher_is_better else y.min()), "A": math.log(spread), "beta": beta0,
                         "gamma": gamma0, "eta": 0.5, "tau": math.log(tau0)}
                x0 = np.array([start[name] for name in free])
                lower = np.array([bounds[name][0] for name in free])
                upper = np.array([bounds[name][1] for name in free])
                result = least_squares(residuals, np.clip(x0, lower + 1e-9, upper - 1e-9), bounds=(lower, upper),
                                       loss=loss, f_scale=spread / 10, x_scale="jac", max_nfev=500)
                if best is None or result.cost < best.cost:
                    best = result
    residual = residuals(best.x)
    origin = origin_of(observations)
    provenance = {name: origin if name in free else "defaults" for name in PARAMETERS}
    return replace(law0, **values_of(best.x), rmse=float(np.sqrt(np.mean(residual ** 2))),
                   observed_sizes=(float(n.min()), float(n.max())),
                   observed_repetitions=float((shown / law0.unique).max()), provenance=provenance, far=far)
