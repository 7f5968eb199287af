"""Tiny-LM pilots through the API: the ``pilots`` job kind (an estimate before any work, one unit per
run with tokens as progress, the runs stored as the tenant's pilot runs of origin ``tiny_lm``, a
fit on them), ``pilot_model: tiny_lm`` in ``fit``, and the 4xx answers before any work."""
from __future__ import annotations

import pytest
from django.test import Client

from api.jobs.models import Job
from api.modeling.models import PilotRun
from api.tenancy.models import Membership
from curation.demo_data import demo_benchmark, demo_corpus
from tests.api.helpers import error_of, jsonl, upload
from tests.api.test_jobs import run_inline

#: a model small enough that a run takes well under a second on a CPU
TINY = {"width": 32, "heads": 2, "layers": 1, "context": 32, "batch_size": 4, "vocab_size": 1024}


@pytest.fixture
def datasets(client_a):
    corpus = upload(client_a, "corpora", "demo.jsonl", jsonl(demo_corpus(300)), shard_size=100).json()
    bench = upload(client_a, "benchmarks", "science.jsonl", jsonl(demo_benchmark(40)), name="science").json()
    return corpus, bench


def pilots_job(client, corpus, bench, **params):
    return client.post("/api/v1/jobs/", {"kind": "pilots", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "pilot_runs": 6, "pilot_tokens": 20_000,
        "tiny_lm": TINY, **params}}, format="json")


def test_a_pilots_job_estimates_trains_and_stores_tiny_lm_pilot_runs(client_a, client_b, datasets, dispatched):
    corpus, bench = datasets
    response = pilots_job(client_a, corpus, bench)
    assert response.status_code == 202, response.json()
    created = response.json()
    estimate = created["estimate"]
    assert estimate["runs"] == 6 and len(estimate["per_run"]) == 6 and estimate["tokens_per_second"] > 0
    assert estimate["tokens"] == sum(r["tokens"] for r in estimate["per_run"])
    assert max(r["tokens"] for r in estimate["per_run"]) == pytest.approx(20_000, rel=0.01)
    assert "calibration" in estimate["throughput_source"] and estimate["seconds"] > 0
    assert [s["name"] for s in created["stages"]] == ["pilots", "summary"]
    assert created["stages"][0] == {"name": "pilots", "queue": "cpu", "units_done": 0, "units": 6, "work": None}

    job = run_inline(created["id"])
    assert job.status == "succeeded", job.error
    metric = f"tiny_lm_cross_entropy:{job.pk}"
    assert job.result["metric"] == metric and len(job.result["runs"]) == 6
    run = job.result["runs"][0]
    assert run["device"] == "cpu" and run["tokens"] > 0 and len(run["curve"]) >= 2 and run["value"] > 0
    shown = client_a.get(f"/api/v1/jobs/{job.pk}/").json()
    work = shown["stages"][0]["work"]
    assert work["units"] == 6 and work["done"] == work["total"] == sum(r["tokens"] for r in job.result["runs"])
    # the workers' throughput replaces the calibration in the next estimate
    again = pilots_job(client_a, corpus, bench).json()["estimate"]
    assert again["throughput_source"].startswith("measured by a worker")

    runs = PilotRun.objects.for_tenant(job.tenant_id).filter(metric=metric)
    assert runs.count() == 6 and {r.origin for r in runs} == {"tiny_lm"}
    listed = client_a.get("/api/v1/pilot-runs/", {"corpus": corpus["id"], "metric": metric})
    assert listed.status_code == 200 and len(listed.json()["results"]) == 6, listed.json()
    assert {r["origin"] for r in listed.json()["results"]} == {"tiny_lm"}
    assert client_b.get(f"/api/v1/jobs/{job.pk}/").status_code == 404

    # a fit on them: every fitted parameter says where it came from
    fit = client_a.post("/api/v1/jobs/", {"kind": "fit", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing", "metric": metric,
        "law": "effective_data", "ot_sample_size": 40}}, format="json")
    assert fit.status_code == 202, fit.json()
    fitted = run_inline(fit.json()["id"])
    assert fitted.status == "succeeded", fitted.error
    assert set(fitted.result["provenance"].values()) <= {"tiny_lm", "defaults"}
    assert "tiny_lm" in fitted.result["provenance"].values()


