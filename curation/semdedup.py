"""SemDeDup: semantic de-duplication within k-means clusters (Abbas et al. 2023).

Embeddings are clustered with spherical k-means; inside each cluster, documents are
ordered by increasing cosine similarity to the centroid, and a document is dropped when
an earlier (kept or dropped) document of its cluster has cosine >= 1 - eps with it. So
each group of near-duplicates keeps the member least similar to the centroid, as in
the paper. Only within-cluster pairs are ever compared (blocked ``block x cluster``
products), never the whole corpus at once.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numeric_kernels.kmeans import spherical_kmeans


@dataclass(frozen=True)
class SemDeDupResult:
    """``kept`` (n,) bool; ``duplicate_of`` (n,) index of the earlier document it repeats, -1 if kept;
    ``max_similarity`` (n,) its highest cosine to an earlier document of its cluster; ``labels`` (n,)."""

    kept: np.ndarray
    duplicate_of: np.ndarray
    max_similarity: np.ndarray
    labels: np.ndarray
    eps: float

    def kept_fraction_curve(self, eps_values) -> dict[float, float]:
        """Fraction kept at other eps (no re-clustering: the same pairs, another threshold)."""
        return {float(e): float(np.mean(self.max_similarity < 1.0 - e)) for e in eps_values}

    def groups(self) -> list[list[int]]:
        """Duplicate groups: the kept document first, then the documents dropped as its duplicates."""
        root = np.arange(len(self.kept))
        for i in np.argsort(self.duplicate_of >= 0, kind="stable"):
            if self.duplicate_of[i] >= 0:
                root[i] = root[self.duplicate_of[i]]
        members: dict[int, list[int]] = {}
        for i in np.flatnonzero(~self.kept):
            members.setdefault(int(root[i]), []).append(int(i))
        return [[head, *sorted(tail)] for head, tail in sorted(members.items())]


def semdedup(embeddings: np.ndarray, *, eps: float = 0.01, k: int | None = None, seed: int = 0,
             block: int = 1024) -> SemDeDupResult:
    """De-duplicate unit-norm ``embeddings`` (n, d); ``k`` defaults to about ``n / 100`` clusters."""
    if not 0 <= eps < 1:
        raise ValueError(f"eps must be in [0, 1); got {eps}")
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(x)
    k = k or max(1, min(n, round(n / 100)))
    clusters = spherical_kmeans(x, k, seed=seed)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    max_similarity = np.full(n, -1.0)
    by_cluster = np.argsort(clusters.labels_, kind="stable")  # members of each cluster, ascending, in one pass
    bounds = np.cumsum(np.bincount(clusters.labels_, minlength=k))
    for members in np.split(by_cluster, bounds[:-1]):
        members = members[np.argsort(clusters.similarity_[members], kind="stable")]
        vectors = x[members]
        for start in range(0, len(members), block):
            rows = vectors[start:start + block]
            local = start + np.arange(len(rows))
            similarity = rows @ vectors[: start + len(rows)].T  # against every earlier member (and itself)
            similarity[np.arange(start + len(rows))[None, :] >= local[:, None]] = -np.inf
            best = similarity.argmax(1)
            best_value = similarity[np.arange(len(rows)), best]
            has_earlier = local > 0
            max_similarity[members[local[has_earlier]]] = best_value[has_earlier]
            dropped = has_earlier & (best_value >= 1.0 - eps)
            duplicate_of[members[local[dropped]]] = members[best[dropped]]
    return SemDeDupResult(kept=duplicate_of < 0, duplicate_of=duplicate_of, max_similarity=max_similarity,
                          labels=clusters.labels_, eps=eps)
