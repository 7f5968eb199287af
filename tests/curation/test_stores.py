from __future__ import annotations

import json

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curation.embedders import embedder_key, get_embedder
from curation.ingest import SHARD_SCHEMA
from curation.pipeline import ShardedRows, concat_embeddings, embed_shard, embeddings_at
from curation.storage import Keys, LocalStorage, shard_name
from curation.stores import META_FILE, build_store, exact_search, load_store, search_parts

# d = 128 (not MiniLM's 384) keeps the 60k-vector build, with its k-means and recall
# measurement, at a few seconds on a 2-core machine; nothing in the store depends on d.
DIM, CLUSTERS, INTRINSIC = 128, 300, 16


def _mixture(rng, n, d=DIM):
    """Unit vectors like text embeddings: a Gaussian mixture of Zipf-sized clusters (fixed
    centres), each spread over its own 16-dim subspace (cosine to the centre ~0.65-0.9), plus a
    little isotropic noise. Nearest neighbours have cosine ~0.86, a random pair ~0."""
    fixed = np.random.default_rng(12345)
    centers = fixed.normal(size=(CLUSTERS, d))
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    bases = fixed.normal(size=(CLUSTERS, INTRINSIC, d)) / np.sqrt(d)
    spread = fixed.uniform(0.5, 1.2, size=CLUSTERS)
    sizes = 1.0 / np.arange(1, CLUSTERS + 1) ** 0.8
    labels = rng.choice(CLUSTERS, size=n, p=sizes / sizes.sum())
    x = np.empty((n, d), dtype=np.float32)
    for j in np.unique(labels):
        members = np.flatnonzero(labels == j)
        z = rng.normal(size=(len(members), INTRINSIC)) * spread[j] / np.sqrt(INTRINSIC)
        x[members] = centers[j] + z @ bases[j] + 0.1 * rng.normal(size=(len(members), d)) / np.sqrt(d)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _write_shards(directory, x, bounds):
    paths = []
    for number, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        path = directory / shard_name(number, ".npy")
        np.save(path, x[lo:hi].astype(np.float16))
        paths.append(path)
    return paths


def _exact(queries, keys, k):
    scores = queries @ keys.T
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    return np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)


def _recall(found, exact):
    return np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact)])


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """60,000 vectors in 6 uneven shards, indexed with the defaults (auto -> IVF-SQ8)."""
    directory = tmp_path_factory.mktemp("large")
    x = _mixture(np.random.default_rng(0), 60_000)
    paths = _write_shards(directory, x, [0, 7_000, 19_000, 19_001, 33_000, 50_000, 60_000])
    store = build_store(paths, directory / "store", seed=0, recall_target=0.97, embedder_key="synthetic-128")
    stored = np.concatenate([np.load(p).astype(np.float32) for p in paths])
    return store, paths, stored


def test_large_corpus_gets_ivf_sq8_with_measured_recall_in_meta(large):
    store, paths, _ = large
    meta = json.loads((store.directory / META_FILE).read_text())
    assert meta["kind"] == "ivf_sq8" and meta["n"] == 60_000 and meta["dim"] == DIM
    assert meta["params"]["nlist"] == round(4 * np.sqrt(60_000))
    assert meta["params"]["train_size"] == 40 * meta["params"]["nlist"]
    nprobe = meta["params"]["nprobe"]
    assert 1 <= nprobe < meta["params"]["nlist"]
    assert meta["recall_at_10"] == meta["recall_curve"][str(nprobe)] >= 0.97
    assert meta["recall_queries"] == 1000 and meta["embedder_key"] == "synthetic-128" and meta["seed"] == 0
    # the smallest breadth tried that reached the target was chosen
    assert all(recall < 0.97 for value, recall in meta["recall_curve"].items() if int(value) < nprobe)
    assert meta["shards"] == [p.name for p in paths]
    assert meta["offsets"] == [0, 7_000, 19_000, 19_001, 33_000, 50_000, 60_000]
    assert store.index.nprobe == nprobe


