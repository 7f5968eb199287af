"""Spherical k-means on L2-normalised embeddings (sampled k-means++ seeding, then FAISS's spherical k-means).

Every row of ``x`` is a unit vector; each iteration assigns a point to the centroid of
highest inner product (= cosine) and re-normalises the mean of each cluster:

.. math::

    c_j \\leftarrow \\frac{\\sum_{i: \\ell_i = j} x_i}{\\lVert \\sum_{i: \\ell_i = j} x_i \\rVert},
    \\qquad \\ell_i = \\arg\\max_j \\langle x_i, c_j \\rangle

Used by SemDeDup (Abbas et al. 2023) and self-supervised prototypes (Sorscher et al.
2022). Runs on the CPU through FAISS; inputs are float32 or float16 numpy arrays.

The seeds are k-means++ (Arthur and Vassilvitskii 2007) on a random sample of
``min(n, max(4096, 64 k), 50000)`` points: k sequential passes over the sample, so the
seeding costs :math:`O(64 k^2 d)` however large ``n`` is (FAISS itself trains on samples of
256 points per centroid by default); the iterations then run on every point.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


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
        kmeans.train(x, init_centroids=_kmeans_plus_plus(x, k, rng))
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


def _kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator, per_centroid: int = 64,
                      min_sample: int = 4096, max_sample: int = 50_000) -> np.ndarray:
    """k-means++ seeding with cosine distance on a sample of ``x`` (module notes): ``(k, d)`` float32."""
    size = min(len(x), max(min_sample, per_centroid * k), max_sample)
    sample = x[rng.choice(len(x), size=size, replace=False)]
    centers = [sample[rng.integers(len(sample))]]
    distance = 1.0 - sample @ centers[0]
    for _ in range(1, k):
        weights = np.maximum(distance, 0.0) ** 2
        total = weights.sum()
        choice = rng.choice(len(sample), p=weights / total) if total > 0 else rng.integers(len(sample))
        centers.append(sample[choice])
        distance = np.minimum(distance, 1.0 - sample @ sample[choice])
    return np.ascontiguousarray(np.stack(centers), dtype=np.float32)
