"""The service with ``ARTIFACT_URL`` on a real S3-protocol server: a whole curation through the
API (upload, every stage, search, downloads, the console, delete) keeps every artifact in the
bucket under its tenant's prefix and gives the same mixture as local disk; throttling during a
job is retried and the job completes; a permanent denial fails the job with a reason that
names the bucket."""
from __future__ import annotations

import json

import pytest

from curation.demo_data import demo_benchmark, demo_corpus
from curation.s3 import make_client
from tests.api.helpers import files_under, jsonl, upload
from tests.api.test_jobs import run_inline
from workers.tasks import run_job_unit

CURATE = {"embedder": "hashing", "budget": 100, "ot_sample_size": 30}


def objects(bucket: str, endpoint: str) -> list[str]:
    pages = make_client(endpoint, "us-east-1").get_paginator("list_objects_v2").paginate(Bucket=bucket)
    return sorted(o["Key"] for page in pages for o in page.get("Contents", []))


def curate(client) -> tuple[dict, object]:
    corpus = upload(client, "corpora", "c.jsonl", jsonl(demo_corpus(200)), shard_size=100).json()
    bench = upload(client, "benchmarks", "b.jsonl", jsonl(demo_benchmark(30))).json()
    response = client.post("/api/v1/jobs/", {"kind": "curate", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], **CURATE}}, format="json")
    assert response.status_code == 202, response.json()
    return corpus, run_inline(response.json()["id"])


def manifest_of(client, job) -> list[dict]:
    response = client.get(f"/api/v1/mixtures/{job.result['mixture']}/documents/")
    assert response.status_code == 200
    return [json.loads(line) for line in b"".join(response.streaming_content).splitlines()]


def test_a_curation_keeps_every_artifact_in_the_bucket_and_matches_local_disk(
        client_a, client_b, tenant_a, artifact_root, settings, moto_server, dispatched,
        django_capture_on_commit_callbacks, request):
    _, local_job = curate(client_a)
    assert local_job.status == "succeeded", local_job.error
    local_manifest = manifest_of(client_a, local_job)
    on_local_disk = set(files_under(artifact_root))

    bucket = request.getfixturevalue("service_on_s3")
    corpus, job = curate(client_a)
    assert job.status == "succeeded", job.error
    manifest = manifest_of(client_a, job)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "id"} for r in rows]  # noqa: E731 - ids are per upload
    assert strip(manifest) == strip(local_manifest), "the object store gave another mixture than local disk"
    assert set(files_under(artifact_root)) == on_local_disk, "the S3 deployment wrote under ARTIFACT_ROOT"

    stored = objects(bucket, moto_server.url)
    assert all(k.startswith(f"deployment/tenants/{tenant_a[0].pk}/") for k in stored), stored[:5]
    assert any(f"datasets/{corpus['id']}/shards/" in k for k in stored)
    assert any(k.endswith("/manifest.parquet") for k in stored)
    cached = [p.name for p in settings.ARTIFACT_CACHE_DIR.rglob("*") if p.is_file()]
    assert not [n for n in cached if n.endswith(".parquet")], f"Parquet was downloaded whole, not streamed: {cached}"

    scores = client_a.get(f"/api/v1/corpora/{corpus['id']}/scores/?metric=betr")
    assert len(b"".join(scores.streaming_content).splitlines()) == 200
    found = client_a.post(f"/api/v1/corpora/{corpus['id']}/search/",
                          {"text": "the market rallied", "k": 3, "embedder": "hashing"}, format="json")
    assert found.status_code == 200 and len(found.json()["results"]) == 3, found.json()
    dataset = client_a.get(f"/api/v1/mixtures/{job.result['mixture']}/dataset/").json()
    shard = client_a.get(dataset["shards"][0]["url"])
    assert shard.status_code == 200 and b"".join(shard.streaming_content)[:4] == b"PAR1"

    assert client_b.get(f"/api/v1/mixtures/{job.result['mixture']}/documents/").status_code == 404
    assert client_b.get(f"/api/v1/corpora/{corpus['id']}/scores/?metric=betr").status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        assert client_a.delete(f"/api/v1/corpora/{corpus['id']}/").status_code == 204
    assert not [k for k in objects(bucket, moto_server.url) if f"datasets/{corpus['id']}/" in k]


def test_throttling_during_a_job_is_retried_and_the_job_completes(client_a, service_on_s3, proxy, dispatched):
    proxy.throttle_every(7)
    corpus, job = curate(client_a)
    proxy.throttle_every(0)
    assert job.status == "succeeded", job.error
    assert proxy.injected[503] >= 10, proxy.injected


def test_a_permanent_denial_fails_the_job_with_a_reason_naming_the_bucket(client_a, service_on_s3, proxy, dispatched):
    corpus = upload(client_a, "corpora", "c.jsonl", jsonl(demo_corpus(200)), shard_size=100).json()
    bench = upload(client_a, "benchmarks", "b.jsonl", jsonl(demo_benchmark(30))).json()
    job = client_a.post("/api/v1/jobs/", {"kind": "curate", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], **CURATE}}, format="json").json()
    proxy.deny()
    first = job["stages"][0]
    assert run_job_unit.apply(args=(job["id"], first["name"], 0)).get() == "failed"
    failed = client_a.get(f"/api/v1/jobs/{job['id']}/").json()
    assert failed["status"] == "failed"
    assert service_on_s3 in failed["error"] and "denied" in failed["error"], failed["error"]
    assert proxy.injected[403] <= 4, "a permanent denial was retried"


@pytest.mark.parametrize("path", ["/api/v1/corpora/{id}/", "/api/v1/corpora/{id}/scores/?metric=betr"])
def test_another_tenants_objects_are_404_on_the_object_store(client_a, client_b, service_on_s3, path):
    corpus = upload(client_a, "corpora", "c.jsonl", jsonl(demo_corpus(20))).json()
    assert client_b.get(path.format(id=corpus["id"])).status_code == 404
