"""Enqueueing job work on Celery (by task name, on the queue of the stage)."""
from __future__ import annotations

import logging

from celery import group
from kombu.exceptions import OperationalError

from api.core.errors import ApplicationError
from api.core.queue import app

logger = logging.getLogger(__name__)

RUN_UNIT = "jobs.run_unit"
#: What a 503 tells the caller to wait before trying again while the broker is unreachable.
QUEUE_RETRY_AFTER_SECONDS = 30


def enqueue_units(*, job_id: str, stage: str, indices: list[int], queue: str) -> None:
    """Send one ``jobs.run_unit`` message per unit; a 503 :class:`ApplicationError`
    (``queue_unavailable``) if the broker cannot be reached (after Celery's publish retries)."""
    try:
        group(app.signature(RUN_UNIT, args=(job_id, stage, index), queue=queue) for index in indices).apply_async()
    except OperationalError as exc:
        logger.warning("could not enqueue stage %s of job %s: the broker is unreachable (%s)", stage, job_id, exc)
        raise ApplicationError("queue_unavailable", "the job queue (the broker) is unreachable", status_code=503,
                               retry_after=QUEUE_RETRY_AFTER_SECONDS) from exc
