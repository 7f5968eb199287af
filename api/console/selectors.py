"""Reads the console pages need beyond the apps' own selectors (always for one tenant)."""
from __future__ import annotations

import logging
import math
import uuid
from collections import Counter

import numpy as np
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet

from api.core.artifacts import tenant_storage
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_contamination, dataset_get, dataset_score_jobs, dataset_usage
from api.jobs.models import Job, JobUnit
from api.jobs.selectors import job_counts
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from api.schedules.models import Schedule, ScheduleFiring
from api.schedules.selectors import schedule_list, schedule_next_run
from api.tenancy.models import Tenant
from curation.pipeline import read_stored
from curation.steps.model import pilot_runs
from curation.storage import Keys

logger = logging.getLogger(__name__)
HISTOGRAM_BINS = 30
#: Stages with more units than this show counts only, not one cell per unit.
UNIT_GRID_LIMIT = 400


def _query_value(value: str, *, is_id: bool = False) -> str | None:
    """A filter from a query string as the rows store it; ``None`` where no row can match it:
    a malformed id, or a NUL byte (which no stored text holds, and PostgreSQL refuses)."""
    if "\x00" in value:
        return None
    if not is_id:
        return value
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def usage(*, tenant: Tenant) -> dict:
    """Quotas against use, as ``GET /api/v1/usage/`` reports them, plus fractions for meters."""
    datasets = dataset_usage(tenant=tenant)
    jobs = job_counts(tenant=tenant)
    active = jobs["queued"] + jobs["running"]
    quotas = [
        ("Stored bytes", datasets["stored_bytes"], tenant.max_stored_bytes, "bytes"),
        ("Documents", datasets["documents"], tenant.max_documents, "count"),
        ("Concurrent jobs", active, tenant.max_concurrent_jobs, "count"),
    ]
    return {
        "quotas": [{"label": label, "used": used, "limit": limit, "unit": unit,
                    "fraction": min(used / limit, 1.0) if limit else 1.0} for label, used, limit, unit in quotas],
        "jobs": jobs,
        "datasets": datasets["datasets"],
    }


def overview(*, tenant: Tenant) -> dict:
    """What the tenant's front page shows: usage, dataset counts, recent jobs and mixtures, schedules."""
    return {
        "usage": usage(tenant=tenant),
        "dataset_counts": dataset_counts(tenant=tenant),
        "recent_jobs": jobs_filtered(tenant=tenant)[:8],
        "recent_mixtures": recent_mixtures(tenant=tenant),
        "schedules": schedules_with_next_run(tenant=tenant, limit=5),
    }


def schedules_with_next_run(*, tenant: Tenant, limit: int) -> list[tuple[Schedule, object]]:
    """``(schedule, when it fires next)`` for the tenant's newest ``limit`` schedules."""
    return [(schedule, schedule_next_run(schedule)) for schedule in schedule_list(tenant=tenant)[:limit]]


def dataset_counts(*, tenant: Tenant) -> dict[str, int]:
    rows = Dataset.objects.for_tenant(tenant).values("kind").annotate(n=Count("id"))
    return {row["kind"]: row["n"] for row in rows}


def jobs_filtered(*, tenant: Tenant, status: str = "", kind: str = "", dataset: str = "") -> QuerySet[Job]:
    """The tenant's jobs, newest first; a filter no job can match (a malformed dataset id) matches none."""
    jobs = Job.objects.for_tenant(tenant).order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status) if status in Job.Status.values else jobs.none()
    if kind:
        kind = _query_value(kind)
        jobs = jobs.filter(kind=kind) if kind is not None else jobs.none()
    if dataset:
        dataset = _query_value(dataset, is_id=True)
        jobs = jobs.filter(Q(params__corpus=dataset) | Q(params__benchmark=dataset)) if dataset else jobs.none()
    return jobs


def job_kinds_used(*, tenant: Tenant) -> list[str]:
    return sorted(Job.objects.for_tenant(tenant).values_list("kind", flat=True).distinct())


def dataset_jobs(*, dataset: Dataset, limit: int = 20) -> list[Job]:
    key = dataset.kind  # "corpus" or "benchmark"
    jobs = Job.objects.for_tenant(dataset.tenant_id).filter(**{f"params__{key}": str(dataset.pk)})
    return list(jobs.order_by("-created_at")[:limit])


