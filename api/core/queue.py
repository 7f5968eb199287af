"""The one Celery app: Redis broker, late acks, tasks sent by name on queues ``cpu`` and ``gpu``.

The web process enqueues through it; ``celery -A workers`` registers the tasks on it
(``imports`` names their module, loaded by the worker only) and runs them.
"""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "api.settings")

app = Celery("curation")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    task_default_queue="cpu",
    worker_prefetch_multiplier=1,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    imports=["workers.tasks"],
    result_expires=None,  # no result backend to clean, so beat needs no backend_cleanup entry
)


@app.on_after_configure.connect
def _transport_options(sender: Celery, **kwargs) -> None:
    from django.conf import settings

    # A message whose worker died unacknowledged is redelivered once it is older than the
    # visibility timeout, found by a sweep every `unacked_restore_interval` seconds.
    sender.conf.broker_transport_options = {
        "visibility_timeout": settings.CELERY_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": settings.CELERY_UNACKED_RESTORE_INTERVAL,
        "unacked_restore_throttle": 1,
    }
