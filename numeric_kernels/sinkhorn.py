r"""Log-domain Sinkhorn, batched, on CPU and CUDA, with exact EMD behind the same front door.

Entropic optimal transport (Cuturi 2013) between discrete measures
:math:`a \in \Delta_n`, :math:`b \in \Delta_m` with cost :math:`C \in \mathbb{R}^{n \times m}`:

.. math::

    \mathrm{OT}_\varepsilon(a, b)
      = \min_{P \in U(a, b)} \langle P, C \rangle + \varepsilon \, \mathrm{KL}(P \,\|\, a \otimes b)
      = \max_{f, g} \; \langle a, f \rangle + \langle b, g \rangle
        - \varepsilon \langle a \otimes b, e^{(f \oplus g - C)/\varepsilon} - 1 \rangle .

Sinkhorn's iterations are alternate exact maximisations of the dual, written on the
potentials so that nothing overflows however small :math:`\varepsilon` is (Peyré and
Cuturi 2019, "Computational Optimal Transport", section 4.4; Feydy et al. 2019):

.. math::

    f_i \leftarrow -\varepsilon \log \sum_j b_j \, e^{(g_j - C_{ij})/\varepsilon}, \qquad
    g_j \leftarrow -\varepsilon \log \sum_i a_i \, e^{(f_i - C_{ij})/\varepsilon}, \qquad
    P_{ij} = a_i b_j \, e^{(f_i + g_j - C_{ij})/\varepsilon} .

Both half-steps of one iteration are done in a single pass over row blocks of the
cost: a block's rows get their new :math:`f` from the current :math:`g`, and the block
is folded at once into a running (max-stabilised) log-sum-exp over columns for the
new :math:`g`. Temporaries stay block-sized and cache-resident. The ``"online"``
method computes each cost block from the point clouds instead of reading a stored
matrix, so memory is :math:`O((n + m) d + \text{block})`, never :math:`O(nm)`.

The ``"sinkhorn"`` method (a stored cost) runs the same iterations in the scaling
domain once the potentials are roughly known: with the kernel
:math:`K_{ij} = e^{(f^0_i + g^0_j - C_{ij})/\varepsilon}` built once (one pass of
exponentials), an iteration is two matrix-vector products,
:math:`u \leftarrow 1 / K(b \odot v)`, :math:`v \leftarrow 1 / K^\top(a \odot u)`, with
:math:`f = f^0 + \varepsilon \log u`, :math:`g = g^0 + \varepsilon \log v`. Whenever a
scaling leaves :math:`[e^{-\tau}, e^{\tau}]` it is absorbed into the potentials and
:math:`K` is rebuilt (Schmitzer 2019, "Stabilized sparse scaling algorithms for entropy
regularized transport problems", algorithm 2; POT's ``sinkhorn_stabilized``), with
:math:`\tau` a fifth of :math:`|\log(\text{smallest normal number})|`, so that an entry
that underflowed in :math:`K` stays below that number to the power 3/5 in the plan. A step
whose scalings are not finite is redone on the potentials. Same fixed point and, up to
rounding, the same iterates, at two matrix-vector products instead of two passes of
exponentials per iteration; the kernel costs one more dense matrix.

The stopping rule is POT's (``ot.bregman.sinkhorn_log``): the L2 norm of the column
marginal violation of the plan :math:`(f, g_{\text{old}})` falls under ``tol``; here it
is read off the two successive :math:`g` at no extra cost,
:math:`P^\top 1 = b \, e^{(g_{\text{old}} - g)/\varepsilon}`.

Two values are returned, both of the computed plan (POT's two conventions):

- ``value`` :math:`= \langle P, C \rangle`, what ``ot.sinkhorn2`` returns;
- ``value_regularized`` :math:`= \langle a, f \rangle + \langle b, g \rangle`, the dual objective
  (``g`` is the exact c-transform of ``f``, so the exponential term vanishes), equal at
  convergence to :math:`\langle P, C \rangle + \varepsilon \mathrm{KL}(P \| a \otimes b)`, the ``value``
  of ``ot.solve(M, a, b, reg=reg)``. Its gradient in ``a`` is ``f`` (up to a constant),
  which is what :mod:`curation.projektor` differentiates.

Arrays in, arrays of the same kind out: numpy in gives numpy out; torch in gives
torch out on the same device. The dtype (float32 or float64) is the inputs'.

>>> import numpy as np
>>> x = np.array([[0.0], [1.0]]); y = np.array([[0.1], [0.9]])
>>> res = solve(x=x, y=y, reg=0.01)
>>> round(float(res.value), 6), res.converged, res.potentials[0].shape
(0.01, True, (2,))
>>> round(float(solve(x=x, y=y, method="emd").value), 6)
0.01
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable

import numpy as np
import ot
import torch

METRICS = ("sqeuclidean", "cosine")
METHODS = ("sinkhorn", "online", "emd")
_CPU_BLOCK_ELEMENTS = 2**19
_CPU_ONLINE_MIN_ROWS = 256  # each online block re-reads all of y: thin blocks are bound by that read
_CUDA_BLOCK_ELEMENTS = 2**27


class SinkhornConvergenceWarning(RuntimeWarning):
    """Sinkhorn stopped at ``max_iter`` with the marginal error above ``tol``."""


@dataclass(frozen=True, eq=False)
class OTResult:
    """The solution of one OT problem, or of a batch of ``B`` problems.

    Attributes
    ----------
    value : array, shape () or (B,)
        Transport cost :math:`\\langle P, C \\rangle` of the returned plan (``ot.sinkhorn2``,
        ``ot.emd2``).
    value_regularized : array, shape () or (B,)
        Entropic objective :math:`\\langle a, f \\rangle + \\langle b, g \\rangle`
        (``ot.solve(...).value``); equals ``value`` for ``method="emd"``.
    potentials : tuple of arrays, shapes (n,), (m,) or (B, n), (B, m)
        Dual potentials ``(f, g)``. For Sinkhorn, ``g`` is the exact c-transform of ``f``.
    n_iter : int
        Sinkhorn iterations done (0 for EMD).
    marginal_error : array, shape () or (B,)
        :math:`\\|P 1 - a\\|_2 + \\|P^\\top 1 - b\\|_2` of the returned plan.
    converged : bool
        Whether every problem met ``tol`` within ``max_iter``.
    method, reg : str, float
        What was solved.
    """

    value: Any
    value_regularized: Any
    potentials: tuple[Any, Any]
    n_iter: int
    marginal_error: Any
    converged: bool
    method: str
    reg: float
    _plan: Callable[[], Any] = field(repr=False)

    @cached_property
    def plan(self):
        """Transport plan :math:`P`, shape (n, m) or (B, n, m), built on first access."""
        return self._plan()


@dataclass(frozen=True, eq=False)
class DivergenceResult:
    """Debiased Sinkhorn divergence and the three OT problems it is made of.

    ``value`` has shape () or (B,); ``xy``, ``xx``, ``yy`` are the :class:`OTResult` of
    :math:`\\mathrm{OT}_\\varepsilon(a, b)`, :math:`\\mathrm{OT}_\\varepsilon(a, a)` and
    :math:`\\mathrm{OT}_\\varepsilon(b, b)`.
    """

    value: Any
    xy: OTResult
    xx: OTResult
    yy: OTResult


def cost_matrix(x, y, metric: str = "sqeuclidean"):
    """Pairwise cost between point clouds.

    .. math::

        C^{\\text{sqeuclidean}}_{ij} = \\|x_i - y_j\\|_2^2, \\qquad
        C^{\\text{cosine}}_{ij} = 1 - \\frac{\\langle x_i, y_j \\rangle}{\\|x_i\\| \\|y_j\\|}

    Parameters
    ----------
    x : array, shape (n, d) or (B, n, d)
    y : array, shape (m, d) or (B, m, d)
    metric : {"sqeuclidean", "cosine"}

    Returns
    -------
    array, shape (n, m) or (B, n, m), of the inputs' kind, device and dtype.

    >>> cost_matrix(np.array([[0.0, 0.0]]), np.array([[3.0, 4.0]]))
    array([[25.]])
    """
    is_numpy = isinstance(x, np.ndarray)
    xt, yt = _as_tensor(x), _as_tensor(y)
    batched = xt.dim() == 3
    xt, yt = (xt, yt) if batched else (xt[None], yt[None])
    cost = _PointCost(xt, yt, _check_metric(metric)).block(0, xt.shape[1], None)
    cost = cost if batched else cost[0]
    return cost.numpy() if is_numpy else cost


def solve(
    a=None,
    b=None,
    *,
    cost=None,
    x=None,
    y=None,
    metric: str = "sqeuclidean",
    reg: float = 0.05,
    method: str = "sinkhorn",
    max_iter: int = 1000,
    tol: float | None = None,
    init=None,
    block_rows: int | None = None,
    symmetric: bool = False,
    warn: bool = True,
) -> OTResult:
    """Solve entropic (Sinkhorn) or exact (EMD) optimal transport; one problem or a batch.

    .. math::

        \\min_{P \\ge 0,\\; P 1 = a,\\; P^\\top 1 = b} \\langle P, C \\rangle
        + \\varepsilon \\, \\mathrm{KL}(P \\,\\|\\, a \\otimes b)
        \\quad (\\varepsilon = 0 \\text{ for EMD})

    Parameters
    ----------
    a, b : array, shape (n,), (m,) or (B, n), (B, m), optional
        Non-negative weights with equal total mass per problem; uniform when omitted.
    cost : array, shape (n, m) or (B, n, m), optional
        Cost matrix. Give either ``cost`` or the point clouds ``x`` and ``y``.
    x, y : array, shapes (n, d), (m, d) or (B, n, d), (B, m, d), optional
        Point clouds; the cost is ``metric`` between them (see :func:`cost_matrix`).
    metric : {"sqeuclidean", "cosine"}
        Cost between points when ``x`` and ``y`` are given.
    reg : float
        Entropic regularisation :math:`\\varepsilon > 0` (ignored by ``"emd"``), in cost units.
    method : {"sinkhorn", "online", "emd"}
        ``"sinkhorn"`` reads a dense cost (built from ``x``, ``y`` if needed);
        ``"online"`` needs ``x`` and ``y`` and never stores the (n, m) cost;
        ``"emd"`` is the exact network simplex of POT (``ot.emd2``), on CPU, for small problems.
    max_iter : int
        Sinkhorn iteration cap.
    tol : float, optional
        Stop when the L2 column marginal error is below ``tol`` for every problem.
        Default 1e-9 for float64 (POT's default) and 1e-6 for float32.
    init : tuple of arrays, optional
        Warm start ``(f, g)`` (only ``g`` is read: the first half-step recomputes ``f``).
    block_rows : int, optional
        Rows of the cost per block; default keeps a block near 2**19 entries on CPU
        (cache-resident; ``"online"`` takes at least 256 rows, as each block re-reads ``y``)
        and 2**27 on CUDA.
    symmetric : bool
        The problem is :math:`\\mathrm{OT}_\\varepsilon(a, a)` with a symmetric cost (``b`` equal to
        ``a``, ``y`` to ``x``): iterate the averaged update :math:`f \\leftarrow (f + T_a f)/2` of
        Feydy et al. (2019), which converges far faster than alternating updates there,
        and return ``g = f``. The stopping rule reads the row marginal of :math:`(f, f)`.
    warn : bool
        Emit :class:`SinkhornConvergenceWarning` when ``tol`` is not met.

    Returns
    -------
    OTResult
        Arrays of the inputs' kind (numpy or torch), device and dtype; a leading batch
        dimension exactly when the inputs have one.

    Notes
    -----
    ``"sinkhorn"`` iterates in the scaling domain (module notes): an iteration is two
    matrix-vector products with a stored kernel, :math:`O(Bnm)` multiply-adds, and the
    kernel takes a second (B, n, m) array beside the cost. ``"online"`` and the symmetric
    update iterate on the potentials: :math:`O(Bnm)` exponentials per iteration, plus
    :math:`O(Bnmd)` for ``"online"`` (the cost blocks are recomputed every iteration),
    in memory :math:`O(B(n + m)d)` plus one block. Zero weights are allowed: the
    potentials of zero-mass points are still the c-transforms, which is what a gradient
    with respect to the weights needs.

    References
    ----------
    M. Cuturi, "Sinkhorn Distances: Lightspeed Computation of Optimal Transport", NeurIPS 2013.
    G. Peyré and M. Cuturi, "Computational Optimal Transport", 2019, section 4.4.

    >>> res = solve(np.array([0.5, 0.5]), np.array([1.0]), cost=np.array([[1.0], [3.0]]), reg=0.1)
    >>> round(float(res.value), 9), res.plan.shape
    (2.0, (2, 1))
    """
    method = _check_choice("method", method, METHODS)
    metric = _check_metric(metric)
    if method != "emd" and not (isinstance(reg, (int, float)) and math.isfinite(reg) and reg > 0):
        raise ValueError(f"reg must be a finite number > 0; got {reg!r}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1; got {max_iter}")
    problem = _Problem.build(a, b, cost, x, y, metric, online=method == "online")
    if method == "emd":
        return _solve_emd(problem)
    tol = (1e-9 if problem.dtype == torch.float64 else 1e-6) if tol is None else float(tol)
    if symmetric and (problem.shape[1] != problem.shape[2] or not torch.equal(problem.a, problem.b)):
        raise ValueError("symmetric=True needs b equal to a (and y to x, or a symmetric cost)")
    return _solve_sinkhorn(problem, float(reg), method, max_iter, tol, init, block_rows, symmetric, warn)


def sinkhorn_divergence(
    a=None,
    b=None,
    *,
    x=None,
    y=None,
    cost_xy=None,
    cost_xx=None,
    cost_yy=None,
    metric: str = "sqeuclidean",
    reg: float = 0.05,
    method: str = "sinkhorn",
    **options,
) -> DivergenceResult:
    """Debiased Sinkhorn divergence (Genevay et al. 2018; Feydy et al. 2019).

    .. math::

        S_\\varepsilon(a, b) = \\mathrm{OT}_\\varepsilon(a, b)
        - \\tfrac12 \\big(\\mathrm{OT}_\\varepsilon(a, a) + \\mathrm{OT}_\\varepsilon(b, b)\\big)

    on the regularised objective (``value_regularized``); the self terms use the symmetric
    update (``solve(..., symmetric=True)``). This makes :math:`S_\\varepsilon`
    non-negative, zero iff :math:`a = b` (for the costs here), and convex in each argument.
    With ``method="emd"`` the self terms are the exact OT (zero for a metric-like cost).

    Parameters
    ----------
    a, b : array, shape (n,), (m,) or (B, n), (B, m), optional
        Weights, uniform when omitted.
    x, y : array, shape (n, d), (m, d) or batched
        Point clouds; or give the three cost matrices instead.
    cost_xy, cost_xx, cost_yy : array, shapes (n, m), (n, n), (m, m) or batched, optional
        Costs for the three terms (for a cost that is not a function of the points alone,
        e.g. the label-augmented cost of :mod:`curation.ot`).
    metric, reg, method, **options
        As in :func:`solve`.

    Returns
    -------
    DivergenceResult

    References
    ----------
    J. Feydy et al., "Interpolating between Optimal Transport and MMD using Sinkhorn
    Divergences", AISTATS 2019.

    >>> x = np.array([[0.0], [1.0]])
    >>> abs(float(sinkhorn_divergence(x=x, y=x, reg=0.1).value)) < 1e-9
    True
    """
    sym = method != "emd"
    if x is not None or y is not None:
        if x is None or y is None or cost_xy is not None:
            raise ValueError("give both point clouds x and y, or the three costs cost_xy, cost_xx, cost_yy")
        xy = solve(a, b, x=x, y=y, metric=metric, reg=reg, method=method, **options)
        xx = solve(a, a, x=x, y=x, metric=metric, reg=reg, method=method, symmetric=sym, **options)
        yy = solve(b, b, x=y, y=y, metric=metric, reg=reg, method=method, symmetric=sym, **options)
    else:
        if cost_xy is None or cost_xx is None or cost_yy is None:
            raise ValueError("give both point clouds x and y, or the three costs cost_xy, cost_xx, cost_yy")
        if method == "online":
            raise ValueError("method='online' needs the point clouds x and y, not cost matrices")
        xy = solve(a, b, cost=cost_xy, reg=reg, method=method, **options)
        xx = solve(a, a, cost=cost_xx, reg=reg, method=method, symmetric=sym, **options)
        yy = solve(b, b, cost=cost_yy, reg=reg, method=method, symmetric=sym, **options)
    value = xy.value_regularized - 0.5 * (xx.value_regularized + yy.value_regularized)
    return DivergenceResult(value=value, xy=xy, xx=xx, yy=yy)


# --------------------------------------------------------------------------- internals


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _check_metric(metric: str) -> str:
    return _check_choice("metric", metric, METRICS)


def _as_tensor(array) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        tensor = array
    else:
        tensor = torch.as_tensor(np.ascontiguousarray(array))
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    elif tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.to(torch.float32)
    return tensor


class _DenseCost:
    """Row blocks of a stored cost (B, n, m)."""

    def __init__(self, cost: torch.Tensor):
        self.cost = cost

    def block(self, r0: int, r1: int, out: torch.Tensor | None) -> torch.Tensor:
        return self.cost[:, r0:r1]


class _PointCost:
    """Row blocks of the cost between point clouds x (B, n, d) and y (B, m, d), computed on demand."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, metric: str):
        self.metric = metric
        if metric == "cosine":
            x = x / x.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
            y = y / y.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
            self.base = torch.ones(1, 1, 1, dtype=x.dtype, device=x.device)
            self.alpha = -1.0
        else:
            self.x_sq = (x * x).sum(-1)
            self.base = (y * y).sum(-1)[:, None, :]
            self.alpha = -2.0
        self.x, self.y_t = x, y.transpose(1, 2)

    def block(self, r0: int, r1: int, out: torch.Tensor | None) -> torch.Tensor:
        out = out[:, : r1 - r0] if out is not None else None
        base = self.base.expand(self.x.shape[0], r1 - r0, self.y_t.shape[2])
        block = torch.baddbmm(base, self.x[:, r0:r1], self.y_t, alpha=self.alpha, out=out)
        if self.metric == "sqeuclidean":
            block.add_(self.x_sq[:, r0:r1, None]).clamp_min_(0)
        return block


@dataclass
class _Problem:
    a: torch.Tensor  # (B, n)
    b: torch.Tensor  # (B, m)
    cost: _DenseCost | _PointCost
    batched: bool
    is_numpy: bool

    @property
    def dtype(self) -> torch.dtype:
        return self.a.dtype

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.a.shape[0], self.a.shape[1], self.b.shape[1]

    def output(self, tensor: torch.Tensor):
        tensor = tensor if self.batched else tensor[0]
        return tensor.detach().cpu().numpy() if self.is_numpy else tensor

    @classmethod
    def build(cls, a, b, cost, x, y, metric: str, *, online: bool) -> "_Problem":
        given = [v for v in (a, b, cost, x, y) if v is not None]
        is_numpy = not any(isinstance(v, torch.Tensor) for v in given)
        if online:
            if x is None or y is None or cost is not None:
                raise ValueError("method='online' needs the point clouds x and y (and no cost matrix)")
        elif (cost is None) == (x is None or y is None) or (cost is not None and (x is not None or y is not None)):
            raise ValueError("give either cost, or both point clouds x and y")
        if cost is not None:
            c = _as_tensor(cost)
            if c.dim() not in (2, 3):
                raise ValueError(f"cost must have shape (n, m) or (B, n, m); got {tuple(c.shape)}")
            batched = c.dim() == 3
            c = c if batched else c[None]
            if not torch.isfinite(c).all():
                raise ValueError("cost has non-finite entries")
            source: _DenseCost | _PointCost = _DenseCost(c)
            (n_batch, n, m), dtype, device = c.shape, c.dtype, c.device
        else:
            xt, yt = _as_tensor(x), _as_tensor(y)
            if xt.dim() not in (2, 3) or yt.dim() != xt.dim() or xt.shape[-1] != yt.shape[-1]:
                raise ValueError(f"x and y must have shapes (n, d), (m, d) or (B, n, d), (B, m, d); "
                                 f"got {tuple(xt.shape)} and {tuple(yt.shape)}")
            batched = xt.dim() == 3
            xt, yt = (xt, yt) if batched else (xt[None], yt[None])
            if xt.shape[0] != yt.shape[0]:
                raise ValueError(f"x and y must have the same batch size; got {xt.shape[0]} and {yt.shape[0]}")
            dtype = torch.promote_types(xt.dtype, yt.dtype)
            xt, yt = xt.to(dtype), yt.to(dtype)
            if not (torch.isfinite(xt).all() and torch.isfinite(yt).all()):
                raise ValueError("x or y has non-finite entries")
            n_batch, n, m, device = xt.shape[0], xt.shape[1], yt.shape[1], xt.device
            source = _PointCost(xt, yt, metric)
            if not online:
                source = _DenseCost(source.block(0, n, None))
        a_t = _weights("a", a, n_batch, n, dtype, device)
        b_t = _weights("b", b, n_batch, m, dtype, device)
        mass_a, mass_b = a_t.sum(1), b_t.sum(1)
        if not torch.allclose(mass_a, mass_b, rtol=1e-6, atol=0):
            raise ValueError(f"a and b must have the same total mass (balanced OT); got {mass_a.tolist()} "
                             f"and {mass_b.tolist()}")
        return cls(a_t, b_t, source, batched, is_numpy)


def _weights(name: str, w, n_batch: int, n: int, dtype, device) -> torch.Tensor:
    if w is None:
        return torch.full((n_batch, n), 1.0 / n, dtype=dtype, device=device)
    t = _as_tensor(w).to(dtype=dtype, device=device)
    if t.dim() == 1:
        t = t[None].expand(n_batch, -1)
    if t.shape != (n_batch, n):
        raise ValueError(f"{name} must have shape ({n},) or ({n_batch}, {n}); got {tuple(t.shape)}")
    if not torch.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    if (t.sum(1) <= 0).any():
        raise ValueError(f"{name} must have positive total mass")
    return t.contiguous()


def _block_rows(problem: _Problem, block_rows: int | None) -> int:
    n_batch, n, m = problem.shape
    if block_rows is None:
        elements = _CUDA_BLOCK_ELEMENTS if problem.a.device.type == "cuda" else _CPU_BLOCK_ELEMENTS
        block_rows = elements // (n_batch * m)
        if isinstance(problem.cost, _PointCost) and problem.a.device.type != "cuda":
            block_rows = max(block_rows, _CPU_ONLINE_MIN_ROWS)
    return int(min(max(block_rows, 1), n))


def _log(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, w.log(), torch.full_like(w, -math.inf))


def _sweep(problem: _Problem, g, log_a, log_b, reg: float, rows: int, buffers, *, columns=True, f=None):
    """One Sinkhorn iteration: new f from g, then new g from the new f, in one pass over the blocks.

    With ``columns=False`` only the first half-step: ``(T g, None)``; given ``f`` (then ``g`` is
    not read), only the second: ``(f, T f)``.
    """
    n_batch, n, m = problem.shape
    given = f is not None
    f = f if given else torch.empty_like(log_a)
    h_b = None if given else (g / reg + log_b)[:, None, :]
    col_max = torch.full((n_batch, 1, m), -math.inf, dtype=f.dtype, device=f.device)
    col_sum = torch.zeros((n_batch, 1, m), dtype=f.dtype, device=f.device)
    floor = torch.finfo(f.dtype).min
    cost_buf, work = buffers
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        block = problem.cost.block(r0, r1, cost_buf)
        if given:
            f_blk = f[:, r0:r1, None]
        else:
            t = torch.add(h_b, block, alpha=-1.0 / reg, out=work[:, : r1 - r0])
            row_max = t.amax(2, keepdim=True)
            t.sub_(row_max).exp_()
            f_blk = t.sum(2, keepdim=True).log_().add_(row_max).mul_(-reg)
            f[:, r0:r1] = f_blk[:, :, 0]
        if not columns:
            continue
        t = torch.add((f_blk / reg).add_(log_a[:, r0:r1, None]), block, alpha=-1.0 / reg, out=work[:, : r1 - r0])
        new_max = torch.maximum(col_max, t.amax(1, keepdim=True)).clamp_min_(floor)
        col_sum.mul_((col_max - new_max).exp_()).add_(t.sub_(new_max).exp_().sum(1, keepdim=True))
        col_max = new_max
    if not columns:
        return f, None
    g_new = (col_sum.log_().add_(col_max)).mul_(-reg)[:, 0]
    return f, g_new


def _final_pass(problem: _Problem, f, g, log_a, log_b, reg: float, rows: int, buffers):
    """<P, C> and the L2 marginal errors of P = a b exp((f + g - C) / reg)."""
    n_batch, n, m = problem.shape
    value = torch.zeros(n_batch, dtype=f.dtype, device=f.device)
    col = torch.zeros((n_batch, m), dtype=f.dtype, device=f.device)
    row = torch.empty_like(f)
    h_b = (g / reg + log_b)[:, None, :]
    cost_buf, work = buffers
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        block = problem.cost.block(r0, r1, cost_buf)
        t = torch.add(h_b, block, alpha=-1.0 / reg, out=work[:, : r1 - r0])
        t.add_((f[:, r0:r1] / reg + log_a[:, r0:r1])[:, :, None]).exp_()
        row[:, r0:r1] = t.sum(2)
        col.add_(t.sum(1))
        value.add_((t * block).sum((1, 2)))
    error = (row - problem.a).norm(dim=1) + (col - problem.b).norm(dim=1)
    return value, error


def _dense_plan(problem: _Problem, f, g, reg: float) -> torch.Tensor:
    _, n, _ = problem.shape
    cost = problem.cost.block(0, n, None)
    return torch.exp((f[:, :, None] + g[:, None, :] - cost) / reg) * problem.a[:, :, None] * problem.b[:, None, :]


def _solve_sinkhorn(problem: _Problem, reg, method, max_iter, tol, init, block_rows, symmetric, warn) -> OTResult:
    n_batch, n, m = problem.shape
    rows = _block_rows(problem, block_rows)
    dtype, device = problem.dtype, problem.a.device
    buffers = (
        torch.empty((n_batch, rows, m), dtype=dtype, device=device) if isinstance(problem.cost, _PointCost) else None,
        torch.empty((n_batch, rows, m), dtype=dtype, device=device),
    )
    log_a, log_b = _log(problem.a), _log(problem.b)
    if init is None:  # POT's start: f = 0, then g = T f (the symmetric update starts from g = 0)
        g = torch.zeros((n_batch, m), dtype=dtype, device=device)
        if not symmetric:
            _, g = _sweep(problem, None, log_a, log_b, reg, rows, buffers, f=torch.zeros_like(log_a))
    else:
        g = _as_tensor(init[1]).to(dtype=dtype, device=device)
        g = (g[None].expand(n_batch, -1) if g.dim() == 1 else g).clone()
        if g.shape != (n_batch, m):
            raise ValueError(f"init must be (f, g) with g of shape ({m},) or ({n_batch}, {m}); got {tuple(g.shape)}")
    if isinstance(problem.cost, _DenseCost) and not symmetric:
        f, g, error, n_iter = _iterate_scaling(problem, g, log_a, log_b, reg, rows, buffers, max_iter, tol)
    else:
        f, g, error, n_iter = _iterate_log(problem, g, log_a, log_b, reg, rows, buffers, max_iter, tol, symmetric)
    converged = bool((error < tol).all())
    if not converged and warn:
        warnings.warn(f"Sinkhorn did not reach tol={tol:g} in {max_iter} iterations (largest marginal error "
                      f"{float(error.max()):.3g}); increase max_iter or reg", SinkhornConvergenceWarning,
                      stacklevel=3)
    value, marginal_error = _final_pass(problem, f, g, log_a, log_b, reg, rows, buffers)
    value_reg = (torch.where(problem.a > 0, problem.a * f, 0).sum(1)
                 + torch.where(problem.b > 0, problem.b * g, 0).sum(1))
    out = problem.output
    return OTResult(
        value=out(value), value_regularized=out(value_reg), potentials=(out(f), out(g)), n_iter=n_iter,
        marginal_error=out(marginal_error), converged=converged, method=method, reg=reg,
        _plan=lambda: out(_dense_plan(problem, f, g, reg)),
    )


def _marginal_error(w: torch.Tensor, h_old: torch.Tensor, h_new: torch.Tensor, reg: float) -> torch.Tensor:
    """L2 error, per problem, of the marginal ``w exp((h_old - h_new) / reg)`` of the plan built on
    ``h_old``, where ``h_new`` is its exact update: the stopping rule, read off two potentials."""
    return (w * torch.exp((h_old - h_new) / reg) - w).norm(dim=1)


def _check_finite(f: torch.Tensor, g: torch.Tensor) -> None:
    if not torch.isfinite(f).all() or not torch.isfinite(g).all():
        raise FloatingPointError("Sinkhorn potentials became non-finite; check the cost and reg")


def _iterate_log(problem: _Problem, g, log_a, log_b, reg, rows, buffers, max_iter, tol, symmetric):
    """Sinkhorn iterations on the potentials: ``(f, g, marginal error (B,), iterations done)``."""
    a, b = problem.a, problem.b
    error = torch.full((problem.shape[0],), math.inf, dtype=g.dtype, device=g.device)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        if symmetric:  # row marginal of (g, g) is a exp((g - T g) / reg); then g <- (g + T g) / 2
            t_g, _ = _sweep(problem, g, log_a, log_b, reg, rows, buffers, columns=False)
            error = _marginal_error(a, g, t_g, reg)
            f = g = 0.5 * (g + t_g)
        else:
            f, g_new = _sweep(problem, g, log_a, log_b, reg, rows, buffers)
            error = _marginal_error(b, g, g_new, reg)
            g = g_new
        _check_finite(f, g)
        if bool((error < tol).all()):
            break
    return f, g, error, n_iter


def _kernel(problem: _Problem, f, g, reg: float, rows: int, out: torch.Tensor) -> torch.Tensor:
    """``out[:] = exp((f_i + g_j - C_ij) / reg)``, shape (B, n, m), one row block at a time."""
    n = problem.shape[1]
    for r0 in range(0, n, rows):
        r1 = min(r0 + rows, n)
        block = torch.sub(g[:, None, :], problem.cost.block(r0, r1, None), out=out[:, r0:r1])
        block.add_(f[:, r0:r1, None]).div_(reg).exp_()
    return out


def _iterate_scaling(problem: _Problem, g, log_a, log_b, reg, rows, buffers, max_iter, tol):
    """Sinkhorn iterations in the scaling domain with absorption (module notes); as :func:`_iterate_log`.

    In a batch, problems that meet ``tol`` leave it once they are half of those still
    iterating (the kernel is compacted then, so the copies add up to at most one kernel):
    a batch costs about the sum of its problems' iterations, not its slowest one's times ``B``.
    """
    bound = abs(math.log(torch.finfo(g.dtype).tiny)) / 5
    f, g_new = _sweep(problem, g, log_a, log_b, reg, rows, buffers)  # potentials of the right scale first
    error = _marginal_error(problem.b, g, g_new, reg)
    g, n_iter = g_new, 1
    _check_finite(f, g)
    f_out, g_out, error_out = f.clone(), g.clone(), error.clone()
    live = torch.arange(problem.shape[0], device=f.device)  # batch rows still iterating
    kernel = _kernel(problem, f, g, reg, rows, torch.empty_like(problem.cost.cost))
    u, v = torch.ones_like(f), torch.ones_like(g)
    while n_iter < max_iter:
        done = error < tol
        n_done = int(done.sum())
        if n_done == len(live):
            break
        if 2 * n_done >= len(live):  # retire the converged problems
            keep = ~done
            f_out[live[done]], g_out[live[done]] = f[done] + reg * u[done].log(), g[done] + reg * v[done].log()
            error_out[live[done]] = error[done]
            live, f, g, u, v, error = live[keep], f[keep], g[keep], u[keep], v[keep], error[keep]
            problem = _Problem(problem.a[keep], problem.b[keep], _DenseCost(problem.cost.cost[keep]),
                               problem.batched, problem.is_numpy)
            log_a, log_b, kernel = log_a[keep], log_b[keep], kernel[keep]
            buffers = tuple(None if t is None else t[: len(live)] for t in buffers)
        a, b = problem.a, problem.b
        n_iter += 1
        u_new = torch.bmm(kernel, (b * v)[:, :, None])[:, :, 0].reciprocal_()
        col = torch.bmm((a * u_new)[:, None, :], kernel)[:, 0, :]
        if not (torch.isfinite(u_new).all() and torch.isfinite(col).all() and bool((col > 0).all())):
            g_old = g + reg * v.log()  # this step underflowed in K: redo it on the potentials
            f, g = _sweep(problem, g_old, log_a, log_b, reg, rows, buffers)
            error = _marginal_error(b, g_old, g, reg)
            _check_finite(f, g)
            kernel = _kernel(problem, f, g, reg, rows, kernel)
            u, v = torch.ones_like(f), torch.ones_like(g)
            continue
        error = (b * v * col - b).norm(dim=1)
        u, v = u_new, col.reciprocal_()
        if bool(u.log().abs().max() > bound) or bool(v.log().abs().max() > bound):
            f, g = f + reg * u.log(), g + reg * v.log()
            kernel = _kernel(problem, f, g, reg, rows, kernel)
            u, v = torch.ones_like(f), torch.ones_like(g)
    f_out[live], g_out[live], error_out[live] = f + reg * u.log(), g + reg * v.log(), error
    _check_finite(f_out, g_out)
    return f_out, g_out, error_out, n_iter


def _solve_emd(problem: _Problem) -> OTResult:
    n_batch, n, m = problem.shape
    cost = problem.cost.block(0, n, None)
    values, plans, fs, gs = [], [], [], []
    for k in range(n_batch):
        a_k = problem.a[k].detach().cpu().numpy().astype(np.float64)
        b_k = problem.b[k].detach().cpu().numpy().astype(np.float64)
        value, log = ot.emd2(a_k, b_k, cost[k].detach().cpu().numpy().astype(np.float64), log=True,
                             return_matrix=True)
        if log["warning"] is not None:
            raise RuntimeError(f"ot.emd2 failed on problem {k}: {log['warning']}")
        values.append(value), plans.append(log["G"]), fs.append(log["u"]), gs.append(log["v"])

    def like(arrays) -> torch.Tensor:
        return torch.as_tensor(np.stack(arrays)).to(dtype=problem.dtype, device=problem.a.device)

    value_t, plan_t = like(values), like(plans)
    error = (plan_t.sum(2) - problem.a).norm(dim=1) + (plan_t.sum(1) - problem.b).norm(dim=1)
    out = problem.output
    return OTResult(
        value=out(value_t), value_regularized=out(value_t), potentials=(out(like(fs)), out(like(gs))), n_iter=0,
        marginal_error=out(error), converged=True, method="emd", reg=0.0, _plan=lambda: out(plan_t),
    )
