"""Spherical k-means on L2-normalised embeddings (seeding, then FAISS's spherical k-means).

Every row of ``x`` is a unit vector; each iteration assigns a point to the centroid of
highest inner product (= cosine) and re-normalises the mean of each cluster:

.. math::

    c_j \\leftarrow \\frac{\\sum_{i: \\ell_i = j} x_i}{\\lVert \\sum_{i: \\ell_i = j} x_i \\rVert},
    \\qquad \\ell_i = \\arg\\max_j \\langle x_i, c_j \\rangle

Seeds: k-means++ (Arthur and Vassilvitskii 2007) drawn from a sample of
:data:`SEED_POINTS_PER_CLUSTER` points per cluster, so its k sequential passes cost
:math:`O(k^2 d)`, not :math:`O(nkd)`; above :data:`MAX_PLUS_PLUS_CLUSTERS` clusters even
that outgrows Lloyd's iterations and the seeds are k distinct random points (FAISS's own
default, and what SemDeDup's reference code uses).

Used by SemDeDup (Abbas et al. 2023) and self-supervised prototypes (Sorscher et al.
2022). Runs on the CPU through FAISS; inputs are float32 or float16 numpy arrays.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

#: k-means++ draws from a uniform sample of this many points per cluster.
SEED_POINTS_PER_CLUSTER = 32
#: Above this many clusters the seeds are k distinct random points.
MAX_PLUS_PLUS_CLUSTERS = 256


@dataclass(frozen=True)
class SphericalKMeans:
    """Result: ``centroids_`` (k, d) unit rows, ``labels_`` (n,), ``similarity_`` (n,) cosine to own centroid."""

    centroids_: np.ndarray
    labels_: np.ndarray
    similarity_: np.ndarray

    @property
    def inertia_(self) -> float:
        """Sum over points of ``1 - cos(x, own centroid)`` (the spherical objective)."""
        return float(np.sum(1.0 - self.similarity_))


def spherical_kmeans(x: np.ndarray, k: int, *, n_iter: int = 25, n_init: int = 3, seed: int = 0) -> SphericalKMeans:
    """Cluster unit rows ``x`` (n, d) into ``k`` clusters; the best of ``n_init`` seeded runs.

    >>> rng = np.random.default_rng(0)
    >>> x = np.repeat(np.eye(3, dtype=np.float32), 5, axis=0) + 0.01 * rng.normal(size=(15, 3)).astype(np.float32)
    >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
    >>> len(set(spherical_kmeans(x, 3).labels_.tolist()))
    3
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, n={n}]; got {k}")
    rng = np.random.default_rng(seed)
    best: SphericalKMeans | None = None
    for run in range(n_init):
        kmeans = faiss.Kmeans(d, k, niter=n_iter, seed=seed + run, spherical=True, verbose=False,
                              max_points_per_centroid=max(256, n // k + 1))
        kmeans.train(x, init_centroids=_seeds(x, k, rng))
        result = _assign(x, kmeans.centroids)
        if best is None or result.inertia_ < best.inertia_:
            best = result
    return best


def _assign(x: np.ndarray, centroids: np.ndarray) -> SphericalKMeans:
    centroids = (centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(centroids)
    similarity, labels = index.search(x, 1)
    return SphericalKMeans(centroids_=centroids, labels_=labels[:, 0].astype(np.int64),
                           similarity_=similarity[:, 0].astype(np.float64))


def _seeds(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``(k, d)`` initial centroids (module notes): k-means++ with cosine distance on a sample,
    or k distinct random points above :data:`MAX_PLUS_PLUS_CLUSTERS` clusters."""
    if k > MAX_PLUS_PLUS_CLUSTERS:
        return np.ascontiguousarray(x[np.sort(rng.choice(len(x), size=k, replace=False))], dtype=np.float32)
    sample = x[np.sort(rng.choice(len(x), size=min(len(x), SEED_POINTS_PER_CLUSTER * k), replace=False))]
    chosen = [int(rng.integers(len(sample)))]
    distance = np.maximum(1.0 - sample @ sample[chosen[0]], 0.0)
    for _ in range(1, k):
        cumulative = np.cumsum(distance.astype(np.float64) ** 2)
        if cumulative[-1] > 0:  # D^2 sampling
            chosen.append(min(int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")),
                              len(sample) - 1))
        else:  # every point already coincides with a seed
            chosen.append(int(rng.integers(len(sample))))
        np.minimum(distance, np.maximum(1.0 - sample @ sample[chosen[-1]], 0.0), out=distance)
    return np.ascontiguousarray(sample[chosen], dtype=np.float32)
