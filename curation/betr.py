"""BETR: benchmark-targeted ranking (Mizrahi et al. 2025, "Language Models Improve When
Pretraining Data Matches Target Tasks", arXiv:2507.12466).

Four steps, each usable on its own (DESIGN.md 3.3):

1. :func:`rank_scores` - benchmark examples (question + answer text) and a *sample* of
   documents are embedded in the same space. Every example ``i`` ranks the sampled
   documents by cosine similarity, ``r_ij`` being the 1-based rank of document ``j``,
   and a document scores

   .. math::

       S_j = \\max_i v(r_{ij}), \\qquad v(r) = 1 / r

   (max aggregation; each example is its own target, never a centroid). Only the
   top-``k`` of every example is computed (FAISS exhaustive inner-product search through
   :func:`numeric_kernels.topk.cosine_topk`), never the ``m x n`` similarity matrix.
2. :func:`label_sample` - the top 10% of the sample by ``S`` are positives, the rest
   negatives, downsampled (seeded) to as many as there are positives.
3. :func:`train_classifier` - a fastText classifier (word 1-2-grams) learns positives
   from negatives; :meth:`BetrClassifier.score` then gives ``P(positive)`` for every
   document of the *full* corpus, one shard (list of texts) at a time.
   :meth:`BetrClassifier.save` / :meth:`BetrClassifier.load` move the model between
   processes (train once, score shards in workers).
4. :func:`select_tokens` - keep the best-scored documents holding a fraction of the
   corpus's whitespace tokens; the fraction is explicit or the compute policy
   :func:`optimal_token_fraction`, ``F_opt(C) = 4e-5 C^0.25`` percent of tokens for
   ``C`` training FLOPs, which :func:`budget_token_fraction` applies to a training budget
   (and raises so that the budget repeats the kept tokens at most four times).

The classifier's defaults were chosen on the real-data test (``tests/curation/test_betr.py``:
AG News, a 3,800-document sample, SciQ and BBH sports targets), see :func:`train_classifier`;
scoring runs at 1.2x raw fastText predict (``bench/bench_betr.py``, ``docs/BENCHMARKS.md``).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import logging
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import fasttext
import numpy as np

from curation.stores import VectorStore
from numeric_kernels.topk import TopK, cosine_topk

logger = logging.getLogger(__name__)

LABEL_PREFIX = "__betr__"
POSITIVE = f"{LABEL_PREFIX}pos"
NEGATIVE = f"{LABEL_PREFIX}neg"


# --------------------------------------------------------------------------- 1. rank scores

@dataclass(frozen=True, eq=False)
class StoreSample:
    """The sample as ``rows`` (n,) ascending of a corpus's vector store, searched through the store.

    Every search asks the store for ``k`` plus the rows outside the sample (the contaminated
    documents, at most) and keeps the sample's, in order: each example's top-``k`` among the
    sample, exactly for a flat store, at the store's measured recall for IVF or HNSW."""

    store: VectorStore
    rows: np.ndarray

    def __post_init__(self):
        rows = np.asarray(self.rows, dtype=np.int64)
        if rows.size and (np.any(np.diff(rows) <= 0) or rows[0] < 0 or rows[-1] >= self.store.meta.n):
            raise ValueError(f"rows must be ascending store rows in [0, {self.store.meta.n})")

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.rows), self.store.meta.dim

    def __len__(self) -> int:
        return len(self.rows)

    @functools.cached_property
    def _position(self) -> np.ndarray:
        """(store rows,) each row's index in the sample, -1 outside it (built once, on the first search)."""
        position = np.full(self.store.meta.n, -1, dtype=np.int64)
        position[self.rows] = np.arange(len(self.rows))
        return position

    def search(self, queries: np.ndarray, k: int) -> TopK:
        """(q, k) scores and sample indices, -1 where the store found fewer."""
        found = self.store.search(queries, min(self.store.meta.n, k + self.store.meta.n - len(self.rows)))
        inside = np.where(found.indices >= 0, self._position[np.maximum(found.indices, 0)], -1)
        # the sample's results first, in the store's order (a stable sort on "outside")
        order = np.argsort(inside < 0, axis=1, kind="stable")[:, :k]
        return TopK(scores=np.take_along_axis(found.scores, order, 1), indices=np.take_along_axis(inside, order, 1))


