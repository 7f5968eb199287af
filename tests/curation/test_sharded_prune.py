"""Pruning shard by shard (``curation.plans.prune_stages``): the same answer as the in-memory methods
where k-means trains on every document, nearly the same where it trains on a sample, and units whose
memory is bounded by a shard and the sample, not by the corpus."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from curation.demo_data import demo_corpus, write_jsonl
from curation.executor import LocalExecutor
from curation.ingest import FieldMapping, ingest_file
from curation.pipeline import concat_embeddings, embedding_paths
from curation.plans import prune_plan
from curation.pruning import PruneInputs, PruneOptions, prune
from curation.steps import DatasetRef
from curation.steps.select import PruneParams
from curation.embedders import get_embedder
from curation.storage import Keys, LocalStorage
from tests.shared import shared_path

REPO = Path(__file__).resolve().parents[2]


def stored_corpus(folder: Path, path: Path, shard_size: int) -> tuple[LocalStorage, DatasetRef]:
    """``path`` (JSONL) ingested into a work folder's storage as dataset ``corpus``."""
    storage = LocalStorage(folder / "work")
    with storage.staging() as staging:
        (staging / "shards").mkdir()
        result = ingest_file(path, filename=path.name, out_dir=staging / "shards", mapping=FieldMapping(),
                             shard_size=shard_size)
        storage.commit(staging / "shards", Keys.shards("corpus"))
    return storage, DatasetRef("corpus", path.name, "corpus", result.documents, result.tokens,
                               tuple(s.documents for s in result.shards))


def _scores(storage, run: str, metric: str, shards: int) -> dict:
    tables = [pq.read_table(storage.local_path(Keys.scores(run, metric, i))) for i in range(shards)]
    return {name: [v for t in tables for v in t.column(name).to_pylist()] for name in tables[0].column_names}


def _sharded_and_in_memory(storage, corpus: DatasetRef, method: str, options: PruneOptions, run: str):
    executor = LocalExecutor(storage, run, progress=False)
    output = executor.run(prune_plan(PruneParams(corpus, method, "hashing", options)))
    x = concat_embeddings(embedding_paths(storage, corpus.id, get_embedder("hashing"), corpus.shard_count))
    ids = _scores(storage, run, method, corpus.shard_count)["id"]
    return output, _scores(storage, run, method, corpus.shard_count), prune(method, PruneInputs(ids, lambda: x),
                                                                             options)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    return stored_corpus(folder, write_jsonl(demo_corpus(600), folder / "demo.jsonl"), 100)


@pytest.mark.parametrize("method,options", [
    ("prototypes", PruneOptions(fraction=0.5, k=6, budget_documents=100)),
    ("prototypes", PruneOptions(fraction=0.3, budget_documents=3000)),
    ("semdedup", PruneOptions(eps=0.1)),
    ("d4", PruneOptions(eps=0.1, fraction=0.6)),
])
def test_sharded_stages_give_the_in_memory_answer_when_the_sample_is_the_corpus(demo, method, options):
    storage, corpus = demo
    output, sharded, memory = _sharded_and_in_memory(storage, corpus, method, options, f"{method}-{options.fraction}")
    np.testing.assert_array_equal(sharded["kept"], memory.kept)
    np.testing.assert_array_equal(sharded["reason"], memory.reason)
    np.testing.assert_array_equal(sharded["score"], memory.score)
    for name, values in memory.columns.items():
        np.testing.assert_array_equal(sharded[name], values)
    assert {k: output[k] for k in memory.summary} == json.loads(json.dumps(memory.summary))
    assert output["kept"] == int(memory.kept.sum()) and output["documents"] == 600


def test_plans_have_a_unit_per_shard_and_per_cluster_group(demo):
    _, corpus = demo
    stages = {m: [(s.name, s.units) for s in prune_plan(PruneParams(corpus, m, "hashing", PruneOptions()))]
              for m in ("prototypes", "semdedup", "d4", "el2n")}
    assert stages["prototypes"] == [("embedding", 6), ("prune_kmeans", 1), ("prune_assign", 6), ("select", 1)]
    assert stages["semdedup"] == [("embedding", 6), ("prune_kmeans", 1), ("prune_assign", 6), ("prune_dedup", 6),
                                  ("select", 1)]
    assert stages["d4"] == stages["semdedup"][:-1] + [("prune_rekmeans", 1), ("prune_reassign", 6), ("select", 1)]
    assert stages["el2n"] == [("select", 1)]


