"""The curation pipeline as steps: typed, tenant-free units of work that both executors run.

A job kind is a *plan* (:mod:`curation.plans`): stages run in order, each a number of
independent units (one per shard, or one for a global step). A stage's ``run(ctx, index)``
does one unit and returns a small JSON-able dict, its output; a later stage reads earlier
outputs through ``ctx.outputs(stage_name)``. Units write their artifacts through
``ctx.storage`` to deterministic keys, so running a unit twice gives the same objects:
an executor records completion per unit and redoes only missing units after a crash.

Executors: the Celery one (``api/jobs/services.py``: a JobUnit row per finished unit,
redelivery, progress in the Job row) and the local one (:mod:`curation.executor`, behind
``python -m curation``: a completion marker per unit in a work folder).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from curation.embedders import Embedder, get_embedder
from curation.storage import Storage

#: The largest seed a step takes: seeds reach numpy and faiss, whose seeds are 32-bit.
MAX_SEED = 2**32 - 1

@dataclass(frozen=True)
class DatasetRef:
    """A stored corpus or benchmark: its id (the storage key part), name, kind, and its shards'
    document counts in order."""

    id: str
    name: str
    kind: str
    documents: int
    tokens: int
    shard_documents: tuple[int, ...]

    @property
    def shard_count(self) -> int:
        return len(self.shard_documents)

    @property
    def tokens_per_sample(self) -> float:
        """Tokens per document (0 for an empty dataset): what converts a budget in tokens to samples."""
        return self.tokens / max(self.documents, 1)


@dataclass(frozen=True)
class ScoreRef:
    """Per-document scores a run wrote (:class:`~curation.storage.Keys` ``scores``): ``run`` None
    means the run reading them; ``lower_is_better`` orients the score as a quality."""

    metric: str
    run: str | None = None
    lower_is_better: bool = False


@dataclass(frozen=True)
class PoolSpec:
    """How documents become pools: documents ``kept`` is False for are left out, and (``decontaminated``)
    those the contamination stage of run ``contamination_run`` (None: this run) found; ``quality``
    (higher is better after orientation) splits each source into deciles; else pools are sources."""

    kept: ScoreRef | None = None
    quality: ScoreRef | None = None
    decontaminated: bool = False
    contamination_run: str | None = None

    def as_dict(self) -> dict:
        return {**{name: None if ref is None else {"metric": ref.metric, "run": ref.run,
                                                    "lower_is_better": ref.lower_is_better}
                   for name, ref in (("kept", self.kept), ("quality", self.quality))},
                "decontaminated": self.decontaminated, "contamination_run": self.contamination_run}

    @classmethod
    def from_dict(cls, data: dict | None) -> "PoolSpec":
        data = data or {}
        return cls(**{name: ScoreRef(**data[name]) if data.get(name) else None for name in ("kept", "quality")},
                   decontaminated=bool(data.get("decontaminated")), contamination_run=data.get("contamination_run"))

    def resolved(self, run: str) -> "PoolSpec":
        """The same spec with "this run" replaced by ``run`` (for reading it from another run)."""
        def fix(ref):
            return ref if ref is None or ref.run else ScoreRef(ref.metric, run, ref.lower_is_better)
        return PoolSpec(fix(self.kept), fix(self.quality), self.decontaminated,
                        (self.contamination_run or run) if self.decontaminated else None)


@dataclass(frozen=True)
class StoredModel:
    """A fitted performance law as stored: what the ``mixture`` step needs to optimise it."""

    kind: str
    metric: str
    higher_is_better: bool
    parameters: dict
    pools: list
    provenance: dict
    corpus: DatasetRef
    pool_spec: PoolSpec
    backtest: dict | None = None  # curation.laws.backtest.backtest_summary; None for a model fitted before it


def _no_progress(done: int, total: int) -> None:
    return None


@dataclass
class Context:
    """What a unit sees: the (tenant's) storage, the run's id (names run-level artifacts), the
    outputs of earlier stages, a progress callback (work done / total inside the unit), and
    loaders for inputs that live outside the storage: the user's pilot runs of a metric
    (``(higher_is_better, [{"weights", "size", "value", "origin"}])``) and stored models."""

    storage: Storage
    run_id: str
    outputs: Callable[[str], list[dict]]
    progress: Callable[[int, int], None] = _no_progress
    pilot_runs: Callable[[str], tuple[bool, list[dict]]] | None = None
    model: Callable[[str], StoredModel] | None = None
    _embedders: dict = field(default_factory=dict)

    def output(self, stage: str) -> dict:
        """The output of a one-unit stage."""
        return self.outputs(stage)[0]

    def embedder(self, spec: str) -> Embedder:
        """The embedder of ``spec``, loaded once per context."""
        if spec not in self._embedders:
            self._embedders[spec] = get_embedder(spec)
        return self._embedders[spec]


@dataclass(frozen=True)
class Stage:
    """``units`` independent units of ``run(ctx, index) -> dict``, on Celery queue ``queue``."""

    name: str
    units: int
    run: Callable[[Context, int], dict] = field(compare=False, repr=False)
    queue: str = "cpu"

    def as_dict(self) -> dict:
        return {"name": self.name, "units": self.units, "queue": self.queue}
