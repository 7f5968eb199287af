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


#: The most clusters :func:`default_k` gives (NeMo Curator's default): k-means on a sample stays
#: cheap at any corpus size, and a cluster of a 1M-document corpus holds about 1,000 documents.
MAX_DEFAULT_K = 1000


def default_k(n: int) -> int:
    """SemDeDup's clusters for ``n`` documents: about ``n / 100`` (at least 1, at most
    :data:`MAX_DEFAULT_K`; the cap only changes corpora above 100,000 documents).

    >>> default_k(2_225), default_k(100_000), default_k(10**6)
    (22, 1000, 1000)
    """
    return max(1, min(n, round(n / 100), MAX_DEFAULT_K))


def semdedup(embeddings: np.ndarray, *, eps: float = 0.01, k: int | None = None, seed: int = 0,
             block: int = 1024) -> SemDeDupResult:
    """De-duplicate unit-norm ``embeddings`` (n, d); ``k`` defaults to :func:`default_k`."""
    check_eps(eps)
    x = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(x)
    k = k or default_k(n)
    clusters = spherical_kmeans(x, k, seed=seed)
    duplicate_of = np.full(n, -1, dtype=np.int64)
    max_similarity = np.full(n, -1.0)
    for members in cluster_members(clusters.labels_, k):
        members = members[np.argsort(clusters.similarity_[members], kind="stable")]
        duplicate_of[members], max_similarity[members] = dedup_cluster(x[members], eps=eps, block=block,
                                                                         positions=members)
    return SemDeDupResult(kept=duplicate_of < 0, duplicate_of=duplicate_of, max_similarity=max_similarity,
                          labels=clusters.labels_, eps=eps)


def check_eps(eps: float) -> None:
    if not 0 <= eps < 1:
        raise ValueError(f"eps must be in [0, 1); got {eps}")


def cluster_members(labels: np.ndarray, k: int) -> list[np.ndarray]:
    """Positions of each cluster ``0..k-1``'s members, ascending, in one pass over ``labels`` (n,)."""
    by_cluster = np.argsort(labels, kind="stable")
    bounds = np.cumsum(np.bincount(labels, minlength=k))
    return np.split(by_cluster, bounds[:-1])


def dedup_cluster(vectors: np.ndarray, *, eps: float, positions: np.ndarray, block: int = 1024
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The rule within one cluster whose members ``vectors`` (m, d) are in increasing similarity to the
    centroid: ``(duplicate_of (m,), max_similarity (m,))``, where ``duplicate_of`` is the ``positions``
    entry of the earlier member it repeats (cos >= 1 - eps) or -1, and ``max_similarity`` its highest
    cosine to an earlier member (-1 for the first). ``block x m`` products, never ``m x m``."""
    m = len(vectors)
    duplicate_of = np.full(m, -1, dtype=np.int64)
    max_similarity = np.full(m, -1.0)
    for start in range(0, m, block):
        rows = vectors[start:start + block]
        local = start + np.arange(len(rows))
        similarity = rows @ vectors[: start + len(rows)].T  # against every earlier member (and itself)
        similarity[np.arange(start + len(rows))[None, :] >= local[:, None]] = -np.inf
        best = similarity.argmax(1)
        best_value = similarity[np.arange(len(rows)), best]
        has_earlier = local > 0
        max_similarity[local[has_earlier]] = best_value[has_earlier]
        dropped = has_earlier & (best_value >= 1.0 - eps)
        duplicate_of[local[dropped]] = positions[best[dropped]]
    return duplicate_of, max_similarity