def job_unit_progress(*, job: Job) -> list[dict]:
    """Per stage of the plan: units done (with indices and seconds when the stage is small)."""
    units = JobUnit.objects.for_tenant(job.tenant_id).filter(job=job).values_list("stage", "index", "seconds")
    done: dict[str, dict[int, float]] = {}
    for stage, index, seconds in units:
        done.setdefault(stage, {})[index] = seconds
    names = [s["name"] for s in job.plan]
    current = names.index(job.stage) if job.stage in names else len(names)
    stages = []
    for position, stage in enumerate(job.plan):
        finished = done.get(stage["name"], {})
        state = "done" if len(finished) >= stage["units"] else (
            "current" if position == current and job.status in Job.ACTIVE else
            "stopped" if position == current else "waiting")
        stages.append({
            "name": stage["name"], "queue": stage["queue"], "units": stage["units"], "units_done": len(finished),
            "state": state, "seconds": round(sum(finished.values()), 3),
            "grid": [i in finished for i in range(stage["units"])] if stage["units"] <= UNIT_GRID_LIMIT else None,
            "unit_seconds": {str(i): round(s, 3) for i, s in finished.items()} if stage["units"] <= UNIT_GRID_LIMIT
            else {},
        })
    return stages


def job_datasets(*, job: Job) -> list[tuple[str, Dataset, str]]:
    """``(params key, dataset, URL plural)`` for the corpus and benchmark the job's params name."""
    found = []
    for key, plural in (("corpus", "corpora"), ("benchmark", "benchmarks")):
        dataset_id = _query_value(job.params[key], is_id=True) if isinstance(job.params.get(key), str) else None
        dataset = dataset_get(tenant=job.tenant_id, dataset_id=dataset_id) if dataset_id else None
        if dataset is not None:
            found.append((key, dataset, plural))
    return found


def job_started_by(*, job: Job) -> Schedule | None:
    firing = (ScheduleFiring.objects.for_tenant(job.tenant_id).filter(job=job, outcome="created")
              .select_related("schedule").first())
    return firing.schedule if firing else None


def score_histograms(*, dataset: Dataset) -> list[tuple[str, Job, dict]]:
    """``(metric, job, histogram)`` for each metric with stored scores on the corpus (newest job per metric)."""
    found = []
    for metric, job in sorted(dataset_score_jobs(dataset=dataset).items()):
        data = score_histogram(dataset=dataset, job=job, metric=metric)
        if data:
            found.append((metric, job, data))
    return found


def score_histogram(*, dataset: Dataset, job: Job, metric: str) -> dict | None:
    """Histogram of one metric's per-document scores, split into kept and dropped documents.

    Reads only the ``score``, ``kept`` and ``reason`` columns of the shards' score files;
    cached per (job, metric), since a succeeded job's scores never change.
    """
    key = f"console:scores:{job.pk}:{metric}:{HISTOGRAM_BINS}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    store = tenant_storage(dataset.tenant_id)
    scores, kept, reasons = [], [], Counter()
    for index in range(dataset.shard_count):
        name = Keys.scores(job.pk, metric, index)
        if not store.exists(name):
            continue
        table = read_stored(store, name, ["score", "kept", "reason"])
        scores.append(table.column("score").to_numpy(zero_copy_only=False).astype(np.float64))
        kept.append(table.column("kept").to_numpy(zero_copy_only=False).astype(bool))
        reasons.update(table.column("reason").to_pylist())
    if not scores:
        return None
    score, keep = np.concatenate(scores), np.concatenate(kept)
    finite = np.isfinite(score)
    if not finite.any():
        return None
    low, high = float(score[finite].min()), float(score[finite].max())
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    kept_counts, _ = np.histogram(score[finite & keep], bins=edges)
    dropped_counts, _ = np.histogram(score[finite & ~keep], bins=edges)
    result = {
        "metric": metric, "job": str(job.pk), "edges": edges.tolist(), "kept": kept_counts.tolist(),
        "dropped": dropped_counts.tolist(), "documents": int(score.size), "kept_total": int(keep.sum()),
        "non_finite": int((~finite).sum()), "reasons": reasons.most_common(),
        "mean": float(score[finite].mean()), "median": float(np.median(score[finite])),
    }
    cache.set(key, result, 24 * 3600)
    return result


