"""The Celery app the fault tests run their workers with: the real app and tasks
(``celery -A tests.workers.fault_app worker``), plus one hook, so that a fault can be
injected while a unit is in flight.

Before each job unit the worker child touches a marker file in ``$FAULT_MARK_DIR``
(``<stage>-<index>-<pid>-<ns>``) and then sleeps as ``$FAULT_UNIT_SECONDS`` says: the
test sees exactly when a unit has started and has that long to break something under it.
``FAULT_UNIT_SECONDS="0.3,embedding-2=8"``: every unit lingers 0.3 s, unit 2 of
``embedding`` 8 s (the first time it runs; a redelivery lingers 0.3 s), or until the test
creates ``release-embedding-2`` in ``$FAULT_MARK_DIR``, whichever comes first: a test that
can tell when its fault is over need not wait out the whole bound.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from celery.signals import task_prerun

from api.jobs.dispatch import RUN_UNIT
from workers import app

__all__ = ["app"]


@task_prerun.connect
def _announce_and_linger(task=None, args=None, **kwargs) -> None:
    if task is None or task.name != RUN_UNIT:
        return
    _, stage, index = args
    unit = f"{stage}-{index}"
    marks = Path(os.environ["FAULT_MARK_DIR"])
    first = not any(marks.glob(f"{unit}-*"))
    (marks / f"{unit}-{os.getpid()}-{time.time_ns()}").touch()
    default, *special = os.environ.get("FAULT_UNIT_SECONDS", "0").split(",")
    lingers = dict(item.split("=") for item in special)
    if not (first and unit in lingers):
        time.sleep(float(default))
        return
    deadline = time.monotonic() + float(lingers[unit])
    while time.monotonic() < deadline and not (marks / f"release-{unit}").exists():
        time.sleep(0.05)
