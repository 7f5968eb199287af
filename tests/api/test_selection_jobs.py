"""``prune``, ``betr`` and ``index`` jobs through the API, and their per-document score streams."""
from __future__ import annotations

import json
from collections import Counter

import pytest

from curation.demo_data import demo_benchmark, demo_corpus
from tests.api.helpers import error_of, jsonl, upload
from tests.api.test_jobs import run_inline

RECORDS = demo_corpus(300)


@pytest.fixture
def corpus(client_a):
    return upload(client_a, "corpora", "demo.jsonl", jsonl(RECORDS), shard_size=100).json()


def _planted_pairs() -> list[tuple[str, str]]:
    """Each planted near-duplicate with its original (same words but two)."""
    originals = [r for r in RECORDS if r["id"].startswith("doc-")]
    pairs = []
    for record in RECORDS:
        if record["id"].startswith("dup-"):
            words = record["text"].split()
            original = next(o for o in originals if len(o["text"].split()) == len(words)
                            and sum(a != b for a, b in zip(o["text"].split(), words)) <= 2)
            pairs.append((record["id"], original["id"]))
    return pairs


def _run(client, kind: str, params: dict):
    response = client.post("/api/v1/jobs/", {"kind": kind, "params": params}, format="json")
    assert response.status_code == 202, response.json()
    job = run_inline(response.json()["id"])
    assert job.status == "succeeded", job.error
    return job


def _scores(client, corpus_id: str, metric: str) -> list[dict]:
    response = client.get(f"/api/v1/corpora/{corpus_id}/scores/?metric={metric}")
    assert response.status_code == 200
    return [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]


def test_prototype_pruning_keeps_the_fraction_with_a_floor_per_cluster(client_a, corpus, dispatched):
    job = _run(client_a, "prune", {"corpus": corpus["id"], "embedder": "hashing", "fraction": 0.5, "k": 6,
                                   "budget_documents": 100})
    result = job.result
    assert result["kept"] == 150 and result["documents"] == 300
    assert result["policy"]["keep"] == "hard" and "abundant" in result["policy"]["reason"]
    assert all(kept >= floor >= 1 for kept, floor in zip(result["clusters"]["kept"], result["clusters"]["floor"]))
    rows = _scores(client_a, corpus["id"], "prototypes")
    assert [r["id"] for r in rows] == [r["id"] for r in RECORDS]
    assert Counter(r["reason"] for r in rows) == {"kept": 150, "pruned_easy": 150}
    kept_scores = [r["score"] for r in rows if r["kept"]]
    assert sum(kept_scores) / 150 > sum(r["score"] for r in rows if not r["kept"]) / 150  # the hard ones
    scarce = _run(client_a, "prune", {"corpus": corpus["id"], "embedder": "hashing", "fraction": 0.5, "k": 6,
                                      "budget_documents": 3000})
    assert scarce.result["policy"]["keep"] == "easy"


def test_semdedup_and_d4_drop_the_near_duplicates(client_a, corpus, dispatched):
    job = _run(client_a, "prune", {"corpus": corpus["id"], "embedder": "hashing", "method": "semdedup",
                                   "eps": 0.1})
    rows = _scores(client_a, corpus["id"], "semdedup")
    dropped = {r["id"] for r in rows if not r["kept"]}
    planted = _planted_pairs()
    caught = sum((dup in dropped) != (original in dropped) for dup, original in planted)
    assert caught >= 0.8 * len(planted), (caught, len(planted))
    involved = {i for pair in planted for i in pair} | {r["id"] for r in RECORDS if r["id"].startswith("junk-")}
    assert len(dropped - involved) <= 0.05 * len(RECORDS), "few documents besides copies and junk are dropped"
    curve = job.result["eps_curve"]  # a list: JSON objects lose their key order in PostgreSQL
    assert [point["eps"] for point in curve] == sorted(point["eps"] for point in curve)
    assert [point["kept_fraction"] for point in curve] == sorted((p["kept_fraction"] for p in curve), reverse=True)
    d4_job = _run(client_a, "prune", {"corpus": corpus["id"], "embedder": "hashing", "method": "d4",
                                      "eps": 0.1, "fraction": 0.6})
    assert d4_job.result["kept"] == 180 and d4_job.result["reasons"]["duplicate"] >= caught


