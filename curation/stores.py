"""FAISS vector stores over a corpus's per-shard embeddings, chosen by size, with measured recall.

A store is built from the float16 embedding shards an ``embed`` job writes
(:func:`curation.pipeline.embed_shard`), in shard order, so global row ``i`` of the store
is row ``i - offsets[s]`` of shard ``s``. Vectors are L2-normalised, so inner product is
cosine similarity. Three kinds (DESIGN.md 3.1):

- ``"flat"``: exact ``IndexFlatIP``. Chosen by ``kind="auto"`` up to
  :data:`EXACT_MAX_VECTORS` (50,000) vectors: there the exact index is still small (77 MB at
  384-d) and one batch of 1,000 queries is a single ~40 GFLOP product (about a second on
  2 cores), while an IVF would have only ~900 lists of ~55 vectors, so building it (k-means
  training, then the recall measurement below, which itself needs an exact search) costs
  more than it would ever save, and its answers would no longer be exact.
- ``"ivf_sq8"``: ``IndexIVFScalarQuantizer`` with 8-bit codes (a quarter of the memory),
  ``nlist = 4 sqrt(n)`` lists trained by spherical k-means on a seeded sample of
  ``40 nlist`` rows (FAISS asks for at least 39 per list). The default above the threshold:
  training needs only the sample, and vectors are then added shard by shard, so the
  corpus's float32 vectors are never in memory at once. A plan builds it over several
  units (:func:`train_index` on the sample, :func:`add_shard` into a copy of the trained
  index per shard, :func:`merge_parts` and :func:`finish_store` in the last), which gives
  the same index, ``nprobe`` and recall as :func:`build_store` in one process; the merged
  index (8-bit codes and ids, ``n (dim + 8)`` bytes) is held by that last unit, in memory
  (FAISS's on-disk inverted lists are not used).
- ``"hnsw"``: ``IndexHNSWFlat`` (M = 32), on request; no training, full float32 vectors
  plus the graph, fast queries, slow to build on few cores.

For the approximate kinds the search breadth (``nprobe`` lists, or HNSW's ``efSearch``) is
raised by doubling, then bisected (to within 1/8), to the smallest value whose recall@10
reaches ``recall_target`` (default 0.95) against exact search. Recall is measured on a seeded
sample of corpus rows used as queries, each excluding itself from both answer lists (an
indexed query always finds itself, which would flatter the figure by up to 0.1). The
measured curve and the chosen value are stored in the meta.

On disk (``out_dir``)::

    index-<sha256 prefix>.faiss   the FAISS index
    meta.json                     kind, n, dim, params, recall, shards and offsets, ...

Both are written to temporary names and renamed into place, the meta last: a reader sees
either the old store or the new one, never a mixture or a partial file.

Exact search over the per-shard flat parts written by ``embed_shard`` (one
``IndexFlatIP`` each) is :func:`search_parts`: each part's top-k, merged.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
import uuid
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import faiss
import numpy as np

from curation.pipeline import load_embeddings
from curation.storage import LocalStorage, Storage
from numeric_kernels.topk import TopK, cosine_topk, merge_topk

EXACT_MAX_VECTORS = 50_000
KINDS = ("auto", "flat", "ivf_sq8", "hnsw")
META_FILE = "meta.json"
FORMAT_VERSION = 1
RECALL_K = 10
_ADD_CHUNK = 65_536


@dataclass(frozen=True)
class StoreMeta:
    """What ``meta.json`` holds.

    Attributes
    ----------
    kind : {"flat", "ivf_sq8", "hnsw"}
    n, dim : int
        Vectors indexed and their dimension.
    params : dict
        ``{"nlist", "nprobe", "train_size"}`` for IVF, ``{"M", "ef_construction", "ef_search"}``
        for HNSW, ``{}`` for flat.
    recall_at_10 : float
        Measured recall@10 against exact search at the chosen ``params`` (1.0 for flat: exact).
    recall_curve : dict
        ``{str(nprobe or ef_search): recall@10}`` for every value tried.
    recall_target : float
    recall_queries : int
        Queries the recall was measured on (0 for flat).
    seed : int
    embedder_key : str or None
        The embedder the vectors came from (:func:`curation.embedders.embedder_key`).
    shards : list of str
        Embedding file names, in order.
    offsets : list of int, length len(shards) + 1
        Global row where each shard starts; ``offsets[-1] == n``.
    index_file : str
    build_seconds : float
    """

    kind: str
    n: int
    dim: int
    params: dict
    recall_at_10: float
    recall_curve: dict
    recall_target: float
    recall_queries: int
    seed: int
    embedder_key: str | None
    shards: list
    offsets: list
    index_file: str
    build_seconds: float
    format: int = FORMAT_VERSION


@dataclass(frozen=True, eq=False)
class VectorStore:
    """A loaded store: the FAISS index, its meta and the directory it lives in."""

    index: faiss.Index
    meta: StoreMeta
    directory: Path

    def search(self, queries: np.ndarray, k: int) -> TopK:
        """Top-``k`` by inner product for ``queries`` (q, dim); indices are global row ids.

        An approximate index may find fewer than ``k`` vectors in the lists it probes; the
        missing places hold index -1 (FAISS's convention).
        """
        queries = _as_queries(queries, self.meta.dim)
        _check_k(k, self.meta.n)
        scores, ids = self.index.search(queries, k)
        return TopK(scores=scores, indices=ids)

    def locate(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """Global row ids -> (shard position in ``meta.shards``, row within that shard)."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.meta.n):
            raise ValueError(f"ids must be in [0, n={self.meta.n}); got values in [{ids.min()}, {ids.max()}]")
        offsets = np.asarray(self.meta.offsets, dtype=np.int64)
        shard = np.searchsorted(offsets, ids, side="right") - 1
        return shard, ids - offsets[shard]


def nearest_documents(store: VectorStore, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``store`` nearest to any of ``queries`` (q, dim): ``(rows (k',), cosine (k',))``,
    best first; a row's score is its highest cosine to a query (BETR's max aggregation). Each query's
    top-``k`` is searched; ``k' <= k`` where an approximate index finds fewer."""
    found = store.search(queries, min(k, store.meta.n))
    rows, scores = found.indices.ravel(), found.scores.ravel()
    keep = rows >= 0
    rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))  # best first, ties by row
    rows, scores = rows[order], scores[order]
    _, first = np.unique(rows, return_index=True)  # each row's best score
    first = np.sort(first)[:k]
    return rows[first].astype(np.int64), scores[first].astype(np.float64)


