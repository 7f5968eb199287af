"""Every artifact read and write goes through the storage interface: with the interface
pointed at a folder only it knows, and ``ARTIFACT_ROOT`` at another, a whole curation
(upload, every stage, scores and manifest downloads, delete) touches only the first."""
from __future__ import annotations

import json

from api.core import artifacts
from curation.demo_data import demo_benchmark, demo_corpus
from curation.storage import LocalStorage
from tests.api.helpers import files_under, jsonl, upload
from tests.api.test_jobs import run_inline


def test_a_curation_reaches_artifacts_only_through_the_interface(client_a, artifact_root, tmp_path, monkeypatch,
                                                                 dispatched, django_capture_on_commit_callbacks):
    hidden = tmp_path / "only-the-interface-knows"
    monkeypatch.setattr(artifacts, "artifact_store", lambda: LocalStorage(hidden))
    corpus = upload(client_a, "corpora", "c.jsonl", jsonl(demo_corpus(200)), shard_size=100).json()
    bench = upload(client_a, "benchmarks", "b.jsonl", jsonl(demo_benchmark(30))).json()
    response = client_a.post("/api/v1/jobs/", {"kind": "curate", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing", "budget": 100,
        "ot_sample_size": 30}}, format="json")
    job = run_inline(response.json()["id"])
    assert job.status == "succeeded", job.error
    manifest = client_a.get(f"/api/v1/mixtures/{job.result['mixture']}/documents/")
    assert manifest.status_code == 200 and len(b"".join(manifest.streaming_content).splitlines()) > 0
    scores = client_a.get(f"/api/v1/corpora/{corpus['id']}/scores/?metric=betr")
    assert len([json.loads(line) for line in b"".join(scores.streaming_content).splitlines()]) == 200
    assert files_under(artifact_root) == [], "something wrote under ARTIFACT_ROOT without the interface"
    stored = files_under(hidden)
    assert any("/shards/" in f for f in stored) and any("/manifest.parquet" in f for f in stored)
    with django_capture_on_commit_callbacks(execute=True):
        assert client_a.delete(f"/api/v1/corpora/{corpus['id']}/").status_code == 204
    assert not [f for f in files_under(hidden) if f"datasets/{corpus['id']}/" in f]
