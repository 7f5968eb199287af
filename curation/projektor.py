r"""Projektor: predict and optimise a mixture's performance from OT to the target (DESIGN.md 3.4).

Kang et al. (2023), "Performance Scaling via Optimal Transport: Enabling Data Selection
from Partially Revealed Sources" (NeurIPS 2023). A mixture :math:`p \in \Delta_k` of
:math:`k` source pools is the measure that puts mass :math:`p_i / n_i` on each of the
:math:`n_i` (subsampled) embeddings of pool :math:`i`; :math:`\mathrm{OT}(p)` is the entropic
OT objective (:func:`numeric_kernels.sinkhorn.solve`, ``value_regularized``) between that measure
and the uniform measure on the target's embeddings.

Stage 1, at each pilot size :math:`N`, a least-squares fit over pilot mixtures of

.. math::

    \mathrm{perf}_N(p) = \sum_i (b_{2,i} p_i^2 + b_{1,i} p_i + b_0)\, \mathrm{OT}(p)
                        + \sum_i (c_{2,i} p_i^2 + c_{1,i} p_i) + c_0 .

On the simplex :math:`\sum_i p_i = 1`, so :math:`b_0` and :math:`c_0` are not identifiable
apart from the linear terms; they are absorbed (:math:`b_{1,i} + k b_0 \to b_{1,i}`,
:math:`c_{1,i} + c_0 \to c_{1,i}`) and the fit has :math:`4k` coefficients.

Stage 2, log-linear extrapolation in the data size between two pilot sizes :math:`N_0 < N_1`:

.. math::

    P(N, p) = \frac{\log(N / N_0)\, P(N_1, p) - \log(N / N_1)\, P(N_0, p)}{\log(N_1 / N_0)} .

Stage 3, projected gradient ascent on the simplex (Euclidean projection, Duchi et al.
2008) with the gradient of :math:`\mathrm{OT}(p)` from the dual potential :math:`f` on the
mixture side of the same entropic objective. By the envelope theorem
:math:`\partial \mathrm{OT}_\varepsilon / \partial a_j = f_j` (up to one constant, since
:math:`f + c, g - c` is the same solution), so with :math:`a_j = p_{i(j)} / n_{i(j)}`

.. math::

    \frac{\partial \mathrm{OT}}{\partial p_i} = \frac{1}{n_i} \sum_{j \in i} f_j = \bar f_i ,
    \qquad
    \nabla_{\Delta} \mathrm{OT}(p)_i = \bar f_i - \frac1k \sum_l \bar f_l ,

the gradient within the simplex (the constant drops out; it is the calibrated gradient
"mean of :math:`f` over pool :math:`i` minus the mean over the others" up to the factor
:math:`(k-1)/k`). The reference code projected nothing and differentiated the wrong
objective; here the potentials and the value come from the same solve.

Status: reference implementation, not yet a performance law of :mod:`curation.laws` and not
on the product path. The law interface restores a law from its stored parameters and pool
rows, but this model evaluates :math:`\mathrm{OT}(p)` of every mixture it predicts, so it
needs the pools' and the target's embeddings (:class:`MixtureOT`), and its stage-1 fit needs
about :math:`4k` pilot mixtures at each of two sizes. It is kept, with its tests, for the
DESIGN.md 3.4 figures and for the prediction issue, which wires it in as the ``projektor``
law (an OT feature source for stored models, then ``fit``/``restore`` like the others).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from numeric_kernels.sinkhorn import cost_matrix, solve


def project_to_simplex(v) -> np.ndarray:
    """Euclidean projection of ``v`` (k,) onto the probability simplex.

    .. math::

        \\Pi_\\Delta(v) = \\arg\\min_{p \\ge 0, \\sum p = 1} \\|p - v\\|_2 = \\max(v - \\theta, 0),

    with :math:`\\theta` found by sorting (Duchi, Shalev-Shwartz, Singer and Chandra 2008,
    "Efficient Projections onto the l1-Ball for Learning in High Dimensions").

    >>> project_to_simplex([0.0, 0.1, 2.0]).tolist()
    [0.0, 0.0, 1.0]
    >>> project_to_simplex([0.2, 0.3, 0.1]).round(4).tolist()
    [0.3333, 0.4333, 0.2333]
    """
    v = np.asarray(v, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.all(np.isfinite(v)):
        raise ValueError(f"v must be a finite non-empty vector; got {v!r}")
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    rho = np.nonzero(u - css / np.arange(1, len(v) + 1) > 0)[0][-1]
    theta = css[rho] / (rho + 1)
    return np.maximum(v - theta, 0.0)


def extrapolate(size: float, size0: float, perf0, size1: float, perf1):
    """Stage 2: the performance at ``size`` on the line through ``(log size0, perf0)`` and ``(log size1, perf1)``.

    .. math::

        P(N) = \\frac{\\log(N/N_0) P(N_1) - \\log(N/N_1) P(N_0)}{\\log(N_1/N_0)}

    >>> round(extrapolate(1e5, 1e3, 0.3, 1e4, 0.5), 12)
    0.7
    """
    if not (size > 0 and size0 > 0 and size1 > 0) or size0 == size1:
        raise ValueError(f"sizes must be > 0 and size0 != size1; got {size}, {size0}, {size1}")
    return (math.log(size / size0) * perf1 - math.log(size / size1) * perf0) / math.log(size1 / size0)


class MixtureOT:
    """:math:`\\mathrm{OT}(p)` between a mixture of source pools and a target, and its gradient.

    Parameters
    ----------
    sources : sequence of k arrays, shapes (n_i, d)
        Embeddings of each pool (subsample large pools before, or set ``max_points``).
    target : array, shape (m, d)
        Target embeddings.
    metric : {"cosine", "sqeuclidean"}
    reg : float
        Entropic regularisation, in cost units.
    tol, max_iter
        Sinkhorn stopping rule (:func:`numeric_kernels.sinkhorn.solve`); the gradient is as
        accurate as the marginals.
    max_points : int, optional
        Seeded subsample of at most this many points per pool and for the target.
    seed : int
        Seed of that subsample.

    The cost is computed once, on CPU in float64; solves are warm-started from the last one.
    """

    def __init__(self, sources: Sequence, target, *, metric: str = "cosine", reg: float = 0.05,
                 tol: float = 1e-10, max_iter: int = 20000, max_points: int | None = None, seed: int = 0):
        if len(sources) < 2:
            raise ValueError(f"sources must hold at least 2 pools; got {len(sources)}")
        rng = np.random.default_rng(seed)

        def sample(array) -> np.ndarray:
            array = np.asarray(array, dtype=np.float64)
            if array.ndim != 2 or len(array) == 0:
                raise ValueError(f"every pool and the target must be a non-empty (n, d) array; got {array.shape}")
            if max_points is not None and len(array) > max_points:
                array = array[np.sort(rng.choice(len(array), size=max_points, replace=False))]
            return array

        pools = [sample(s) for s in sources]
        target = sample(target)
        self.counts = np.array([len(s) for s in pools])
        self.owner = np.repeat(np.arange(len(pools)), self.counts)
        self.cost = cost_matrix(np.concatenate(pools), target, metric)
        self.reg, self.tol, self.max_iter = reg, tol, max_iter
        self._warm = None

    @property
    def k(self) -> int:
        return len(self.counts)

    def weights(self, p) -> np.ndarray:
        """Mixture measure ``a`` (sum n_i,) with mass ``p_i / n_i`` on each point of pool ``i``."""
        p = _check_mixture(p, self.k)
        return p[self.owner] / self.counts[self.owner]

    def value_and_grad(self, p) -> tuple[float, np.ndarray]:
        """``OT(p)`` and its gradient within the simplex, ``(k,)`` (sums to 0)."""
        res = solve(self.weights(p), None, cost=self.cost, reg=self.reg, tol=self.tol, max_iter=self.max_iter,
                    init=self._warm)
        self._warm = res.potentials
        mean_f = np.bincount(self.owner, weights=res.potentials[0], minlength=self.k) / self.counts
        return float(res.value_regularized), mean_f - mean_f.mean()

    def __call__(self, p) -> float:
        return self.value_and_grad(p)[0]


@dataclass(frozen=True)
class StageOne:
    """Coefficients ``b2, b1, c2, c1`` (each (k,)) of one pilot size, and the fit's RMSE."""

    b2: np.ndarray
    b1: np.ndarray
    c2: np.ndarray
    c1: np.ndarray
    rmse: float
    n_pilots: int

    def predict(self, p: np.ndarray, ot: np.ndarray) -> np.ndarray:
        """Performance for mixtures ``p`` (P, k) with OT values ``ot`` (P,)."""
        return (p ** 2 @ self.b2 + p @ self.b1) * ot + p ** 2 @ self.c2 + p @ self.c1

    def grad(self, p: np.ndarray, ot: float, ot_grad: np.ndarray) -> np.ndarray:
        """Gradient in ``p`` (k,) of :meth:`predict` at one mixture."""
        outer = p ** 2 @ self.b2 + p @ self.b1
        return (2 * self.b2 * p + self.b1) * ot + outer * ot_grad + 2 * self.c2 * p + self.c1