def build_store(
    embedding_paths: Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    kind: str = "auto",
    seed: int = 0,
    embedder_key: str | None = None,
    recall_target: float = 0.95,
    recall_queries: int = 1000,
    exact_max: int = EXACT_MAX_VECTORS,
    nlist: int | None = None,
    hnsw_m: int = 32,
    hnsw_ef_construction: int = 80,
) -> VectorStore:
    """Index the embedding shards ``embedding_paths`` (each ``(rows, dim)``, float16 ``.npy``) into ``out_dir``.

    Parameters
    ----------
    kind : {"auto", "flat", "ivf_sq8", "hnsw"}
        ``"auto"``: flat up to ``exact_max`` vectors, IVF-SQ8 above.
    seed : int
        Seeds the training sample, the k-means and the recall queries.
    recall_target : float in (0, 1]
        Smallest recall@10 the search breadth is tuned to reach; if even the widest
        search misses it (8-bit codes bound IVF-SQ8's recall), a warning says so and the
        meta records what was reached.
    recall_queries : int
        Corpus rows used as queries to measure recall (fewer if the corpus is smaller).
    nlist : int, optional
        IVF lists (default ``round(4 sqrt(n))``).
    """
    started = time.perf_counter()
    _check_arguments(kind, recall_target, recall_queries)
    corpus = _Corpus.open(embedding_paths)
    index, kind, params = train_index(corpus.paths, kind=kind, seed=seed, exact_max=exact_max, nlist=nlist,
                                      hnsw_m=hnsw_m, hnsw_ef_construction=hnsw_ef_construction)
    for offset, path in zip(corpus.offsets, corpus.paths):  # shard by shard: never the whole corpus in memory
        add_shard(index, path, int(offset))
    return finish_store(index, kind, params, corpus.paths, out_dir, seed=seed, embedder_key=embedder_key,
                        recall_target=recall_target, recall_queries=recall_queries, started=started)


