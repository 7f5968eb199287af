"""Jobs through the API and the services the workers call, run inline (no broker)."""
from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from api.jobs import services
from api.jobs.models import Job, JobUnit
from curation.embedders import embedder_key, get_embedder
from curation.ingest import read_shard
from tests.api.helpers import error_of, small_corpus, upload


def run_inline(job_id: str) -> Job:
    """Do what the workers do: every unit of every stage, in order."""
    job = Job.unscoped_objects.get(pk=job_id)
    for stage in job.plan:
        for index in range(stage["units"]):
            services.job_run_unit(job_id=job_id, stage=stage["name"], index=index)
    job.refresh_from_db()
    return job


@pytest.fixture
def corpus(client_a):
    return upload(client_a, "corpora", "c.jsonl", small_corpus(25), shard_size=10).json()


@pytest.mark.parametrize("gpu_workers", [True, False])
def test_units_go_to_the_gpu_queue_only_where_the_deployment_runs_gpu_workers(client_a, corpus, dispatched, settings,
                                                                             gpu_workers,
                                                                             django_capture_on_commit_callbacks):
    settings.GPU_WORKERS = gpu_workers
    with django_capture_on_commit_callbacks(execute=True):
        body = client_a.post("/api/v1/jobs/", {"kind": "embed", "params": {"corpus": corpus["id"],
                                                                          "embedder": "hashing:64"}},
                             format="json").json()
    expected = "gpu" if gpu_workers else "cpu"
    assert [s["queue"] for s in body["stages"]] == [expected, "cpu"]
    assert [d["queue"] for d in dispatched] == [expected]
    services.job_run_unit(job_id=body["id"], stage="embedding", index=0)
    services.job_run_unit(job_id=body["id"], stage="embedding", index=1)
    dispatched.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.job_run_unit(job_id=body["id"], stage="embedding", index=2)  # moves on: the worker routes it
    assert dispatched == [{"job_id": body["id"], "stage": "summary", "indices": [0], "queue": "cpu"}]


