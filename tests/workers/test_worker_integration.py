"""A real Celery worker process on a real Redis runs embed jobs; a worker killed with
SIGKILL mid-job is replaced and the job completes with every shard done exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from api.datasets.services import dataset_create
from api.jobs import services
from api.jobs.models import Job, JobUnit
from api.settings import BASE_DIR, celery_broker_url
from curation.demo_data import demo_corpus
from curation.ingest import FieldMapping
from tests.api.helpers import jsonl

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _database_url() -> str:
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{settings['NAME']}"
    auth = settings["USER"] + (f":{settings['PASSWORD']}" if settings["PASSWORD"] else "")
    return f"postgres://{auth}@{settings['HOST']}:{settings['PORT'] or 5432}/{settings['NAME']}"


class Worker:
    def __init__(self, redis_url: str, artifact_root: Path, log: Path):
        env = {**os.environ, "REDIS_URL": redis_url, "DATABASE_URL": _database_url(),
               "ARTIFACT_ROOT": str(artifact_root), "CELERY_VISIBILITY_TIMEOUT": "5",
               "CELERY_UNACKED_RESTORE_INTERVAL": "1",
               "DJANGO_SETTINGS_MODULE": "api.settings", "HF_HUB_OFFLINE": "1"}
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers", "worker", "-Q", "cpu,gpu", "--concurrency", "1",
             "--loglevel", "INFO", "--hostname", f"test-{log.stem}@%h"],
            env=env, cwd=BASE_DIR, stdout=open(log, "wb"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=60)


def stop_process(process: subprocess.Popen) -> None:
    """Warm shutdown first, so the process closes its database connections."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@pytest.fixture
def broker(redis_url):
    from workers.celery import app

    previous = app.conf.broker_url
    app.conf.broker_url = celery_broker_url(redis_url)
    app._pool = None
    yield redis_url
    app.conf.broker_url = previous
    app._pool = None


@pytest.fixture
def workers(broker, artifact_root, tmp_path):
    started: list[Worker] = []

    def start() -> Worker:
        worker = Worker(broker, artifact_root, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
        print(f"--- {worker.log.name} ---\n" + worker.log.read_text(errors="replace")[-4000:])


def _wait(job_id, until, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = Job.unscoped_objects.get(pk=job_id)
        if until(job):
            return job
        time.sleep(0.2)
    raise AssertionError(f"timed out; job is {job.status}/{job.stage} {job.shards_done}/{job.shards_total} "
                         f"error={job.error!r}")


def _corpus(tenant, records, shard_size):
    return dataset_create(tenant=tenant, kind="corpus", upload=SimpleUploadedFile("c.jsonl", jsonl(records)),
                          mapping=FieldMapping(), shard_size=shard_size)


def test_worker_runs_jobs_and_survives_sigkill_mid_job(transactional_db, make_tenant, workers, artifact_root):
    tenant, _ = make_tenant("integration")
    first = workers()

    small = _corpus(tenant, demo_corpus(120, seed=3), shard_size=20)
    job = services.job_create(tenant=tenant, kind="embed", params={"corpus": str(small.pk), "embedder": "hashing"})
    job = _wait(job.pk, lambda j: j.status not in Job.ACTIVE, timeout=180)
    assert job.status == "succeeded", job.error
    assert job.shards_done == 7 and job.result["documents"] == 120

    big = _corpus(tenant, demo_corpus(960, seed=4), shard_size=120)
    job = services.job_create(tenant=tenant, kind="embed", params={"corpus": str(big.pk)})
    _wait(job.pk, lambda j: j.shards_done >= 2, timeout=240)
    first.kill(signal.SIGKILL)
    killed_at = Job.unscoped_objects.get(pk=job.pk)
    assert killed_at.status == "running" and killed_at.shards_done < 8, "the job finished before the kill"
    assert killed_at.stage == "embedding"

    workers()
    job = _wait(job.pk, lambda j: j.status not in Job.ACTIVE, timeout=300)
    assert job.status == "succeeded", job.error
    indices = list(JobUnit.unscoped_objects.filter(job=job, stage="embedding").values_list("index", flat=True))
    assert sorted(indices) == list(range(8)), "every shard recorded exactly once"
    key = job.result["embedder_key"]
    files = sorted((artifact_root).rglob(f"{big.pk}/embeddings/{key}/*"))
    assert [f.name for f in files if f.suffix == ".npy"] == [f"shard-{i:05d}.npy" for i in range(8)]
    assert not [f for f in artifact_root.rglob("*.tmp")], "no temp files left behind"
    total = sum(np.load(f).shape[0] for f in files if f.suffix == ".npy")
    assert total == 960 and job.result["dim"] == 384