def resolve_kind(kind: str, n: int, exact_max: int = EXACT_MAX_VECTORS) -> str:
    """The kind a store of ``n`` vectors gets: ``"auto"`` is flat up to ``exact_max``, IVF-SQ8 above."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}; got {kind!r}")
    return ("flat" if n <= exact_max else "ivf_sq8") if kind == "auto" else kind


def _check_arguments(kind: str, recall_target: float, recall_queries: int) -> None:
    resolve_kind(kind, 0)
    if not 0 < recall_target <= 1:
        raise ValueError(f"recall_target must be in (0, 1]; got {recall_target!r}")
    if recall_queries < 1:
        raise ValueError(f"recall_queries must be >= 1; got {recall_queries!r}")


def _seeded(kind: str, n: int, seed: int, params: dict) -> tuple[np.random.Generator, np.ndarray | None]:
    """The store's generator after it drew IVF's training rows (and those rows): the recall queries
    come from the same generator, whichever unit draws them."""
    rng = np.random.default_rng(seed)
    if kind != "ivf_sq8":
        return rng, None
    return rng, np.sort(rng.choice(n, size=params["train_size"], replace=False))


def train_index(embedding_paths: Sequence[str | os.PathLike], *, kind: str = "auto", seed: int = 0,
                exact_max: int = EXACT_MAX_VECTORS, nlist: int | None = None, hnsw_m: int = 32,
                hnsw_ef_construction: int = 80) -> tuple[faiss.Index, str, dict]:
    """The empty index of the store (:func:`build_store`'s parameters): IVF-SQ8 trained on its seeded
    sample of rows (read shard by shard), flat or HNSW as they are. Returns (index, kind, params)."""
    corpus = _Corpus.open(embedding_paths)
    n = corpus.n
    kind = resolve_kind(kind, n, exact_max)
    if kind != "flat" and n <= RECALL_K:
        raise ValueError(f"kind={kind!r} needs more than {RECALL_K} vectors to measure its recall; got {n}")
    params: dict = {}
    if kind == "flat":
        return faiss.IndexFlatIP(corpus.dim), kind, params
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(corpus.dim, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = hnsw_ef_construction
        return index, kind, {"M": hnsw_m, "ef_construction": hnsw_ef_construction}
    nlist = nlist or max(1, min(n // 39, round(4 * math.sqrt(n))))
    params.update(nlist=nlist, train_size=min(n, 40 * nlist))
    index = faiss.IndexIVFScalarQuantizer(faiss.IndexFlatIP(corpus.dim), corpus.dim, nlist,
                                          faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = seed
    index.cp.spherical = True
    index.train(corpus.gather(_seeded(kind, n, seed, params)[1]))
    return index, kind, params


def add_shard(index: faiss.Index, embedding_path: str | os.PathLike, offset: int) -> faiss.Index:
    """Add one shard's vectors, chunk by chunk; an IVF index gets them under their global rows
    ``offset + i``, so that parts filled apart merge (:func:`merge_parts`) into the index one process
    would have built."""
    vectors = load_embeddings(Path(embedding_path))
    for start in range(0, len(vectors), _ADD_CHUNK):
        chunk = np.ascontiguousarray(vectors[start:start + _ADD_CHUNK], dtype=np.float32)
        if isinstance(index, faiss.IndexIVF):
            index.add_with_ids(chunk, np.arange(offset + start, offset + start + len(chunk), dtype=np.int64))
        else:
            index.add(chunk)
    return index


def merge_parts(trained: faiss.Index, parts: Iterable[faiss.Index]) -> faiss.Index:
    """The IVF index ``trained`` with every part's inverted lists appended, in order (ids kept)."""
    for part in parts:
        trained.merge_from(part, 0)
    return trained


def finish_store(index: faiss.Index, kind: str, params: dict, embedding_paths: Sequence[str | os.PathLike],
                 out_dir: str | os.PathLike, *, seed: int = 0, embedder_key: str | None = None,
                 recall_target: float = 0.95, recall_queries: int = 1000, started: float | None = None) -> VectorStore:
    """Tune a filled index's search breadth to ``recall_target`` (approximate kinds) and write it with its
    meta into ``out_dir`` (:func:`build_store`)."""
    started = time.perf_counter() if started is None else started
    corpus = _Corpus.open(embedding_paths)
    n = corpus.n
    if index.ntotal != n:
        raise ValueError(f"the index holds {index.ntotal} vectors, the embedding shards {n}")
    rng, _ = _seeded(kind, n, seed, params)
    params = dict(params)
    recall, curve, n_queries = 1.0, {}, 0
    if kind != "flat":
        name = "nprobe" if kind == "ivf_sq8" else "ef_search"
        query_ids = np.sort(rng.choice(n, size=min(n, recall_queries), replace=False))
        n_queries = len(query_ids)
        params[name], recall, curve = _tune_breadth(index, name, corpus, query_ids, recall_target)
        if recall < recall_target:
            warnings.warn(f"{kind} store reaches recall@{RECALL_K} {recall:.3f} < target {recall_target} at the widest "
                          f"search ({name}={params[name]}); consider kind='flat' or 'hnsw'", RuntimeWarning,
                          stacklevel=2)

    out = Path(out_dir)
    index_file = _write_index(index, out)
    meta = StoreMeta(kind=kind, n=n, dim=corpus.dim, params=params, recall_at_10=float(recall), recall_curve=curve,
                     recall_target=float(recall_target), recall_queries=n_queries, seed=seed, embedder_key=embedder_key,
                     shards=[p.name for p in corpus.paths], offsets=corpus.offsets.tolist(), index_file=index_file,
                     build_seconds=round(time.perf_counter() - started, 3))
    previous = _read_meta(out) if (out / META_FILE).exists() else None
    LocalStorage(out).write_bytes(META_FILE, json.dumps(asdict(meta), indent=2).encode())
    if previous is not None and previous.index_file != index_file:
        (out / previous.index_file).unlink(missing_ok=True)
    return VectorStore(index=index, meta=meta, directory=out)


def load_store(directory: str | os.PathLike) -> VectorStore:
    """Open a store written by :func:`build_store`, with the search breadth it was tuned to."""
    directory = Path(directory)
    meta = _read_meta(directory)
    return _open_index(meta, directory / meta.index_file)


def open_store(storage: Storage, prefix: str) -> VectorStore | None:
    """The store :func:`build_store` wrote under ``prefix`` of ``storage`` (the ``index`` stage's
    :meth:`Keys.vector_store`), or None when there is none."""
    if not storage.exists(f"{prefix}/{META_FILE}"):
        return None
    meta = _meta_from(json.loads(storage.read_bytes(f"{prefix}/{META_FILE}")), f"{prefix}/{META_FILE}")
    return _open_index(meta, storage.local_path(f"{prefix}/{meta.index_file}"))


def _open_index(meta: StoreMeta, path: Path) -> VectorStore:
    index = faiss.read_index(str(path))
    if index.ntotal != meta.n or index.d != meta.dim:
        raise ValueError(f"{path}: index holds {index.ntotal} x {index.d}, meta says {meta.n} x {meta.dim}")
    for name in ("nprobe", "ef_search"):
        if name in meta.params:
            _set_breadth(index, name, meta.params[name])
    return VectorStore(index=index, meta=meta, directory=path.parent)


def search_parts(part_paths: Sequence[str | os.PathLike], queries: np.ndarray, k: int) -> TopK:
    """Exact top-``k`` over per-shard FAISS parts (read one at a time), merged; global ids in part order."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)

    def part_search(path: Path):
        part = faiss.read_index(str(path))
        if part.d != queries.shape[1]:
            raise ValueError(f"{path}: dimension {part.d}, queries have {queries.shape[1]}")
        return part.ntotal, lambda kk: TopK(*part.search(queries, kk))

    return _merge_shards((part_search(Path(p)) for p in part_paths), k)


def exact_search(embedding_paths: Sequence[str | os.PathLike], queries: np.ndarray, k: int) -> TopK:
    """Exact top-``k`` over float16 embedding shards (memory-mapped, blocked), merged; global ids in shard order."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)

    def shard_search(path: Path):
        keys = load_embeddings(path)
        return len(keys), lambda kk: cosine_topk(queries, keys, kk)

    return _merge_shards((shard_search(Path(p)) for p in embedding_paths), k)


# --------------------------------------------------------------------------- internals


def _merge_shards(shards: Iterable[tuple[int, Callable[[int], TopK]]], k: int) -> TopK:
    """``shards`` yields (rows, search) in order; search(kk) gives that shard's local top-kk."""
    parts, offset = [], 0
    for rows, search in shards:
        if rows:
            local = search(min(k, rows))
            parts.append(TopK(scores=local.scores, indices=local.indices + offset))
        offset += rows
    _check_k(k, offset)
    return merge_topk(parts, k)


def _check_k(k: int, n: int) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, n={n}] (n = vectors in the store); got {k!r}")


