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

import math
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
        result = assign(x, normalise_rows(kmeans.centroids))
        if best is None or result.inertia_ < best.inertia_:
            best = result
    return best


def normalise_rows(centroids: np.ndarray) -> np.ndarray:
    """``centroids`` (k, d) scaled to unit rows, float32 (a zero row stays zero)."""
    return (centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def assign(x: np.ndarray, centroids: np.ndarray, *, block: int = 4096) -> SphericalKMeans:
    """Nearest of the unit ``centroids`` (k, d) by inner product for every row of ``x`` (n, d).

    Row by row the same answer whether ``x`` is a whole corpus or one shard of it, so a
    corpus can be assigned a shard at a time to centroids trained on a sample of it: the
    products are accumulated in float64 (``block`` rows at a time) and the cosine is rounded
    to float32. A float32 BLAS product's last bits depend on how many rows it is given (the
    kernel's blocking and threads), float64's differ far below float32's resolution. Ties go
    to the lowest centroid index.

    >>> centroids = np.eye(2, dtype=np.float32)
    >>> assign(np.array([[0.9, 0.1], [0.2, 0.8]], dtype=np.float32), centroids).labels_.tolist()
    [0, 1]
    """
    x = np.asarray(x)
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != centroids.shape[1]:
        raise ValueError(f"x must have shape (n, {centroids.shape[1]}); got {x.shape}")
    transposed = centroids.T.astype(np.float64)
    labels = np.empty(len(x), dtype=np.int64)
    similarity = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), block):
        products = np.asarray(x[start:start + block], dtype=np.float64) @ transposed
        best = products.argmax(1)
        labels[start:start + len(best)] = best
        similarity[start:start + len(best)] = products[np.arange(len(best)), best].astype(np.float32)
    return SphericalKMeans(centroids_=centroids, labels_=labels, similarity_=similarity)


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


#: What share of a corpus spherical k-means trains on when it is assigned shard by shard
#: (:func:`fit_sample_size`), as NeMo Curator's ``kmeans_fit_data_fraction``; with a floor and a cap.
FIT_FRACTION = 0.1
FIT_FLOOR = 50_000
FIT_CAP = 200_000


def fit_sample_size(n: int, *, fraction: float = FIT_FRACTION, floor: int = FIT_FLOOR, cap: int = FIT_CAP) -> int:
    """Rows of an ``n``-row corpus that k-means trains on: ``min(n, max(floor, ceil(fraction n), ...), cap)``.

    .. math::

        s(n) = \\min\\bigl(n, \\min(\\text{cap}, \\max(\\text{floor}, \\lceil \\text{fraction} \\cdot n \\rceil))\\bigr)

    With the defaults (10%, floor 50,000, cap 200,000) every corpus of up to 50,000
    documents trains on all of its points, so its clusters are exactly those of k-means on
    the whole corpus (every test corpus of this project is that small); 1M documents train
    on 100,000 (100 per centroid at k = 1,000, FAISS asks for 39 to 256), and no corpus on
    more than 200,000 rows (200 MB of float32 at 256-d), however large it is. Centroids then
    move little: the assignment of every point, a shard at a time, is what depends on ``n``.

    >>> fit_sample_size(7_600), fit_sample_size(1_000_000), fit_sample_size(10**8)
    (7600, 100000, 200000)
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    if floor < 1 or cap < floor:
        raise ValueError(f"need 1 <= floor <= cap; got floor={floor}, cap={cap}")
    return int(min(n, cap, max(floor, math.ceil(fraction * n))))