def test_el2n_prune_keeps_the_hardest_predictions(client_a, corpus, dispatched):
    lines = [{"id": r["id"], "label": 0, "probs": [0.9 - 0.8 * (i % 2), 0.1 + 0.8 * (i % 2)]}
             for i, r in enumerate(RECORDS[:200])]
    uploaded = upload(client_a, f"corpora/{corpus['id']}/predictions", "p.jsonl", jsonl(lines)).json()
    job = _run(client_a, "prune", {"corpus": corpus["id"], "method": "el2n", "predictions": uploaded["id"],
                                   "fraction": 0.5})
    rows = _scores(client_a, corpus["id"], "el2n")
    assert job.result["reasons"] == {"kept": 100, "pruned_easy": 100, "unscored": 100}
    assert {r["id"] for r in rows if r["kept"]} == {r["id"] for i, r in enumerate(RECORDS[:200]) if i % 2}
    missing = client_a.post("/api/v1/jobs/", {"kind": "prune", "params": {"corpus": corpus["id"],
                                                                          "method": "el2n"}}, format="json")
    assert missing.status_code == 400 and "predictions" in json.dumps(error_of(missing)["detail"])


def test_betr_ranks_classifies_and_keeps_a_share_of_tokens(client_a, client_b, corpus, dispatched):
    bench = upload(client_a, "benchmarks", "science.jsonl", jsonl(demo_benchmark(40)), name="science").json()
    job = _run(client_a, "betr", {"corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing",
                                  "keep_fraction": 0.2})
    result = job.result
    assert [s["name"] for s in job.plan] == ["embedding", "contamination_scan", "contamination", "train",
                                              "classify", "select"]
    assert result["train"]["positives"] == 30 and result["train"]["holdout_accuracy"] > 0.7
    assert 0.2 <= result["kept_tokens"] / result["total_tokens"] < 0.25
    rows = _scores(client_a, corpus["id"], "betr")
    kept_sources = Counter(r["source"] for r, s in zip(RECORDS, rows) if s["kept"])
    assert kept_sources.most_common(1)[0][0] == "science", kept_sources
    assert all(0 <= r["score"] <= 1 for r in rows)
    other = client_b.post("/api/v1/jobs/", {"kind": "betr", "params": {"corpus": corpus["id"],
                                                                       "benchmarks": [bench["id"]]}}, format="json")
    assert other.status_code == 404

    fit = _run(client_a, "fit", {"corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing",
                                 "scores_job": str(job.pk), "quality_pools": True, "ot_sample_size": 30})
    pools = fit.result["pools"]
    assert all("/q" in name for name in pools)
    assert sum(p["unique_documents"] for p in pools.values()) == 300


def test_index_job_builds_the_exact_store_for_a_small_corpus(client_a, corpus, dispatched):
    job = _run(client_a, "index", {"corpus": corpus["id"], "embedder": "hashing"})
    store = job.result["store"]
    assert store["kind"] == "flat" and store["n"] == 300 and store["recall_at_10"] == 1.0
    assert store["offsets"] == [0, 100, 200, 300]


def test_curate_runs_the_whole_pipeline_in_one_job(client_a, corpus, dispatched):
    bench = upload(client_a, "benchmarks", "science.jsonl", jsonl(demo_benchmark(40)), name="science").json()
    job = _run(client_a, "curate", {"corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing",
                                    "budget": 200, "eps": 0.1, "ot_sample_size": 30})
    assert [(s["name"], s["units"]) for s in job.plan] == [
        ("embedding", 4), ("index", 1), ("contamination_scan", 3), ("contamination", 1), ("prune_kmeans", 1),
        ("prune_assign", 3), ("prune_dedup", 3), ("prune", 1), ("betr_train", 1), ("betr_classify", 3),
        ("betr_select", 1), ("ot", 1), ("pilots", 1), ("fit", 1), ("mixture", 1)]
    result = job.result
    assert result["stages"]["prune"]["reasons"]["duplicate"] >= 10
    assert result["stages"]["index"]["kind"] == "flat"
    assert result["stages"]["betr"]["search"]["kind"] == "flat", "BETR ranks through the store the index stage built"
    policy = result["budget_policy"]
    assert policy["budget_samples"] == 200 and policy["prune"]["keep"] is None, "semdedup: no keep policy"
    assert "whatever the budget" in policy["prune"]["reason"] and policy["betr"]["reason"]
    assert policy["betr"]["token_fraction"] == result["stages"]["betr"]["token_fraction"]
    weights = {row["pool"]: row["weight"] for row in result["pools"]}
    by_source = Counter()
    for pool, weight in weights.items():
        by_source[pool.split("/")[0]] += weight
    assert by_source.most_common(1)[0][0] == "science", by_source
    manifest = client_a.get(f"/api/v1/mixtures/{result['mixture']}/documents/")
    ids = [json.loads(line)["id"] for line in b"".join(manifest.streaming_content).decode().splitlines()]
    dropped = {r["id"] for r in _scores(client_a, corpus["id"], "semdedup") if not r["kept"]}
    assert ids and not set(ids) & dropped, "the manifest never includes a pruned duplicate"
