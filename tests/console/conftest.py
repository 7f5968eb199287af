"""Console fixtures: users who are members of one tenant, staff, and a tenant filled with
demo data (the demo's corpus and benchmark, a job, scores, a fitted model with pilot
runs, a mixture with its frontier, a schedule), shared by the page and browser tests."""
from __future__ import annotations

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.core.artifacts import tenant_storage
from api.datasets.services import dataset_create
from api.jobs.models import Job
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from api.schedules.services import schedule_create
from api.tenancy.models import Membership
from curation.demo_data import demo_benchmark, demo_corpus
from curation.ingest import FieldMapping, read_shard
from curation.mixture import MixtureLaw, Pool
from curation.scores import write_scores
from curation.storage import Keys
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


def fill_tenant(tenant, *, documents: int = 300, embed_job: bool = True, label: str = "",
                metric: str = "accuracy") -> dict:
    """The demo's data for ``tenant``: returns the created objects by name.

    ``label`` is prefixed to every string a user controls (dataset names, sources and so
    pool names, the schedule's name) and ``metric`` names the pilot runs' metric: the
    hostile-string tests put markup there.
    """
    records = [{**r, "source": label + r["source"]} for r in demo_corpus(documents, seed=0)]
    corpus = dataset_create(tenant=tenant, kind="corpus", name=label + "demo_corpus.jsonl",
                            upload=SimpleUploadedFile("demo_corpus.jsonl", jsonl(records)),
                            mapping=FieldMapping(), shard_size=100)
    benchmark = dataset_create(tenant=tenant, kind="benchmark", name=label + "demo_benchmark.jsonl",
                               upload=SimpleUploadedFile("demo_benchmark.jsonl", jsonl(demo_benchmark(40))),
                               mapping=FieldMapping())
    # A finished pruning job with per-document scores, as a prune job writes them.
    prune = Job.objects.for_tenant(tenant).create(
        tenant=tenant, kind="prune", params={"corpus": str(corpus.pk), "metric": "prototypes"}, status="succeeded",
        plan=[{"name": "scoring", "units": corpus.shard_count, "queue": "cpu"}], stage="done",
        shards_total=corpus.shard_count, shards_done=corpus.shard_count, result={"score_metrics": ["prototypes"]})
    Job.objects.for_tenant(tenant).filter(pk=prune.pk).update(started_at=prune.created_at,
                                                              finished_at=prune.created_at)
    store = tenant_storage(tenant.pk)
    rng = np.random.default_rng(0)
    for index in range(corpus.shard_count):
        ids = read_shard(store.local_path(Keys.shard(corpus.pk, index)), ["id"]).column("id").to_pylist()
        score = rng.beta(2.0, 5.0, size=len(ids))
        kept = score > 0.18
        write_scores(store, Keys.scores(prune.pk, "prototypes", index), ids=ids, score=score, kept=kept,
                     reason=["kept" if k else "pruned_easy" for k in kept])
    objects = {"corpus": corpus, "benchmark": benchmark, "prune_job": prune}

    # Pilot runs, a performance model and a mixture as the fit and mixture jobs store them,
    # computed with the service's own model (curation.mixture) from made-up parameters.
    sources = sorted(corpus.source_counts)
    features = {s: (0.2 + 0.1 * i, 0.3 + 0.1 * i) for i, s in enumerate(sources)}  # (ot, quality)
    provenance = {"c": "pilot_runs", "A": "pilot_runs", "beta": "pilot_runs", "gamma": "proxy", "eta": "proxy",
                  "tau": "defaults"}
    law = MixtureLaw(pools=tuple(Pool(name=s, unique=corpus.source_counts[s], ot=features[s][0],
                                      quality=features[s][1]) for s in sources),
                     c=0.8, A=0.05, beta=0.25, gamma=0.8, eta=0.6, tau=6.0, higher_is_better=True, rmse=0.0041,
                     observed_sizes=(50.0, 800.0), observed_repetitions=3.0, provenance=provenance)
    mixtures = [{s: 1.0 / len(sources) for s in sources}, {sources[-1]: 0.7, sources[-2]: 0.3},
                {sources[0]: 0.5, sources[-1]: 0.5}]
    runs = [PilotRun(tenant=tenant, corpus=corpus, mixture=m, size=size, metric=metric,
                     value=law.predict(m, size).value + float(rng.normal(0, 0.004)), origin="user")
            for m in mixtures for size in (50.0, 200.0, 800.0)]
    PilotRun.objects.for_tenant(tenant).bulk_create(runs)
    model = PerformanceModel.objects.for_tenant(tenant).create(
        tenant=tenant, corpus=corpus, benchmarks=[str(benchmark.pk)], metric=metric, kind="effective_data",
        parameters=law.parameters(), pools=law.pool_rows(), fit_error=law.rmse, provenance=provenance,
        observations=[{"weights": r.mixture, "size": r.size, "value": r.value, "origin": "pilot_runs",
                       "fitted": law.predict(r.mixture, r.size).value} for r in runs])
    budget = 1500.0
    allocation = law.optimize(budget)
    weights = {n: float(w) for n, w in zip(allocation.pools, allocation.weights) if w > 0}
    prediction = law.predict(weights, budget)
    rows = [row for row in allocation.as_rows(law.unique.astype(int)) if row["weight"] > 0]
    objects["mixture"] = Mixture.objects.for_tenant(tenant).create(
        tenant=tenant, corpus=corpus, performance_model=model, budget=budget, budget_unit="samples",
        weights=weights, pools=rows, frontier=law.frontier(np.geomspace(budget / 30, budget * 30, 13)),
        document_count=sum(row["unique_documents"] for row in rows),
        predicted={"metric": metric, "higher_is_better": True, "value": prediction.value, "low": prediction.low,
                   "high": prediction.high, "level": 0.95, "extrapolated": prediction.extrapolated,
                   "provenance": provenance})
    objects["performance_model"] = model
    objects["schedule"] = schedule_create(tenant=tenant, name=label + "nightly re-embed", cron="0 3 * * *", job_kind="embed",
                                          job_params={"corpus": str(corpus.pk), "embedder": "hashing"})
    if embed_job:
        from api.jobs.services import job_create

        objects["job"] = job_create(tenant=tenant, kind="embed",
                                    params={"corpus": str(corpus.pk), "embedder": "hashing"})
    return objects