def _as_queries(queries, dim: int) -> np.ndarray:
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries must have shape (q, {dim}); got {queries.shape}")
    return queries


@dataclass(frozen=True)
class _Corpus:
    """The embedding shards, in order: ``offsets[s]`` is the global row where shard ``s`` starts."""

    paths: list[Path]
    offsets: np.ndarray
    dim: int

    @classmethod
    def open(cls, embedding_paths: Sequence[str | os.PathLike]) -> "_Corpus":
        paths = [Path(p) for p in embedding_paths]
        shapes = [load_embeddings(p).shape for p in paths]
        dims = {shape[1] for shape in shapes}
        if not paths or len(dims) != 1:
            raise ValueError(f"need one or more embedding files of a single dimension; got shapes {shapes}")
        offsets = np.concatenate([[0], np.cumsum([shape[0] for shape in shapes])]).astype(np.int64)
        if offsets[-1] == 0:
            raise ValueError("the embedding files hold no vectors")
        return cls(paths=paths, offsets=offsets, dim=dims.pop())

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    def gather(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` (sorted global ids) as float32, read shard by shard from the memory maps."""
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        bounds = np.searchsorted(ids, self.offsets)
        for shard, path in enumerate(self.paths):
            lo, hi = bounds[shard], bounds[shard + 1]
            if hi > lo:
                out[lo:hi] = load_embeddings(path)[ids[lo:hi] - self.offsets[shard]]
        return out


def _tune_breadth(index: faiss.Index, name: str, corpus: _Corpus, query_ids: np.ndarray,
                  target: float) -> tuple[int, float, dict]:
    """Set ``nprobe`` / ``ef_search`` to the smallest value (within 1/8) whose recall@10 on the corpus rows
    ``query_ids``, each excluding itself, reaches ``target``. Returns (value, its recall, {value: recall} tried)."""
    queries = corpus.gather(query_ids)
    exact = _exclude_self(exact_search(corpus.paths, queries, RECALL_K + 1).indices, query_ids, RECALL_K)
    curve: dict[str, float] = {}

    def measure(value: int) -> float:
        _set_breadth(index, name, value)
        found = _exclude_self(index.search(queries, RECALL_K + 1)[1], query_ids, RECALL_K)
        curve[str(value)] = _recall(found, exact)
        return curve[str(value)]

    if name == "nprobe":
        value, recall = _smallest_reaching(measure, target, start=1, limit=index.nlist)
    else:
        value, recall = _smallest_reaching(measure, target, start=16, limit=4096)
    _set_breadth(index, name, value)
    return value, recall, curve


def _exclude_self(found: np.ndarray, query_ids: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` ids of each row of ``found`` other than the query's own id."""
    keep = found != query_ids[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.where(np.take_along_axis(keep, order, 1), np.take_along_axis(found, order, 1), -1)


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean over queries of |found ∩ exact| / |exact| (ids -1 are padding)."""
    hits = sum(len(set(f[f >= 0]) & set(e[e >= 0])) for f, e in zip(found, exact))
    return hits / max(1, int((exact >= 0).sum()))


def _set_breadth(index: faiss.Index, name: str, value: int) -> None:
    if name == "nprobe":
        index.nprobe = int(value)
    else:
        index.hnsw.efSearch = int(value)


def _smallest_reaching(measure: Callable[[int], float], target: float, *, start: int, limit: int) -> tuple[int, float]:
    """A value in [start, limit], within 1/8 of the smallest, with measure(value) >= target (measure non-decreasing):
    doubling, then bisection. Returns (value, its measure); (limit, measure(limit)) if none reaches it."""
    low, value = None, max(1, min(start, limit))
    while (reached := measure(value)) < target and value < limit:
        low, value = value, min(2 * value, limit)
    if reached < target or low is None:
        return value, reached
    high, best = value, reached
    while high - low > max(1, high // 8):
        middle = (low + high) // 2
        if (recall := measure(middle)) >= target:
            high, best = middle, recall
        else:
            low = middle
    return high, best


def _write_index(index: faiss.Index, out: Path) -> str:
    """Write the index under a content-derived name, via a temporary file and a rename; return the name."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".index.{uuid.uuid4().hex}.tmp"
    try:
        faiss.write_index(index, str(tmp))
        digest = hashlib.sha256()
        with open(tmp, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
        name = f"index-{digest.hexdigest()[:16]}.faiss"
        os.replace(tmp, out / name)
    finally:
        tmp.unlink(missing_ok=True)
    return name


def _read_meta(directory: Path) -> StoreMeta:
    path = directory / META_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a vector store (no {META_FILE})")
    return _meta_from(json.loads(path.read_text()), path)


def _meta_from(data: dict, where) -> StoreMeta:
    if data.get("format") != FORMAT_VERSION:
        raise ValueError(f"{where}: store format {data.get('format')!r}, this code reads {FORMAT_VERSION}")
    return StoreMeta(**data)
