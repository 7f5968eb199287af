"""Tenant isolation: for every endpoint and method, tenant B acting on tenant A's
objects gets 404 and changes nothing; no key or a revoked key gets 401."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from api.datasets.models import Dataset
from api.jobs import services as job_services
from api.jobs.models import Job
from api.schedules.models import Schedule
from api.schedules.services import schedule_create
from api.tenancy.services import api_key_revoke
from tests.api.helpers import error_of, files_under, small_corpus, upload


@pytest.fixture
def objects_of_a(client_a, tenant_a, dispatched):
    corpus = upload(client_a, "corpora", "a.jsonl", small_corpus(10), shard_size=4).json()
    benchmark = upload(client_a, "benchmarks", "b.jsonl", small_corpus(3)).json()
    job = client_a.post("/api/v1/jobs/", {"kind": "embed", "params": {"corpus": corpus["id"],
                                                                       "embedder": "hashing"}}, format="json").json()
    failed = job_services.job_create(tenant=tenant_a[0], kind="embed",
                                     params={"benchmark": benchmark["id"], "embedder": "hashing"})
    job_services.job_fail(job_id=failed.pk, reason="test")
    schedule = schedule_create(tenant=tenant_a[0], cron="0 3 * * *", job_kind="embed",
                               job_params={"corpus": corpus["id"], "embedder": "hashing"})
    return {"corpus": corpus["id"], "benchmark": benchmark["id"], "job": job["id"], "failed_job": failed.pk,
            "schedule": schedule.pk}


def _snapshot(artifact_root):
    jobs = list(Job.unscoped_objects.order_by("pk").values_list("pk", "status", "stage", "params"))
    datasets = list(Dataset.unscoped_objects.order_by("pk").values_list("pk", "name", "documents"))
    schedules = list(Schedule.unscoped_objects.order_by("pk").values_list("pk", "cron", "enabled", "job_params"))
    return jobs, datasets, schedules, files_under(artifact_root)


OBJECT_ENDPOINTS = [
    ("get", "/api/v1/corpora/{corpus}/"),
    ("delete", "/api/v1/corpora/{corpus}/"),
    ("get", "/api/v1/corpora/{corpus}/scores/?metric=prototypes"),
    ("get", "/api/v1/corpora/{corpus}/predictions/"),
    ("post", "/api/v1/corpora/{corpus}/predictions/"),
    ("get", "/api/v1/benchmarks/{benchmark}/"),
    ("delete", "/api/v1/benchmarks/{benchmark}/"),
    ("get", "/api/v1/jobs/{job}/"),
    ("post", "/api/v1/jobs/{job}/cancel/"),
    ("post", "/api/v1/jobs/{failed_job}/retry/"),
    ("get", "/api/v1/schedules/{schedule}/"),
    ("patch", "/api/v1/schedules/{schedule}/"),
    ("delete", "/api/v1/schedules/{schedule}/"),
    ("get", "/api/v1/schedules/{schedule}/firings/"),
    # a corpus id used as a benchmark id (and the reverse) is not found either
    ("get", "/api/v1/benchmarks/{corpus}/"),
    ("get", "/api/v1/corpora/{benchmark}/"),
]


@pytest.mark.parametrize("method,template", OBJECT_ENDPOINTS)
def test_other_tenants_objects_are_404_and_unchanged(client_b, objects_of_a, artifact_root, method, template,
                                                     django_capture_on_commit_callbacks):
    before = _snapshot(artifact_root)
    with django_capture_on_commit_callbacks(execute=True):
        response = getattr(client_b, method)(template.format(**objects_of_a))
    assert response.status_code == 404, (method, template, response.content)
    assert error_of(response)["code"] == "not_found"
    assert _snapshot(artifact_root) == before


def test_owner_can_reach_the_same_endpoints(client_a, objects_of_a):
    assert client_a.get(f"/api/v1/corpora/{objects_of_a['corpus']}/").status_code == 200
    assert client_a.get(f"/api/v1/jobs/{objects_of_a['job']}/").status_code == 200
    assert client_a.post(f"/api/v1/jobs/{objects_of_a['job']}/cancel/").status_code == 200


@pytest.mark.parametrize("param", ["corpus", "benchmark"])
def test_referencing_another_tenants_dataset_in_a_job_is_404(client_b, objects_of_a, param):
    response = client_b.post("/api/v1/jobs/", {"kind": "embed", "params": {param: objects_of_a[param]}},
                             format="json")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
    assert Job.unscoped_objects.count() == 2


def test_lists_and_usage_show_only_own_objects(client_b, objects_of_a):
    for path in ("/api/v1/corpora/", "/api/v1/benchmarks/", "/api/v1/jobs/", "/api/v1/schedules/"):
        response = client_b.get(path)
        assert response.status_code == 200 and response.json()["results"] == [], path
    usage = client_b.get("/api/v1/usage/").json()
    assert usage["tenant"]["name"] == "tenant-b" and usage["datasets"] == 0
    assert usage["quotas"]["documents"]["used"] == 0 and usage["jobs"]["queued"] == 0


ALL_ENDPOINTS = [("get", "/api/v1/corpora/"), ("post", "/api/v1/corpora/"), ("get", "/api/v1/benchmarks/"),
                 ("post", "/api/v1/benchmarks/"), ("get", "/api/v1/jobs/"), ("post", "/api/v1/jobs/"),
                 ("get", "/api/v1/pilot-runs/"), ("post", "/api/v1/pilot-runs/"),
                 ("get", "/api/v1/schedules/"), ("post", "/api/v1/schedules/"),
                 ("get", "/api/v1/usage/")] + OBJECT_ENDPOINTS


@pytest.mark.parametrize("method,template", ALL_ENDPOINTS)
@pytest.mark.parametrize("credential", ["none", "garbage", "revoked", "wrong-scheme"])
def test_no_key_or_a_revoked_key_is_401(tenant_a, objects_of_a, artifact_root, method, template, credential):
    client = APIClient()
    if credential == "garbage":
        client.credentials(HTTP_AUTHORIZATION="Bearer cur_deadbeef_not-a-real-secret")
    elif credential == "revoked":
        tenant, secret = tenant_a
        api_key_revoke(tenant=tenant, key_id=_key_id(secret))
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    elif credential == "wrong-scheme":
        client.credentials(HTTP_AUTHORIZATION=f"Token {tenant_a[1]}")
    before = _snapshot(artifact_root)
    response = getattr(client, method)(template.format(**objects_of_a))
    assert response.status_code == 401, response.content
    assert error_of(response)["code"] == "unauthenticated"
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert _snapshot(artifact_root) == before


def _key_id(secret: str):
    from api.tenancy.models import ApiKey

    prefix = secret.split("_")[1]
    return ApiKey.unscoped_objects.get(prefix=prefix).pk
