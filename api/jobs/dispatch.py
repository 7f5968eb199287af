"""Enqueueing job work on Celery (by task name, on the queue of the job's kind)."""
from __future__ import annotations

from celery import group

from workers.celery import app

RUN_SHARD = "jobs.run_shard"
FINALIZE = "jobs.finalize"


def enqueue_shards(*, job_id: str, indices: list[int], queue: str) -> None:
    group(app.signature(RUN_SHARD, args=(job_id, index), queue=queue) for index in indices).apply_async()


def enqueue_finalize(*, job_id: str) -> None:
    app.send_task(FINALIZE, args=(job_id,), queue="cpu")
