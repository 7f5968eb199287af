r"""The mixture optimiser: which pools to train on, and how often to repeat each, at a budget.

A corpus is split into pools :math:`i = 1..P` (sources, or source x quality bucket;
:mod:`curation.pools`) of :math:`S_i` unique documents. Training for :math:`n`
samples on weights :math:`w` shows pool :math:`i` :math:`m_i = w_i n` times, i.e.
:math:`m_i / S_i` repetitions. Following Goyal et al. (2024), a sample's utility halves
every :math:`\tau_i` repetitions of its pool, so the *effective data* of a pool is

.. math::

    E_i(m) = \sum_{k \ge 0} 2^{-k/\tau_i} \, \mathrm{clip}(m - k S_i, 0, S_i),

and pools differ in how much an effective sample is worth for the target,

.. math::

    u_i = \exp(-\gamma \, z^{\mathrm{ot}}_i + \eta \, z^{\mathrm{q}}_i + \delta_i),
    \qquad \tau_i = \tau \, e^{\epsilon_i},

where the standardised OT distance of the pool to the target benchmarks (Kang et al. 2023)
and its mean quality score (BETR or pruning) are the *prior* of a pool's worth, and the
per-pool offsets :math:`\delta_i` (log-utility) and :math:`\epsilon_i` (log half-life) are
what the pilot runs teach beyond it, shrunk towards 0 by Gaussian priors
(:data:`PRIOR_SD`): with few pilots the features decide, with informative pilots the data do.
The metric follows a power law in the utility-weighted effective data
:math:`D(w, n) = \sum_i u_i E_i(w_i n)`:

.. math::

    \mathrm{metric}(w, n) = c \mp A \, (D(w, n) / 10^5)^{-\beta}
    \qquad (- \text{ for a score}, + \text{ for a loss}).

The metric is monotone in :math:`D`, and :math:`D` is concave and piecewise linear in
:math:`w` with slopes :math:`u_i 2^{-k/\tau_i}` on the :math:`k`-th repetition of pool
:math:`i`; so the best mixture fills the budget with the highest-value
(pool, repetition) slabs first (:meth:`MixtureLaw.optimize`, exact, no iteration over
the simplex). At a small budget all of it goes to the pool worth most to the target; as
that pool is repeated, its later repetitions fall below fresh samples of the next pool
and the weights spread: the repetition-aware behaviour "curation cannot be compute
agnostic" of Goyal et al.

The parameters are fitted to pilot observations (the user's pilot runs, or the built-in
proxy evaluator) by :func:`fit_mixture_law`; a parameter the observations cannot identify
keeps a documented default (:data:`DEFAULTS`), and every prediction states the provenance
of each parameter.

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

from curation.laws.base import (Allocation, FitRange, Observation, PerformanceLaw, Pool, Prediction,
                                budget_in_samples, check_budget, check_pools, observation_arrays, origin_of,
                                pool_of_row, pool_row, range_parameters, register, stored_range)

__all__ = ["BOUNDS", "DEFAULTS", "DEFAULT_TAU", "PARAMETERS", "PRIOR_SD", "Allocation", "MixtureLaw", "Observation",
           "Pool", "Prediction",
           "budget_in_samples", "effective_samples", "fit_mixture_law", "standardised_features"]

_UNIT = 1e5
#: Half-life (repetitions) when no observation repeats a pool: the median of the
#: published T-MARS bucket fits (2.3 to 8.5; Goyal et al. 2024).
DEFAULT_TAU = 6.0
PARAMETERS = ("c", "A", "beta", "gamma", "eta", "tau")


@register
@dataclass(frozen=True)
class MixtureLaw(FitRange, PerformanceLaw):
    r"""The fitted model of the module docstring over named ``pools``: the performance law of kind
    ``effective_data`` (:mod:`curation.laws`).

    ``offsets`` (P,) are the per-pool log-utility offsets :math:`\delta_i` and ``half_lives`` (P,)
    the per-pool half-lives :math:`\tau_i = \tau e^{\epsilon_i}` as log-ratios :math:`\epsilon_i`
    (empty tuples: all zero, the prior). ``rmse`` is the fit's RMS residual (metric units),
    ``observed_sizes`` and ``observed_repetitions`` the range of the observations,
    ``provenance`` maps each parameter to ``pilot_runs``, ``tiny_lm``, ``proxy`` or ``defaults``.
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
    offsets: tuple[float, ...] = ()
    half_lives: tuple[float, ...] = ()
    value_range: tuple[float, float] = (-math.inf, math.inf)

    # -- the model -------------------------------------------------------------------
    @property
    def delta(self) -> np.ndarray:
        r""":math:`\delta_i` (P,)."""
        return np.asarray(self.offsets, dtype=np.float64) if self.offsets else np.zeros(len(self.pools))

    @property
    def tau_i(self) -> np.ndarray:
        r""":math:`\tau_i` (P,)."""
        epsilon = np.asarray(self.half_lives, dtype=np.float64) if self.half_lives else np.zeros(len(self.pools))
        return self.tau * np.exp(epsilon)

    @property
    def utility(self) -> np.ndarray:
        r""":math:`u_i = \exp(-\gamma z^{ot}_i + \eta z^q_i + \delta_i)` (P,)."""
        z_ot, z_q = standardised_features(self.pools)
        return np.exp(-self.gamma * z_ot + self.eta * z_q + self.delta)

    def effective_data(self, shown) -> np.ndarray:
        """:math:`D` for samples ``shown`` (..., P) per pool; returns shape (...)."""
        return (effective_samples(shown, self.unique, self.tau_i) * self.utility).sum(-1)

    def metric_of(self, effective) -> np.ndarray:
        sign = -1.0 if self.higher_is_better else 1.0
        return self.c + sign * self.A * (np.maximum(effective, 1e-12) / _UNIT) ** (-self.beta)

    def metric_at(self, shown) -> np.ndarray:
        r"""The metric for samples ``shown`` (..., P) per pool: :meth:`metric_of` :meth:`effective_data`."""
        return self.metric_of(self.effective_data(shown))

    # -- the optimiser ---------------------------------------------------------------
    def optimize(self, budget: float) -> Allocation:
        r"""The mixture of highest predicted metric at ``budget`` samples (exact; module docstring).

        Fills the budget with (pool, repetition) slabs of value :math:`u_i 2^{-k/\tau_i}` in
        decreasing order: finds the value threshold :math:`\lambda` by bisection in
        :math:`\log\lambda`, gives every pool its slabs above it, and splits what is left
        over the slabs at the threshold in proportion to their sizes.
        """
        check_budget(budget)
        u, size = self.utility, self.unique
        log_decay = math.log(2.0) / self.tau_i  # (P,) value of repetition k: u * exp(-k log_decay)

        def slabs_above(log_lambda: float) -> np.ndarray:
            """Number of whole repetitions per pool whose value exceeds exp(log_lambda)."""
            return np.maximum(np.ceil((np.log(u) - log_lambda) / log_decay), 0.0)

        high = float(np.log(u).max())
        low = high - float(log_decay.max()) * (budget / size.min() + 2)
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
        return [pool_row(p) | {"utility": float(u), "offset": float(d), "half_life": float(t)}
                for p, u, d, t in zip(self.pools, self.utility, self.delta, self.tau_i)]

    @classmethod
    def from_stored(cls, parameters: Mapping, pools: Sequence[Mapping], provenance: Mapping[str, str]) -> "MixtureLaw":
        tau = float(parameters["tau"])
        return cls(pools=tuple(pool_of_row(p) for p in pools), **{name: float(parameters[name]) for name in PARAMETERS},
                   offsets=tuple(float(p.get("offset") or 0.0) for p in pools),
                   half_lives=tuple(math.log(float(p["half_life"]) / tau) if p.get("half_life") else 0.0
                                    for p in pools),
                   **stored_range(parameters), provenance=dict(provenance))

    @classmethod
    def minimum_observations(cls, pools: int) -> int:
        return 4

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


