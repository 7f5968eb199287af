"""Estimates before a run (``dry_run``), from throughputs this deployment measured, and the ETA of a
running job (``timings.eta_seconds``): api/jobs/estimates.py."""
from __future__ import annotations

import time

import jsonschema
import pytest
import yaml

from api.jobs import services
from api.jobs.models import Job, JobUnit
from curation.demo_data import demo_benchmark, demo_corpus
from curation.embedders import get_embedder
from tests.api.helpers import error_of, files_under, jsonl, upload
from tests.api.test_jobs import run_inline
from tests.api.test_pilots_api import TINY


@pytest.fixture
def datasets(client_a):
    corpus = upload(client_a, "corpora", "demo.jsonl", jsonl(demo_corpus(300)), shard_size=100).json()
    bench = upload(client_a, "benchmarks", "science.jsonl", jsonl(demo_benchmark(30)), name="science").json()
    return corpus, bench


def betr(corpus, bench, **extra) -> dict:
    return {"kind": "betr", "params": {"corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing"},
            **extra}


def test_a_dry_run_answers_the_plan_and_estimate_and_creates_enqueues_and_writes_nothing(
        client_a, datasets, dispatched, artifact_root, django_capture_on_commit_callbacks):
    corpus, bench = datasets
    files = files_under(artifact_root)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_a.post("/api/v1/jobs/", betr(corpus, bench, dry_run=True), format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert Job.unscoped_objects.count() == 0 and dispatched == [] and callbacks == []
    assert files_under(artifact_root) == files
    assert body["dry_run"] is True and body["kind"] == "betr" and body["params"]["corpus"] == corpus["id"]
    assert body["plan"] == [{"name": "embedding", "queue": "cpu", "units": 4},
                            {"name": "contamination_scan", "queue": "cpu", "units": 3},
                            {"name": "contamination", "queue": "cpu", "units": 1},
                            {"name": "train", "queue": "cpu", "units": 1},
                            {"name": "classify", "queue": "cpu", "units": 3},
                            {"name": "select", "queue": "cpu", "units": 1}]
    estimate = body["estimate"]
    stages = estimate["stages"]
    assert [(s["name"], s["kind"], s["units"]) for s in stages] == [
        ("embedding", "embedding:hashing", 4), ("contamination_scan", "contamination_scan", 3),
        ("contamination", "contamination", 1), ("train", "betr_train", 1), ("classify", "betr_classify", 3),
        ("select", "betr_select", 1)]
    # nothing ran on this deployment yet: every figure is its kind's default, counted in documents
    assert {(s["basis"], s["measured_units"]) for s in stages} == {("default", 0)}
    assert stages[0]["work"] == 330 and stages[0]["work_unit"] == "documents"  # 300 + the benchmark's 30
    assert all(s["seconds"] == pytest.approx(s["seconds_per_work"] * s["work"], abs=1e-3) for s in stages)
    assert estimate["seconds"] == pytest.approx(sum(s["seconds"] for s in stages), abs=1e-3)
    assert estimate["worker_slots_per_queue"] == 1
    schema = yaml.safe_load(client_a.get("/api/v1/schema/").content)
    jsonschema.validate(body, {**schema, "$ref": "#/components/schemas/JobDryRun"})  # the answer as documented

    # the job a real create makes carries the same estimate
    created = client_a.post("/api/v1/jobs/", betr(corpus, bench), format="json")
    assert created.status_code == 202
    assert created.json()["estimate"] == estimate
    assert [{k: s[k] for k in ("name", "queue", "units")} for s in created.json()["stages"]] == body["plan"]


def test_a_dry_run_refuses_what_a_create_refuses(client_a, client_b, tenant_a, datasets, dispatched):
    corpus, bench = datasets
    bad = client_a.post("/api/v1/jobs/", {"kind": "betr", "dry_run": True, "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "sample_size": 0}}, format="json")
    assert bad.status_code == 400 and error_of(bad)["code"] == "validation_error"
    assert "sample_size" in error_of(bad)["detail"]["fields"], error_of(bad)
    theirs = client_b.post("/api/v1/jobs/", betr(corpus, bench, dry_run=True), format="json")
    assert theirs.status_code == 404 and error_of(theirs)["code"] == "not_found"
    unknown = client_a.post("/api/v1/jobs/", {"kind": "transmogrify", "dry_run": True}, format="json")
    assert unknown.status_code == 400 and error_of(unknown)["code"] == "unknown_kind"
    not_bool = client_a.post("/api/v1/jobs/", betr(corpus, bench, dry_run="perhaps"), format="json")
    assert not_bool.status_code == 400 and "dry_run" in error_of(not_bool)["detail"]["fields"]

    tenant = tenant_a[0]
    tenant.max_pilot_tokens = 1000  # quotas too: a pilot design above the tenant's tokens
    tenant.save()
    pilots = client_a.post("/api/v1/jobs/", {"kind": "pilots", "dry_run": True, "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "pilot_runs": 6, "pilot_tokens": 20_000, "tiny_lm": TINY}},
        format="json")
    assert pilots.status_code == 403 and error_of(pilots)["detail"]["quota"] == "pilot_tokens"
    tenant.max_concurrent_jobs = 1
    tenant.save()
    assert client_a.post("/api/v1/jobs/", betr(corpus, bench), format="json").status_code == 202
    busy = client_a.post("/api/v1/jobs/", betr(corpus, bench, dry_run=True), format="json")
    assert busy.status_code == 429 and error_of(busy)["detail"]["quota"] == "concurrent_jobs"
    assert Job.unscoped_objects.count() == 1


def test_after_one_run_the_estimate_of_the_same_request_is_within_2x_of_its_wall_time(client_a, datasets,
                                                                                        dispatched):
    corpus, bench = datasets
    # a worker that has served a unit before holds its embedder: the estimate (a median over units) is
    # for such warm workers, so the run measured here is on one too (the projection takes ~2 s to build)
    get_embedder("hashing")
    started = time.perf_counter()
    job = client_a.post("/api/v1/jobs/", betr(corpus, bench), format="json").json()
    assert run_inline(job["id"]).status == "succeeded"
    wall = time.perf_counter() - started

    units = JobUnit.unscoped_objects.filter(job_id=job["id"])
    assert {(u.stage_kind, u.work) for u in units.filter(stage="classify")} == {("betr_classify", 100.0)}
    assert sorted(units.filter(stage="embedding").values_list("work", flat=True)) == [30.0, 100.0, 100.0, 100.0]

    estimate = client_a.post("/api/v1/jobs/", betr(corpus, bench, dry_run=True), format="json").json()["estimate"]
    assert [(s["basis"], s["measured_units"]) for s in estimate["stages"]] == [
        ("measured", 4), ("measured", 3), ("measured", 1), ("measured", 1), ("measured", 3), ("measured", 1)]
    ratio = estimate["seconds"] / wall
    print(f"estimate {estimate['seconds']:.3f} s, measured wall time {wall:.3f} s: ratio {ratio:.2f}")
    assert 0.5 <= ratio <= 2.0, (estimate, wall)


def test_a_running_jobs_eta_falls_to_zero_and_is_null_when_unknown_or_stopped(client_a, tenant_a, datasets,
                                                                              dispatched):
    corpus, bench = datasets
    get_embedder("hashing")
    run_inline(client_a.post("/api/v1/jobs/", betr(corpus, bench), format="json").json()["id"])  # rates measured
    job = client_a.post("/api/v1/jobs/", betr(corpus, bench), format="json").json()
    assert all(s["basis"] == "measured" for s in job["estimate"]["stages"])

    def eta() -> float | None:
        return client_a.get(f"/api/v1/jobs/{job['id']}/").json()["timings"]["eta_seconds"]

    etas = [eta()]
    rounding = 5e-4 * len(job["stages"])  # every stage's figure is rounded to the millisecond
    assert etas[0] == pytest.approx(job["estimate"]["seconds"], rel=1e-3, abs=rounding)
    for stage in job["stages"]:
        for index in range(stage["units"]):
            services.job_run_unit(job_id=job["id"], stage=stage["name"], index=index)
            etas.append(eta())
    assert all(isinstance(e, float) for e in etas), etas
    assert etas[-1] == 0.0 and Job.unscoped_objects.get(pk=job["id"]).status == "succeeded"
    assert etas[-2] < etas[len(etas) // 2] < etas[0], etas  # falls as units finish
    assert max(etas) <= 1.5 * etas[0], etas

    cancelled = services.job_cancel(job=services.job_create(tenant=tenant_a[0], kind="betr", params=betr(
        corpus, bench)["params"]))
    assert client_a.get(f"/api/v1/jobs/{cancelled.pk}/").json()["timings"]["eta_seconds"] is None
    unknown = services.job_create(tenant=tenant_a[0], kind="betr", params=betr(corpus, bench)["params"])
    Job.unscoped_objects.filter(pk=unknown.pk).update(estimate=None)  # a job created before estimates
    assert client_a.get(f"/api/v1/jobs/{unknown.pk}/").json()["timings"]["eta_seconds"] is None


def test_the_console_job_page_shows_the_estimate_and_the_time_left(client, client_a, tenant_a, datasets, dispatched,
                                                                   django_user_model):
    from api.tenancy.models import Membership

    corpus, bench = datasets
    job = client_a.post("/api/v1/jobs/", betr(corpus, bench), format="json").json()
    user = django_user_model.objects.create_user("ops", password="pw-for-tests-only")
    Membership.objects.create(user=user, tenant=tenant_a[0])
    client.force_login(user)
    page = client.get(f"/console/{tenant_a[0].pk}/jobs/{job['id']}/").content.decode()
    total = job["estimate"]["seconds"]
    assert 'data-field="estimate"' in page and 'data-field="eta"' in page
    assert page.count("(default)") == len(job["stages"]), "every stage's estimate says its basis"
    assert f"{total:.1f} s" in page.split('data-field="estimate"')[1].split("</dd>")[0]
    feed = client.get(f"/console/{tenant_a[0].pk}/jobs/{job['id']}/progress.json").json()
    assert feed["timings"]["eta_seconds"] == pytest.approx(total, rel=1e-3, abs=5e-4 * len(job["stages"]))
    assert [u["basis"] for u in feed["units"]] == ["default"] * len(job["stages"])
