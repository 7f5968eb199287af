"""Pruning methods behind one interface: a registry of ``name -> method`` returning one
:class:`PruneResult` (DESIGN.md 3.2).

A method takes what it scores (:class:`PruneInputs`: the corpus's embeddings, or the
uploaded model outputs for EL2N) and :class:`PruneOptions`, and returns per-document
``score``, ``kept`` and ``reason`` plus extra per-document columns and summary fields.
The API's params, the CLI and ``curate`` all read :data:`METHODS`; adding a method is one
function here and one registry line.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from curation.el2n import corpus_scores, el2n_scores, select_highest
from curation.prototypes import D4Result, d4, keep_policy, prototype_scores, select
from curation.semdedup import SemDeDupResult, semdedup
from numeric_kernels.kmeans import FIT_CAP, FIT_FLOOR, FIT_FRACTION

#: The eps values at which SemDeDup reports the kept fraction.
EPS_CURVE = (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


@dataclass(frozen=True)
class PruneOptions:
    """``fraction`` of documents kept (prototypes, d4, el2n); ``budget_documents`` decides keep-hard
    (abundant data) or keep-easy (scarce) under ``keep="auto"``; ``eps`` SemDeDup's threshold
    (cos >= 1 - eps is a duplicate); ``k`` clusters (default by size); ``floor`` per-cluster balance.
    ``sample_fraction``, ``sample_floor``, ``sample_cap``: the share of the corpus k-means trains on when
    a plan prunes shard by shard (:func:`numeric_kernels.kmeans.fit_sample_size`; every document of a
    corpus of up to 50,000, which so clusters exactly as in memory)."""

    fraction: float = 0.7
    budget_documents: float | None = None
    keep: str = "auto"
    eps: float = 0.01
    k: int | None = None
    floor: float = 0.5
    seed: int = 0
    sample_fraction: float = FIT_FRACTION
    sample_floor: int = FIT_FLOOR
    sample_cap: int = FIT_CAP


@dataclass
class PruneInputs:
    """``ids`` (n,) document ids in corpus order; ``embeddings()`` loads ``(n, d)`` float32 on demand;
    ``predictions`` the local file of an uploaded prediction set (EL2N)."""

    ids: list[str]
    embeddings: Callable[[], np.ndarray]
    predictions: Path | None = None


@dataclass
class PruneResult:
    """Per document (n,): ``score`` float64, ``kept`` bool, ``reason`` str; ``columns`` extra
    per-document arrays stored beside the scores; ``summary`` method-specific fields;
    ``lower_is_better`` whether a low score is the better document (keep-easy)."""

    score: np.ndarray
    kept: np.ndarray
    reason: np.ndarray
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    lower_is_better: bool = False


def policy_of(n: int, options: PruneOptions):
    """The keep policy (hard or easy) for ``n`` unique documents at ``options.budget_documents``."""
    return keep_policy(unique_documents=n, budget_documents=options.budget_documents or n,
                       override=None if options.keep == "auto" else options.keep)


def _clusters(summary) -> dict:
    return {"cluster": summary.clusters.tolist(), "documents": summary.documents.tolist(),
            "kept": summary.kept.tolist(), "floor": summary.floor.tolist()}


def _policy_summary(policy) -> dict:
    return {"keep": policy.keep, "abundance": policy.abundance, "reason": policy.reason}


def prune_prototypes(inputs: PruneInputs, options: PruneOptions) -> PruneResult:
    """Sorscher et al.: difficulty = 1 - cos to the nearest spherical k-means centroid."""
    scores = prototype_scores(inputs.embeddings(), k=options.k, seed=options.seed)
    return prototypes_result(scores.difficulty, scores.labels, options)


def prototypes_result(difficulty: np.ndarray, labels: np.ndarray, options: PruneOptions) -> PruneResult:
    """Keep ``options.fraction`` by prototype ``difficulty`` (n,) with the floor per cluster of ``labels`` (n,),
    from the end the keep policy picks."""
    policy = policy_of(len(difficulty), options)
    chosen = select(difficulty, labels, keep=policy.keep, fraction=options.fraction, floor=options.floor)
    return PruneResult(difficulty, chosen.kept, chosen.reason, {"cluster": labels},
                       {"policy": _policy_summary(policy), "clusters": _clusters(chosen.summary)},
                       lower_is_better=policy.keep == "easy")


def prune_semdedup(inputs: PruneInputs, options: PruneOptions) -> PruneResult:
    """Abbas et al.: within each cluster, documents with cos >= 1 - eps to an earlier one are duplicates."""
    return semdedup_result(semdedup(inputs.embeddings(), eps=options.eps, k=options.k, seed=options.seed))


def semdedup_result(result: SemDeDupResult) -> PruneResult:
    """SemDeDup's scores (the highest cosine to an earlier member of the cluster), kept set and eps curve."""
    curve = result.kept_fraction_curve(list(EPS_CURVE))
    return PruneResult(result.max_similarity, result.kept, np.where(result.kept, "kept", "duplicate"),
                       {"cluster": result.labels, "duplicate_of": result.duplicate_of},
                       {"eps_curve": [{"eps": eps, "kept_fraction": kept} for eps, kept in curve.items()],
                        "duplicate_groups": len(result.groups())})


def prune_d4(inputs: PruneInputs, options: PruneOptions) -> PruneResult:
    """Tirumala et al.: SemDeDup, re-cluster the survivors, then prototypes."""
    policy = policy_of(len(inputs.ids), options)
    return d4_result(d4(inputs.embeddings(), fraction=options.fraction, keep=policy.keep, eps=options.eps,
                        k=options.k, floor=options.floor, seed=options.seed), options)


def d4_result(result: D4Result, options: PruneOptions) -> PruneResult:
    """D4's scores (prototype difficulty of the survivors, NaN for duplicates) and kept set."""
    policy = policy_of(len(result.kept), options)
    return PruneResult(result.difficulty, result.kept, result.reason, {"cluster": result.labels},
                       {"policy": _policy_summary(policy), "clusters": _clusters(result.selection.summary)},
                       lower_is_better=policy.keep == "easy")


def prune_el2n(inputs: PruneInputs, options: PruneOptions) -> PruneResult:
    """Paul et al.: ||softmax(f(x)) - y||_2 from uploaded model outputs, keep the highest."""
    if inputs.predictions is None:
        raise ValueError("el2n needs an uploaded prediction set")
    score = corpus_scores(el2n_scores(inputs.predictions), inputs.ids)
    chosen = select_highest(score, fraction=options.fraction)
    return PruneResult(score, chosen.kept, chosen.reason)


#: The pruning methods by name, and those that score embeddings (their plans embed the corpus first).
METHODS: dict[str, Callable[[PruneInputs, PruneOptions], PruneResult]] = {
    "prototypes": prune_prototypes,
    "semdedup": prune_semdedup,
    "d4": prune_d4,
    "el2n": prune_el2n,
}
NEEDS_EMBEDDINGS = {"prototypes", "semdedup", "d4"}


def prune(method: str, inputs: PruneInputs, options: PruneOptions) -> PruneResult:
    """Run ``method`` from :data:`METHODS`; the score is float64 and every array has one entry per document."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}; got {method!r}")
    return finish(METHODS[method](inputs, options))


def finish(result: PruneResult) -> PruneResult:
    """``result`` with a float64 score, a bool kept and an array of reasons."""
    result.score = np.asarray(result.score, dtype=np.float64)
    result.kept, result.reason = np.asarray(result.kept, dtype=bool), np.asarray(result.reason)
    return result
