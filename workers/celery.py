"""Worker-side hooks on the one Celery app (configured in :mod:`api.core.queue`)."""
from __future__ import annotations

import os

from celery.signals import worker_process_init

from api.core.queue import app

__all__ = ["app"]

# What a task sends (the next stage's units, a retry) waits out a broker restart: publishing
# is retried for about 25 s (0.5, 1.5, 2.5, 3, 3, ... s apart) before the task sees the error
# (and is then retried itself, see workers/decorators.py). The web process keeps Celery's
# short default, so a request never hangs on a broker that is down.
app.conf.task_publish_retry_policy = {"max_retries": 10, "interval_start": 0.5, "interval_step": 1,
                                      "interval_max": 3}
# A worker whose broker is away keeps trying to reconnect however long the outage lasts
# (Celery's default gives up, and the worker exits, after 100 attempts).
app.conf.broker_connection_max_retries = None


@worker_process_init.connect
def _share_cores(**kwargs) -> None:
    """Give each worker process its share of the cores, so torch threads don't oversubscribe."""
    import torch

    concurrency = app.conf.worker_concurrency or os.cpu_count() or 1
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // concurrency))
