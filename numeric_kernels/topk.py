r"""Blocked inner-product (cosine) top-k between two sets of vectors, never all pairs at once.

For queries :math:`Q \in \mathbb{R}^{q \times d}` and keys :math:`K \in \mathbb{R}^{n \times d}`
the result holds, for every query :math:`i`, the :math:`k` keys of highest score

.. math::

    s_{ij} = \langle q_i, k_j \rangle \quad\Bigl(= \cos(q_i, k_j) \text{ for unit rows, or with }
    \texttt{normalize=True}\Bigr),

best first. Keys are read in blocks of ``block`` rows and queries in blocks of
``query_block`` rows; each (query block x key block) product is reduced to its own
top-k at once and folded into a running top-k, so memory is
:math:`O(\text{query\_block} \cdot \text{block} + q k)`, never :math:`O(q n)`. Keys may
be a float16 memory map (an embedding shard as stored): only one block at a time is
converted to float32.

Arrays in, arrays of the same kind out:

- numpy in: each block is searched by FAISS's exhaustive inner-product kernel
  (``faiss.knn``: BLAS products in cache-sized tiles, a per-query heap instead of a
  selection over the product) and blocks are merged with FAISS's result heaps. In float32.
  Chosen by measurement (100k x 384 keys, 1k queries, 2 cores, best of 3): 1.77 s, against
  2.28 s for numpy ``matmul`` + ``argpartition`` per block, 2.00 s for ``torch.topk`` per
  block and 1.84 s for ``faiss.IndexFlatIP.search`` on the whole set. docs/BENCHMARKS.md
  ("Search and clustering") compares it with ``IndexFlatIP`` and a whole-matrix numpy top-k
  from 10k to 1M keys.
- torch in (either argument a tensor): ``torch.mm`` + ``torch.topk`` per block on the
  tensor's device (a numpy ``keys`` is moved there block by block, so a GPU can scan a
  memory-mapped shard). Float64 stays float64; half precision is computed in half on
  CUDA and in float32 on the CPU; scores come back as float32 or float64.

Ties between equal scores are broken arbitrarily (FAISS and torch differ).

>>> keys = np.eye(4, dtype=np.float32)
>>> queries = np.array([[0.25, 0.75, 0.0, 0.5]], dtype=np.float32)
>>> res = cosine_topk(queries, keys, 2)
>>> res.indices.tolist(), res.scores.tolist()
([[1, 3]], [[0.75, 0.5]])
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import faiss
import numpy as np
import torch

# Default (key rows, query rows) per block, by path. FAISS tiles each call internally
# (4096 queries x 1024 keys), so its key block only bounds the float32 copy of a float16
# block (64k x 384 x 4 B = 100 MB); torch products are (query_block x block) score matrices:
# 64 MB on the CPU, 512 MB on CUDA.
_BLOCKS = {"faiss": (65_536, 16_384), "cpu": (16_384, 1_024), "cuda": (32_768, 4_096)}


@dataclass(frozen=True, eq=False)
class TopK:
    """Best ``k`` keys per query, best first.

    Attributes
    ----------
    scores : array, shape (q, k)
        Inner products (cosines for unit rows), descending along each row; float32
        (float64 for float64 torch inputs).
    indices : array, shape (q, k), int64
        Row of ``keys`` behind each score.
    """

    scores: Any
    indices: Any


def cosine_topk(queries, keys, k: int, *, block: int | None = None, query_block: int | None = None,
                normalize: bool = False) -> TopK:
    """The ``k`` keys of highest inner product with each query, by blocks.

    Parameters
    ----------
    queries : array, shape (q, d)
        numpy array or torch tensor.
    keys : array, shape (n, d)
        numpy array (a float16 memory map is fine) or torch tensor.
    k : int
        Neighbours per query, ``1 <= k <= n``.
    block : int, optional
        Key rows per block (default: 65,536 for numpy, 16,384 for torch on the CPU,
        32,768 on CUDA).
    query_block : int, optional
        Query rows per block (default: 16,384 / 1,024 / 4,096).
    normalize : bool
        Divide by the row norms (cosine for rows that are not unit vectors). Keys are
        normalised block by block, never copied whole.

    Returns
    -------
    TopK
        ``scores`` and ``indices`` of shape (q, k): numpy for numpy inputs, torch on the
        queries' (else the keys') device when either input is a tensor.
    """
    if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
        raise ValueError(f"queries and keys must have shapes (q, d) and (n, d); got {tuple(queries.shape)} "
                         f"and {tuple(keys.shape)}")
    n = keys.shape[0]
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= n:
        raise ValueError(f"k must be an integer in [1, n={n}] (n = number of keys); got {k!r}")
    k = int(k)
    if isinstance(queries, torch.Tensor) or isinstance(keys, torch.Tensor):
        backend = _TorchBackend(queries.device if isinstance(queries, torch.Tensor) else keys.device, queries, keys,
                                normalize)
    else:
        backend = _FaissBackend(normalize)
    block = _check_block("block", block, backend.blocks[0])
    query_block = _check_block("query_block", query_block, backend.blocks[1])

    results = []
    for start in range(0, queries.shape[0], query_block):
        q = backend.rows(queries[start:start + query_block])
        parts = (backend.search(q, keys[j:j + block], min(k, n - j), j) for j in range(0, n, block))
        results.append(backend.merge(parts, k, q.shape[0]))
    return backend.concat(results, k)


def merge_topk(parts: Iterable[TopK], k: int) -> TopK:
    """Top-``k`` of the union of several results for the same queries over disjoint keys.

    Each part's ``indices`` must already be global (offset by where its keys start).
    Parts may hold fewer than ``k`` columns; the union must hold at least ``k``.

    >>> a = TopK(np.array([[0.9, 0.1]], np.float32), np.array([[0, 1]]))
    >>> b = TopK(np.array([[0.5]], np.float32), np.array([[7]]))
    >>> merge_topk([a, b], 2).indices.tolist()
    [[0, 7]]
    """
    parts = list(parts)
    if not parts:
        raise ValueError("merge_topk needs at least one part")
    available = sum(part.indices.shape[1] for part in parts)
    if not 1 <= k <= available:
        raise ValueError(f"k must be in [1, {available}] (the parts' columns together); got {k!r}")
    rows = parts[0].indices.shape[0]
    pairs = ((part.scores, part.indices) for part in parts)
    if isinstance(parts[0].scores, torch.Tensor):
        return _merge_torch(pairs, k, rows)
    return _merge_faiss(pairs, k, rows)


# --------------------------------------------------------------------------- internals


def _check_block(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


def _merge_faiss(pairs, k: int, rows: int) -> TopK:
    heap = faiss.ResultHeap(rows, k, keep_max=True)
    for scores, indices in pairs:
        heap.add_result(scores, indices)
    heap.finalize()
    return TopK(scores=heap.D, indices=heap.I)


def _merge_torch(pairs, k: int, rows: int) -> TopK:
    best_scores = best_indices = None
    for scores, indices in pairs:
        if best_scores is not None:
            scores, indices = torch.cat([best_scores, scores], 1), torch.cat([best_indices, indices], 1)
        best_scores, order = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        best_indices = torch.gather(indices, 1, order)
    if best_scores.dtype != torch.float64:
        best_scores = best_scores.float()
    return TopK(scores=best_scores, indices=best_indices)


class _FaissBackend:
    """numpy in, numpy out: ``faiss.knn`` per block, merged by ``faiss.ResultHeap`` (float32)."""

    blocks = _BLOCKS["faiss"]

    def __init__(self, normalize: bool) -> None:
        self.normalize = normalize

    def search(self, q: np.ndarray, k_block, kk: int, offset: int):
        scores, indices = faiss.knn(q, self.rows(k_block), kk, metric=faiss.METRIC_INNER_PRODUCT)
        return scores, indices + offset

    merge = staticmethod(_merge_faiss)

    def concat(self, results: list[TopK], k: int) -> TopK:
        if not results:
            return TopK(scores=np.zeros((0, k), dtype=np.float32), indices=np.zeros((0, k), dtype=np.int64))
        return TopK(scores=np.concatenate([r.scores for r in results]),
                    indices=np.concatenate([r.indices for r in results]))

    def rows(self, x) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if self.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x


class _TorchBackend:
    """Tensors in (either argument), tensors out on ``device``: ``q @ keys.T`` and ``torch.topk`` per block."""

    def __init__(self, device: torch.device, queries, keys, normalize: bool) -> None:
        self.device, self.normalize = device, normalize
        self.blocks = _BLOCKS["cuda" if device.type == "cuda" else "cpu"]
        dtypes = {_torch_dtype(queries), _torch_dtype(keys)}
        half = {torch.float16, torch.bfloat16}
        if torch.float64 in dtypes:
            self.dtype = torch.float64
        elif device.type == "cuda" and len(dtypes) == 1 and dtypes <= half:
            self.dtype = dtypes.pop()
        else:
            self.dtype = torch.float32

    def search(self, q: torch.Tensor, k_block, kk: int, offset: int):
        scores, indices = torch.topk(q @ self.rows(k_block).T, kk, dim=1)
        return scores, indices + offset

    merge = staticmethod(_merge_torch)

    def concat(self, results: list[TopK], k: int) -> TopK:
        if not results:
            dtype = torch.float64 if self.dtype == torch.float64 else torch.float32
            return TopK(scores=torch.zeros((0, k), dtype=dtype, device=self.device),
                        indices=torch.zeros((0, k), dtype=torch.int64, device=self.device))
        return TopK(scores=torch.cat([r.scores for r in results]), indices=torch.cat([r.indices for r in results]))

    def rows(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.from_numpy(np.ascontiguousarray(x))
        x = x.to(device=self.device, dtype=self.dtype)
        return torch.nn.functional.normalize(x, dim=1, eps=1e-12) if self.normalize else x


def _torch_dtype(array) -> torch.dtype:
    if isinstance(array, torch.Tensor):
        return array.dtype
    return torch.from_numpy(np.zeros(0, dtype=array.dtype)).dtype
