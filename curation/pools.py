"""Pools: the units a mixture weighs.

A pool is a corpus source (``"Sci/Tech"``) or one quality decile of a source
(``"Sci/Tech/q0"`` = its best 10% by a quality score, ``.../q9`` the worst), following
the 10% buckets of Goyal et al. (2024). Documents without a source belong to the
source ``"(none)"``.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

DECILES = 10
NO_SOURCE = "(none)"


def source_name(source: str | None) -> str:
    return source if source else NO_SOURCE


def decile_pool(source: str | None, decile: int) -> str:
    if not 0 <= decile < DECILES:
        raise ValueError(f"decile must be in [0, {DECILES}); got {decile}")
    return f"{source_name(source)}/q{decile}"


def known_pools(sources: Iterable[str | None]) -> set[str]:
    """Every pool name a corpus with these sources has."""
    names = {source_name(s) for s in sources}
    return names | {decile_pool(s, k) for s in names for k in range(DECILES)}


def validate_mixture(mixture: Mapping[str, object], pools: set[str], *, tolerance: float = 1e-6) -> dict[str, float]:
    """Check a ``{pool: weight}`` mapping: known pools, finite non-negative weights summing to 1.

    Returns the weights as floats; raises ``ValueError`` naming the problem.
    """
    if not isinstance(mixture, Mapping) or not mixture:
        raise ValueError("mixture must be a non-empty object {pool: weight}")
    unknown = sorted(set(mixture) - pools)
    if unknown:
        raise ValueError(f"unknown pool(s) {unknown}; pools are sources or source/q0..q{DECILES - 1}, "
                         f"e.g. {sorted(pools)[:4]}")
    weights: dict[str, float] = {}
    for pool, weight in mixture.items():
        if isinstance(weight, int) and not isinstance(weight, bool) and not -1 <= weight <= 1:
            shown = f"a {len(str(abs(weight)))}-digit integer" if abs(weight) >= 10**20 else repr(weight)
            raise ValueError(f"weight of {pool!r} must be a finite number in [0, 1]; got {shown}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight < 0:
            raise ValueError(f"weight of {pool!r} must be a finite number >= 0; got {weight!r}")
        weights[pool] = float(weight)
    total = sum(weights.values())
    if abs(total - 1.0) > tolerance:
        raise ValueError(f"weights must sum to 1 (the simplex); they sum to {total:.8g}")
    return weights


def assign_pools(sources: Sequence[str | None], *, kept: np.ndarray | None = None,
                 quality: np.ndarray | None = None) -> np.ndarray:
    """Each document's pool (n,) object array: its source, or ``source/q<decile>`` when ``quality``
    (n,), higher is better, is given (q0 the best tenth of the source's kept documents);
    ``None`` where ``kept`` (n,) is False."""
    names = np.array([source_name(s) for s in sources], dtype=object)
    pools = names.copy()
    keep = np.ones(len(names), dtype=bool) if kept is None else np.asarray(kept, dtype=bool)
    if quality is not None:
        for source in np.unique(names):
            members = np.flatnonzero((names == source) & keep)
            rank = np.empty(len(members), dtype=np.int64)
            rank[np.argsort(-np.asarray(quality)[members], kind="stable")] = np.arange(len(members))
            for position, decile in zip(members, rank * DECILES // max(len(members), 1)):
                pools[position] = decile_pool(source, int(decile))
    pools[~keep] = None
    return pools
