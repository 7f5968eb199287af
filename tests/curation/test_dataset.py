"""The training-ready dataset (curation.dataset): rows, repeats, a seeded shuffle, and loading in
HF ``datasets`` and datatrove unchanged."""
from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from curation.dataset import affine_permutation, write_dataset
from curation.storage import LocalStorage
from tests.shared import load_jsonl, shared_path


@pytest.fixture(scope="module")
def bbc():
    return load_jsonl(shared_path("corpora/bbc_news.jsonl"))[::7][:300]  # the file runs topic by topic


def _write(tmp_path, documents, seed: int, folder: str = "dataset", rows_per_shard: int = 250):
    """300 BBC documents, a manifest pooling them by topic with 1-4 repeats each."""
    repeats = np.arange(len(documents)) % 4 + 1
    selection = {"position": np.arange(len(documents)), "pool": np.array([d["source"] for d in documents], dtype=object),
                 "repeats": repeats}
    ids = [d["id"] for d in documents]
    storage = LocalStorage(tmp_path)

    def read_rows(wanted):
        assert np.all(np.diff(wanted) > 0), "ascending, each document once"
        return {"text": [documents[i]["text"] for i in wanted], "source": [documents[i]["source"] for i in wanted]}

    content = write_dataset(storage, folder, selection=selection, ids=ids, read_rows=read_rows, seed=seed,
                            about={"budget": int(repeats.sum())}, rows_per_shard=rows_per_shard)
    return content, sorted((tmp_path / folder).glob("*.parquet")), dict(zip(ids, repeats))


def test_rows_repeats_and_a_seeded_shuffle(tmp_path, bbc):
    content, files, repeats = _write(tmp_path, bbc, seed=7)
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    assert content["rows"] == len(rows) == sum(repeats.values()) == 750 and len(files) == 3
    assert [s["rows"] for s in content["shards"]] == [250, 250, 250]
    for document, count in repeats.items():
        assert sorted(r["repeat_index"] for r in rows if r["id"] == document) == list(range(count))
    texts = {d["id"]: d["text"] for d in bbc}
    assert all(r["text"] == texts[r["id"]] for r in rows)
    # shuffled: pools interleave (the manifest holds them in runs) and every shard has every topic
    switches = sum(a["pool"] != b["pool"] for a, b in zip(rows, rows[1:]))
    assert switches > 0.6 * len(rows), switches
    topics = {d["source"] for d in bbc}
    assert all({r["pool"] for r in pq.read_table(f).to_pylist()} == topics for f in files)
    same, _, _ = _write(tmp_path, bbc, seed=7, folder="again")
    other, other_files, _ = _write(tmp_path, bbc, seed=8, folder="other")
    assert [f.read_bytes() for f in files] == [f.read_bytes() for f in sorted((tmp_path / "again").glob("*.parquet"))]
    assert [r["id"] for f in other_files for r in pq.read_table(f).to_pylist()] != [r["id"] for r in rows]
    before = files[0].stat().st_mtime_ns
    _write(tmp_path, bbc, seed=7)
    assert files[0].stat().st_mtime_ns == before, "a shard already written is kept"


@pytest.mark.parametrize("rows", [1, 2, 10, 97, 1000, 2**20 + 6])
def test_the_affine_map_is_a_permutation(rows):
    a, b = affine_permutation(rows, seed=3)
    p = np.arange(rows, dtype=np.int64)
    assert np.array_equal(np.sort((a * p + b) % rows), p)


def test_the_shards_load_unchanged_in_hf_datasets_and_datatrove(tmp_path, bbc, monkeypatch):
    datasets = pytest.importorskip("datasets")
    from datatrove.pipeline.readers import ParquetReader

    content, files, repeats = _write(tmp_path, bbc, seed=1)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    loaded = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train",
                                   cache_dir=str(tmp_path / "hf-cache"))
    assert loaded.num_rows == content["rows"] and loaded.column_names == content["columns"]
    assert loaded[0]["id"] == pq.read_table(files[0]).column("id")[0].as_py()
    documents = list(ParquetReader(str(tmp_path / "dataset"), glob_pattern="*.parquet", id_key="id").run())
    assert len(documents) == content["rows"] and documents[0].text == loaded[0]["text"]
    assert documents[0].metadata["pool"] == loaded[0]["pool"] and "repeat_index" in documents[0].metadata
