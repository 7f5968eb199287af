"""Schedules on the real thing: Celery beat (DatabaseScheduler) and real workers on a
real Redis. A 2-second interval schedule fires, creates normal jobs that complete,
never starts a job while its previous one is still queued or running (those firings
are recorded as skipped), and stops creating jobs once paused."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from api.datasets.services import dataset_create
from api.jobs.models import Job
from api.schedules.models import ScheduleFiring
from api.schedules.services import schedule_create, schedule_update
from api.settings import BASE_DIR
from curation.demo_data import demo_corpus
from curation.ingest import FieldMapping
from tests.api.helpers import jsonl
from tests.workers.test_worker_integration import _database_url, broker, stop_process  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def processes(broker, artifact_root, tmp_path):  # noqa: F811 - the imported fixture
    started: list[tuple[subprocess.Popen, Path]] = []
    # GPU_WORKERS: the deployment this test plays runs a gpu worker, so embedding goes to `gpu`
    env = {**os.environ, "REDIS_URL": broker, "DATABASE_URL": _database_url(), "ARTIFACT_ROOT": str(artifact_root),
           "DJANGO_SETTINGS_MODULE": "api.settings", "HF_HUB_OFFLINE": "1", "GPU_WORKERS": "true"}

    def start(name: str, *arguments: str) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen([sys.executable, "-m", "celery", "-A", "workers", *arguments], env=env,
                                   cwd=BASE_DIR, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                                   start_new_session=True)
        started.append((process, log))
        return process

    yield start
    for process, log in started:
        stop_process(process)
        print(f"--- {log.name} ---\n" + log.read_text(errors="replace")[-3000:])


def _wait(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _outcomes(schedule) -> dict[str, int]:
    rows = ScheduleFiring.unscoped_objects.filter(schedule=schedule).values_list("outcome", flat=True)
    return {outcome: list(rows).count(outcome) for outcome in ScheduleFiring.Outcome.values}


def test_interval_schedule_fires_on_beat_without_overlap_and_respects_pause(
        transactional_db, make_tenant, processes, settings):
    settings.SCHEDULE_MIN_INTERVAL_SECONDS = 1
    settings.GPU_WORKERS = True
    tenant, _ = make_tenant("scheduled")
    corpus = dataset_create(tenant=tenant, kind="corpus", upload=SimpleUploadedFile("c.jsonl",
                            jsonl(demo_corpus(24, seed=5))), mapping=FieldMapping(), shard_size=12)
    # Only a `cpu` worker at first: firings run, but the job's embedding stage (queue `gpu`)
    # cannot start, so the job stays queued and every later firing must be skipped.
    processes("worker-cpu", "worker", "-Q", "cpu", "--concurrency", "1", "--hostname", "cpu@%h")
    processes("beat", "beat", "--max-interval", "1", "--loglevel", "INFO", "--pidfile=")
    schedule = schedule_create(tenant=tenant, interval_seconds=2, job_kind="embed", name="every 2 s",
                               job_params={"corpus": str(corpus.pk), "embedder": "hashing"})

    _wait(lambda: _outcomes(schedule)["skipped"] >= 2, 120, "a job and two skipped firings")
    outcomes = _outcomes(schedule)
    jobs = list(Job.unscoped_objects.filter(tenant=tenant))
    assert outcomes["created"] == 1 and len(jobs) == 1 and jobs[0].status == "queued", (outcomes, jobs)
    skipped = ScheduleFiring.unscoped_objects.filter(schedule=schedule, outcome="skipped").first()
    assert skipped.job_id == jobs[0].pk and "still queued" in skipped.reason

    # A `gpu` worker lets the job finish; later firings then start new jobs, one at a time.
    processes("worker-gpu", "worker", "-Q", "gpu", "--concurrency", "1", "--hostname", "gpu@%h")
    _wait(lambda: Job.unscoped_objects.filter(tenant=tenant, status="succeeded").count() >= 3, 150,
          "three scheduled jobs to succeed")

    schedule_update(schedule=schedule, enabled=False)
    paused_at = timezone.now()
    _wait(lambda: not Job.unscoped_objects.filter(tenant=tenant, status__in=Job.ACTIVE).exists(), 60,
          "the last job to finish")
    created = Job.unscoped_objects.filter(tenant=tenant).count()
    time.sleep(6)  # three intervals, and beat re-reads the schedule every second
    assert Job.unscoped_objects.filter(tenant=tenant).count() == created, "a paused schedule started a job"
    assert not ScheduleFiring.unscoped_objects.filter(schedule=schedule, outcome="created",
                                                      fired_at__gt=paused_at).exists()

    jobs = list(Job.unscoped_objects.filter(tenant=tenant).order_by("created_at"))
    assert all(job.status == "succeeded" and job.kind == "embed" for job in jobs), [j.status for j in jobs]
    assert all(job.params == {"corpus": str(corpus.pk), "embedder": "hashing"} for job in jobs)
    for previous, following in zip(jobs, jobs[1:]):
        assert following.created_at >= previous.finished_at, "a firing started a job while the last one ran"
    outcomes = _outcomes(schedule)
    assert outcomes["created"] == len(jobs) >= 3 and outcomes["failed"] == 0, outcomes
    schedule.refresh_from_db()
    assert schedule.last_job_id == jobs[-1].pk and schedule.last_fired_at is not None
