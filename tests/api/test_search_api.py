"""``POST /api/v1/corpora/{id}/search/``: the nearest documents through the corpus's FAISS store, with
recall against exact search on a real corpus and an IVF store (forced on a small corpus)."""
from __future__ import annotations

import numpy as np
import pytest

from api.core.artifacts import tenant_storage
from api.datasets.models import Dataset
from curation.embedders import get_embedder
from curation.pipeline import embedding_paths, load_embeddings
from tests.api.helpers import error_of, jsonl, upload
from tests.api.test_selection_jobs import _run
from tests.shared import load_jsonl, shared_path


@pytest.fixture
def indexed(client_a, tenant_a, dispatched):
    """AG News test (7,600 documents) with an IVF-SQ8 store of its hashing embeddings, and its exact vectors."""
    documents = load_jsonl(shared_path("corpora/ag_news_test.jsonl"))
    corpus = upload(client_a, "corpora", "ag_news.jsonl", jsonl(documents), shard_size=2000).json()
    job = _run(client_a, "index", {"corpus": corpus["id"], "embedder": "hashing", "index": "ivf_sq8"})
    assert job.result["store"]["kind"] == "ivf_sq8"
    dataset = Dataset.objects.for_tenant(tenant_a[0]).get(pk=corpus["id"])
    paths = embedding_paths(tenant_storage(tenant_a[0].pk), dataset.pk, get_embedder("hashing"), dataset.shard_count)
    vectors = np.concatenate([np.asarray(load_embeddings(p), dtype=np.float32) for p in paths])
    return corpus, documents, vectors


def _exact(vectors: np.ndarray, queries: np.ndarray, k: int) -> list[int]:
    best = (queries @ vectors.T).max(0)
    return np.argsort(-best, kind="stable")[:k].tolist()


def test_search_finds_what_exact_search_finds_through_an_ivf_store(client_a, client_b, indexed):
    corpus, documents, vectors = indexed
    url = f"/api/v1/corpora/{corpus['id']}/search/"
    queries = [d["text"] for d in load_jsonl(shared_path("corpora/bbc_news.jsonl"))[::100][:20]]
    embedder = get_embedder("hashing")
    recalls = []
    for text in queries:
        response = client_a.post(url, {"text": text, "k": 10, "embedder": "hashing"}, format="json")
        assert response.status_code == 200, response.json()
        answer = response.json()
        found = [hit["position"] for hit in answer["results"]]
        assert len(found) == 10 and [h["score"] for h in answer["results"]] == sorted(
            (h["score"] for h in answer["results"]), reverse=True)
        assert all(documents[h["position"]]["id"] == h["id"] for h in answer["results"])
        recalls.append(len(set(found) & set(_exact(vectors, embedder.encode([text]), 10))) / 10)
    assert answer["index"]["kind"] == "ivf_sq8" and answer["index"]["recall_at_10"] >= 0.95
    assert np.mean(recalls) >= 0.95, recalls

    sciq = load_jsonl(shared_path("benchmarks/sciq_test.jsonl"))[:50]
    benchmark = upload(client_a, "benchmarks", "sciq.jsonl", jsonl(sciq), name="sciq").json()
    response = client_a.post(url, {"benchmark": benchmark["id"], "k": 10, "embedder": "hashing"}, format="json")
    assert response.status_code == 200, response.json()
    hits = response.json()["results"]
    exact = _exact(vectors, embedder.encode([d["text"] for d in sciq]), 10)
    assert len(set(h["position"] for h in hits) & set(exact)) >= 9, "a document scores its best cosine to any example"
    assert response.json()["query"] == {"benchmark": benchmark["id"], "examples": 50}

    assert client_b.post(url, {"text": "markets", "embedder": "hashing"}, format="json").status_code == 404
    both = client_a.post(url, {"text": "x", "benchmark": benchmark["id"]}, format="json")
    assert both.status_code == 400 and "text" in error_of(both)["detail"]["fields"]
    other = client_a.post(url, {"benchmark": corpus["id"], "embedder": "hashing"}, format="json")
    assert other.status_code == 404 and error_of(other)["detail"]["field"] == "benchmark"


def test_search_without_a_store_says_which_job_builds_one(client_a, dispatched):
    corpus = upload(client_a, "corpora", "c.jsonl", jsonl([{"id": f"d{i}", "text": f"doc {i}"} for i in range(5)])).json()
    response = client_a.post(f"/api/v1/corpora/{corpus['id']}/search/", {"text": "doc", "embedder": "hashing"},
                             format="json")
    assert response.status_code == 409 and error_of(response)["code"] == "no_index"
    assert '"kind": "index"' in error_of(response)["message"]
