"""The one decorator every task goes through."""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from api.core.queue import app

logger = logging.getLogger("workers")


def task(name: str, *, subject: str, on_failure: Callable[[str, str], None] | None = None):
    """Register ``func(subject_id, ...)`` as an idempotent, late-acked Celery task.

    Logs start and end with timings (``subject`` names the id in the log, e.g. ``job``),
    applies the shard time limits from settings, and on any exception logs it and calls
    ``on_failure(subject_id, reason)`` with a readable reason (the task itself then
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
        def run(self, subject_id: str, *args):
            started = time.perf_counter()
            label = f"{name}[{subject}={subject_id} args={args}]"
            logger.info("%s started (delivery %s)", label, "redelivered" if (self.request.delivery_info or {}).get(
                "redelivered") else "first")
            try:
                outcome = func(subject_id, *args)
            except SoftTimeLimitExceeded:
                reason = f"{name} {args} ran past the time limit of {settings.JOB_SHARD_SOFT_TIME_LIMIT} s"
                logger.error("%s: %s", label, reason)
            except Exception as exc:  # noqa: BLE001 - on_failure records why it failed
                logger.exception("%s failed", label)
                reason = f"{name} {args}: {type(exc).__name__}: {exc}"
            else:
                logger.info("%s finished in %.2f s: %s", label, time.perf_counter() - started, outcome)
                return outcome
            if on_failure is not None:
                on_failure(subject_id, reason)
            return "failed"

        return run

    return decorate
