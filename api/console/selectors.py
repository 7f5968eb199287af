"""Reads the console pages need beyond the apps' own selectors (always for one tenant)."""
from __future__ import annotations

import logging
import math
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
from django.core.cache import cache
from django.db.models import Count, Q, QuerySet

from api.core.artifacts import artifact_store
from api.datasets.models import Dataset
from api.datasets.selectors import dataset_usage
from api.jobs.models import Job, JobUnit
from api.jobs.selectors import job_counts
from api.modeling.models import Mixture, PerformanceModel, PilotRun
from api.schedules.models import Schedule, ScheduleFiring
from api.tenancy.models import Tenant

logger = logging.getLogger(__name__)
HISTOGRAM_BINS = 30
#: Stages with more units than this show counts only, not one cell per unit.
UNIT_GRID_LIMIT = 400


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


def dataset_counts(*, tenant: Tenant) -> dict[str, int]:
    rows = Dataset.objects.for_tenant(tenant).values("kind").annotate(n=Count("id"))
    return {row["kind"]: row["n"] for row in rows}


def jobs_filtered(*, tenant: Tenant, status: str = "", kind: str = "", dataset: str = "") -> QuerySet[Job]:
    jobs = Job.objects.for_tenant(tenant).order_by("-created_at")
    if status:
        jobs = jobs.filter(status=status)
    if kind:
        jobs = jobs.filter(kind=kind)
    if dataset:
        jobs = jobs.filter(Q(params__corpus=dataset) | Q(params__benchmark=dataset))
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


def job_started_by(*, job: Job) -> Schedule | None:
    firing = (ScheduleFiring.objects.for_tenant(job.tenant_id).filter(job=job, outcome="created")
              .select_related("schedule").first())
    return firing.schedule if firing else None


def score_metrics(*, dataset: Dataset) -> list[tuple[str, Job]]:
    """``(metric, job)`` for each metric a succeeded job computed on the corpus, newest job per metric."""
    jobs = (Job.objects.for_tenant(dataset.tenant_id)
            .filter(status=Job.Status.SUCCEEDED, params__corpus=str(dataset.pk)).order_by("-finished_at")[:50])
    found: dict[str, Job] = {}
    for job in jobs:
        for metric in (job.result or {}).get("score_metrics", []):
            found.setdefault(metric, job)
    return sorted(found.items())


def score_histogram(*, dataset: Dataset, job: Job, metric: str) -> dict | None:
    """Histogram of one metric's per-document scores, split into kept and dropped documents.

    Reads only the ``score``, ``kept`` and ``reason`` columns of the shards' score files;
    cached per (job, metric), since a succeeded job's scores never change.
    """
    key = f"console:scores:{job.pk}:{metric}:{HISTOGRAM_BINS}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    store = artifact_store()
    scores, kept, reasons = [], [], Counter()
    for index in range(dataset.shard_count):
        path = store.scores_path(dataset.tenant_id, job.pk, metric, index)
        if not path.is_file():
            continue
        table = pq.read_table(path, columns=["score", "kept", "reason"])
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
    return mixtures.filter(corpus_id=corpus) if corpus else mixtures


def performance_models_list(*, tenant: Tenant) -> QuerySet[PerformanceModel]:
    return PerformanceModel.objects.for_tenant(tenant).select_related("corpus").order_by("-created_at")


def pilot_run_groups(*, tenant: Tenant, corpus: str = "", metric: str = "") -> list[dict]:
    """Pilot runs grouped by (corpus, metric), each group's runs ordered by mixture and size."""
    runs = PilotRun.objects.for_tenant(tenant).select_related("corpus").order_by("corpus__name", "metric", "size")
    if corpus:
        runs = runs.filter(corpus_id=corpus)
    if metric:
        runs = runs.filter(metric=metric)
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
