"""What a job will take before it runs, and how long a running one has left (reads only).

A job's estimate (``Job.estimate``, and the answer to ``POST /jobs/`` with ``dry_run``) is one
object: per stage of its plan the estimated seconds and their basis, and the total
(:func:`curation.executor.plan_estimate`). Throughputs come from this deployment's own finished
units: every JobUnit row keeps its seconds, its stage kind (the step it ran, named alike in every
plan) and its amount of work (documents of its shard or of the corpus, tokens of a tiny-LM run, or
1 for a step bounded by a sample: :data:`curation.executor.WORK_UNITS`). A stage's figure is the
median seconds per unit of work over the :data:`~curation.executor.RECENT_UNITS` most recent units
of its kind across the deployment (timings only, no tenant's data: ``basis: measured`` with how
many units), else the documented default of the kind (``basis: default``,
:data:`curation.executor.DEFAULT_SECONDS`). Tiny-LM pilots take their figure from the pilots
estimate of :mod:`api.jobs.kinds.tinylm` (``JobKind.estimate``: tokens per run at the throughput a
worker measured for that model config, ``basis: measured``, else a calibration run scaled by FLOPs,
``basis: calibration``), whose fields (``runs``, ``tokens``, ``per_run``, ``tokens_per_second``,
``throughput_source``...) the estimate carries.

Parallelism: the estimate is for one worker slot per queue (:data:`~curation.executor.WORKER_SLOTS`):
a stage's units are counted one after another, so a queue served by N worker processes finishes a
stage of many units up to N times sooner. Cached work is not foreseen: shards embedded before are
reused at once, so a rerun takes less than its estimate.

A running job's ``eta_seconds`` (:func:`job_eta`): the units of its current and later stages not
done yet, at the rate its own finished units of each stage measured, else at its estimate's.
"""
from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Count, Q, Sum

from api.jobs.kinds import KINDS
from api.jobs.kinds.base import dataset_of
from api.jobs.kinds.embed import embedder_spec
from api.jobs.models import Job, JobUnit
from api.modeling.models import PerformanceModel
from curation.executor import (RECENT_UNITS, TOKENS, WORKER_SLOTS, StageWork, pilots_source, plan_estimate,
                               plan_work, work_unit_of)
from curation.steps import DatasetRef, Stage

#: The fields of the tiny-LM pilots estimate (api.jobs.kinds.tinylm) the job's estimate carries.
TINY_LM_FIELDS = ("runs", "parameters", "tokens", "tokens_per_second", "device", "throughput_source", "per_run")


def _datasets(tenant_id, params: dict) -> list[DatasetRef]:
    """What the plan's embedding stage embeds, the corpus (or an embed job's dataset) first; a mixture
    of a stored model counts its model's corpus."""
    primary = params.get("corpus") or params.get("benchmark")
    if primary is None and params.get("performance_model"):
        primary = (PerformanceModel.objects.for_tenant(tenant_id).filter(pk=params["performance_model"])
                   .values_list("corpus_id", flat=True).first())
    if primary is None:
        return []
    return [dataset_of(tenant_id, primary), *(dataset_of(tenant_id, b) for b in params.get("benchmarks") or ())]


def _work(tenant_id, kind: str, params: dict, plan: Sequence[Stage], run_tokens=None) -> list[StageWork]:
    embedder = embedder_spec(params["embedder"]) if params.get("embedder") else None
    pilots = "tiny_lm" if kind == "pilots" else pilots_source(metric=params.get("metric"),
                                                              pilot_model=params.get("pilot_model"))
    return plan_work(plan, job_kind=kind, datasets=_datasets(tenant_id, params), embedder=embedder, pilots=pilots,
                     run_tokens=run_tokens)


def deployment_samples(stage_kind: str) -> list[tuple[float, float]]:
    """``(seconds, work)`` of the most recent finished units of ``stage_kind`` in the whole deployment:
    timings, never a tenant's data (a deliberately unscoped read)."""
    rows = (JobUnit.unscoped_objects.filter(stage_kind=stage_kind, work__gt=0).order_by("-finished_at")
            .values_list("seconds", "work")[:RECENT_UNITS])
    return list(rows)


def job_estimate(*, tenant, kind: str, params: dict, plan: Sequence[Stage]) -> dict:
    """The estimate of a job of ``kind`` with (normalised) ``params`` and its ``plan``: the module
    docstring's. Raises what the kind's own estimate raises (a quota the job would exceed)."""
    pilots = KINDS[kind].estimate(tenant=tenant, params=params)
    run_tokens = [run["tokens"] for run in pilots["per_run"]] if pilots else None
    estimate = plan_estimate(_work(tenant.pk, kind, params, plan, run_tokens), deployment_samples)
    if pilots:
        for stage in estimate["stages"]:
            if stage["kind"] == "pilots:tiny_lm" and stage["work_unit"] == TOKENS:
                measured = pilots["throughput_source"].startswith("measured")
                stage.update(seconds=round(pilots["seconds"], 3), seconds_per_work=1 / pilots["tokens_per_second"],
                             basis="measured" if measured else "calibration", measured_units=1 if measured else 0)
        estimate["seconds"] = round(sum(s["seconds"] for s in estimate["stages"]), 3)
        estimate.update({key: pilots[key] for key in TINY_LM_FIELDS})
    return estimate


def unit_work(*, job: Job, plan: Sequence[Stage], stage: str, index: int, output: dict) -> tuple[str, float | None]:
    """What a finished unit is recorded with: its stage kind and its amount of work (None when it did
    none, ``cached``, or its plan could not count it in its kind's unit). A tiny-LM run counts the
    tokens it trained."""
    work = next(s for s in _work(job.tenant_id, job.kind, job.params, plan) if s.name == stage)
    if work.kind == "pilots:tiny_lm" and isinstance(output.get("run"), dict):
        return work.kind, float(output["run"]["tokens"])
    if output.get("cached") or work.work_unit != work_unit_of(work.kind):
        return work.kind, None
    return work.kind, work.per_unit[index]


def job_eta(*, job: Job) -> float | None:
    """Seconds a job has left: 0 once it succeeded, None once it failed or was cancelled; else the
    units not done of its current and later stages, each stage at the seconds per unit of work its
    own finished units took (else its estimate's), one worker slot per queue. None when a stage
    left has neither (a job created before estimates)."""
    if job.status == Job.Status.SUCCEEDED:
        return 0.0
    if job.status not in Job.ACTIVE:
        return None
    figures = {s["name"]: s for s in (job.estimate or {}).get("stages", [])}
    rows = (JobUnit.objects.for_tenant(job.tenant_id).filter(job=job).values("stage")
            .annotate(n=Count("id"), seconds=Sum("seconds", filter=Q(work__gt=0)), work=Sum("work")))
    done = {row["stage"]: row for row in rows}
    names = [s["name"] for s in job.plan]
    start = names.index(job.stage) if job.stage in names else len(names)
    eta = 0.0
    for stage in job.plan[start:]:
        row = done.get(stage["name"], {"n": 0, "seconds": None, "work": None})
        left = stage["units"] - row["n"]
        if left <= 0:
            continue
        figure = figures.get(stage["name"])
        if figure is None:
            return None
        rate = row["seconds"] / row["work"] if row["work"] else figure["seconds_per_work"]
        eta += rate * figure["work"] * left / stage["units"] / max(min(WORKER_SLOTS, left), 1)
    return round(eta, 3)
