"""The one decorator every job task goes through."""
from __future__ import annotations

import functools
import logging
import time

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from api.jobs import services
from workers.celery import app

logger = logging.getLogger("workers")


def job_task(name: str):
    """Register ``func(job_id, ...)`` as an idempotent, late-acked Celery task.

    Logs start and end with timings, applies the shard time limits from settings, and
    on any exception marks the job failed with a readable reason (the task itself then
    completes, so the message is acknowledged and not redelivered forever).
    """

    def decorate(func):
        @app.task(
            name=name,
            bind=True,
            acks_late=True,
            reject_on_worker_lost=True,
            soft_time_limit=settings.JOB_SHARD_SOFT_TIME_LIMIT,
            time_limit=settings.JOB_SHARD_TIME_LIMIT,
        )
        @functools.wraps(func)
        def task(self, job_id: str, *args):
            started = time.perf_counter()
            label = f"{name}[job={job_id} args={args}]"
            logger.info("%s started (delivery %s)", label, "redelivered" if (self.request.delivery_info or {}).get(
                "redelivered") else "first")
            try:
                outcome = func(job_id, *args)
            except SoftTimeLimitExceeded:
                reason = f"{name} {args} ran past the time limit of {settings.JOB_SHARD_SOFT_TIME_LIMIT} s"
                logger.error("%s: %s", label, reason)
                services.job_fail(job_id=job_id, reason=reason)
                return "failed"
            except Exception as exc:  # noqa: BLE001 - the job records why it failed
                logger.exception("%s failed", label)
                services.job_fail(job_id=job_id, reason=f"{name} {args}: {type(exc).__name__}: {exc}")
                return "failed"
            logger.info("%s finished in %.2f s: %s", label, time.perf_counter() - started, outcome)
            return outcome

        return task

    return decorate