def recent_mixtures(*, tenant: Tenant, limit: int = 5) -> list[Mixture]:
    return list(Mixture.objects.for_tenant(tenant).select_related("corpus").order_by("-created_at")[:limit])


def mixtures_list(*, tenant: Tenant, corpus: str = "") -> QuerySet[Mixture]:
    mixtures = Mixture.objects.for_tenant(tenant).select_related("corpus").order_by("-created_at")
    if not corpus:
        return mixtures
    corpus = _query_value(corpus, is_id=True)
    return mixtures.filter(corpus_id=corpus) if corpus else mixtures.none()


def performance_model_mixtures(*, model: PerformanceModel, limit: int = 20) -> list[Mixture]:
    """The newest mixtures computed with the model."""
    return list(Mixture.objects.for_tenant(model.tenant_id).filter(performance_model=model)
                .order_by("-created_at")[:limit])


def performance_models_list(*, tenant: Tenant) -> QuerySet[PerformanceModel]:
    return PerformanceModel.objects.for_tenant(tenant).select_related("corpus").order_by("-created_at")


def pilot_run_groups(*, tenant: Tenant, corpus: str = "", metric: str = "") -> list[dict]:
    """Pilot runs grouped by (corpus, metric), each group's runs ordered by mixture and size."""
    runs = PilotRun.objects.for_tenant(tenant).select_related("corpus").order_by("corpus__name", "metric", "size")
    if corpus:
        corpus = _query_value(corpus, is_id=True)
        runs = runs.filter(corpus_id=corpus) if corpus else runs.none()
    if metric:
        metric = _query_value(metric)
        runs = runs.filter(metric=metric) if metric is not None else runs.none()
    groups: dict[tuple, dict] = {}
    for run in runs[:5000]:
        group = groups.setdefault((run.corpus_id, run.metric), {"corpus": run.corpus, "metric": run.metric,
                                                                 "runs": []})
        group["runs"].append(run)
    return list(groups.values())


def mixture_key(weights: dict) -> str:
    """A short, stable label for a mixture: its pools by weight, e.g. ``web 0.6 · news 0.4``."""
    items = sorted(((k, float(v)) for k, v in (weights or {}).items() if float(v) > 0), key=lambda kv: (-kv[1], kv[0]))
    return " · ".join(f"{k} {v:.2g}" for k, v in items) or "(empty)"


def finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def contamination_overview(*, dataset: Dataset, examples: int = 10) -> dict | None:
    """The newest decontamination of a corpus for its page: the job, documents flagged per benchmark
    and kind, and the first ``examples`` matches in corpus order; None when no job decontaminated it."""
    job, rows = dataset_contamination(dataset=dataset)
    if job is None:
        return None
    names = dict(Dataset.objects.for_tenant(dataset.tenant_id).filter(
        pk__in=rows.values("benchmark_id")).values_list("pk", "name"))
    counts = [{"benchmark": names.get(row["benchmark_id"], str(row["benchmark_id"])), "kind": row["kind"],
               "documents": row["documents"]}
              for row in rows.values("benchmark_id", "kind").annotate(documents=Count("id")).order_by("benchmark_id",
                                                                                                        "kind")]
    return {"job": job, "counts": counts, "documents": rows.values("position").distinct().count(),
            "examples": list(rows.select_related("benchmark").order_by("position", "id")[:examples])}


def job_pilot_runs(*, job: Job) -> tuple[list[dict], dict[int, float], str | None]:
    """The tiny-LM pilot runs a job trained (its ``pilots`` units that hold a ``run``), in design order,
    each run's value as the job's fit fitted it (by run index; empty without a fit) and the fitted law."""
    outputs = JobUnit.objects.for_tenant(job.tenant_id).filter(job=job, stage="pilots").order_by("index")
    runs = pilot_runs(list(outputs.values_list("output", flat=True)))
    fit = JobUnit.objects.for_tenant(job.tenant_id).filter(job=job, stage="fit", index=0).first()
    fitted = {}
    if runs and fit is not None:  # the fit's observations are the pilots' in unit order
        fitted = {run["index"]: o["fitted"] for run, o in zip(runs, fit.output["model"]["observations"])}
    return runs, fitted, fit.output["law"] if fit is not None else None
