"""The local executor: runs a plan of :mod:`curation.plans` in this process, resumably.

Each finished unit leaves a completion marker holding its output
(``jobs/<run>/units/<stage>-<index>.json`` in the run's storage), written after the
unit's artifacts; a rerun of the same plan skips every unit that has one, so a process
killed at any point redoes at most the units it was running. One progress bar per
stage counts its units, with an ETA; a long single unit reports its inner progress.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Callable

from tqdm import tqdm

from curation.steps import Context, Stage, StoredModel
from curation.storage import Storage, key


class LocalExecutor:
    """Run plans for ``run_id`` over ``storage``; ``pilot_runs`` and ``model`` as in :class:`Context`."""

    def __init__(self, storage: Storage, run_id: str, *,
                 pilot_runs: Callable[[str], tuple[bool, list[dict]]] | None = None,
                 model: Callable[[str], StoredModel] | None = None, progress: bool = True) -> None:
        self.storage, self.run_id, self.show = storage, run_id, progress
        self.units_run = 0
        #: Seconds spent in each stage's units this run (0 for a stage resumed whole).
        self.seconds: dict[str, float] = {}
        self._bar: tqdm | None = None
        self.context = Context(storage=storage, run_id=run_id, outputs=self.outputs, progress=self._inner,
                               pilot_runs=pilot_runs, model=model)
        self._units: dict[str, int] = {}

    def _marker(self, stage: str, index: int) -> str:
        return key("jobs", self.run_id, "units", f"{stage}-{index:05d}.json")

    def outputs(self, stage: str) -> list[dict]:
        """The outputs of a finished stage's units, in unit order."""
        return [json.loads(self.storage.read_bytes(self._marker(stage, i))) for i in range(self._units[stage])]

    def _inner(self, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"unit {self._bar.n + 1}: {done:,}/{total:,}", refresh=True)

    def run(self, plan: list[Stage]) -> dict:
        """Run every stage's missing units in order; returns the last stage's output (the result)."""
        for stage in plan:
            self._units[stage.name] = stage.units
            with tqdm(total=stage.units, desc=stage.name, unit="unit", disable=not self.show, file=sys.stderr,
                      dynamic_ncols=True) as bar:
                self._bar = bar
                started = time.perf_counter()
                for index in range(stage.units):
                    marker = self._marker(stage.name, index)
                    if not self.storage.exists(marker):
                        output = stage.run(self.context, index)
                        self.storage.write_bytes(marker, json.dumps(output).encode())
                        self.units_run += 1
                    bar.update(1)
                self._bar = None
                self.seconds[stage.name] = round(time.perf_counter() - started, 3)
        return self.outputs(plan[-1].name)[0]
