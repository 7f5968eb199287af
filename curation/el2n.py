"""EL2N scores (Paul et al. 2021) from uploaded per-example model predictions.

The error L2-norm of an example is the distance between the model's class
probabilities and the one-hot label, averaged over independent training runs:

.. math::

    \\mathrm{EL2N}(x, y) = \\frac{1}{R} \\sum_{r=1}^{R} \\lVert p_r(x) - e_y \\rVert_2 \\in [0, \\sqrt{2}]

Low scores are easy examples (confidently right), high scores hard or mislabelled ones;
Paul et al. keep the highest. Predictions come from the stored Parquet of
:mod:`curation.predictions`; corpus documents without a prediction get NaN and are never
kept (reason ``unscored``).

Reference: M. Paul, S. Ganguli, G. K. Dziugaite, "Deep learning on a data diet: finding
important examples early in training", NeurIPS 2021.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curation.predictions import load_predictions


def el2n(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-run EL2N, (runs, n), of ``probs`` (runs, n, classes) against integer ``labels`` (n,).

    >>> el2n(np.array([[[0.7, 0.2, 0.1]]]), np.array([0])).round(4).tolist()
    [[0.3742]]
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 3 or labels.shape != probs.shape[1:2]:
        raise ValueError(f"probs must be (runs, n, classes) and labels (n,); got {probs.shape} and {labels.shape}")
    if len(labels) and not (0 <= labels.min() and labels.max() < probs.shape[2]):
        raise ValueError(f"labels must be classes in [0, {probs.shape[2]}); got {labels.min()}..{labels.max()}")
    error = probs.copy()
    error[:, np.arange(len(labels)), labels] -= 1.0
    return np.linalg.norm(error, axis=2)


@dataclass(frozen=True)
class EL2NScores:
    """``ids`` (n,) the scored documents; ``score`` (n,) EL2N averaged over runs; ``per_run`` (runs, n)."""

    ids: list[str]
    score: np.ndarray
    per_run: np.ndarray


def el2n_scores(path: Path) -> EL2NScores:
    """EL2N of every document of a stored predictions file (:func:`curation.predictions.ingest_predictions`)."""
    ids, labels, probs = load_predictions(path)
    per_run = el2n(probs, labels)
    return EL2NScores(ids=ids, score=per_run.mean(axis=0), per_run=per_run)


def corpus_scores(scores: EL2NScores, corpus_ids: Sequence[str]) -> np.ndarray:
    """The EL2N of each of ``corpus_ids`` (N,), in their order; NaN where there is no prediction.

    >>> corpus_scores(EL2NScores(["b", "a"], np.array([0.5, 0.25]), np.zeros((1, 2))), ["a", "c", "b"]).tolist()
    [0.25, nan, 0.5]
    """
    position = pc.index_in(pa.array(list(corpus_ids), pa.string()), value_set=pa.array(scores.ids, pa.string()))
    position = np.asarray(position.fill_null(-1), dtype=np.int64)
    values = np.full(len(position), np.nan)
    found = position >= 0
    values[found] = scores.score[position[found]]
    return values


@dataclass(frozen=True)
class EL2NSelection:
    """``kept`` (N,) bool; ``reason`` (N,) ``"kept"``, ``"pruned_easy"`` (a low score) or ``"unscored"``;
    ``target`` the number kept."""

    kept: np.ndarray
    reason: list[str]
    target: int


def select_highest(score: np.ndarray, *, fraction: float | None = None, count: int | None = None) -> EL2NSelection:
    """Keep the highest-EL2N ``fraction`` of the *scored* documents (or ``count`` of them, capped at
    their number); NaN scores are never kept. Ties break by index.

    >>> select_highest(np.array([0.1, np.nan, 0.9, 0.5]), count=2).reason
    ['pruned_easy', 'unscored', 'kept', 'kept']
    """
    score = np.asarray(score, dtype=np.float64)
    if score.ndim != 1:
        raise ValueError(f"score must be (N,); got shape {score.shape}")
    if (fraction is None) == (count is None):
        raise ValueError(f"give exactly one of fraction and count; got fraction={fraction!r}, count={count!r}")
    scored = np.flatnonzero(~np.isnan(score))
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1]; got {fraction}")
        target = round(fraction * len(scored))
    elif count < 0:
        raise ValueError(f"count must be >= 0; got {count}")
    else:
        target = min(int(count), len(scored))
    kept = np.zeros(len(score), dtype=bool)
    kept[scored[np.argsort(-score[scored], kind="stable")[:target]]] = True
    reason = np.where(kept, "kept", np.where(np.isnan(score), "unscored", "pruned_easy"))
    return EL2NSelection(kept=kept, reason=reason.tolist(), target=target)