def test_fit_with_pilot_model_tiny_lm_trains_a_unit_per_run(client_a, datasets, dispatched, tenant_a,
                                                             django_user_model, settings):
    settings.GPU_WORKERS = True  # the pilots stage goes to the GPU workers' queue
    corpus, bench = datasets
    response = client_a.post("/api/v1/jobs/", {"kind": "fit", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "embedder": "hashing", "pilot_model": "tiny_lm",
        "pilot_runs": 10, "pilot_tokens": 20_000, "tiny_lm": TINY, "law": "effective_data", "ot_sample_size": 40}},
        format="json")
    assert response.status_code == 202, response.json()
    assert {s["name"]: (s["units"], s["queue"]) for s in response.json()["stages"]}["pilots"] == (10, "gpu")
    job = run_inline(response.json()["id"])
    assert job.status == "succeeded", job.error
    assert job.result["metric"] == "tiny_lm_cross_entropy"
    assert "tiny_lm" in job.result["provenance"].values()
    model = client_a.get(f"/api/v1/performance-models/{job.result['performance_model']}/").json()
    assert len(model["observations"]) == 10 and {o["origin"] for o in model["observations"]} == {"tiny_lm"}

    # the console's job page: every run's loss curve, and the runs' target losses with the fit on top
    user = django_user_model.objects.create_user(username="pilot-viewer", password="pw-pilot-viewer-1")
    Membership.objects.create(user=user, tenant=tenant_a[0])
    console = Client()
    assert console.login(username="pilot-viewer", password="pw-pilot-viewer-1")
    page = console.get(f"/console/{tenant_a[0].pk}/jobs/{job.pk}/").content.decode()
    section = page.split('data-field="pilot-runs"')[1].split("</section>")[0]
    assert "Pilot runs: training loss against tokens" in section and section.count("<svg") == 2
    assert "run 9 (space_filling)" in section and "fitted (effective_data)" in section


def test_tiny_lm_pilots_that_cannot_run_are_refused_before_any_work(client_a, datasets, tenant_a):
    corpus, bench = datasets
    tenant = tenant_a[0]
    tenant.max_pilot_tokens = 10_000
    tenant.save()
    too_big = pilots_job(client_a, corpus, bench, pilot_runs=20, pilot_tokens=50_000)
    assert too_big.status_code == 403, too_big.json()
    error = error_of(too_big)
    assert error["code"] == "quota_exceeded" and error["detail"]["quota"] == "pilot_tokens"
    assert error["detail"]["limit"] == 10_000 and error["detail"]["requested"] > 10_000
    assert "pilot_runs or pilot_tokens" in error["message"]

    # 0 tokens; a smallest run (/ 16) that holds no document (~43 tokens); one of under 8 steps of 128 tokens
    for params, field in (({"pilot_tokens": 0}, "pilot_tokens"), ({"pilot_tokens": 600}, "pilot_tokens"),
                          ({"pilot_tokens": 15_000}, "pilot_tokens"),
                          ({"pilot_runs": 2}, "pilot_runs"), ({"tiny_lm": {**TINY, "heads": 3}}, "tiny_lm")):
        bad = pilots_job(client_a, corpus, bench, **params)
        assert bad.status_code == 400, (params, bad.json())
        assert field in error_of(bad)["detail"]["fields"], (params, error_of(bad))
    both = client_a.post("/api/v1/jobs/", {"kind": "fit", "params": {
        "corpus": corpus["id"], "benchmarks": [bench["id"]], "metric": "loss", "pilot_model": "tiny_lm"}},
        format="json")
    assert both.status_code == 400 and "pilot_model" in error_of(both)["detail"]["fields"]
    empty = upload(client_a, "benchmarks", "empty.jsonl", jsonl([{"id": "q1", "text": "ok"}, {"id": "q2", "text": "   "}]),
                   name="empty")
    assert empty.status_code == 400, empty.json()  # a benchmark without text never exists
    assert {k: error_of(empty)["detail"].get(k) for k in ("file", "line", "field")} == {
        "file": "empty.jsonl", "line": 2, "field": "text"}, error_of(empty)
    assert Job.objects.for_tenant(tenant).count() == 0, "nothing was created"
