"""The local executor: runs a plan of :mod:`curation.plans` in this process, resumably.

Each finished unit leaves a completion marker holding its output
(``jobs/<run>/units/<stage>-<index>.json`` in the run's storage), written after the
unit's artifacts; a rerun of the same plan skips every unit that has one, so a process
killed at any point redoes at most the units it was running. One progress bar per
stage counts its units, with an ETA; a long single unit reports its inner progress.
"""
from __future__ import annotations

import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from curation.steps import Context, DatasetRef, Stage, StoredModel
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
        #: Seconds of each unit this run ran (not those resumed), by stage name and unit index.
        self.unit_seconds: dict[str, dict[int, float]] = {}

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
                        unit_started = time.perf_counter()
                        output = stage.run(self.context, index)
                        self.unit_seconds.setdefault(stage.name, {})[index] = time.perf_counter() - unit_started
                        self.storage.write_bytes(marker, json.dumps(output).encode())
                        self.units_run += 1
                    bar.update(1)
                self._bar = None
                self.seconds[stage.name] = round(time.perf_counter() - started, 3)
        return self.outputs(plan[-1].name)[0]

    def record_timings(self, path, work: Sequence["StageWork"]) -> None:
        """Add the units this run ran to the timings file at ``path`` (``work``: the plan's
        :func:`plan_work`), the :data:`RECENT_UNITS` latest per stage kind; a unit whose output says
        ``cached`` did no work and is left out."""
        timings = recorded_timings(path)
        for stage in work:
            if stage.work_unit != work_unit_of(stage.kind):
                continue
            ran = self.unit_seconds.get(stage.name, {})
            outputs = self.outputs(stage.name) if ran else []
            samples = [[round(seconds, 6), stage.per_unit[index]] for index, seconds in sorted(ran.items())
                       if not outputs[index].get("cached")]
            if samples:
                timings[stage.kind] = (timings.get(stage.kind, []) + samples)[-RECENT_UNITS:]
        Path(path).write_text(json.dumps(timings))


# Estimates -----------------------------------------------------------------------------------
#
# A plan's estimate before it runs, shared by the service (``api/jobs/estimates.py``: timings of
# the deployment's JobUnit rows) and the CLI (``python -m curation curate --dry-run``: timings this
# executor recorded in ``--out``/timings.json). A unit's time is recorded per *stage kind* (the step
# it ran, named alike in every plan: :func:`stage_kind`) together with its amount of work (documents
# of its shard or of the corpus, tokens of a tiny-LM run, or 1 for a step whose time does not grow with
# the corpus: :data:`WORK_UNITS`), so that a rate measured on one corpus transfers to another. A stage's
# figure is the median seconds per unit of work over the most recent units of its kind
# (``basis: measured``, with how many units), else :data:`DEFAULT_SECONDS` (``basis: default``).

DOCUMENTS, TOKENS, UNITS = "documents", "tokens", "units"

#: How a unit's work is counted, by stage kind: per-shard steps count their shard's documents,
#: global steps over the corpus count its documents, tiny-LM pilots their run's tokens; the rest
#: (bounded samples: OT, proxy pilots, fit, summaries) count 1 a unit. A kind not named counts 1.
WORK_UNITS = {
    "embedding": DOCUMENTS, "contamination_scan": DOCUMENTS, "betr_classify": DOCUMENTS,
    "index": DOCUMENTS, "contamination": DOCUMENTS, "prune": DOCUMENTS, "betr_train": DOCUMENTS,
    "betr_select": DOCUMENTS, "mixture": DOCUMENTS, "pilots:tiny_lm": TOKENS,
    "prune_assign": DOCUMENTS, "prune_reassign": DOCUMENTS, "prune_dedup": DOCUMENTS, "index_add": DOCUMENTS,
}
#: Stage kinds with one unit per shard of the corpus (the rest of the documents-counted ones are
#: one unit over the whole corpus; embedding's units are the shards of every dataset it embeds).
PER_SHARD = ("contamination_scan", "betr_classify", "prune_assign", "prune_reassign", "index_add")

