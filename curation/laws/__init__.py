"""Performance laws behind one interface (DESIGN.md 3.6), dispatched on ``PerformanceModel.kind``.

=================  ==============================================  =====================================
kind               law                                             module
=================  ==============================================  =====================================
``effective_data`` utility-weighted, repetition-discounted data    :class:`curation.mixture.MixtureLaw`
``goyal``          Goyal et al.'s multi-pool recursion (3.5)       :class:`curation.scaling.GoyalLaw`
``mixing_law``     Data Mixing Laws per size, log-N extrapolation  :class:`curation.laws.regression.MixingLaw`
=================  ==============================================  =====================================

:func:`curation.laws.backtest.select_law` fits every law that can be fitted, backtests each
(the largest pilot size held out; k-fold over mixtures) and keeps the one whose worse split
error is lowest.

Projektor (Kang et al. 2023, DESIGN.md 3.4; :mod:`curation.projektor`) is not a law here yet:
it needs the pools' and the target's embeddings to evaluate OT of a mixture, which a stored
model does not carry; it is a reference implementation until the prediction issue wires it in.

The interface is :class:`~curation.laws.base.PerformanceLaw`; the front doors are
:func:`fit_law` and :func:`restore_law`::

    law = fit_law("effective_data", pools, observations, higher_is_better=False)
    stored = law.to_stored()            # {"kind", "parameters", "pools", "provenance", "fit_error"}
    again = restore_law(stored["kind"], stored)
    again.predict({"a": 0.5, "b": 0.5}, 1e6).value == law.predict({"a": 0.5, "b": 0.5}, 1e6).value
"""
from __future__ import annotations

from typing import Mapping, Sequence

from curation.laws.base import (
    LAWS,
    MAX_BUDGET,
    Allocation,
    Observation,
    PerformanceLaw,
    Pool,
    Prediction,
    budget_in_samples,
    check_budget_bounds,
    register,
)

__all__ = ["LAWS", "MAX_BUDGET", "Allocation", "Observation", "PerformanceLaw", "Pool", "Prediction",
           "budget_in_samples", "check_budget_bounds", "fit_law", "law_class", "register", "restore_law"]


def law_class(kind: str) -> type[PerformanceLaw]:
    """The law registered under ``kind``; ``ValueError`` naming the known kinds otherwise."""
    try:
        return LAWS[kind]
    except (KeyError, TypeError):
        raise ValueError(f"unknown performance-law kind {kind!r}; known kinds are {sorted(LAWS)}") from None


def fit_law(kind: str, pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
            **options) -> PerformanceLaw:
    """The law of ``kind`` fitted to ``observations`` over ``pools`` (``options`` go to that law's fit)."""
    return law_class(kind).fit(pools, observations, higher_is_better=higher_is_better, **options)


def restore_law(kind: str, stored: Mapping) -> PerformanceLaw:
    """The law of ``kind`` from its :meth:`~PerformanceLaw.to_stored` form."""
    return law_class(kind).restore(stored)


# The implementations register themselves on import; they import the types above, so they come last.
import curation.mixture  # noqa: E402,F401
import curation.scaling  # noqa: E402,F401
import curation.laws.regression  # noqa: E402,F401
