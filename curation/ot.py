r"""Optimal-transport distances between sets of embeddings (DESIGN.md 3.4).

The distance reported between a source pool :math:`X` and a target benchmark :math:`Y`
is the debiased Sinkhorn divergence (:func:`numeric_kernels.sinkhorn.sinkhorn_divergence`)
between uniform measures on seeded bootstrap resamples of both sets:

.. math::

    S_\varepsilon(X, Y) = \mathrm{OT}_\varepsilon(X, Y)
      - \tfrac12\big(\mathrm{OT}_\varepsilon(X, X) + \mathrm{OT}_\varepsilon(Y, Y)\big),

computed for ``n_resamples`` resamples at once (one batched Sinkhorn). The estimate
is the mean over resamples and the band the ``(1 - level)/2`` and ``(1 + level)/2``
quantiles. With ``method="emd"`` the exact OT cost (POT ``ot.emd2``) replaces
:math:`\mathrm{OT}_\varepsilon`.

When both sides carry labels, the ground cost is label-augmented as in OTDD
(Alvarez-Melis and Fusi 2020, "Geometric Dataset Distances via Optimal Transport"):

.. math::

    c\big((x, l), (x', l')\big) = c(x, x') + \lambda \, W(l, l'),

where :math:`W(l, l')` is the Sinkhorn divergence, under the same feature cost, between
the embeddings of class :math:`l` and those of class :math:`l'` (each capped at
``class_sample_size`` points), so both terms are in the same units.

Everything here takes arrays (numpy or torch, on any device) that the caller has
loaded; nothing reads storage.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> near = embedding_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)), metric="sqeuclidean",
...                           reg=1.0, sample_size=100, n_resamples=8)
>>> far = embedding_distance(rng.normal(size=(200, 8)), rng.normal(size=(200, 8)) + 2, metric="sqeuclidean",
...                          reg=1.0, sample_size=100, n_resamples=8)
>>> near.value < far.low
True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from curation.pipeline import ShardedRows
from numeric_kernels.sinkhorn import cost_matrix, sinkhorn_divergence


@dataclass(frozen=True)
class DistanceEstimate:
    """A bootstrap estimate of the OT distance between two embedding sets.

    Attributes
    ----------
    value : float
        Mean of the divergence over resamples.
    low, high : float
        Quantiles of the resampled divergences at ``(1 - level)/2`` and ``(1 + level)/2``.
    resamples : numpy.ndarray, shape (n_resamples,)
        The divergence on each resample.
    sample_sizes : tuple of int
        Points drawn from the source and from the target per resample.
    converged : bool
        Whether every Sinkhorn problem met its tolerance.
    """

    value: float
    low: float
    high: float
    resamples: np.ndarray
    sample_sizes: tuple[int, int]
    level: float
    metric: str
    reg: float
    method: str
    labelled: bool
    converged: bool


@dataclass(frozen=True)
class DistanceTable:
    """Distances from every source to every target.

    ``value``, ``low`` and ``high`` have shape (n_sources, n_targets); ``estimates`` maps
    ``(source, target)`` to its :class:`DistanceEstimate`.
    """

    sources: list[str]
    targets: list[str]
    value: np.ndarray
    low: np.ndarray
    high: np.ndarray
    estimates: dict[tuple[str, str], DistanceEstimate]

    def records(self) -> list[dict[str, Any]]:
        """One row ``{source, target, value, low, high}`` per pair, sources outer."""
        return [{"source": s, "target": t, "value": float(self.value[i, j]), "low": float(self.low[i, j]),
                 "high": float(self.high[i, j])}
                for i, s in enumerate(self.sources) for j, t in enumerate(self.targets)]

    def nearest_source(self, target: str) -> str:
        """The source with the smallest distance to ``target``."""
        return self.sources[int(np.argmin(self.value[:, self.targets.index(target)]))]


def embedding_distance(
    source,
    target,
    *,
    source_labels=None,
    target_labels=None,
    metric: str = "cosine",
    reg: float = 0.05,
    method: str = "sinkhorn",
    sample_size: int = 500,
    n_resamples: int = 20,
    level: float = 0.95,
    seed: int | list[int] = 0,
    label_weight: float = 1.0,
    class_sample_size: int = 200,
    max_iter: int = 2000,
    tol: float = 1e-6,
    device: str | None = None,
) -> DistanceEstimate:
    """Bootstrap OT distance between a source pool and a target benchmark in embedding space.

    Parameters
    ----------
    source : array, shape (n_source, d)
        Source embeddings (numpy or torch; float16 is computed in float32), or a
        :class:`curation.pipeline.ShardedRows`, of which only the sampled rows are read.
    target : array, shape (n_target, d)
        Target embeddings.
    source_labels, target_labels : array, shape (n_source,), (n_target,), optional
        Class labels (any hashable values); give both for the label-augmented cost.
    metric : {"cosine", "sqeuclidean"}
        Feature cost.
    reg : float
        Entropic regularisation in cost units (ignored by ``method="emd"``).
    method : {"sinkhorn", "emd"}
        Entropic divergence, or exact OT through POT for small samples.
    sample_size : int
        Points drawn (with replacement) from each side per resample, at most the set's size.
    n_resamples : int
        Bootstrap resamples; they are solved as one batch.
    level : float
        Coverage of the band, in (0, 1).
    seed : int or sequence of int
        Seeds the resampling (``numpy.random.SeedSequence``); the same seed gives the same estimate.
    label_weight : float
        :math:`\\lambda`, the weight of the label distance in the augmented cost.
    class_sample_size : int
        Points per class used for the class-to-class distances.
    max_iter, tol
        Passed to :func:`numeric_kernels.sinkhorn.solve` (``tol`` bounds the L2 marginal error of
        each plan; 1e-6 is far below the resampling noise).
    device : str, optional
        Where to solve: the resampled points go to this torch device (``"cuda"`` on a GPU
        worker: :func:`curation.embedders.accelerator`); None solves on the inputs as given.

    Returns
    -------
    DistanceEstimate
    """
    if method not in ("sinkhorn", "emd"):
        raise ValueError(f"method must be 'sinkhorn' or 'emd'; got {method!r}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}")
    if sample_size < 1 or n_resamples < 1:
        raise ValueError(f"sample_size and n_resamples must be >= 1; got {sample_size} and {n_resamples}")
    if (source_labels is None) != (target_labels is None):
        raise ValueError("give labels for both source and target, or for neither")
    source, target = _embeddings("source", source), _embeddings("target", target)
    if source.shape[1] != target.shape[1]:
        raise ValueError(f"source and target must have the same dimension; got {source.shape[1]} and "
                         f"{target.shape[1]}")
    rng, class_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2))
    n_s, n_t = min(sample_size, len(source)), min(sample_size, len(target))
    idx_s = rng.integers(0, len(source), size=(n_resamples, n_s))
    idx_t = rng.integers(0, len(target), size=(n_resamples, n_t))
    x, y = source[_index(source, idx_s)], target[_index(target, idx_t)]
    if device is not None:
        x, y = (torch.as_tensor(np.asarray(v, dtype=np.float32)) if not isinstance(v, torch.Tensor) else v
                for v in (x, y))
        x, y = x.to(device=device, dtype=torch.float32), y.to(device=device, dtype=torch.float32)
    options = dict(reg=reg, method=method, max_iter=max_iter, tol=tol)
    if source_labels is None:
        result = sinkhorn_divergence(x=x, y=y, metric=metric, **options)
    else:
        labels_s, labels_t = np.asarray(source_labels), np.asarray(target_labels)
        if len(labels_s) != len(source) or len(labels_t) != len(target):
            raise ValueError(f"labels must have one entry per embedding; got {len(labels_s)} for {len(source)} "
                             f"source and {len(labels_t)} for {len(target)} target embeddings")
        groups_s, groups_t, between = _label_distances(source, labels_s, target, labels_t, metric=metric,
                                                       class_sample_size=class_sample_size, rng=class_rng, **options)
        gs, gt = groups_s[idx_s], groups_t[idx_t]
        result = sinkhorn_divergence(
            cost_xy=cost_matrix(x, y, metric) + label_weight * _like(between[gs[:, :, None], gt[:, None, :]], x),
            cost_xx=cost_matrix(x, x, metric) + label_weight * _like(between[gs[:, :, None], gs[:, None, :]], x),
            cost_yy=cost_matrix(y, y, metric) + label_weight * _like(between[gt[:, :, None], gt[:, None, :]], x),
            **options,
        )
    values = np.asarray(result.value.detach().cpu() if isinstance(result.value, torch.Tensor) else result.value,
                        dtype=np.float64)
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return DistanceEstimate(
        value=float(values.mean()), low=float(low), high=float(high), resamples=values, sample_sizes=(n_s, n_t),
        level=level, metric=metric, reg=float(reg) if method == "sinkhorn" else 0.0, method=method,
        labelled=source_labels is not None,
        converged=all(r.converged for r in (result.xy, result.xx, result.yy)),
    )


def distance_table(
    sources: Mapping[str, Any],
    targets: Mapping[str, Any],
    *,
    source_labels: Mapping[str, Any] | None = None,
    target_labels: Mapping[str, Any] | None = None,
    seed: int = 0,
    **options,
) -> DistanceTable:
    """:func:`embedding_distance` from every source to every target.

    Parameters
    ----------
    sources, targets : mapping of name to array, shape (n, d)
        Embeddings per source pool and per target benchmark.
    source_labels, target_labels : mapping of name to array, optional
        Labels per set; a pair is label-augmented when both of its sets have labels.
    seed : int
        Pair ``(i, j)`` (in the mappings' order) uses the seed ``[seed, i, j]``, so adding a
        target does not change the other pairs' estimates.
    **options
        Passed to :func:`embedding_distance`.

    Returns
    -------
    DistanceTable
    """
    if not sources or not targets:
        raise ValueError("sources and targets must each hold at least one embedding set")
    source_labels, target_labels = source_labels or {}, target_labels or {}
    names_s, names_t = list(sources), list(targets)
    shape = (len(names_s), len(names_t))
    value, low, high = np.empty(shape), np.empty(shape), np.empty(shape)
    estimates = {}
    for i, s in enumerate(names_s):
        for j, t in enumerate(names_t):
            both = s in source_labels and t in target_labels
            estimate = embedding_distance(
                sources[s], targets[t], source_labels=source_labels[s] if both else None,
                target_labels=target_labels[t] if both else None, seed=[seed, i, j],
                **options,
            )
            estimates[s, t] = estimate
            value[i, j], low[i, j], high[i, j] = estimate.value, estimate.low, estimate.high
    return DistanceTable(sources=names_s, targets=names_t, value=value, low=low, high=high, estimates=estimates)


def _embeddings(name: str, array):
    if not isinstance(array, (torch.Tensor, ShardedRows)):
        array = np.asarray(array)
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty array of shape (n, d); got shape {tuple(array.shape)}")
    return array


def _index(array, idx: np.ndarray):
    return torch.as_tensor(idx, device=array.device) if isinstance(array, torch.Tensor) else idx


def _like(values: np.ndarray, reference):
    if isinstance(reference, torch.Tensor):
        return torch.as_tensor(values, dtype=reference.dtype, device=reference.device)
    return values.astype(np.result_type(reference.dtype, np.float32))


def _label_distances(source, labels_s, target, labels_t, *, metric, class_sample_size, rng, **options):
    """Group ids per point and the (G, G) class-to-class divergence over the G source and target classes."""
    classes_s, groups_s = np.unique(labels_s, return_inverse=True)
    classes_t, groups_t = np.unique(labels_t, return_inverse=True)
    groups_t = groups_t + len(classes_s)
    members = []
    for data, groups, count, offset in ((source, groups_s, len(classes_s), 0),
                                        (target, groups_t, len(classes_t), len(classes_s))):
        for g in range(offset, offset + count):
            idx = np.flatnonzero(groups == g)
            idx = rng.choice(idx, size=class_sample_size, replace=False) if len(idx) > class_sample_size else idx
            members.append(data[_index(data, idx)])
    n_groups = len(members)
    between = np.zeros((n_groups, n_groups))
    for g in range(n_groups):
        for h in range(g + 1, n_groups):
            value = sinkhorn_divergence(x=members[g], y=members[h], metric=metric, **options).value
            between[g, h] = between[h, g] = max(float(value), 0.0)
    return groups_s, groups_t, between