#: Seconds per unit of work (:data:`WORK_UNITS`) before any unit of the kind has run: the curate
#: benchmark of docs/BENCHMARKS.md (10,000 documents, hashing embedder, 2 CPUs: embedding 2.7 s,
#: prune 0.9 s, betr_train 0.8 s, betr_classify 0.2 s, OT 1.2 s, proxy pilots 1.7 s, mixture 0.1 s),
#: the fit with its law selection and backtests as a curate job took it here (8 s), MiniLM at 50
#: documents/s on a CPU, the n-gram scan at 20,000 documents/s and a tiny LM at 10,000 tokens/s; one
#: second for a unit of any other kind (or one whose work could not be counted in its kind's unit).
#: Rough by design: the first finished unit of a kind replaces its default.
DEFAULT_SECONDS = {
    "embedding:hashing": 2.7e-4, "embedding:minilm": 2e-2, "embedding:st": 2e-2,
    "index": 2e-5, "contamination_scan": 5e-5, "contamination": 2e-5, "prune": 9e-5,
    "betr_train": 8e-5, "betr_classify": 2e-5, "betr_select": 1e-5, "mixture": 1e-5,
    "ot": 1.2, "source_ot": 1.2, "pilots:bigram": 1.7, "pilots:pilot_runs": 0.2, "pilots:tiny_lm": 1e-4,
    "fit": 8.0, "embed_summary": 0.05, "pilots_summary": 0.05,
    # sharded prune (bench/bench_curate.py at 100,000 documents: k-means on the 50,000-row sample 25 s,
    # assignment 0.7 s and SemDeDup per cluster group 0.5 s for all shards)
    "prune_kmeans": 10.0, "prune_rekmeans": 10.0, "prune_assign": 7e-6, "prune_reassign": 7e-6, "prune_dedup": 5e-6,
}
DEFAULT_UNIT_SECONDS = 1.0
#: How many of a kind's most recent units its median is taken over.
RECENT_UNITS = 50
#: Worker slots an estimate assumes per queue: a stage's units run one after the other. With N
#: worker processes on a queue, a stage of many units finishes up to N times sooner.
WORKER_SLOTS = 1

#: (job kind, stage name) -> stage kind, where a plan names a step its own way or two steps alike.
_ALIASES = {("index", "build"): "index", ("prune", "select"): "prune", ("betr", "train"): "betr_train",
            ("betr", "classify"): "betr_classify", ("betr", "select"): "betr_select",
            ("embed", "summary"): "embed_summary", ("pilots", "summary"): "pilots_summary",
            ("ot", "distances"): "source_ot"}


def stage_kind(job_kind: str, stage: str, *, embedder: str | None = None, pilots: str = "bigram") -> str:
    """The step a stage runs, the same in every plan: ``embedding:<embedder family>`` (hashing,
    minilm or st), ``pilots:<who>`` (``bigram``, ``tiny_lm`` or ``pilot_runs``), else the stage's
    name (``select`` of a prune job is ``prune``, of a BETR job ``betr_select``).

    >>> stage_kind("betr", "classify"), stage_kind("curate", "embedding", embedder="hashing:64")
    ('betr_classify', 'embedding:hashing')
    """
    kind = _ALIASES.get((job_kind, stage), stage)
    if kind == "embedding":
        return f"embedding:{(embedder or 'minilm').partition(':')[0]}"
    return f"pilots:{pilots}" if kind == "pilots" else kind


def pilots_source(*, metric: str | None, pilot_model: str | None) -> str:
    """Who makes a plan's pilot observations: ``pilot_runs`` (the user's, of ``metric``), ``tiny_lm`` or ``bigram``."""
    return "pilot_runs" if metric else ("tiny_lm" if pilot_model == "tiny_lm" else "bigram")


@dataclass(frozen=True)
class StageWork:
    """One stage of a plan as an estimate counts it: its stage kind, queue, the unit its work is
    counted in (:data:`WORK_UNITS`) and every unit's amount."""

    name: str
    kind: str
    queue: str
    work_unit: str
    per_unit: tuple[float, ...]

    @property
    def units(self) -> int:
        return len(self.per_unit)

    @property
    def work(self) -> float:
        return float(sum(self.per_unit))


