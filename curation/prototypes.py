"""Self-supervised prototype pruning (Sorscher et al. 2022) and D4 (Tirumala et al. 2023).

Prototypes: spherical k-means on unit embeddings; a document's difficulty is its cosine
distance to the nearest centroid,

.. math::

    d_i = 1 - \\max_j \\langle x_i, c_j \\rangle \\in [0, 2],

so prototypical ("easy") documents sit near a centroid and atypical ("hard") ones far
from every centroid. Which end to keep depends on how abundant the data is relative to
the budget (:func:`keep_policy`): with abundant data keep the hard documents, with
scarce data the easy ones (Sorscher et al., section 2; reproduced by
``tests/curation/test_perceptron_theory.py``). Pruning by either end shrinks some
clusters far more than others (tight clusters lose everything under keep-hard, diffuse
ones under keep-easy), so :func:`select` guarantees every cluster a floor.

D4 (:func:`d4`): SemDeDup first (:func:`curation.semdedup.semdedup`), then prototypes
re-fitted on the survivors, then the same selection.

References: B. Sorscher, R. Geirhos, S. Shekhar, S. Ganguli, A. Morcos, "Beyond neural
scaling laws: beating power law scaling via data pruning", NeurIPS 2022. K. Tirumala,
D. Simig, A. Aghajanyan, A. Morcos, "D4: Improving LLM pretraining via document
de-duplication and diversification", NeurIPS 2023.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from curation.semdedup import SemDeDupResult, semdedup
from numeric_kernels.kmeans import normalise_rows, spherical_kmeans

KEEP_VALUES = ("hard", "easy")


def default_k(n: int) -> int:
    """Number of prototypes for ``n`` documents when the number of topics is unknown:
    ``round(sqrt(n / 2))`` clipped to ``[2, 1000]`` (and to ``n``).

    The square-root rule (Mardia et al. 1979) lets the number of prototypes and the
    documents per prototype (about ``sqrt(2 n)``) both grow with the corpus, so every
    centroid, and every cluster's balance floor, rests on many documents. Sorscher et al.
    found prototype pruning insensitive to k within an order of magnitude of the number of
    classes (k = 100 for ImageNet's 1,000 classes; this rule gives 800 for its 1.28M
    images); the cap of 1,000 keeps k-means cheap for very large corpora. Pass ``k``
    explicitly when the number of topics is known.

    >>> default_k(7600), default_k(100_000), default_k(10**8)
    (62, 224, 1000)
    """
    if n < 1:
        raise ValueError(f"n must be >= 1; got {n}")
    return int(min(n, max(2, min(1000, round(math.sqrt(n / 2))))))


@dataclass(frozen=True)
class PrototypeScores:
    """``difficulty`` (n,) ``1 - cos`` to the nearest centroid; ``labels`` (n,) that centroid's index;
    ``centroids`` (k, d) unit rows."""

    difficulty: np.ndarray
    labels: np.ndarray
    centroids: np.ndarray


def prototype_scores(embeddings: np.ndarray, *, k: int | None = None, seed: int = 0) -> PrototypeScores:
    """Prototype difficulty of every row of ``embeddings`` (n, d); ``k`` defaults to :func:`default_k`.

    Rows are L2-normalised here (the embedders already return unit rows).

    >>> x = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> scores = prototype_scores(x, k=2)
    >>> bool(scores.labels[0] == scores.labels[1] != scores.labels[2] == scores.labels[3])
    True
    >>> bool(np.all(scores.difficulty < 0.01))
    True
    """
    x = np.asarray(embeddings, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"embeddings must be a non-empty (n, d) array; got shape {x.shape}")
    clusters = spherical_kmeans(normalise_rows(x), k or default_k(len(x)), seed=seed)
    return PrototypeScores(difficulty=np.clip(1.0 - clusters.similarity_, 0.0, 2.0), labels=clusters.labels_,
                           centroids=clusters.centroids_)


@dataclass(frozen=True)
class KeepPolicy:
    """``keep`` is ``"hard"`` or ``"easy"``; ``abundance`` = unique documents per document of budget;
    ``reason`` says why, in words."""

    keep: str
    abundance: float
    reason: str


def keep_policy(*, unique_documents: int, budget_documents: float, override: str | None = None,
                abundant_at: float = 1.0) -> KeepPolicy:
    """Keep-hard when data is abundant relative to the budget, keep-easy when it is scarce.

    ``budget_documents`` is how many documents training will consume (samples seen).
    Data is abundant when the pool holds at least ``abundant_at`` unique documents per
    document of budget: with the default 1, when the budget can be met without repeating
    a document. Sorscher et al. show that keeping the hardest examples pays only when the
    pool is large (there is room to discard easy ones and still see enough); with a small
    pool the easy, prototypical examples teach more (their Fig. 1; our perceptron check
    crosses over between 4 and 8 examples per dimension). ``override`` (``"hard"`` or
    ``"easy"``) wins over the rule; the abundance is still reported.

    >>> keep_policy(unique_documents=10_000, budget_documents=2_000).keep
    'hard'
    >>> keep_policy(unique_documents=10_000, budget_documents=50_000).keep
    'easy'
    """
    if unique_documents < 1:
        raise ValueError(f"unique_documents must be >= 1; got {unique_documents}")
    if not budget_documents > 0:
        raise ValueError(f"budget_documents must be > 0; got {budget_documents}")
    if override is not None and override not in KEEP_VALUES:
        raise ValueError(f"override must be one of {KEEP_VALUES} or None; got {override!r}")
    abundance = unique_documents / budget_documents
    if override is not None:
        return KeepPolicy(keep=override, abundance=abundance, reason=f"override: keep {override}")
    if abundance >= abundant_at:
        return KeepPolicy(keep="hard", abundance=abundance, reason=f"abundant: {abundance:.3g} unique documents per "
                          f"document of budget (>= {abundant_at:g}), keep the hard ones")
    return KeepPolicy(keep="easy", abundance=abundance, reason=f"scarce: {abundance:.3g} unique documents per "
                      f"document of budget (< {abundant_at:g}), keep the easy ones")


@dataclass(frozen=True)
class SelectionSummary:
    """Per cluster (c = clusters present): ``clusters`` (c,) labels, ``documents`` (c,), ``kept`` (c,),
    ``floor`` (c,) the guaranteed minimum; score histograms on shared ``bin_edges`` (bins + 1,):
    ``histogram`` (bins,) of all documents and ``histogram_kept`` (bins,) of the kept ones."""

    clusters: np.ndarray
    documents: np.ndarray
    kept: np.ndarray
    floor: np.ndarray
    bin_edges: np.ndarray
    histogram: np.ndarray
    histogram_kept: np.ndarray


@dataclass(frozen=True)
class Selection:
    """``kept`` (n,) bool; ``reason`` (n,) ``"kept"``, ``"pruned_easy"`` (keep-hard) or ``"pruned_hard"``
    (keep-easy); ``keep`` the policy; ``target`` the number kept; ``summary`` per cluster."""

    kept: np.ndarray
    reason: list[str]
    keep: str
    target: int
    summary: SelectionSummary


def _target(n: int, fraction: float | None, count: int | None) -> int:
    if (fraction is None) == (count is None):
        raise ValueError(f"give exactly one of fraction and count; got fraction={fraction!r}, count={count!r}")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
        return round(fraction * n)
    if count < 0:
        raise ValueError(f"count must be >= 0; got {count}")
    return int(count)


def select(difficulty: np.ndarray, labels: np.ndarray, *, keep: str, fraction: float | None = None,
           count: int | None = None, floor: float = 0.5, bins: int = 20) -> Selection:
    """Keep ``fraction`` of the documents (or ``count`` of them, capped at n) from the hard or easy end,
    with a balance floor per cluster.

    Balance floor: of a target of ``m`` out of ``n`` documents, cluster ``c`` (``n_c``
    documents) keeps at least

    .. math::

        q_c = \\min\\left(n_c, \\left\\lceil \\text{floor} \\cdot m \\, n_c / n \\right\\rceil\\right),

    its own hardest (keep-hard) or easiest (keep-easy) ones: ``floor`` times what uniform
    random pruning would leave it. So no cluster's share of the kept set falls below
    ``floor`` times its share of the input, and every cluster keeps at least one document;
    the rest of the target, ``m - sum(q_c)``, goes to the globally hardest (easiest)
    remaining documents. ``floor = 0`` is plain global pruning; ``floor = 1`` keeps the
    clusters' proportions. Where the rounding up would exceed the target (only when
    ``m < k / (1 - floor)``) the floors are rounded down instead.

    Ties in ``difficulty`` break by index, so the selection is deterministic.

    >>> difficulty = np.array([0.1, 0.2, 0.3, 0.4, 0.01, 0.02])
    >>> labels = np.array([0, 0, 0, 0, 1, 1])
    >>> select(difficulty, labels, keep="hard", count=2, floor=0.0).kept.nonzero()[0].tolist()
    [2, 3]
    >>> select(difficulty, labels, keep="hard", count=2, floor=0.5).kept.nonzero()[0].tolist()
    [3, 5]
    """
    difficulty = np.asarray(difficulty, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(difficulty)
    if keep not in KEEP_VALUES:
        raise ValueError(f"keep must be one of {KEEP_VALUES}; got {keep!r}")
    if n == 0 or difficulty.ndim != 1 or labels.shape != difficulty.shape:
        raise ValueError(f"difficulty and labels must be non-empty (n,) arrays; got {difficulty.shape} "
                         f"and {labels.shape}")
    if not np.all(np.isfinite(difficulty)):
        raise ValueError("difficulty must be finite")
    if not 0 <= floor <= 1:
        raise ValueError(f"floor must be in [0, 1]; got {floor}")
    target = min(n, _target(n, fraction, count))
    clusters, cluster_of, documents = np.unique(labels, return_inverse=True, return_counts=True)
    share = floor * target * documents / n
    quota = np.minimum(documents, np.ceil(share - 1e-9)).astype(np.int64)
    if quota.sum() > target:
        quota = np.floor(share).astype(np.int64)
    order = np.argsort(-difficulty if keep == "hard" else difficulty, kind="stable")  # preferred first
    cluster_sorted = cluster_of[order]
    grouped = np.argsort(cluster_sorted, kind="stable")  # positions in `order`, cluster by cluster
    starts = np.cumsum(documents) - documents
    rank_in_cluster = np.empty(n, dtype=np.int64)
    rank_in_cluster[grouped] = np.arange(n) - starts[cluster_sorted[grouped]]
    chosen = rank_in_cluster < quota[cluster_sorted]
    rest = np.flatnonzero(~chosen)[: target - int(quota.sum())]
    chosen[rest] = True
    kept = np.zeros(n, dtype=bool)
    kept[order[chosen]] = True
    pruned = "pruned_easy" if keep == "hard" else "pruned_hard"
    bin_edges = np.histogram_bin_edges(difficulty, bins=bins)
    summary = SelectionSummary(clusters=clusters, documents=documents,
                               kept=np.bincount(cluster_of[kept], minlength=len(clusters)), floor=quota,
                               bin_edges=bin_edges, histogram=np.histogram(difficulty, bin_edges)[0],
                               histogram_kept=np.histogram(difficulty[kept], bin_edges)[0])
    return Selection(kept=kept, reason=np.where(kept, "kept", pruned).tolist(), keep=keep, target=target,
                     summary=summary)


@dataclass(frozen=True)
class D4Result:
    """``kept`` (n,) bool; ``reason`` (n,) ``"duplicate"`` (dropped by SemDeDup), ``"pruned_easy"`` /
    ``"pruned_hard"`` (dropped by the prototype selection) or ``"kept"``; ``difficulty`` (n,) prototype
    difficulty after re-clustering, NaN for duplicates; ``labels`` (n,) the re-clustered prototype, -1
    for duplicates; ``dedup`` the SemDeDup result; ``selection`` the prototype selection over the
    survivors (in index order, ``np.flatnonzero(dedup.kept)``)."""

    kept: np.ndarray
    reason: list[str]
    difficulty: np.ndarray
    labels: np.ndarray
    dedup: SemDeDupResult
    selection: Selection


def d4(embeddings: np.ndarray, *, fraction: float | None = None, count: int | None = None, keep: str = "hard",
       eps: float = 0.01, k: int | None = None, dedup_k: int | None = None, floor: float = 0.5, seed: int = 0,
       bins: int = 20) -> D4Result:
    """D4: SemDeDup, re-cluster the survivors, then keep by prototype difficulty.

    ``fraction`` / ``count`` is the target of the whole input (n documents), as in
    Tirumala et al.: the duplicates go first, then prototype pruning removes the rest of
    the difference. When SemDeDup alone already leaves fewer than the target, every
    survivor is kept. ``eps`` and ``dedup_k`` go to :func:`curation.semdedup.semdedup`;
    ``k`` (default :func:`default_k` of the survivors), ``keep``, ``floor`` and ``bins`` to
    the prototype stage. Tirumala et al. keep the hard (least prototypical) documents.
    """
    x = np.asarray(embeddings, dtype=np.float32)
    n = len(x)
    target = min(n, _target(n, fraction, count))
    dedup = semdedup(x, eps=eps, k=dedup_k, seed=seed)
    survivors = np.flatnonzero(dedup.kept)
    scores = prototype_scores(x[survivors], k=k, seed=seed)
    return d4_selection(dedup, scores.difficulty, scores.labels, count=target, keep=keep, floor=floor, bins=bins)


def d4_selection(dedup: SemDeDupResult, difficulty: np.ndarray, labels: np.ndarray, *, keep: str, floor: float,
                 fraction: float | None = None, count: int | None = None, bins: int = 20) -> D4Result:
    """D4's last step: keep ``fraction`` (or ``count``) of all n documents from the SemDeDup survivors
    (``np.flatnonzero(dedup.kept)``) by their re-clustered prototype ``difficulty`` and ``labels`` (both
    per survivor, in index order)."""
    n = len(dedup.kept)
    target = min(n, _target(n, fraction, count))
    survivors = np.flatnonzero(dedup.kept)
    selection = select(difficulty, labels, keep=keep, count=min(target, len(survivors)), floor=floor, bins=bins)
    kept = np.zeros(n, dtype=bool)
    kept[survivors[selection.kept]] = True
    reason = np.full(n, "duplicate", dtype=object)
    reason[survivors] = selection.reason
    full_difficulty = np.full(n, np.nan)
    full_difficulty[survivors] = difficulty
    full_labels = np.full(n, -1, dtype=np.int64)
    full_labels[survivors] = labels
    return D4Result(kept=kept, reason=reason.tolist(), difficulty=full_difficulty, labels=full_labels, dedup=dedup,
                    selection=selection)
