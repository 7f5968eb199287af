from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from numeric_kernels.kmeans import spherical_kmeans


def _clusters(seed=0, k=8, per=200, d=32, spread=0.15):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d))
    x = np.repeat(centers, per, axis=0) + spread * rng.normal(size=(k * per, d)) * np.sqrt(d) / 4
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), np.repeat(np.arange(k), per)


def test_recovers_separated_clusters_like_scikit_learn():
    x, truth = _clusters()
    ours = spherical_kmeans(x, 8, seed=1)
    sk = KMeans(8, n_init=3, random_state=1).fit(x)
    assert adjusted_rand_score(truth, ours.labels_) == 1.0
    assert adjusted_rand_score(sk.labels_, ours.labels_) == 1.0
    np.testing.assert_allclose(np.linalg.norm(ours.centroids_, axis=1), 1.0, rtol=1e-5)


def test_objective_is_close_to_scikit_learn_on_overlapping_data():
    x, _ = _clusters(seed=2, spread=1.0)
    ours = spherical_kmeans(x, 8, seed=0, n_init=5)
    sk = KMeans(8, n_init=5, random_state=0).fit(x)
    centroids = sk.cluster_centers_ / np.linalg.norm(sk.cluster_centers_, axis=1, keepdims=True)
    sk_objective = float(np.sum(1 - (x * centroids[sk.labels_]).sum(1)))
    assert ours.inertia_ <= 1.02 * sk_objective, (ours.inertia_, sk_objective)
    np.testing.assert_allclose(ours.similarity_, (x * ours.centroids_[ours.labels_]).sum(1), atol=1e-5)


def test_rejects_bad_k():
    with pytest.raises(ValueError, match="k must be"):
        spherical_kmeans(np.eye(3, dtype=np.float32), 4)