def observe_mixtures(tenant, objects: dict, count: int, *, seed: int = 1) -> list[str]:
    """Replace the performance model's observations (and the tenant's pilot runs) with
    ``count`` distinct random mixtures of the corpus's sources, each observed at three
    sizes with the model's own law; returns the mixtures' labels as the console writes them."""
    from api.console.selectors import mixture_key
    from api.modeling.services import performance_model_law

    model, corpus = objects["performance_model"], objects["corpus"]
    law = performance_model_law(model)
    sources = sorted(corpus.source_counts)
    rng = np.random.default_rng(seed)
    mixtures = [{s: float(w) for s, w in zip(sources, rng.dirichlet(np.ones(len(sources)))) if w > 1e-3}
                for _ in range(count)]
    labels = [mixture_key(m) for m in mixtures]
    assert len(set(labels)) == count, "the mixtures must be told apart by their labels"
    runs = [(m, size, law.predict(m, size).value + float(rng.normal(0, 0.004))) for m in mixtures
            for size in (50.0, 200.0, 800.0)]
    model.observations = [{"weights": m, "size": size, "value": value, "origin": "pilot_runs",
                           "fitted": law.predict(m, size).value} for m, size, value in runs]
    model.save(update_fields=["observations"])
    PilotRun.objects.for_tenant(tenant).delete()
    PilotRun.objects.for_tenant(tenant).bulk_create(
        PilotRun(tenant=tenant, corpus=corpus, mixture=m, size=size, metric=model.metric, value=value, origin="user")
        for m, size, value in runs)
    return labels