def work_unit_of(kind: str) -> str:
    """What a unit of stage kind ``kind`` counts its work in (:data:`WORK_UNITS`); timings of a unit
    whose plan could not count it so (``units`` instead) are not kept as samples of the kind."""
    return WORK_UNITS.get("embedding" if kind.startswith("embedding:") else kind, UNITS)


def _spread(total: float, units: int) -> tuple[float, ...]:
    return (total / max(units, 1),) * units


def plan_work(plan: Sequence[Stage], *, job_kind: str, datasets: Sequence[DatasetRef], embedder: str | None = None,
              pilots: str = "bigram", run_tokens: Sequence[float] | None = None) -> list[StageWork]:
    """The work of every unit of ``plan``: ``datasets`` are what its embedding stage embeds, in order
    (the corpus, or the one dataset of an embed job, first; then the benchmarks); ``run_tokens`` the
    tokens of each tiny-LM pilot run (without them a run counts ``units``)."""
    corpus = datasets[0] if datasets else None
    shards = [float(n) for d in datasets for n in d.shard_documents]
    work = []
    for stage in plan:
        kind = stage_kind(job_kind, stage.name, embedder=embedder, pilots=pilots)
        unit = work_unit_of(kind)
        if unit == DOCUMENTS and corpus is None:
            unit = UNITS
        if unit == TOKENS and (run_tokens is None or len(run_tokens) != stage.units):
            unit = UNITS
        if unit == UNITS:
            per_unit = (1.0,) * stage.units
        elif unit == TOKENS:
            per_unit = tuple(float(t) for t in run_tokens)
        elif kind.startswith("embedding:"):
            per_unit = tuple(shards) if len(shards) == stage.units else _spread(sum(shards), stage.units)
        elif kind in PER_SHARD and corpus.shard_count == stage.units:
            per_unit = tuple(float(n) for n in corpus.shard_documents)
        else:
            per_unit = _spread(float(corpus.documents), stage.units)
        work.append(StageWork(stage.name, kind, stage.queue, unit, per_unit))
    return work


def stage_figure(stage: StageWork, samples: Sequence[tuple[float, float]], *, worker_slots: int = WORKER_SLOTS) -> dict:
    """The estimate of one stage from ``samples``, ``(seconds, work)`` of recent units of its kind
    counted in its unit: the median seconds per unit of work (a worker's first unit, which also loads
    its embedder or model, does not move it), else the kind's default (:data:`DEFAULT_SECONDS`)."""
    rates = [seconds / work for seconds, work in samples if work > 0]
    if rates:
        rate, basis, measured = statistics.median(rates), "measured", len(rates)
    else:
        counted = stage.work_unit == work_unit_of(stage.kind)
        rate = DEFAULT_SECONDS.get(stage.kind, DEFAULT_UNIT_SECONDS) if counted else DEFAULT_UNIT_SECONDS
        basis, measured = "default", 0
    return {"name": stage.name, "kind": stage.kind, "queue": stage.queue, "units": stage.units,
            "work": stage.work, "work_unit": stage.work_unit, "seconds_per_work": float(f"{rate:.4g}"),
            "seconds": round(rate * stage.work / max(min(worker_slots, stage.units), 1), 3),
            "basis": basis, "measured_units": measured}


def plan_estimate(work: Sequence[StageWork], samples: Callable[[str], Sequence[tuple[float, float]]], *,
                  worker_slots: int = WORKER_SLOTS) -> dict:
    """``{"seconds", "worker_slots_per_queue", "stages": [...]}``: every stage's figure
    (:func:`stage_figure`) from ``samples(kind)``, the recent ``(seconds, work)`` of its kind (not
    asked for a stage whose work could not be counted in its kind's unit), and their sum (stages run
    one after another)."""
    stages = [stage_figure(s, samples(s.kind) if s.work_unit == work_unit_of(s.kind) else (),
                           worker_slots=worker_slots) for s in work]
    return {"seconds": round(sum(s["seconds"] for s in stages), 3), "worker_slots_per_queue": worker_slots,
            "stages": stages}


def recorded_timings(path) -> dict[str, list[list[float]]]:
    """Timings this executor recorded (:meth:`LocalExecutor.record_timings`): ``{kind: [[seconds, work]]}``."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