def test_approximate_recall_on_fresh_queries_is_at_least_095(large):
    store, _, stored = large
    queries = _mixture(np.random.default_rng(1), 500)
    found = store.search(queries, 10)
    assert found.indices.shape == found.scores.shape == (500, 10)
    assert np.all(np.diff(found.scores, axis=1) <= 1e-6)
    recall = _recall(found.indices, _exact(queries, stored, 10))
    assert recall >= 0.95, recall


def test_save_load_round_trip_and_mapping_to_shard_rows(large):
    store, paths, stored = large
    loaded = load_store(store.directory)
    assert loaded.meta == store.meta and loaded.index.nprobe == store.index.nprobe
    queries = _mixture(np.random.default_rng(2), 50)
    a, b = store.search(queries, 10), loaded.search(queries, 10)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)

    ids = np.array([0, 6_999, 7_000, 19_000, 19_001, 59_999, *a.indices[:, 0]])
    shard, row = loaded.locate(ids)
    np.testing.assert_array_equal(shard[:6], [0, 0, 1, 2, 3, 5])  # shard 2 holds only row 19,000
    np.testing.assert_array_equal(row[:6], [0, 6_999, 0, 0, 0, 9_999])
    for i, s, r in zip(ids, shard, row):
        np.testing.assert_array_equal(np.load(paths[s], mmap_mode="r")[r].astype(np.float32), stored[i])
    with pytest.raises(ValueError, match=r"ids must be in \[0, n=60000\)"):
        loaded.locate([60_000])
    with pytest.raises(ValueError, match="k must be an integer"):
        loaded.search(queries, 60_001)
    with pytest.raises(ValueError, match=r"queries must have shape \(q, 128\)"):
        loaded.search(queries[:, :10], 5)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """Three real Parquet shards embedded by the pipeline step (hashing embedder): .npy + flat FAISS part each."""
    directory = tmp_path_factory.mktemp("embedded")
    embedder = get_embedder("hashing:64")
    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(400)]
    storage, key = LocalStorage(directory), embedder_key(embedder)
    embeddings, parts = [], []
    for number, count in enumerate([300, 1, 450]):
        texts = [" ".join(rng.choice(words, size=rng.integers(5, 30))) for _ in range(count)]
        with storage.writer(Keys.shard("d", number)) as shard:
            pq.write_table(pa.Table.from_arrays([pa.array([f"{number}-{i}" for i in range(count)]), pa.array(texts),
                                                 pa.array([None] * count, pa.string()),
                                                 pa.array([None] * count, pa.string())], schema=SHARD_SCHEMA), shard)
        embed_shard(storage, "d", number, embedder)
        embeddings.append(storage.local_path(Keys.embedding("d", key, number)))
        parts.append(storage.local_path(Keys.index_part("d", key, number)))
    queries = embedder.encode([" ".join(rng.choice(words, size=12)) for _ in range(40)])
    return embedder, embeddings, parts, queries


def test_search_over_parts_equals_one_flat_index(embedded):
    _, embeddings, parts, queries = embedded
    whole = faiss.IndexFlatIP(64)
    whole.add(concat_embeddings(embeddings))
    scores, ids = whole.search(queries, 20)
    merged = search_parts(parts, queries, 20)
    np.testing.assert_allclose(merged.scores, scores, atol=1e-6)
    assert (merged.indices == ids).mean() >= 0.99  # ties aside
    streamed = exact_search(embeddings, queries, 20)
    np.testing.assert_allclose(streamed.scores, scores, atol=1e-6)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, n=751\]"):
        search_parts(parts, queries, 752)


def test_small_corpus_gets_exact_flat_store(embedded, tmp_path):
    embedder, embeddings, _, queries = embedded
    store = build_store(embeddings, tmp_path / "store", embedder_key=embedder_key(embedder))
    assert store.meta.kind == "flat" and store.meta.n == 751 and store.meta.recall_at_10 == 1.0
    assert store.meta.recall_queries == 0 and store.meta.embedder_key == embedder_key(embedder)
    np.testing.assert_allclose(load_store(tmp_path / "store").search(queries, 10).scores,
                               exact_search(embeddings, queries, 10).scores, atol=1e-6)
    shard, row = store.locate([299, 300, 301])
    np.testing.assert_array_equal(shard, [0, 1, 2])
    np.testing.assert_array_equal(row, [299, 0, 0])