@pytest.fixture(scope="module")
def ag_news(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ag_news")
    return stored_corpus(folder, shared_path("corpora/ag_news_test.jsonl"), 1_000)


def _same_fate(a: dict, b: dict) -> float:
    return float(np.mean(np.array(a["kept"]) == np.array(b["kept"])))


@pytest.mark.slow
@pytest.mark.parametrize("method,options", [
    ("prototypes", PruneOptions(fraction=0.7, budget_documents=1_000)),
    ("semdedup", PruneOptions(eps=0.1)),
])
def test_k_means_on_a_sample_prunes_nearly_as_k_means_on_every_document(ag_news, method, options):
    """AG News test (7,600 articles, hashing embedder, 8 shards): k-means on a 30% sample (2,280 rows;
    the default floor would take all 7,600) against k-means on every document. The share of documents
    whose fate (kept or dropped) agrees must be at least 0.85 and within 0.05 of the agreement between
    two full k-means runs that differ only in their seed: sampling may perturb the clusters no more than
    reseeding does (measured: prototypes 0.885 against 0.913 between seeds; SemDeDup 0.998 and 0.998)."""
    storage, corpus = ag_news
    full = _sharded_and_in_memory(storage, corpus, method, options, f"full-{method}")[1]
    reseeded = _sharded_and_in_memory(storage, corpus, method, replace(options, seed=1), f"seed-{method}")[1]
    output, sampled, _ = _sharded_and_in_memory(storage, corpus, method,
                                                replace(options, sample_fraction=0.3, sample_floor=1_000),
                                                f"sampled-{method}")
    assert output["documents"] == 7_600
    agreement, between_seeds = _same_fate(full, sampled), _same_fate(full, reseeded)
    print(f"{method}: same fate, sampled vs full {agreement:.3f}; full vs full reseeded {between_seeds:.3f}")
    assert agreement >= 0.85 and agreement >= between_seeds - 0.05
    assert abs(np.mean(sampled["kept"]) - np.mean(full["kept"])) <= 0.01



def test_an_ivf_store_built_a_shard_at_a_time_is_the_store_one_unit_builds(demo, tmp_path):
    """``index_train``, one ``index_add`` unit per shard and the merge: the same index (search answers),
    the same tuned ``nprobe`` and measured recall as :func:`curation.stores.build_store` in one process."""
    from curation.plans import index_plan
    from curation.steps.select import IndexParams
    from curation.stores import build_store, open_store
    from curation.embedders import embedder_key

    storage, corpus = demo
    params = IndexParams(corpus, "hashing", index="ivf_sq8")
    plan = index_plan(params)
    assert [(s.name, s.units) for s in plan] == [("embedding", 6), ("index_train", 1), ("index_add", 6), ("build", 1)]
    output = LocalExecutor(storage, "ivf", progress=False).run(plan)
    embedder = get_embedder("hashing")
    paths = embedding_paths(storage, corpus.id, embedder, corpus.shard_count)
    whole = build_store(paths, tmp_path / "store", kind="ivf_sq8", embedder_key=embedder_key(embedder))
    sharded = open_store(storage, Keys.vector_store(corpus.id, embedder_key(embedder)))
    meta = {k: v for k, v in output["store"].items() if k not in ("build_seconds", "index_file")}
    assert meta == {k: v for k, v in json.loads(json.dumps(whole.meta.__dict__)).items()
                    if k not in ("build_seconds", "index_file")}
    assert sharded.meta.recall_at_10 >= 0.95 and sharded.meta.params["nprobe"] == whole.meta.params["nprobe"]
    queries = concat_embeddings(paths)[::7]
    found, expected = sharded.search(queries, 10), whole.search(queries, 10)
    np.testing.assert_array_equal(found.indices, expected.indices)
    np.testing.assert_array_equal(found.scores, expected.scores)


# Memory bounded by a shard ------------------------------------------------------------------------

MEMORY_DOCUMENTS, MEMORY_SHARD = 50_000, 1_000
#: k-means trains on 5% (2,500 rows) here: the default floor would take the whole 50,000.
MEMORY_OPTIONS = PruneOptions(eps=0.05, fraction=0.5, sample_fraction=0.05, sample_floor=2_000)
EMBEDDING_UNITS = ("prune_kmeans", "prune_assign", "prune_dedup", "prune_rekmeans", "prune_reassign")


def _measured(run) -> dict:
    """Run ``run()``; its peak of traced allocations (numpy's included) and of RSS growth, sampled every 2 ms."""
    import threading
    import tracemalloc

    import psutil

    process = psutil.Process()
    before, peak, done = process.memory_info().rss, [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss - before)
            done.wait(0.002)

    sampler = threading.Thread(target=sample)
    tracemalloc.start()
    sampler.start()
    try:
        run()
    finally:
        done.set()
        sampler.join()
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return {"traced": traced, "rss_growth": max(peak[0], process.memory_info().rss - before)}


def memory_child(folder: Path) -> None:
    """Ingest and embed 50,000 demo documents in shards of 1,000, then run D4's (and so every method's)
    prune stages unit by unit in this fresh process, measuring each unit; writes ``memory.json``."""
    from curation.plans import embedding
    from curation.steps.data import dataset_embeddings

    storage, corpus = stored_corpus(folder, write_jsonl(demo_corpus(MEMORY_DOCUMENTS), folder / "c.jsonl"),
                                    MEMORY_SHARD)
    executor = LocalExecutor(storage, "memory", progress=False)
    executor.run([embedding([corpus], "hashing")])
    stages = prune_plan(PruneParams(corpus, "d4", "hashing", MEMORY_OPTIONS))[1:]
    units: dict[str, list[dict]] = {}
    for stage in stages:
        executor._units[stage.name] = stage.units
        for index in range(stage.units):
            marker = executor._marker(stage.name, index)
            outputs = []
            figures = _measured(lambda: outputs.append(stage.run(executor.context, index)))
            storage.write_bytes(marker, json.dumps(outputs[0]).encode())
            units.setdefault(stage.name, []).append({**figures, "output": outputs[0]})
    whole = _measured(lambda: dataset_embeddings(executor.context, corpus, "hashing"))
    (folder / "memory.json").write_text(json.dumps({"units": units, "whole": whole, "dim": 256}))


@pytest.mark.slow
def test_prune_units_hold_a_shard_and_the_sample_not_the_corpus(tmp_path):
    """50,000 documents (hashing, 256-d) in 50 shards of 1,000, pruned with D4 (k-means, assignment,
    SemDeDup per cluster group, re-clustering, re-assignment): every unit that reads embeddings allocates
    at most a few shards' and the sample's worth; loading the corpus's embeddings, as the single prune
    unit did before, allocates far more than that bound."""
    subprocess.run([sys.executable, __file__, str(tmp_path)], check=True, cwd=REPO, timeout=300,
                   env={**os.environ, "PYTHONPATH": str(REPO)})
    measured = json.loads((tmp_path / "memory.json").read_text())
    row = 4 * measured["dim"]  # bytes of one float32 embedding
    shard, sample = MEMORY_SHARD * row, 2_500 * row
    corpus = MEMORY_DOCUMENTS * row
    bound = 8 * shard + 8 * sample  # ~ 28 MB: a few copies of a shard (float16 -> float32 -> products) and of the sample
    whole = measured["whole"]
    assert whole["traced"] >= corpus > bound, "loading the corpus must exceed the bound, else the test proves nothing"
    units = measured["units"]
    assert units["prune_kmeans"][0]["output"]["sample"] == 2_500 and len(units["prune_assign"]) == 50
    for name in EMBEDDING_UNITS:
        for unit in units[name]:
            assert unit["traced"] <= bound, (name, unit)
            assert unit["rss_growth"] <= bound + 16 * 2**20, (name, unit)  # RSS: allocator and library slack
    worst = {name: max(u["traced"] for u in units[name]) / 2**20 for name in units}
    print("peak traced MB per unit kind:", {k: round(v, 1) for k, v in worst.items()},
          f"whole corpus {whole['traced'] / 2**20:.1f} MB, bound {bound / 2**20:.1f} MB")
    # the final unit holds per-document scalars (cluster, score, ids), never an embedding
    assert units["select"][0]["traced"] < corpus / 2, units["select"][0]


if __name__ == "__main__":
    memory_child(Path(sys.argv[1]))
