"""The one decorator every task goes through."""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from celery.exceptions import Reject, SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from kombu.exceptions import OperationalError as BrokerError

from api.core.queue import app
from curation.storage import StorageUnavailable

logger = logging.getLogger("workers")

#: Errors that say a service is unreachable (the database, the broker, the object store after
#: its client's own retries), not that the unit is wrong: the unit is retried, and no failure
#: is recorded for it.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, BrokerError, StorageUnavailable)
#: Attempts at recording a failure in the database before the message is requeued instead.
FAILURE_RECORD_ATTEMPTS = 4


def retry_delay(retries: int) -> float:
    """Seconds before retry ``retries + 1``: 1, 2, 4, ... up to ``JOB_UNIT_RETRY_DELAY_MAX``."""
    return float(min(2 ** retries, settings.JOB_UNIT_RETRY_DELAY_MAX))


def _retry_later(task, exc: Exception, label: str):
    """Send the task again after a backoff and acknowledge this delivery (Celery retry). If
    the retry cannot be sent (the broker is unreachable too), requeue this very message
    instead of dropping it: rejected, or, with no broker to reject to, left unacknowledged
    until the visibility timeout delivers it again."""
    delay = retry_delay(task.request.retries)
    logger.warning("%s: %s: %s; retry %d of %d in %.0f s", label, type(exc).__name__, exc,
                   task.request.retries + 1, settings.JOB_UNIT_RETRIES, delay)
    try:
        raise task.retry(exc=exc, countdown=delay, max_retries=settings.JOB_UNIT_RETRIES)
    except Reject as unsent:
        raise Reject(unsent.reason, requeue=True) from exc


def _record_failure(on_failure: Callable[[str, str], None], subject_id: str, reason: str, label: str) -> None:
    """Record the failure, retrying while the database is unreachable; if it never answers,
    requeue the message (raise :class:`Reject`): an outcome that was not recorded is never
    acknowledged, so the unit runs again and fails (or succeeds) on a later delivery."""
    for attempt in range(FAILURE_RECORD_ATTEMPTS):
        try:
            if attempt:
                close_old_connections()  # drop the connection the outage broke
            on_failure(subject_id, reason)
            return
        except TRANSIENT_ERRORS as exc:
            delay = retry_delay(attempt)
            logger.warning("%s: recording the failure failed (%s: %s), attempt %d of %d", label,
                           type(exc).__name__, exc, attempt + 1, FAILURE_RECORD_ATTEMPTS)
            error = exc
        except SoftTimeLimitExceeded as exc:  # out of time while recording: let a later delivery do it
            error = exc
            break
        if attempt + 1 < FAILURE_RECORD_ATTEMPTS:
            time.sleep(delay)
    logger.error("%s: the failure could not be recorded; requeueing the message", label)
    raise Reject(error, requeue=True)


def task(name: str, *, subject: str, on_failure: Callable[[str, str], None] | None = None):
    """Register ``func(subject_id, ...)`` as an idempotent, late-acked Celery task.

    Logs start and end with timings (``subject`` names the id in the log, e.g. ``job``) and
    applies the shard time limits from settings. A transient error (:data:`TRANSIENT_ERRORS`:
    the database or the broker unreachable) retries the task with backoff
    (:func:`retry_delay`, ``JOB_UNIT_RETRIES`` times); any other exception, or a transient
    one past the last retry, is logged and ``on_failure(subject_id, reason)`` records it with
    a readable reason, after which the task completes and its message is acknowledged. If
    the failure cannot be recorded either, the message is requeued, never acknowledged.
    """

    def decorate(func):
        @app.task(
            name=name,
            bind=True,
            acks_late=True,
            reject_on_worker_lost=True,
            soft_time_limit=settings.JOB_SHARD_SOFT_TIME_LIMIT,
            time_limit=settings.JOB_SHARD_TIME_LIMIT,
            max_retries=settings.JOB_UNIT_RETRIES,
        )
        @functools.wraps(func)
        def run(self, subject_id: str, *args):
            started = time.perf_counter()
            label = f"{name}[{subject}={subject_id} args={args}]"
            delivery = "redelivered" if (self.request.delivery_info or {}).get("redelivered") else "first"
            logger.info("%s started (delivery %s%s)", label, delivery,
                        f", retry {self.request.retries}" if self.request.retries else "")
            try:
                outcome = func(subject_id, *args)
            except SoftTimeLimitExceeded:
                reason = f"{name} {args} ran past the time limit of {settings.JOB_SHARD_SOFT_TIME_LIMIT} s"
                logger.error("%s: %s", label, reason)
            except TRANSIENT_ERRORS as exc:
                if self.request.retries < settings.JOB_UNIT_RETRIES:
                    _retry_later(self, exc, label)
                logger.exception("%s failed after %d retries", label, self.request.retries)
                reason = f"{name} {args}: {type(exc).__name__} after {self.request.retries} retries: {exc}"
            except Exception as exc:  # noqa: BLE001 - on_failure records why it failed
                logger.exception("%s failed", label)
                reason = f"{name} {args}: {type(exc).__name__}: {exc}"
            else:
                logger.info("%s finished in %.2f s: %s", label, time.perf_counter() - started, outcome)
                return outcome
            if on_failure is not None:
                _record_failure(on_failure, subject_id, reason, label)
            return "failed"

        return run

    return decorate
