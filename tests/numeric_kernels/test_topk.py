from __future__ import annotations

import faiss
import numpy as np
import pytest
import torch

from numeric_kernels.topk import TopK, cosine_topk, merge_topk


def _unit(rng, n, d=48, dtype=np.float32):
    """Clustered unit rows (a few Gaussian blobs), so neighbours are meaningful and near-ties rare."""
    centers = rng.normal(size=(8, d))
    x = centers[rng.integers(8, size=n)] + 0.6 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def _reference(queries, keys, k):
    scores = queries.astype(np.float64) @ keys.astype(np.float64).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), order


def _assert_same_neighbours(result: TopK, scores, indices, queries, keys, atol=1e-5):
    """Same top-k up to ties: the same sorted scores as the reference, each score the true inner
    product of its returned key, and the same index sets wherever the reference has no near-tie."""
    np.testing.assert_allclose(result.scores, scores, atol=atol)
    assert np.all(np.diff(result.scores, axis=1) <= atol)
    true = np.einsum("qd,qkd->qk", queries.astype(np.float64), keys.astype(np.float64)[result.indices])
    np.testing.assert_allclose(result.scores, true, atol=atol)
    same = (np.sort(result.indices, 1) == np.sort(indices, 1)).all(1)
    assert same.mean() >= 0.98, same.mean()


@pytest.mark.parametrize(("n", "block", "query_block"),
                         [(1000, None, 9), (50, 1, None), (1000, 37, 33), (1000, 333, 64), (1000, 1000, 1000)])
def test_numpy_matches_full_matrix_argsort(n, block, query_block):
    rng = np.random.default_rng(0)
    keys, queries = _unit(rng, n), _unit(rng, 70)
    result = cosine_topk(queries, keys, 10, block=block, query_block=query_block)
    assert result.scores.shape == result.indices.shape == (70, 10)
    assert result.scores.dtype == np.float32 and result.indices.dtype == np.int64
    _assert_same_neighbours(result, *_reference(queries, keys, 10), queries, keys)


def test_numpy_matches_faiss_flat_index_and_float16_memmap(tmp_path):
    rng = np.random.default_rng(1)
    keys, queries = _unit(rng, 5000, d=64, dtype=np.float16), _unit(rng, 300, d=64)
    np.save(tmp_path / "keys.npy", keys)
    mapped = np.load(tmp_path / "keys.npy", mmap_mode="r")
    index = faiss.IndexFlatIP(64)
    index.add(keys.astype(np.float32))
    flat_scores, flat_indices = index.search(queries, 25)
    result = cosine_topk(queries, mapped, 25, block=999, query_block=128)
    _assert_same_neighbours(result, flat_scores, flat_indices, queries, keys)


def test_k_equal_to_n_sorts_everything_and_k_above_n_is_an_error():
    rng = np.random.default_rng(2)
    keys, queries = _unit(rng, 13), _unit(rng, 4)
    result = cosine_topk(queries, keys, 13, block=4)
    np.testing.assert_array_equal(np.sort(result.indices, 1), np.tile(np.arange(13), (4, 1)))
    _assert_same_neighbours(result, *_reference(queries, keys, 13), queries, keys)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, n=13\].*got 14"):
        cosine_topk(queries, keys, 14)
    with pytest.raises(ValueError, match="k must be"):
        cosine_topk(queries, keys, 0)
    with pytest.raises(ValueError, match="block must be a positive integer"):
        cosine_topk(queries, keys, 3, block=0)
    with pytest.raises(ValueError, match="shapes"):
        cosine_topk(queries[:, :5], keys, 3)


def test_normalize_gives_cosine_of_unnormalised_rows():
    rng = np.random.default_rng(3)
    keys, queries = _unit(rng, 500), _unit(rng, 20)
    scale = rng.uniform(0.1, 10.0, size=(500, 1)).astype(np.float32)
    result = cosine_topk(queries * 3.0, keys * scale, 5, block=77, normalize=True)
    _assert_same_neighbours(result, *_reference(queries, keys, 5), queries, keys, atol=1e-4)
    tensor = cosine_topk(torch.from_numpy(queries * 3.0), torch.from_numpy(keys * scale), 5, block=77, normalize=True)
    np.testing.assert_allclose(tensor.scores.numpy(), result.scores, atol=1e-5)


def test_empty_queries():
    keys = _unit(np.random.default_rng(4), 10)
    assert cosine_topk(keys[:0], keys, 3).scores.shape == (0, 3)
    assert cosine_topk(torch.from_numpy(keys[:0]), keys, 3).indices.shape == (0, 3)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16])
def test_torch_cpu_equals_numpy_path(dtype):
    rng = np.random.default_rng(5)
    keys, queries = _unit(rng, 2000), _unit(rng, 150)
    expected = cosine_topk(queries, keys, 10, block=300)
    result = cosine_topk(torch.from_numpy(queries).to(dtype), torch.from_numpy(keys).to(dtype), 10, block=301,
                         query_block=64)
    assert isinstance(result.scores, torch.Tensor) and result.indices.dtype == torch.int64
    assert result.scores.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    if dtype == torch.float16:  # rounded inputs: compare against the numpy path on the same rounded values
        queries, keys = queries.astype(np.float16), keys.astype(np.float16)
        expected = cosine_topk(queries, keys, 10)
    _assert_same_neighbours(TopK(result.scores.numpy(), result.indices.numpy()), expected.scores, expected.indices,
                            queries, keys)


def test_torch_queries_scan_numpy_keys_block_by_block():
    rng = np.random.default_rng(6)
    keys, queries = _unit(rng, 1000, dtype=np.float16), _unit(rng, 30)
    result = cosine_topk(torch.from_numpy(queries), keys, 7, block=128)
    expected = cosine_topk(queries, keys, 7)
    _assert_same_neighbours(TopK(result.scores.numpy(), result.indices.numpy()), expected.scores, expected.indices,
                            queries, keys)


def test_merge_topk_over_disjoint_parts_equals_one_search():
    rng = np.random.default_rng(7)
    keys, queries = _unit(rng, 900), _unit(rng, 40)
    bounds = [0, 100, 101, 450, 900]
    parts = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = cosine_topk(queries, keys[lo:hi], min(8, hi - lo))
        parts.append(TopK(part.scores, part.indices + lo))
    merged = merge_topk(parts, 8)
    _assert_same_neighbours(merged, *_reference(queries, keys, 8), queries, keys)
    torch_parts = [TopK(torch.from_numpy(p.scores), torch.from_numpy(p.indices)) for p in parts]
    np.testing.assert_array_equal(merge_topk(torch_parts, 8).indices.numpy(), merged.indices)
    with pytest.raises(ValueError, match="k must be in"):
        merge_topk(parts[:2], 10)  # 8 + 1 columns


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_equals_cpu(dtype):
    rng = np.random.default_rng(8)
    keys, queries = _unit(rng, 20_000, d=384), _unit(rng, 500, d=384)
    expected = cosine_topk(queries, keys, 10)
    result = cosine_topk(torch.from_numpy(queries).cuda().to(dtype), torch.from_numpy(keys).cuda().to(dtype), 10,
                         block=4099)
    assert result.scores.device.type == "cuda" and result.scores.dtype == torch.float32
    atol = 1e-5 if dtype == torch.float32 else 2e-3
    np.testing.assert_allclose(result.scores.cpu().numpy(), expected.scores, atol=atol)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(result.indices.cpu().numpy(), expected.indices)])
    assert overlap >= (0.999 if dtype == torch.float32 else 0.97)
