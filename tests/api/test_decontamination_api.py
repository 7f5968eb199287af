"""Decontamination through the API on real data: a temporary corpus of BBC News with 50 GSM8K
test items planted verbatim and 50 lightly edited (built in memory, uploaded, deleted with the
test database), the ``decontaminate`` job, the contamination endpoint, and BETR, which with
decontamination on (the default) never selects a planted item."""
from __future__ import annotations

import io
import random

import pyarrow.parquet as pq
import pytest

from tests.api.helpers import error_of, jsonl, upload
from tests.api.test_selection_jobs import _run, _scores
from tests.curation.test_decontamination import PLANTS, edit
from tests.shared import load_jsonl, shared_path


@pytest.fixture
def planted(client_a):
    """(corpus, benchmark, {planted document id: GSM8K item id}, verbatim ids)."""
    bbc = load_jsonl(shared_path("corpora/bbc_news.jsonl"))
    gsm_path = shared_path("benchmarks/gsm8k_test.jsonl")
    gsm = load_jsonl(gsm_path)
    rng = random.Random(0)
    items = rng.sample(range(len(gsm)), 2 * PLANTS)
    plants = [{"id": f"plant/{j}", "source": "planted",
               "text": gsm[i]["text"] if j < PLANTS else edit(gsm[i]["text"], rng)} for j, i in enumerate(items)]
    records = bbc + plants
    rng.shuffle(records)
    corpus = upload(client_a, "corpora", "bbc-planted.jsonl", jsonl(records), shard_size=600).json()
    with open(gsm_path, "rb") as handle:
        benchmark = upload(client_a, "benchmarks", "gsm8k.jsonl", handle.read(), name="gsm8k").json()
    return corpus, benchmark, {p["id"]: gsm[i]["id"] for p, i in zip(plants, items)}, \
        {f"plant/{j}" for j in range(PLANTS)}


def _pages(client, url: str) -> list[dict]:
    rows = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.json()
        rows += response.json()["results"]
        url = response.json()["next"]
    return rows


def test_decontaminate_finds_the_plants_and_the_endpoint_lists_them(client_a, client_b, planted, dispatched):
    corpus, benchmark, plants, verbatim = planted
    job = _run(client_a, "decontaminate", {"corpus": corpus["id"], "benchmarks": [benchmark["id"]],
                                           "embedder": "hashing"})
    summary = job.result["contamination"]
    assert job.params["contamination"] == {"ngram": 13, "semantic": 0.9, "enabled": True}
    assert summary["semantic_search"] == "exact" and summary["documents"] == corpus["documents"]

    rows = _pages(client_a, f"/api/v1/corpora/{corpus['id']}/contamination/?page_size=40")
    assert len(rows) == summary["benchmarks"][benchmark["id"]]["ngram"] + summary["benchmarks"][benchmark["id"]][
        "semantic"]
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)
    ngram = {r["document"]: r for r in rows if r["kind"] == "ngram"}
    flagged = {r["document"] for r in rows}
    clean_flagged = flagged - set(plants)
    print(f"API: verbatim {len(verbatim & set(ngram))}/{PLANTS}, edited {len(set(plants) - verbatim & flagged)}/"
          f"{PLANTS}, clean flagged {len(clean_flagged)}/{corpus['documents'] - 2 * PLANTS}")
    assert verbatim <= set(ngram)
    assert len((set(plants) - verbatim) & flagged) >= 0.95 * PLANTS
    assert len(clean_flagged) <= 0.005 * (corpus["documents"] - 2 * PLANTS)
    assert summary["contaminated"] == len(flagged)
    for document, row in ngram.items():
        if document in plants:
            assert row["item"] == plants[document] and row["benchmark"] == benchmark["id"]
            assert len(row["span"].split()) == 13 and row["similarity"] is None

    only = client_a.get(f"/api/v1/corpora/{corpus['id']}/contamination/?benchmark={corpus['id']}").json()
    assert only["results"] == []
    assert error_of(client_a.get(f"/api/v1/corpora/{corpus['id']}/contamination/?page_size=0"))["code"]
    other = client_b.get(f"/api/v1/corpora/{corpus['id']}/contamination/")
    assert other.status_code == 404 and error_of(other)["code"]


def test_betr_never_selects_a_planted_item(client_a, planted, dispatched):
    corpus, benchmark, plants, _ = planted
    params = {"corpus": corpus["id"], "benchmarks": [benchmark["id"]], "embedder": "hashing", "keep_fraction": 0.1}
    leaky = _run(client_a, "betr", {**params, "contamination": {"enabled": False}})
    kept = {s["id"] for s in _scores(client_a, corpus["id"], "betr") if s["kept"]}
    assert len(kept & set(plants)) >= PLANTS, "without decontamination BETR keeps the planted items"
    assert leaky.result["contamination"] is None

    job = _run(client_a, "betr", params)
    rows = _scores(client_a, corpus["id"], "betr")
    assert not {s["id"] for s in rows if s["kept"]} & set(plants)
    assert {s["id"] for s in rows if s["reason"] == "contaminated"} >= set(plants)
    assert job.result["contamination"]["contaminated"] >= 2 * PLANTS - 1
    listed = client_a.get(f"/api/v1/corpora/{corpus['id']}/contamination/?kind=ngram&page_size=500")
    assert listed["X-Contamination-Job"] == str(job.pk)
    assert set(plants) <= {r["document"] for r in listed.json()["results"]}  # the edits keep 13-grams


def test_the_training_dataset_of_a_mixture_holds_no_planted_item(client_a, planted, dispatched):
    """A mixture job decontaminates first: neither its manifest nor its training-ready dataset holds a plant,
    and dataset.json counts what was left out."""
    corpus, benchmark, plants, _ = planted
    job = _run(client_a, "mixture", {"corpus": corpus["id"], "benchmarks": [benchmark["id"]], "embedder": "hashing",
                                     "budget": 3000, "ot_sample_size": 100})
    mixture = job.result["mixture"]
    dataset = client_a.get(f"/api/v1/mixtures/{mixture}/dataset/").json()
    assert dataset["contamination"]["contaminated_documents"] >= 2 * PLANTS - 1
    assert dataset["contamination"]["per_benchmark"][benchmark["id"]] >= 2 * PLANTS - 1
    ids = set()
    for shard in dataset["shards"]:
        response = client_a.get(shard["url"])
        ids |= set(pq.read_table(io.BytesIO(b"".join(response.streaming_content)), columns=["id"]).column("id")
                   .to_pylist())
    assert ids and not ids & set(plants) and "planted" not in dataset["weights"]
    assert dataset["rows"] >= 3000 - len(dataset["weights"])
