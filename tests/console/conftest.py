"""Console fixtures: users who are members of one tenant, staff, and a tenant filled with
demo data (the demo's corpus and benchmark, a job, scores, a fitted model with pilot
runs, a mixture with its frontier, a schedule), shared by the page and browser tests."""
from __future__ import annotations

import math

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.core.artifacts import artifact_store
from api.datasets.services import dataset_create
from api.jobs.models import Job
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from api.schedules.services import schedule_create
from api.tenancy.models import Membership
from curation.demo_data import demo_benchmark, demo_corpus
from curation.ingest import FieldMapping, read_shard
from curation.scores import write_scores
from tests.api.helpers import jsonl

PASSWORD = "console-test-password"


@pytest.fixture
def make_user(db, django_user_model):
    def make(username: str, *tenants, staff: bool = False):
        user = django_user_model.objects.create_user(username=username, password=PASSWORD, is_staff=staff)
        for tenant in tenants:
            Membership.objects.create(user=user, tenant=tenant)
        return user

    return make


def _law(size: float, weights: dict[str, float], quality: dict[str, float]) -> float:
    """A made-up but well-behaved scaling curve: accuracy rises with size and pool quality."""
    effective = size * sum(w * quality.get(p, 0.5) for p, w in weights.items())
    return 0.82 - 0.6 * (max(effective, 1.0) / 1e3) ** -0.28


def fill_tenant(tenant, *, documents: int = 300, embed_job: bool = True) -> dict:
    """The demo's data for ``tenant``: returns the created objects by name."""
    corpus = dataset_create(tenant=tenant, kind="corpus", name="demo_corpus.jsonl",
                            upload=SimpleUploadedFile("demo_corpus.jsonl", jsonl(demo_corpus(documents, seed=0))),
                            mapping=FieldMapping(), shard_size=100)
    benchmark = dataset_create(tenant=tenant, kind="benchmark", name="demo_benchmark.jsonl",
                               upload=SimpleUploadedFile("demo_benchmark.jsonl", jsonl(demo_benchmark(40))),
                               mapping=FieldMapping())
    # A finished pruning job with per-document scores, as a prune job writes them.
    prune = Job.objects.for_tenant(tenant).create(
        tenant=tenant, kind="prune", params={"corpus": str(corpus.pk), "metric": "prototypes"}, status="succeeded",
        plan=[{"name": "scoring", "units": corpus.shard_count, "queue": "cpu"}], stage="done",
        shards_total=corpus.shard_count, shards_done=corpus.shard_count, result={"score_metrics": ["prototypes"]})
    Job.objects.for_tenant(tenant).filter(pk=prune.pk).update(started_at=prune.created_at,
                                                              finished_at=prune.created_at)
    store = artifact_store()
    rng = np.random.default_rng(0)
    for index in range(corpus.shard_count):
        ids = read_shard(store.shard_path(tenant.pk, corpus.pk, index), ["id"]).column("id").to_pylist()
        score = rng.beta(2.0, 5.0, size=len(ids))
        kept = score > 0.18
        write_scores(store.scores_path(tenant.pk, prune.pk, "prototypes", index), ids=ids, score=score, kept=kept,
                     reason=["kept" if k else "pruned_easy" for k in kept])
    objects = {"corpus": corpus, "benchmark": benchmark, "prune_job": prune}

    sources = sorted(corpus.source_counts)
    quality = {s: 0.4 + 0.6 * (i + 1) / len(sources) for i, s in enumerate(sources)}
    mixtures = [{s: 1.0 / len(sources) for s in sources}, {sources[-1]: 0.7, sources[-2]: 0.3},
                {sources[0]: 0.5, sources[-1]: 0.5}]
    runs = [PilotRun(tenant=tenant, corpus=corpus, mixture=m, size=size, metric="accuracy",
                     value=_law(size, m, quality) + float(rng.normal(0, 0.004)), origin="proxy")
            for m in mixtures for size in (2e3, 8e3, 3.2e4)]
    PilotRun.objects.for_tenant(tenant).bulk_create(runs)
    model = PerformanceModel.objects.for_tenant(tenant).create(
        tenant=tenant, corpus=corpus, benchmarks=[str(benchmark.pk)], metric="accuracy", kind="effective_data",
        parameters={"c": 0.82, "A": 0.6, "beta": 0.28, "gamma": 0.5, "eta": 0.3, "tau": 6.0},
        pools=[{"name": s, "unique": corpus.source_counts[s], "ot": round(1 - quality[s], 3), "quality": quality[s]}
               for s in sources],
        fit_error=0.0041, provenance={"c": "proxy", "A": "proxy", "beta": "proxy", "gamma": "proxy",
                                      "eta": "proxy", "tau": "defaults"},
        observations=[{"mixture": r.mixture, "size": r.size, "value": r.value,
                       "fitted": _law(r.size, r.mixture, quality), "origin": r.origin} for r in runs])
    budget = 1500.0
    weights = {sources[-1]: 0.42, sources[-2]: 0.31, sources[-3]: 0.17, sources[0]: 0.10}
    pools = []
    for s in sources:
        w = weights.get(s, 0.0)
        available = corpus.source_counts[s]
        shown = w * budget
        pools.append({"pool": s, "weight": w, "unique_documents": int(min(shown, available)),
                      "available_documents": available, "repetitions": round(shown / available, 3)})
    frontier = []
    for k in range(9):
        b = 200.0 * 2 ** k
        value = _law(b, weights, quality)
        width = 0.01 * (1 + abs(math.log2(b / budget)) / 2)
        frontier.append({"budget": b, "value": value, "low": value - width, "high": value + width,
                         "weights": weights})
    value = _law(budget, weights, quality)
    objects["mixture"] = Mixture.objects.for_tenant(tenant).create(
        tenant=tenant, corpus=corpus, performance_model=model, budget=budget, budget_unit="samples",
        weights=weights, pools=pools, frontier=frontier, document_count=sum(p["unique_documents"] for p in pools),
        predicted={"metric": "accuracy", "value": value, "low": value - 0.012, "high": value + 0.012,
                   "provenance": model.provenance})
    objects["performance_model"] = model
    objects["schedule"] = schedule_create(tenant=tenant, name="nightly re-embed", cron="0 3 * * *", job_kind="embed",
                                          job_params={"corpus": str(corpus.pk), "embedder": "hashing"})
    if embed_job:
        from api.jobs.services import job_create

        objects["job"] = job_create(tenant=tenant, kind="embed",
                                    params={"corpus": str(corpus.pk), "embedder": "hashing"})
    return objects
