"""Worker-side hooks on the one Celery app (configured in :mod:`api.core.queue`)."""
from __future__ import annotations

import os

from celery.signals import worker_process_init

from api.core.queue import app

__all__ = ["app"]


@worker_process_init.connect
def _share_cores(**kwargs) -> None:
    """Give each worker process its share of the cores, so torch threads don't oversubscribe."""
    import torch

    concurrency = app.conf.worker_concurrency or os.cpu_count() or 1
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // concurrency))