def test_hnsw_tunes_ef_search_to_the_target(tmp_path):
    x = _mixture(np.random.default_rng(4), 4_000)
    paths = _write_shards(tmp_path, x, [0, 2_500, 4_000])
    store = build_store(paths, tmp_path / "store", kind="hnsw", recall_queries=300)
    meta = store.meta
    assert meta.kind == "hnsw" and meta.params["M"] == 32 and meta.recall_at_10 >= 0.95
    assert meta.recall_at_10 == meta.recall_curve[str(meta.params["ef_search"])]
    assert load_store(tmp_path / "store").index.hnsw.efSearch == meta.params["ef_search"]
    queries = _mixture(np.random.default_rng(5), 200)
    assert _recall(store.search(queries, 10).indices, _exact(queries, x.astype(np.float16).astype(np.float32), 10)) >= 0.93


def test_rebuild_replaces_the_store_atomically(embedded, tmp_path):
    _, embeddings, _, _ = embedded
    out = tmp_path / "store"
    first = build_store(embeddings, out)
    second = build_store(embeddings, out, kind="ivf_sq8", nlist=8, recall_queries=100)
    assert first.meta.index_file != second.meta.index_file
    assert sorted(p.name for p in out.iterdir()) == sorted([META_FILE, second.meta.index_file])
    assert load_store(out).meta.kind == "ivf_sq8"
    again = build_store(embeddings, out, kind="ivf_sq8", nlist=8, recall_queries=100)
    assert again.meta.index_file == second.meta.index_file  # same seed, same bytes, same name


def test_rejects_bad_arguments(embedded, tmp_path):
    _, embeddings, _, _ = embedded
    with pytest.raises(ValueError, match="kind must be one of 'auto', 'flat', 'ivf_sq8', 'hnsw'; got 'ivf'"):
        build_store(embeddings, tmp_path, kind="ivf")
    with pytest.raises(ValueError, match=r"recall_target must be in \(0, 1\]"):
        build_store(embeddings, tmp_path, recall_target=1.5)
    with pytest.raises(ValueError, match="needs more than 10 vectors"):
        build_store(embeddings[1:2], tmp_path, kind="hnsw")
    with pytest.raises(FileNotFoundError, match="not a vector store"):
        load_store(tmp_path)


def test_embeddings_at_reads_global_positions_across_shards(embedded):
    _, embeddings, _, _ = embedded
    whole = concat_embeddings(embeddings)  # shards of 300, 1 and 450 rows
    positions = np.array([0, 299, 300, 301, 750])
    np.testing.assert_array_equal(embeddings_at(embeddings, positions), whole[positions])
    assert embeddings_at(embeddings, []).shape == (0, 64)
    with pytest.raises(IndexError, match="positions must lie in"):
        embeddings_at(embeddings, [751])


def test_sharded_rows_subsample_a_pool_as_its_array_does(embedded):
    """A pool read lazily gives curation.ot the same rows, so the same distance, as the loaded array."""
    from curation.ot import embedding_distance

    _, embeddings, _, queries = embedded
    positions = np.arange(0, 751, 3)
    pool, loaded = ShardedRows(embeddings, positions), concat_embeddings(embeddings)[positions]
    assert len(pool) == len(loaded) and pool.shape == loaded.shape
    index = np.array([[0, 5, 5], [250, 1, 100]])
    np.testing.assert_array_equal(pool[index], loaded[index])
    lazy = embedding_distance(pool, queries, sample_size=50, n_resamples=3, seed=1)
    eager = embedding_distance(loaded, queries, sample_size=50, n_resamples=3, seed=1)
    np.testing.assert_array_equal(lazy.resamples, eager.resamples)