#: Prior standard deviations of the per-pool offsets, towards which the fit shrinks them: the
#: log-utility offset :math:`\delta_i` (one SD: a pool worth e times more or less than its OT and
#: quality features say) and the log half-life ratio :math:`\epsilon_i` (one SD: a half-life 1.65
#: times longer or shorter than the shared one).
PRIOR_SD = {"offsets": 1.0, "half_lives": 0.5}
#: Search bounds of the shared parameters (``A`` and ``tau`` searched in log space).
BOUNDS = {"c": (-np.inf, np.inf), "A": (math.exp(-20.0), math.exp(20.0)), "beta": (1e-3, 3.0), "gamma": (0.0, 10.0),
          "eta": (0.0, 10.0), "tau": (0.05, 1e3)}
#: What a parameter the observations cannot identify keeps (documented in the module docstring).
DEFAULTS = {"gamma": 0.0, "eta": 0.0, "tau": DEFAULT_TAU}
_LOG = ("A", "tau")


#: Stopping tolerance of the fit's least-squares (relative change of the cost and of the parameters):
#: far below any pilot's noise. scipy's 1e-8 took 1.4x as long on the law tests (49 s against 34 s)
#: for the same verdicts; on ill-conditioned proxy fits (a parameter on a bound) it mostly crawls.
TOLERANCE = 1e-6