@dataclass(frozen=True)
class MixtureOptimum:
    """Result of :meth:`Projektor.optimize`: ``weights`` (k,) on the simplex and the predicted value."""

    weights: np.ndarray
    predicted: float
    start: np.ndarray
    n_iter: int
    converged: bool


class Projektor:
    """The three stages of Kang et al. (2023) over a :class:`MixtureOT`.

    Parameters
    ----------
    mixture_ot : MixtureOT
        Sources and target.
    alpha : float
        Ridge penalty of the stage-1 least squares (0: plain least squares, which needs at
        least ``4 k`` pilot mixtures per size).

    Attributes
    ----------
    sizes_ : numpy.ndarray
        Pilot sizes, ascending.
    stages_ : dict of float to StageOne
        Stage-1 fit per pilot size.
    pilots_ : numpy.ndarray, shape (P, k)
        Pilot mixtures seen by :meth:`fit`.
    """

    def __init__(self, mixture_ot: MixtureOT, *, alpha: float = 0.0):
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {alpha}")
        self.mixture_ot, self.alpha = mixture_ot, alpha

    def fit(self, mixtures, sizes, scores) -> "Projektor":
        """Stage 1 at every pilot size present.

        Parameters
        ----------
        mixtures : array, shape (P, k)
            Pilot mixtures (rows on the simplex).
        sizes : array, shape (P,)
            Training data size of each pilot.
        scores : array, shape (P,)
            Observed performance of each pilot.
        """
        k = self.mixture_ot.k
        mixtures = np.stack([_check_mixture(p, k) for p in np.asarray(mixtures, dtype=np.float64)])
        sizes, scores = np.asarray(sizes, dtype=np.float64), np.asarray(scores, dtype=np.float64)
        if sizes.shape != (len(mixtures),) or scores.shape != (len(mixtures),):
            raise ValueError(f"sizes and scores must have shape ({len(mixtures)},); got {sizes.shape}, {scores.shape}")
        if not (np.all(np.isfinite(scores)) and np.all(np.isfinite(sizes)) and np.all(sizes > 0)):
            raise ValueError("sizes must be finite and > 0 and scores finite")
        ot = np.array([self.mixture_ot(p) for p in mixtures])
        self.stages_ = {}
        for size in np.unique(sizes):
            rows = sizes == size
            if rows.sum() < 4 * k and self.alpha == 0:
                raise ValueError(f"size {size:g} has {rows.sum()} pilot mixtures; least squares over {k} pools "
                                 f"needs at least {4 * k}, or set alpha > 0")
            self.stages_[float(size)] = _fit_stage_one(mixtures[rows], ot[rows], scores[rows], self.alpha)
        self.sizes_ = np.array(sorted(self.stages_))
        self.pilots_ = mixtures
        return self

    def predict(self, mixtures, size: float) -> np.ndarray:
        """Predicted performance (P,) of mixtures (P, k) at data size ``size`` (stages 1 and 2)."""
        mixtures = np.atleast_2d(np.asarray(mixtures, dtype=np.float64))
        ot = np.array([self.mixture_ot(p) for p in mixtures])
        return sum(w * self.stages_[s].predict(mixtures, ot) for s, w in self._stage_weights(size))

    def value_and_grad(self, p, size: float) -> tuple[float, np.ndarray]:
        """Predicted performance at ``size`` of one mixture and its gradient in ``p`` (k,)."""
        p = _check_mixture(p, self.mixture_ot.k)
        ot, ot_grad = self.mixture_ot.value_and_grad(p)
        value, grad = 0.0, np.zeros_like(p)
        for s, w in self._stage_weights(size):
            value += w * float(self.stages_[s].predict(p[None], np.array([ot]))[0])
            grad += w * self.stages_[s].grad(p, ot, ot_grad)
        return value, grad

    def optimize(self, size: float, *, maximize: bool = True, start=None, max_steps: int = 200,
                 tol: float = 1e-7) -> MixtureOptimum:
        """Stage 3: projected gradient ascent (or descent) of the predicted performance on the simplex.

        Steps :math:`p \\leftarrow \\Pi_\\Delta(p \\pm \\eta \\nabla P(N, p))` with the step
        :math:`\\eta` halved until the Armijo condition
        :math:`\\pm(P(p') - P(p)) \\ge 10^{-4} \\langle \\pm\\nabla P, p' - p \\rangle` holds and doubled
        after each accepted step; stops when a step moves :math:`p` by less than ``tol``.

        Parameters
        ----------
        size : float
            Data size :math:`N` to optimise for.
        maximize : bool
            ``True`` for a score (accuracy), ``False`` for a loss.
        start : array, shape (k,), optional
            Starting mixture; by default the best (by prediction) of the uniform mixture,
            the vertices and the pilot mixtures, so the result is never worse than any of them.
        """
        sign = 1.0 if maximize else -1.0
        k = self.mixture_ot.k
        if start is None:
            candidates = np.concatenate([np.full((1, k), 1.0 / k), np.eye(k), self.pilots_])
            start = candidates[int(np.argmax(sign * self.predict(candidates, size)))]
        p = _check_mixture(start, k)
        value, grad = self.value_and_grad(p, size)
        step = 1.0 / max(np.abs(grad).max(), 1e-12)
        converged, n_iter = False, 0
        for n_iter in range(1, max_steps + 1):
            for _ in range(50):
                candidate = project_to_simplex(p + sign * step * grad)
                moved = candidate - p
                new_value, new_grad = self.value_and_grad(candidate, size)
                if sign * (new_value - value) >= 1e-4 * sign * float(grad @ moved) or np.abs(moved).max() < tol:
                    break
                step /= 2
            p, value, grad, step = candidate, new_value, new_grad, step * 2
            if np.abs(moved).max() < tol:
                converged = True
                break
        return MixtureOptimum(weights=p, predicted=float(value), start=np.asarray(start, dtype=np.float64),
                              n_iter=n_iter, converged=converged)

    def _stage_weights(self, size: float) -> list[tuple[float, float]]:
        """Stage 2 as weights on the stage-1 models: the bracketing pilot sizes, else the nearest two."""
        if not hasattr(self, "stages_"):
            raise RuntimeError("call fit() first")
        if not size > 0:
            raise ValueError(f"size must be > 0; got {size}")
        sizes = self.sizes_
        if size in self.stages_:
            return [(float(size), 1.0)]
        if len(sizes) < 2:
            raise ValueError(f"extrapolating in size needs pilots at two sizes; fitted only {sizes.tolist()}")
        i = int(np.clip(np.searchsorted(sizes, size), 1, len(sizes) - 1))
        n0, n1 = float(sizes[i - 1]), float(sizes[i])
        w1 = math.log(size / n0) / math.log(n1 / n0)
        return [(n0, 1.0 - w1), (n1, w1)]


def _check_mixture(p, k: int) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (k,) or not np.all(np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1) > 1e-8:
        raise ValueError(f"a mixture must be {k} finite non-negative weights summing to 1; got {p!r}")
    return p


def _fit_stage_one(p: np.ndarray, ot: np.ndarray, scores: np.ndarray, alpha: float) -> StageOne:
    k = p.shape[1]
    design = np.concatenate([p ** 2 * ot[:, None], p * ot[:, None], p ** 2, p], axis=1)
    if alpha > 0:
        coef = np.linalg.solve(design.T @ design + alpha * np.eye(4 * k), design.T @ scores)
    else:
        coef = np.linalg.lstsq(design, scores, rcond=None)[0]
    rmse = float(np.sqrt(np.mean((design @ coef - scores) ** 2)))
    b2, b1, c2, c1 = coef.reshape(4, k)
    return StageOne(b2=b2, b1=b1, c2=c2, c1=c1, rmse=rmse, n_pilots=len(p))
