"""The ``ot`` job on real data: each benchmark is closest to its topic's news source."""
from __future__ import annotations

import json

from tests.api.helpers import error_of, jsonl, upload
from tests.api.test_jobs import run_inline
from tests.shared import load_jsonl, shared_path


def _subset(records, per_source):
    counts, out = {}, []
    for record in records:
        if counts.get(record["source"], 0) < per_source:
            counts[record["source"]] = counts.get(record["source"], 0) + 1
            out.append(record)
    return out


def test_ot_distances_rank_the_matching_source_first(client_a, dispatched):
    news = _subset(load_jsonl(shared_path("corpora/ag_news_test.jsonl")), 120)
    corpus = upload(client_a, "corpora", "news.jsonl", jsonl(news), shard_size=400).json()
    benchmarks = {}
    for name in ("sciq_test", "bbh_sports_understanding"):
        records = load_jsonl(shared_path(f"benchmarks/{name}.jsonl"))[:100]
        benchmarks[name] = upload(client_a, "benchmarks", f"{name}.jsonl", jsonl(records), name=name).json()["id"]
    response = client_a.post("/api/v1/jobs/", {"kind": "ot", "params": {
        "corpus": corpus["id"], "benchmarks": list(benchmarks.values()),
        "sample_size": 120, "n_resamples": 4}}, format="json")
    assert response.status_code == 202, response.json()
    job = run_inline(response.json()["id"])
    assert job.status == "succeeded", job.error
    result = job.result
    print(json.dumps(result["distances"], indent=1))
    assert result["closest_source"] == {"sciq_test": "Sci/Tech", "bbh_sports_understanding": "Sports"}
    for source, row in result["distances"].items():
        for estimate in row.values():
            assert estimate["low"] <= estimate["value"] <= estimate["high"]
    assert result["source_documents"] == {"Business": 120, "Sci/Tech": 120, "Sports": 120, "World": 120}


def test_ot_params_are_validated(client_a, client_b, dispatched):
    corpus = upload(client_a, "corpora", "c.jsonl", jsonl([{"text": "a b"}])).json()
    response = client_a.post("/api/v1/jobs/", {"kind": "ot", "params": {"corpus": corpus["id"], "benchmarks": []}},
                             format="json")
    assert response.status_code == 400 and error_of(response)["code"] == "validation_error"
    bench = upload(client_b, "benchmarks", "b.jsonl", jsonl([{"text": "q"}])).json()
    response = client_a.post("/api/v1/jobs/", {"kind": "ot", "params": {"corpus": corpus["id"],
                                                                        "benchmarks": [bench["id"]]}}, format="json")
    assert response.status_code == 404 and error_of(response)["code"] == "not_found"