def fit_mixture_law(pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
                    loss: str = "soft_l1", far: float = 0.0, per_pool: bool = True,
                    start: MixtureLaw | None = None) -> MixtureLaw:
    """Fit the law to observations: the shared parameters by robust least squares, then the per-pool
    offsets by penalised least squares shrunk towards the OT / quality prior.

    Stage 1, shared :math:`(c, A, \\beta, \\gamma, \\eta, \\tau)`: ``gamma`` (OT) and ``eta``
    (quality) are fitted only when the pools have that feature and the observed mixtures differ
    in it, ``tau`` only when some observation repeats a pool; otherwise they keep
    :data:`DEFAULTS` and are marked ``defaults``. A fitted parameter that ends on a bound of
    its search is reported in ``at_bound``; ``gamma``, ``eta`` and ``tau`` are then refitted at
    their defaults (the observations did not identify them), ``A`` and ``beta`` are kept.
    Multi-start from a small grid (or from the shared parameters of ``start``: a backtest's refits
    start from the full fit); the best end point is kept.

    Stage 2 (``per_pool``), a maximum a posteriori fit of :math:`\\delta_i` for every pool whose
    weight varies over the observations and :math:`\\epsilon_i` for every pool some pilot run
    repeats (from the user's or tiny-LM pilots, not from a bigram proxy: it cannot tell repeated
    text from new),
    with Gaussian priors of :data:`PRIOR_SD` around 0 and Gaussian noise of scale
    :math:`\\sigma`; :math:`\\sigma^2` is re-estimated twice as RSS / (n - effective degrees of
    freedom), the trace of the fit's hat matrix. Few or uninformative pilots leave the offsets
    near 0 (the prior decides); many informative ones move them where the data say.

    Fitted parameters take the provenance of the observations (``pilot_runs`` when any came
    from the user, else ``tiny_lm`` or ``proxy``: :func:`curation.laws.base.origin_of`).
    """
    pools = check_pools(pools)
    law0 = MixtureLaw(pools=pools, c=0.0, A=1.0, beta=0.3, gamma=0.0, eta=0.0, tau=DEFAULT_TAU,
                      higher_is_better=higher_is_better)
    w, n, y = observation_arrays(law0, observations, minimum=MixtureLaw.minimum_observations(len(pools)))
    shown = w * n[:, None]
    unique = law0.unique
    z_ot, z_q = standardised_features(pools)
    varies = lambda z: np.ptp(w @ z) > 1e-9  # noqa: E731 - the observed mixtures differ in this feature
    repeated = (shown > unique * 1.01).any(0)  # (P,)
    free = ["c", "A", "beta"] + [name for name, ok in (("gamma", varies(z_ot)), ("eta", varies(z_q)),
                                                        ("tau", bool(repeated.any()))) if ok]
    if len(observations) < len(free) + 1:
        free = free[:max(3, len(observations) - 1)]
    sign = -1.0 if higher_is_better else 1.0
    spread = max(float(np.std(y)), 1e-6)

    def model(v: dict, delta, epsilon) -> np.ndarray:  # MixtureLaw.metric_at, inlined for speed
        utility = np.exp(-v["gamma"] * z_ot + v["eta"] * z_q + delta)
        effective = (effective_samples(shown, unique, v["tau"] * np.exp(epsilon)) * utility).sum(-1)
        return v["c"] + sign * v["A"] * (np.maximum(effective, 1e-12) / _UNIT) ** (-v["beta"])

    def values_of(names, theta) -> dict:
        values = dict(DEFAULTS)
        for name, t in zip(names, theta):
            values[name] = math.exp(t) if name in _LOG else float(t)
        return values

    def box(names):
        lower = np.array([math.log(BOUNDS[k][0]) if k in _LOG else BOUNDS[k][0] for k in names])
        upper = np.array([math.log(BOUNDS[k][1]) if k in _LOG else BOUNDS[k][1] for k in names])
        return lower, upper

    zeros = np.zeros(len(pools))
    with_offset = np.flatnonzero(np.ptp(w, axis=0) > 1e-9) if per_pool and len(pools) > 1 else np.zeros(0, int)

    def shared_fit(free) -> np.ndarray:
        """Stage 1: the shared parameters ``free`` (transformed), multi-start."""
        lower, upper = box(free)
        if start is not None:
            starts = [{name: math.log(getattr(start, name)) if name in _LOG else getattr(start, name)
                       for name in PARAMETERS}]
        else:
            starts = [{"c": float(y.max() if higher_is_better else y.min()), "A": math.log(spread), "beta": beta0,
                       "gamma": 0.3, "eta": 0.5, "tau": math.log(tau0)} for beta0 in (0.1, 0.5) for tau0 in (0.5, 5.0)]
        best = None
        for x in starts:
            x0 = np.clip(np.array([x[name] for name in free]), lower + 1e-9, upper - 1e-9)
            result = least_squares(lambda t: model(values_of(free, t), zeros, zeros) - y, x0,
                                   bounds=(lower, upper), loss=loss, f_scale=spread / 10, x_scale="jac",
                                   max_nfev=500, ftol=TOLERANCE, xtol=TOLERANCE)
            if best is None or result.cost < best.cost:
                best = result
        return best.x

    def per_pool_fit(free, theta_shared, with_half_life) -> np.ndarray:
        """Stage 2: shared and per-pool parameters together, penalised (MAP); returns theta."""
        k_shared, k_offset = len(free), len(with_offset)
        prior = np.concatenate([np.full(k_offset, PRIOR_SD["offsets"]),
                                np.full(len(with_half_life), PRIOR_SD["half_lives"])])
        lower, upper = box(free)
        lower = np.concatenate([lower, np.full(len(prior), -10.0)])
        upper = np.concatenate([upper, np.full(len(prior), 10.0)])
        residual = model(values_of(free, theta_shared), zeros, zeros) - y
        sigma = max(float(np.sqrt(np.mean(residual ** 2))), 1e-3 * spread)
        offsets0 = np.zeros(len(prior))
        if start is not None:  # from the full fit's offsets; the noise scale is this fit's own
            offsets0 = np.concatenate([start.delta[with_offset], np.log(start.tau_i / start.tau)[with_half_life]])
        theta = np.clip(np.concatenate([theta_shared, offsets0]), lower + 1e-9, upper - 1e-9)
        half_life_columns = np.arange(k_shared + k_offset, len(theta))
        step = math.sqrt(np.finfo(float).eps)

        def jacobian(t, sigma):
            """d(penalised)/d(theta): dy/dx_i = -beta (y - c) / E dE_i/dx_i for a pool's own parameters, exact
            for the offsets (dE_i/d delta_i = E_i) and by one-sided differences of E_i for the half-lives
            (all pools in one evaluation: E_i depends on its own half-life only); the shared parameters'
            columns by one-sided differences of y; every step stays inside the bounds."""
            v, d, e = split(free, t, with_half_life)
            utility = np.exp(-v["gamma"] * z_ot + v["eta"] * z_q + d)
            contribution = effective_samples(shown, unique, v["tau"] * np.exp(e)) * utility  # (n, P)
            total = np.maximum(contribution.sum(-1), 1e-12)
            y_hat = v["c"] + sign * v["A"] * (total / _UNIT) ** (-v["beta"])
            chain = (-v["beta"] * (y_hat - v["c"]) / total)[:, None]
            data = np.empty((len(y), len(t)))
            data[:, k_shared:k_shared + k_offset] = chain * contribution[:, with_offset]
            if len(half_life_columns):
                h = step * np.maximum(1.0, np.abs(t[half_life_columns]))
                h = np.where(t[half_life_columns] + h > upper[half_life_columns], -h, h)
                moved = e.copy()
                moved[with_half_life] += h
                changed = effective_samples(shown, unique, v["tau"] * np.exp(moved)) * utility
                data[:, half_life_columns] = chain * (changed - contribution)[:, with_half_life] / h
            for j in range(k_shared):
                h = step * max(1.0, abs(t[j]))
                h = -h if t[j] + h > upper[j] else h
                moved = t.copy()
                moved[j] += h
                data[:, j] = (model(*split(free, moved, with_half_life)) - y_hat) / h
            return np.vstack([data / sigma, np.hstack([np.zeros((len(prior), k_shared)), np.diag(1.0 / prior)])])

        for _ in range(3):
            def penalised(t, sigma=sigma):
                return np.concatenate([(model(*split(free, t, with_half_life)) - y) / sigma, t[k_shared:] / prior])
            result = least_squares(penalised, theta, jac=lambda t, sigma=sigma: jacobian(t, sigma),
                                   bounds=(lower, upper), x_scale="jac", max_nfev=300, ftol=TOLERANCE, xtol=TOLERANCE)
            theta = result.x
            rss = float(np.sum((result.fun[:len(y)] * sigma) ** 2))
            data_rows, pen_rows = result.jac[:len(y)], result.jac[len(y):]
            hessian = data_rows.T @ data_rows + pen_rows.T @ pen_rows
            dof = float(np.trace(data_rows @ np.linalg.pinv(hessian) @ data_rows.T))
            sigma = max(math.sqrt(rss / max(len(y) - dof, 1.0)), 1e-3 * spread)
        return theta

    def split(free, theta, with_half_life):
        d, e = zeros.copy(), zeros.copy()
        d[with_offset] = theta[len(free):len(free) + len(with_offset)]
        e[with_half_life] = theta[len(free) + len(with_offset):]
        return values_of(free, theta[:len(free)]), d, e

    at_bound: dict[str, str] = {}
    while True:  # at most four rounds: gamma, eta and tau each leave once
        # a proxy's bigram counts barely change when text repeats: per-pool half-lives only from trained models
        with_half_life = (np.flatnonzero(repeated) if per_pool and "tau" in free and len(pools) > 1
                          and origin_of(observations) in ("pilot_runs", "tiny_lm") else np.zeros(0, int))
        theta = shared_fit(free)
        if len(with_offset) + len(with_half_life):
            theta = per_pool_fit(free, theta, with_half_life)
        values, delta, epsilon = split(free, theta, with_half_life)
        lower, upper = box(free)
        hit = [name for name, t, lo, hi in zip(free, theta, lower, upper) if np.isfinite(lo)
               and min(abs(t - lo) / max(1.0, abs(lo)), abs(t - hi) / max(1.0, abs(hi))) < 1e-6]
        for name in hit:
            edge = min(BOUNDS[name], key=lambda bound: abs(values[name] - bound))
            if name in DEFAULTS:
                at_bound[name] = (f"fit ended on its bound {edge:g}: the observations do not identify it; "
                                  f"the default {DEFAULTS[name]:g} is used")
            else:
                at_bound[name] = f"fit ended on its bound {edge:g}; kept (widen the pilot sizes to identify it)"
        leaving = [name for name in hit if name in DEFAULTS]
        if not leaving:
            break
        free = [name for name in free if name not in leaving]
    residual = model(values, delta, epsilon) - y
    origin = origin_of(observations)
    provenance = {name: origin if name in free else "defaults" for name in PARAMETERS}
    provenance |= {"offsets": origin if len(with_offset) else "defaults",
                   "half_lives": origin if len(with_half_life) else "defaults"}
    return replace(law0, **values, offsets=tuple(map(float, delta)), half_lives=tuple(map(float, epsilon)),
                   rmse=float(np.sqrt(np.mean(residual ** 2))), observed_sizes=(float(n.min()), float(n.max())),
                   observed_repetitions=float((shown / unique).max()), provenance=provenance, far=far,
                   at_bound=at_bound)