@dataclass(frozen=True)
class RankScores:
    """BETR scores of ``n`` sampled documents against ``m`` benchmark examples.

    ``scores`` (n,) ``S_j = max_i 1 / r_ij``; ``best_rank`` (n,) ``min_i r_ij`` (1-based);
    ``best_target`` (n,) the example achieving it (index into the ``m`` targets used, the
    first one on a tie); ``similarity`` (n,) cosine between the document and that example.
    A document outside every example's top-``k`` has ``scores`` 0, ``best_rank`` 0,
    ``best_target`` -1 and ``similarity`` -inf: its true score is below ``1 / k``, so every
    document with a positive score outranks it and its own score is exact.
    ``target_benchmark`` (m,) index into ``benchmarks`` and ``target_row`` (m,) row in that
    benchmark's array identify the examples used (after any per-benchmark subsampling).
    """

    scores: np.ndarray
    best_rank: np.ndarray
    best_target: np.ndarray
    similarity: np.ndarray
    target_benchmark: np.ndarray
    target_row: np.ndarray
    benchmarks: tuple[str, ...]
    k: int

    @property
    def n_scored(self) -> int:
        """Documents inside some example's top-``k`` (their scores and order are exact)."""
        return int(np.count_nonzero(self.best_rank))

    @property
    def best_benchmark(self) -> np.ndarray:
        """(n,) index into ``benchmarks`` of each document's best example, -1 where unscored."""
        return np.where(self.best_target >= 0, self.target_benchmark[self.best_target], -1)

    def order(self) -> np.ndarray:
        """Document indices, best first: by score, then similarity at the best rank, then index."""
        return np.lexsort((np.arange(len(self.scores)), -self.similarity, -self.scores))

    def top(self, fraction: float) -> np.ndarray:
        """The ``round(fraction * n)`` (at least 1) best documents, best first.

        Raises ``ValueError`` when fewer documents than that were scored (``k`` too small),
        since the rest of the cut would be arbitrary.
        """
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
        count = max(1, round(fraction * len(self.scores)))
        if count > self.n_scored:
            raise ValueError(f"the top {count} documents are not all scored: only {self.n_scored} fall in some "
                             f"example's top-k (k={self.k}); call rank_scores with a larger k, or k=None")
        return self.order()[:count]