def test_embed_job_writes_float16_embeddings_and_faiss_parts_per_shard(client_a, corpus, dispatched, artifact_root,
                                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post("/api/v1/jobs/", {"kind": "embed", "params": {"corpus": corpus["id"],
                                                                                "embedder": "hashing:64"}},
                                 format="json")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and body["progress"] == {"shards_done": 0, "shards_total": 4, "fraction": 0.0}
    assert body["stages"] == [{"name": "embedding", "queue": "cpu", "units_done": 0, "units": 3, "work": None},
                              {"name": "summary", "queue": "cpu", "units_done": 0, "units": 1, "work": None}]
    assert dispatched == [{"job_id": body["id"], "stage": "embedding", "indices": [0, 1, 2], "queue": "cpu"}]

    job = run_inline(body["id"])
    assert job.status == "succeeded" and job.stage == "done" and job.shards_done == 4
    detail = client_a.get(f"/api/v1/jobs/{body['id']}/").json()
    assert detail["progress"]["fraction"] == 1.0 and detail["timings"]["elapsed_seconds"] >= 0
    assert detail["result"]["documents"] == 25 and detail["result"]["dim"] == 64

    embedder = get_embedder("hashing:64")
    key = embedder_key(embedder)
    vectors = np.concatenate([np.load(p) for p in sorted(artifact_root.rglob(f"embeddings/{key}/*.npy"))])
    assert vectors.dtype == np.float16 and vectors.shape == (25, 64)
    texts = [t for p in sorted(artifact_root.rglob("shards/*.parquet")) for t in
             read_shard(p).column("text").to_pylist()]
    np.testing.assert_allclose(vectors.astype(np.float32), embedder.encode(texts), atol=2e-3)
    parts = sorted(artifact_root.rglob(f"faiss/{key}/*.faiss"))
    assert [faiss.read_index(str(p)).ntotal for p in parts] == [10, 10, 5]
    sidecar = json.loads(next(artifact_root.rglob(f"embeddings/{key}/shard-00000.json")).read_text())
    assert sidecar["version"] == embedder.version and sidecar["documents"] == 10


def test_rerun_skips_done_shards_and_a_second_job_reuses_the_cache(tenant_a, corpus, dispatched):
    tenant = tenant_a[0]
    job = services.job_create(tenant=tenant, kind="embed", params={"corpus": corpus["id"], "embedder": "hashing"})
    assert services.job_run_unit(job_id=job.pk, stage="embedding", index=1) == "done"
    assert services.job_run_unit(job_id=job.pk, stage="embedding", index=1) == "already done"
    assert services.job_run_unit(job_id=job.pk, stage="summary", index=0).startswith("skipped")
    assert JobUnit.unscoped_objects.filter(job=job).count() == 1
    run_inline(job.pk)
    assert JobUnit.unscoped_objects.filter(job=job, stage="embedding").count() == 3

    again = run_inline(services.job_create(tenant=tenant, kind="embed",
                                           params={"corpus": corpus["id"], "embedder": "hashing"}).pk)
    assert again.result["shards_reused_from_cache"] == 3


@pytest.mark.parametrize("payload,status,code", [
    ({"kind": "transmogrify", "params": {}}, 400, "unknown_kind"),
    ({"kind": "embed", "params": {}}, 400, "validation_error"),
    ({"kind": "embed", "params": {"corpus": "not-a-uuid"}}, 400, "validation_error"),
    ({"kind": "embed", "params": {"corpus": "00000000-0000-0000-0000-000000000000"}}, 404, "not_found"),
    ({"kind": "embed", "params": {"corpus": "{corpus}", "embedder": "word2vec"}}, 400, "validation_error"),
    ({"kind": "embed", "params": {"corpus": "{corpus}", "embedder": "st:/etc"}}, 400, "validation_error"),
    ({"kind": "embed", "params": {"corpus": "{corpus}", "batch_size": 0}}, 400, "validation_error"),
])
def test_job_parameters_are_validated(client_a, corpus, payload, status, code):
    params = {k: v.format(corpus=corpus["id"]) if isinstance(v, str) else v for k, v in payload["params"].items()}
    response = client_a.post("/api/v1/jobs/", {**payload, "params": params}, format="json")
    assert response.status_code == status, response.json()
    assert error_of(response)["code"] == code
    assert Job.unscoped_objects.count() == 0


def test_concurrent_job_quota(client_a, tenant_a, corpus, dispatched):
    tenant = tenant_a[0]
    tenant.max_concurrent_jobs = 1
    tenant.save()
    params = {"kind": "embed", "params": {"corpus": corpus["id"]}}
    assert client_a.post("/api/v1/jobs/", params, format="json").status_code == 202
    response = client_a.post("/api/v1/jobs/", params, format="json")
    assert response.status_code == 429
    assert error_of(response)["detail"] == {"quota": "concurrent_jobs", "used": 1, "limit": 1}


def test_cancel_stops_work_and_retry_only_redoes_missing_shards(client_a, tenant_a, corpus, dispatched,
                                                              django_capture_on_commit_callbacks):
    job = services.job_create(tenant=tenant_a[0], kind="embed", params={"corpus": corpus["id"],
                                                                        "embedder": "hashing"})
    services.job_run_unit(job_id=job.pk, stage="embedding", index=0)
    response = client_a.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert services.job_run_unit(job_id=job.pk, stage="embedding", index=1).startswith("skipped")
    again = client_a.post(f"/api/v1/jobs/{job.pk}/cancel/")
    assert again.status_code == 409 and error_of(again)["code"] == "job_not_active"

    dispatched.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = client_a.post(f"/api/v1/jobs/{job.pk}/retry/")
    assert response.status_code == 202 and response.json()["status"] == "queued"
    assert dispatched == [{"job_id": str(job.pk), "stage": "embedding", "indices": [1, 2], "queue": "cpu"}]
    assert run_inline(job.pk).status == "succeeded"
    assert client_a.post(f"/api/v1/jobs/{job.pk}/retry/").status_code == 409


def test_a_failing_shard_marks_the_job_failed_with_a_reason(tenant_a, corpus, dispatched, artifact_root):
    from workers.tasks import run_job_unit

    job = services.job_create(tenant=tenant_a[0], kind="embed", params={"corpus": corpus["id"],
                                                                        "embedder": "hashing"})
    next(artifact_root.rglob("shard-00001.parquet")).write_bytes(b"corrupted")
    assert run_job_unit.run(str(job.pk), "embedding", 1) == "failed"
    job.refresh_from_db()
    assert job.status == "failed" and "jobs.run_unit ('embedding', 1)" in job.error and job.finished_at is not None


def test_job_list_filters(client_a, tenant_a, corpus, dispatched):
    first = services.job_create(tenant=tenant_a[0], kind="embed", params={"corpus": corpus["id"]})
    services.job_fail(job_id=first.pk, reason="x")
    services.job_create(tenant=tenant_a[0], kind="embed", params={"corpus": corpus["id"]})
    failed = client_a.get("/api/v1/jobs/?status=failed").json()["results"]
    assert [j["id"] for j in failed] == [str(first.pk)]
    assert len(client_a.get("/api/v1/jobs/?kind=embed").json()["results"]) == 2


def test_a_late_delivery_enqueues_the_current_stage_again(tenant_a, corpus, dispatched,
                                                          django_capture_on_commit_callbacks):
    """The job moved on but its next stage was never enqueued (the broker went away after the
    commit): the next delivery of a done unit of the earlier stage enqueues it again."""
    job = services.job_create(tenant=tenant_a[0], kind="embed", params={"corpus": corpus["id"],
                                                                        "embedder": "hashing"})
    with django_capture_on_commit_callbacks(execute=True):
        for index in range(3):
            services.job_run_unit(job_id=job.pk, stage="embedding", index=index)
    assert dispatched[-1]["stage"] == "summary"
    dispatched.clear()  # lost with the broker
    with django_capture_on_commit_callbacks(execute=True):
        outcome = services.job_run_unit(job_id=job.pk, stage="embedding", index=1)
    assert outcome == "skipped: the job is at stage summary; enqueued its units not yet done again"
    assert [(d["stage"], d["indices"]) for d in dispatched] == [("summary", [0])]
    assert services.job_run_unit(job_id=job.pk, stage="summary", index=0) == "done; job succeeded"
