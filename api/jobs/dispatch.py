"""Enqueueing job work on Celery (by task name, on the queue of the stage)."""
from __future__ import annotations

from celery import group

from api.core.queue import app

RUN_UNIT = "jobs.run_unit"


def enqueue_units(*, job_id: str, stage: str, indices: list[int], queue: str) -> None:
    group(app.signature(RUN_UNIT, args=(job_id, stage, index), queue=queue) for index in indices).apply_async()