def rank_scores(doc_embeddings: np.ndarray, target_embeddings: np.ndarray | Mapping[str, np.ndarray], *,
                k: int | None = None, exact_fraction: float = 0.1, equal_per_benchmark: bool = False,
                seed: int = 0, max_results: int = 1 << 24) -> RankScores:
    """Score documents by their best rank among each benchmark example's nearest documents.

    Parameters
    ----------
    doc_embeddings : (n, d) unit rows, the document sample (a float16 memory map is fine:
        it is read block by block), or a :class:`StoreSample` (searched through the corpus's
        vector store; no embedding is read).
    target_embeddings : (m, d) unit rows, or ``{benchmark name: (m_b, d)}`` for several
        benchmarks at once (every example of every benchmark is its own target).
    k : neighbours searched per example (capped at ``n``). ``None`` (default) chooses it:
        starting from ``2 * exact_fraction * n / m`` (at least 16), ``k`` doubles until at
        least ``ceil(exact_fraction * n)`` documents fall in some example's top-``k``. The
        scores of those documents, and so the top ``exact_fraction`` of the ranking, are
        then the same as with all-pairs ranks (:meth:`RankScores.top`) up to the order of
        cosines equal in float32 (1 or 2 of the top 10,000 of 100k documents were measured one
        rank off a numpy ranking); the remaining documents score 0.
    exact_fraction : the share of the sample that must be exactly ranked when ``k=None``;
        the labelling step uses the top 10%.
    equal_per_benchmark : give every benchmark the same number of examples, that of the
        smallest, by seeded subsampling without replacement (so a large benchmark does not
        dominate the positives).
    seed : seed of that subsampling.
    max_results : bound on ``examples x k`` results held at once (examples are searched
        in blocks).

    Examples
    --------
    >>> docs = np.eye(4, dtype=np.float32)
    >>> targets = np.array([[1, 0.1, 0, 0], [0, 0, 0.2, 1]], dtype=np.float32)
    >>> rank_scores(docs, targets, k=2).scores.tolist()
    [1.0, 0.5, 0.5, 1.0]
    """
    benchmarks = {"target": target_embeddings} if isinstance(target_embeddings, np.ndarray) else dict(target_embeddings)
    if not benchmarks or any(len(v) == 0 for v in benchmarks.values()):
        raise ValueError("target_embeddings must hold at least one example per benchmark")
    if not 0 < exact_fraction <= 1:
        raise ValueError(f"exact_fraction must be in (0, 1]; got {exact_fraction}")
    if k is not None and k < 1:
        raise ValueError(f"k must be a positive integer or None; got {k}")
    n, d = doc_embeddings.shape
    rng = np.random.default_rng(seed)
    smallest = min(len(v) for v in benchmarks.values())
    rows = [np.sort(rng.choice(len(v), size=smallest, replace=False)) if equal_per_benchmark else np.arange(len(v))
            for v in benchmarks.values()]
    targets = np.ascontiguousarray(np.concatenate(
        [np.asarray(v, dtype=np.float32)[r] for v, r in zip(benchmarks.values(), rows)]))
    if targets.shape[1] != d:
        raise ValueError(f"targets have dimension {targets.shape[1]}, documents {d}")
    m = len(targets)

    needed = math.ceil(exact_fraction * n)
    current = min(n, k if k is not None else max(16, math.ceil(2 * needed / m)))
    while True:
        best_rank, best_target, similarity = _best_ranks(doc_embeddings, targets, current, max_results)
        if k is not None or current == n or np.count_nonzero(best_rank) >= needed:
            break
        current = min(n, 2 * current)
    scored = best_rank > 0
    return RankScores(
        scores=np.where(scored, 1.0 / np.maximum(best_rank, 1), 0.0),
        best_rank=best_rank,
        best_target=best_target,
        similarity=similarity,
        target_benchmark=np.repeat(np.arange(len(rows)), [len(r) for r in rows]),
        target_row=np.concatenate(rows),
        benchmarks=tuple(benchmarks),
        k=current,
    )


