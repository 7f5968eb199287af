"""``fit`` and ``mixture`` jobs, performance models, mixtures with their manifest, and predictions."""
from __future__ import annotations

import io
import json

import pyarrow.parquet as pq
import pytest

from api.modeling.models import PerformanceModel
from api.modeling.services import performance_model_law

from curation.demo_data import demo_benchmark, demo_corpus
from tests.api.helpers import error_of, jsonl, upload
from tests.api.test_jobs import run_inline


@pytest.fixture
def fitted(client_a, dispatched):
    corpus = upload(client_a, "corpora", "demo.jsonl", jsonl(demo_corpus(400)), shard_size=150).json()
    bench = upload(client_a, "benchmarks", "science.jsonl", jsonl(demo_benchmark(40)), name="science").json()
    response = client_a.post("/api/v1/jobs/", {"kind": "mixture", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing", "budget": 100,
        "ot_sample_size": 60}}, format="json")
    assert response.status_code == 202, response.json()
    job = run_inline(response.json()["id"])
    assert job.status == "succeeded", job.error
    assert [s["name"] for s in job.plan] == ["embedding", "contamination_scan", "contamination", "ot", "pilots",
                                              "fit", "mixture"]
    return corpus, job.result


def test_mixture_job_fits_a_model_and_answers_with_a_manifest(client_a, fitted):
    corpus, result = fitted
    model = client_a.get(f"/api/v1/performance-models/{result['performance_model']}/").json()
    assert model["metric"] == "proxy_cross_entropy" and model["higher_is_better"] is False
    assert model["fit_error"] >= 0 and set(model["provenance"].values()) <= {"proxy", "defaults"}
    backtest = model["backtest"]
    assert backtest["chosen"] == model["kind"] and backtest["selected_by"] == "both"
    worst = {kind: max(law["size"]["rmse"], law["mixtures"]["rmse"])
             for kind, law in backtest["laws"].items() if "error" not in law}
    assert len(worst) >= 2 and worst[model["kind"]] == min(worst.values()), "the worse split decides"
    assert "goyal" in backtest["laws"] and "error" in backtest["laws"]["goyal"], "a loss is not an error rate"
    assert backtest["coverage"]["points"] == len(backtest["heldout"]) > 0
    assert {p["name"] for p in model["pools"]} == set(corpus["sources"])
    assert len(model["observations"]) >= 12 and all("fitted" in o for o in model["observations"])

    # after the fit: the next pilot runs, the model's optimum first, each with what the model expects of it
    design = client_a.post("/api/v1/pilot-designs/", {"performance_model": model["id"], "runs": 5}, format="json")
    assert design.status_code == 200, design.json()
    runs = design.json()["runs"]
    largest = max(o["size"] for o in model["observations"])
    assert design.json()["performance_model"] == model["id"] and len(runs) == 5
    assert [r["purpose"] for r in runs] == ["optimum"] + ["space_filling"] * 4
    assert all(r["size"] == 2 * largest and r["band"] > 0 and r["disagreement"] >= 0 for r in runs)
    assert max(r["disagreement"] for r in runs) > 0, "a committee of at least two laws"
    assert len({tuple(sorted(r["mixture"].items())) for r in runs}) == 5
    both = client_a.post("/api/v1/pilot-designs/", {"performance_model": model["id"], "corpus": corpus["id"]},
                         format="json")
    assert both.status_code == 400 and "corpus" in error_of(both)["detail"]["fields"]

    mixture = client_a.get(f"/api/v1/mixtures/{result['mixture']}/").json()
    assert mixture["weights"] and abs(sum(mixture["weights"].values()) - 1) < 1e-9
    best = max(mixture["weights"], key=mixture["weights"].get)
    assert best == "science", mixture["weights"]  # the benchmark is about science
    assert mixture["predicted"]["low"] <= mixture["predicted"]["value"] <= mixture["predicted"]["high"]
    assert mixture["predicted"]["provenance"] == model["provenance"]
    budgets = [row["budget"] for row in mixture["frontier"]]
    assert budgets == sorted(budgets) and len(budgets) == 25

    response = client_a.get(f"/api/v1/mixtures/{result['mixture']}/documents/")
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in b"".join(response.streaming_content).decode().splitlines()]
    assert len(rows) == mixture["document_count"] > 0

    # the training-ready dataset: the documents themselves, repeats expanded, shuffled
    dataset = client_a.get(f"/api/v1/mixtures/{result['mixture']}/dataset/")
    assert dataset.status_code == 200, dataset.json()
    dataset = dataset.json()
    repeats = {row["id"]: row["repeats"] for row in rows}
    assert dataset["rows"] == sum(repeats.values()) and abs(dataset["rows"] - 100) <= len(mixture["weights"])
    assert dataset["weights"] == mixture["weights"] and dataset["predicted"] == mixture["predicted"]
    assert dataset["contamination"]["contaminated_documents"] == 0 and len(dataset["shards"]) == 1
    shard = client_a.get(dataset["shards"][0]["url"])
    assert shard.status_code == 200 and shard["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(b"".join(shard.streaming_content))).to_pylist()
    assert len(table) == dataset["rows"] and {r["id"] for r in table} == set(repeats)
    for document, count in repeats.items():
        assert sorted(r["repeat_index"] for r in table if r["id"] == document) == list(range(count))
    texts = {d["id"]: d["text"] for d in demo_corpus(400)}
    assert all(r["text"] == texts[r["id"]] for r in table)
    in_manifest_order = [row["id"] for row in rows for _ in range(row["repeats"])]
    assert [r["id"] for r in table] != in_manifest_order, "shuffled"
    adjacent = sum(a["id"] == b["id"] for a, b in zip(table, table[1:]))
    assert adjacent <= 0.1 * len(table), "a document's repeats are spread out, not in a run"
    assert sum(r["repeats"] for r in rows) == pytest.approx(100, abs=len(mixture["weights"]))
    assert {r["pool"] for r in rows} == set(mixture["weights"])
    parquet = client_a.get(f"/api/v1/mixtures/{result['mixture']}/documents/?format=parquet")
    table = pq.read_table(io.BytesIO(b"".join(parquet.streaming_content)))
    assert table.column_names == ["id", "pool", "repeats"] and table.num_rows == len(rows)


def test_predictions_are_synchronous_and_validated(client_a, client_b, fitted):
    _, result = fitted
    model_id = result["performance_model"]
    pools = list(client_a.get(f"/api/v1/performance-models/{model_id}/").json()["parameters"] and
                 [p["name"] for p in client_a.get(f"/api/v1/performance-models/{model_id}/").json()["pools"]])
    mixture = {pool: 1 / len(pools) for pool in pools}
    small = client_a.post("/api/v1/predictions/", {"performance_model": model_id, "mixture": mixture,
                                                   "budget": 100}, format="json")
    assert small.status_code == 200, small.json()
    large = client_a.post("/api/v1/predictions/", {"performance_model": model_id, "mixture": mixture,
                                                   "budget": 1000}, format="json").json()
    body = small.json()
    assert body["low"] <= body["value"] <= body["high"] and body["provenance"]["c"] == "proxy"
    model = client_a.get(f"/api/v1/performance-models/{model_id}/").json()
    assert body["unit"] == "nats per token" and body["law"] == model["kind"] and body["clamped"] is False
    assert body["backtest"]["law"] == model["kind"] and body["backtest"]["coverage"]["level"] == 0.95
    assert body["backtest"]["size_rmse"] == model["backtest"]["laws"][model["kind"]]["size"]["rmse"]
    assert large["value"] <= body["value"], "more data never raises the predicted cross-entropy"
    tokens = client_a.post("/api/v1/predictions/", {"performance_model": model_id, "mixture": mixture,
                                                    "budget": 1e4, "budget_unit": "tokens"}, format="json").json()
    assert 0 < tokens["budget_samples"] < 1e4

    cases = [({"mixture": {"nope": 1.0}}, 400, "invalid_prediction_request"),
             ({"mixture": {pools[0]: 0.5}}, 400, "invalid_prediction_request"),
             ({"budget": "NaN"}, 400, "validation_error"),
             ({"budget": -5}, 400, "validation_error"),
             ({"budget": 1e9, "budget_unit": "flops"}, 400, "invalid_prediction_request")]
    for change, status, code in cases:
        request = {"performance_model": model_id, "mixture": mixture, "budget": 100} | change
        response = client_a.post("/api/v1/predictions/", request, format="json")
        assert response.status_code == status and error_of(response)["code"] == code, (change, response.json())
    other = client_b.post("/api/v1/predictions/", {"performance_model": model_id, "mixture": mixture,
                                                   "budget": 100}, format="json")
    assert other.status_code == 404 and error_of(other)["code"] == "not_found"
    other = client_b.post("/api/v1/pilot-designs/", {"performance_model": model_id}, format="json")
    assert other.status_code == 404 and error_of(other)["code"] == "not_found"
    for url in (f"/api/v1/performance-models/{model_id}/", f"/api/v1/mixtures/{result['mixture']}/",
                f"/api/v1/mixtures/{result['mixture']}/documents/", f"/api/v1/mixtures/{result['mixture']}/dataset/",
                f"/api/v1/mixtures/{result['mixture']}/dataset/part-00000.parquet/"):
        assert client_b.get(url).status_code == 404, url
    assert client_b.get("/api/v1/mixtures/").json()["results"] == []


def test_mixture_from_an_existing_model_and_param_errors(client_a, client_b, fitted, dispatched):
    _, result = fitted
    response = client_a.post("/api/v1/jobs/", {"kind": "mixture", "params": {
        "performance_model": result["performance_model"], "budget": 5000}}, format="json")
    assert response.status_code == 202, response.json()
    job = run_inline(response.json()["id"])
    assert job.status == "succeeded", job.error
    assert [s["name"] for s in job.plan] == ["mixture"]
    weights = {row["pool"]: row["weight"] for row in job.result["pools"]}
    # the stored law's own optimum at this budget (the proxy cannot identify the half-life: its default is used)
    law = performance_model_law(PerformanceModel.unscoped_objects.get(pk=result["performance_model"]))
    optimum = law.optimize(5000.0)
    assert weights == pytest.approx({p: w for p, w in zip(optimum.pools, optimum.weights) if w > 0})
    assert job.result["predicted"]["value"] <= result["predicted"]["value"]

    other = client_b.post("/api/v1/jobs/", {"kind": "mixture", "params": {
        "performance_model": result["performance_model"], "budget": 10}}, format="json")
    assert other.status_code == 404
    bad = client_a.post("/api/v1/jobs/", {"kind": "mixture", "params": {"budget": 10}}, format="json")
    assert bad.status_code == 400 and "performance_model" in json.dumps(error_of(bad)["detail"])
    flops = client_a.post("/api/v1/jobs/", {"kind": "mixture", "params": {
        "performance_model": result["performance_model"], "budget": 1e15, "budget_unit": "flops"}}, format="json")
    assert flops.status_code == 400 and "model_parameters" in json.dumps(error_of(flops)["detail"])


def test_ot_distances_are_cached_per_corpus_pools_and_benchmarks(client_a, fitted, dispatched):
    corpus, result = fitted
    model = client_a.get(f"/api/v1/performance-models/{result['performance_model']}/").json()
    response = client_a.post("/api/v1/jobs/", {"kind": "fit", "params": {
        "corpus": corpus["id"], "benchmarks": model["benchmarks"], "embedder": "hashing", "ot_sample_size": 60}},
        format="json")
    job = run_inline(response.json()["id"])
    assert job.status == "succeeded", job.error
    from api.jobs.models import JobUnit

    ot = JobUnit.unscoped_objects.get(job=job, stage="ot").output
    assert ot["cached"] is True
    assert job.result["pools"].keys() == {p["name"] for p in model["pools"]}