def _best_ranks(docs: np.ndarray, targets: np.ndarray, k: int,
                max_results: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per document: the smallest rank over the examples' top-``k``, its example and its cosine."""
    n = len(docs)
    best_rank = np.zeros(n, dtype=np.int64)
    best_target = np.full(n, -1, dtype=np.int64)
    similarity = np.full(n, -np.inf, dtype=np.float32)
    block = max(1, max_results // k)
    for start in range(0, len(targets), block):
        queries = targets[start:start + block]
        found = docs.search(queries, k) if isinstance(docs, StoreSample) else cosine_topk(queries, docs, k)
        sims, ids = found.scores, found.indices
        # Rank-major order: the first occurrence of a document is its best rank in this block
        # (ties between examples go to the first example); -1 (fewer found) is no document.
        docs_flat = ids.T.ravel()
        docs_here, first = np.unique(docs_flat, return_index=True)
        if docs_here.size and docs_here[0] < 0:
            docs_here, first = docs_here[1:], first[1:]
        rank = first // len(ids) + 1
        better = (best_rank[docs_here] == 0) | (rank < best_rank[docs_here])
        docs_here, first, rank = docs_here[better], first[better], rank[better]
        best_rank[docs_here] = rank
        best_target[docs_here] = start + first % len(ids)
        similarity[docs_here] = sims.T.ravel()[first]
    return best_rank, best_target, similarity


# --------------------------------------------------------------------------- 2. labels

@dataclass(frozen=True)
class SampleLabels:
    """``positive`` (p,) sample indices of the top documents, best first; ``negative`` (q,)
    sorted indices of a seeded draw of the others, ``q = min(p, n - p)``."""

    positive: np.ndarray
    negative: np.ndarray

    @property
    def indices(self) -> np.ndarray:
        """(p + q,) positives then negatives, to index the sample's texts."""
        return np.concatenate([self.positive, self.negative])

    @property
    def labels(self) -> np.ndarray:
        """(p + q,) bool, True for the positives, aligned with :attr:`indices`."""
        return np.concatenate([np.ones(len(self.positive), bool), np.zeros(len(self.negative), bool)])


def label_sample(ranking: RankScores, *, top_fraction: float = 0.1, seed: int = 0) -> SampleLabels:
    """Top ``top_fraction`` of the ranked sample positive, the rest negative, balanced by
    seeded downsampling of the negatives (Mizrahi et al. 2025, section 3)."""
    positive = ranking.top(top_fraction)
    rest = np.setdiff1d(np.arange(len(ranking.scores)), positive)
    rng = np.random.default_rng(seed)
    negative = np.sort(rng.choice(rest, size=min(len(positive), len(rest)), replace=False))
    return SampleLabels(positive=positive, negative=negative)


# --------------------------------------------------------------------------- 3. classifier

@dataclass(frozen=True)
class BetrClassifier:
    """A fastText supervised model with the labels :data:`POSITIVE` and :data:`NEGATIVE`."""

    model: fasttext.FastText._FastText

    def score(self, texts: Sequence[str], *, batch_size: int = 8192) -> np.ndarray:
        """``P(positive)`` (n,) float32 of each text; newlines become spaces (fastText
        predicts one line per text). Call once per shard: memory is one batch's.

        Python's cyclic garbage collector is paused meanwhile: fastText returns a list and
        a numpy array per text, none of them in a cycle (reference counting frees them),
        and the collections they trigger cost ~10% of the time (measured at 1M texts).
        """
        out = np.empty(len(texts), dtype=np.float32)
        collecting = gc.isenabled()
        gc.disable()
        try:
            for start in range(0, len(texts), batch_size):
                # What model.predict(batch, k=1) does after its own per-text newline check and
                # copy, which the replace covers (the trailing newline is fastText's end of line).
                batch = [text.replace("\n", " ") + "\n" for text in texts[start:start + batch_size]]
                labels, probabilities = self.model.f.multilinePredict(batch, 1, 0.0, "replace")
                p = np.fromiter((row[0] for row in probabilities), dtype=np.float32, count=len(batch))
                positive = np.fromiter((row[0] == POSITIVE for row in labels), dtype=bool, count=len(batch))
                out[start:start + len(batch)] = np.where(positive, p, 1.0 - p)
        finally:
            if collecting:
                gc.enable()
        return np.clip(out, 0.0, 1.0)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fastText ``.bin`` (everything :meth:`load` needs) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.model.save_model(str(path))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> BetrClassifier:
        model = fasttext.load_model(str(path))
        if set(model.labels) != {POSITIVE, NEGATIVE}:
            raise ValueError(f"{path} is not a BETR classifier: its labels are {model.labels}")
        return cls(model=model)


@dataclass(frozen=True)
class TrainedClassifier:
    """``classifier`` trained on every labelled text for ``epoch`` passes at learning rate ``lr``;
    ``holdout_accuracy`` of a model with the same settings trained on the other ``n_train`` texts
    and tested on ``n_holdout`` (None when ``holdout=0``)."""

    classifier: BetrClassifier
    holdout_accuracy: float | None
    n_train: int
    n_holdout: int
    epoch: int
    lr: float


def train_classifier(texts: Sequence[str], labels: np.ndarray, *, dim: int = 16, lr: float = 0.1, epoch: int = 5,
                     min_examples: int = 50_000, word_ngrams: int = 2, bucket: int = 1 << 20, holdout: float = 0.2,
                     seed: int = 0) -> TrainedClassifier:
    """Train the BETR fastText classifier on ``texts`` with boolean ``labels`` (True = positive).

    A seeded ``holdout`` share of the texts is set aside, a model trained on the rest is
    tested on it (``holdout_accuracy``), then the returned model is retrained on all
    texts with the same settings (so the accuracy is that of a model with slightly less
    data). Training is single-threaded and seeded, hence deterministic.

    fastText settings: word 1-``word_ngrams``-grams, ``dim``-dimensional vectors, softmax
    loss, linearly decaying ``lr`` over ``epoch`` passes, n-grams hashed into ``bucket``
    rows (the model's size is ``(vocabulary + bucket) x dim`` floats). ``dim`` 16, 32, 64 and
    128 gave the same top-10% shares on the real-data test (within 0.015), and predict time
    grows with ``dim`` (measured 53k, 46k, 36k and 24k docs per CPU-second of 37-word
    documents), so the default is 16 (a 64 MiB model). ``lr=0.05`` was worse there (SciQ
    0.40 against 0.46), ``lr=0.5`` no better.

    ``epoch`` (5, the paper's setting for millions of labelled documents) is raised to
    ``ceil(min_examples / n)`` when the ``n`` texts of a fit are fewer than
    ``min_examples / epoch``: on the real-data test's 760 labelled AG News documents, 5
    passes at ``lr=0.1`` leave every probability within 0.5 +- 0.001 (the model has not
    moved from its initialisation) while ~50k updates give held-out accuracy 0.6-0.8.
    ``min_examples=0`` keeps ``epoch`` as given.

    ``bucket x dim`` must be at least ``2**24`` (a 64 MiB input matrix): the fastText build
    we use (``fasttext-numpy2`` 0.10) draws the initial input matrix in ten blocks, one per
    thread, so with ``thread=1`` only the first tenth is drawn and the rest is whatever the
    allocator returns. A block glibc serves by ``mmap`` is fresh zero pages; one served from
    the heap holds leftovers (measured up to 1e35), which made training fail ("Encountered
    NaN") or give another model at random in a long-running process. So every fit runs with
    zeroed allocations (:func:`_zeroed_allocations`: the mmap threshold pinned at 32 MiB and
    glibc's perturb byte set), and a fit that still meets NaN is retried at half the learning
    rate (at most three times, logged; ``TrainedClassifier.lr`` says which rate was used).
    """
    labels = np.asarray(labels, dtype=bool)
    if len(texts) != len(labels):
        raise ValueError(f"texts and labels differ in length: {len(texts)} and {len(labels)}")
    if not (labels.any() and (~labels).any()):
        raise ValueError("labels must contain both positives and negatives")
    if bucket * dim < 1 << 24:
        raise ValueError(f"bucket x dim must be at least 2**24 (see the docstring); got {bucket} x {dim}")
    if not 0 <= holdout < 1:
        raise ValueError(f"holdout must be in [0, 1); got {holdout}")
    params = dict(dim=dim, lr=lr, wordNgrams=word_ngrams, bucket=bucket, seed=seed, thread=1, verbose=0,
                  minCount=1, loss="softmax", label=LABEL_PREFIX)

    def passes(n: int) -> int:
        return max(epoch, math.ceil(min_examples / n))

    order = np.random.default_rng(seed).permutation(len(texts))
    n_holdout = round(holdout * len(texts))
    held, train = order[:n_holdout], order[n_holdout:]
    accuracy = None
    for attempt in range(NAN_RETRIES + 1):
        try:
            if n_holdout:
                trial = _fit([texts[i] for i in train], labels[train], dict(params, epoch=passes(len(train))))
                accuracy = float(np.mean((trial.score([texts[i] for i in held]) >= 0.5) == labels[held]))
            final = _fit(list(texts), labels, dict(params, epoch=passes(len(texts))))
            break
        except RuntimeError as exc:
            if "NaN" not in str(exc) or attempt == NAN_RETRIES:
                raise
            logger.warning("BETR classifier training met NaN at lr=%g; retrying at lr=%g", params["lr"],
                           params["lr"] / 2)
            params["lr"] /= 2
    return TrainedClassifier(classifier=final, holdout_accuracy=accuracy, n_train=len(train), n_holdout=n_holdout,
                             epoch=passes(len(texts)), lr=params["lr"])


#: Fits retried at half the learning rate after fastText reports NaN.
NAN_RETRIES = 3
_M_MMAP_THRESHOLD, _M_PERTURB = -3, -6  # glibc's mallopt parameters


def _mallopt(parameter: int, value: int) -> None:
    name = ctypes.util.find_library("c")
    if name and hasattr(ctypes.CDLL(name), "mallopt"):
        ctypes.CDLL(name).mallopt(parameter, value)


@contextlib.contextmanager
def _zeroed_allocations():
    """While fastText trains, every ``malloc`` glibc serves returns zeroed memory: allocations of
    32 MiB or more come from ``mmap`` (zero pages), and glibc's perturb byte 0xff fills every
    other allocation with 0x00 (``perturb ^ 0xff``), so a heap block that held leftovers, which
    the mmap threshold alone does not rule out (a large free chunk already in the heap is
    reused whatever the threshold; in a long test process it made one of two identical fits
    meet NaN and retry at another learning rate), cannot reach the input matrix. The perturb
    byte is reset afterwards; no-op off glibc."""
    _mallopt(_M_MMAP_THRESHOLD, 32 << 20)
    _mallopt(_M_PERTURB, 0xFF)
    try:
        yield
    finally:
        _mallopt(_M_PERTURB, 0)


def _fit(texts: list[str], labels: np.ndarray, params: dict) -> BetrClassifier:
    with tempfile.TemporaryDirectory(prefix="betr-") as tmp:
        path = Path(tmp) / "train.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for text, label in zip(texts, labels):
                handle.write(f"{POSITIVE if label else NEGATIVE} {text.replace(chr(10), ' ')}\n")
        with _zeroed_allocations():
            return BetrClassifier(model=fasttext.train_supervised(input=str(path), **params))


# --------------------------------------------------------------------------- 4. selection

def optimal_token_fraction(flops: float) -> float:
    """Share of tokens to keep for ``flops`` training FLOPs: ``F_opt(C) = 4e-5 C^0.25``
    percent (Mizrahi et al. 2025, fit on the Nemotron-CC pool), clipped to (0, 1].

    >>> round(100 * optimal_token_fraction(1e20), 2), round(100 * optimal_token_fraction(1e22), 2)
    (4.0, 12.65)
    """
    if not flops > 0:
        raise ValueError(f"flops must be positive; got {flops}")
    return min(1.0, 4e-5 * flops**0.25 / 100)


#: Epochs over the kept tokens that a budget may take (Muennighoff et al. 2023: up to about four
#: epochs of repeated data are worth nearly as much as unique data; beyond, the worth decays).
MAX_EPOCHS = 4


def budget_token_fraction(budget_tokens: float, available_tokens: float, *, flops: float | None = None,
                          parameters: float | None = None) -> tuple[float, str]:
    """The share of ``available_tokens`` BETR keeps for a training budget of ``budget_tokens``, and why.

    ``F_opt(C)`` (:func:`optimal_token_fraction`) at the budget's compute: ``flops`` where given,
    else ``C = 6 N D`` with ``N`` = ``parameters``, else Chinchilla's compute-optimal ``N = D / 20``
    (Hoffmann et al. 2022: ``C = 0.3 D^2``); raised to ``D / (4 T)`` where the kept tokens would
    otherwise be seen more than :data:`MAX_EPOCHS` times. A larger budget keeps more on both counts.

    >>> round(budget_token_fraction(1e11, 1e13)[0], 4)  # C = 3e21: F_opt 9.4%, 4 epochs need 0.25%
    0.0936
    >>> budget_token_fraction(1e6, 1e6)[0]  # a budget as large as the corpus: 25% at most 4 epochs
    0.25
    """
    if not (budget_tokens > 0 and available_tokens > 0):
        raise ValueError(f"budget and available tokens must be > 0; got {budget_tokens:g} and {available_tokens:g}")
    compute = flops or (6.0 * parameters * budget_tokens if parameters else 0.3 * budget_tokens ** 2)
    source = "the budget's FLOPs" if flops else ("6 N D" if parameters else "Chinchilla-optimal 0.3 D^2")
    f_opt = optimal_token_fraction(compute)
    repeat = min(1.0, budget_tokens / (MAX_EPOCHS * available_tokens))
    if repeat > f_opt:
        return repeat, (f"{budget_tokens:.3g} budget tokens over {available_tokens:.3g} available: keep "
                        f"{100 * repeat:.3g}% so that they are seen at most {MAX_EPOCHS} times (F_opt at "
                        f"C = {compute:.3g} FLOPs ({source}) is {100 * f_opt:.3g}%)")
    return f_opt, f"F_opt(C) = {100 * f_opt:.3g}% at C = {compute:.3g} FLOPs ({source})"


def count_tokens(texts: Sequence[str]) -> np.ndarray:
    """(n,) int64 whitespace-token counts (``len(text.split())``)."""
    return np.fromiter((len(text.split()) for text in texts), dtype=np.int64, count=len(texts))


@dataclass(frozen=True)
class TokenSelection:
    """``kept`` (n,) bool; ``threshold`` the lowest kept score (a shard applies ``score >=
    threshold``, which may also keep documents tied with it); ``kept_tokens`` of
    ``total_tokens``; ``fraction`` the share asked for."""

    kept: np.ndarray
    threshold: float
    kept_tokens: int
    total_tokens: int
    fraction: float


def select_tokens(scores: np.ndarray, token_counts: np.ndarray, *, fraction: float | None = None,
                  flops: float | None = None) -> TokenSelection:
    """Keep the best-scored documents until they hold ``fraction`` of all tokens.

    Documents are taken by decreasing score (ties by index) and the smallest such prefix
    with at least ``fraction x total`` tokens is kept, so a positive fraction keeps at
    least one document. Give ``fraction`` in (0, 1] or ``flops`` for
    :func:`optimal_token_fraction`, not both.

    >>> select_tokens(np.array([0.9, 0.1, 0.5]), np.array([10, 50, 40]), fraction=0.5).kept.tolist()
    [True, False, True]
    """
    if (fraction is None) == (flops is None):
        raise ValueError("give exactly one of fraction and flops")
    if fraction is None:
        fraction = optimal_token_fraction(flops)
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
    scores = np.asarray(scores, dtype=np.float64)
    tokens = np.asarray(token_counts, dtype=np.int64)
    if scores.shape != tokens.shape or scores.ndim != 1 or len(scores) == 0:
        raise ValueError(f"scores and token_counts must be equal-length non-empty vectors; got {scores.shape} "
                         f"and {tokens.shape}")
    order = np.argsort(-scores, kind="stable")
    total = int(tokens.sum())
    cumulative = np.cumsum(tokens[order])
    count = min(len(order), int(np.searchsorted(cumulative, fraction * total, side="left")) + 1)
    kept = np.zeros(len(scores), dtype=bool)
    kept[order[:count]] = True
    return TokenSelection(kept=kept, threshold=float(scores[order[count - 1]]), kept_tokens=int(cumulative[count - 1]),
                          total_tokens=total, fraction=float(fraction))
