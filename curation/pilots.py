"""Pilot observations from the built-in proxy evaluator, for users without pilot training runs.

For each design mixture and size, a sample of the mixture is drawn the way training
would see it (each pool's documents in a seeded order, cycled when the pool is shown
more often than it has documents) and a smoothed bigram model
(:class:`curation.proxy.BigramProxy`) is trained on it; the observation is the
cross-entropy of the target benchmark texts (nats per token, lower is better).

The design: every pool alone (up to ``max_vertices`` of them, seeded), the uniform
mixture and ``n_random`` Dirichlet(0.5) mixtures, each at three sizes: 0.1, 0.4 and 1.6
times the unique documents of all pools (capped at ``max_size``), so single pools are
seen many times over and the repetition half-life can be fitted.
"""
from __future__ import annotations

import math
from typing import Callable, Mapping, Sequence

import numpy as np

from curation.laws import Observation
from curation.proxy import BigramProxy, token_ids

METRIC = "proxy_cross_entropy"
#: Units of the metrics the service defines (a pilot run's metric is the user's own: unit unknown).
METRIC_UNITS = {METRIC: "nats per token"}
#: The values the metrics the service defines can take: a cross-entropy is >= 0 and unbounded above
#: (the smoothed bigram can give a target token less than 1/buckets).
METRIC_RANGES = {METRIC: (0.0, math.inf)}


def metric_unit(metric: str) -> str | None:
    """The unit of ``metric`` where the service knows it, else ``None``."""
    return METRIC_UNITS.get(metric)


def known_metric_range(metric: str) -> tuple[float, float] | None:
    """The range of ``metric`` where the service defines it, else ``None`` (then
    :func:`curation.laws.base.metric_range` infers one from the observations)."""
    return METRIC_RANGES.get(metric)


def design(pools: Sequence[str], unique: Sequence[int], *, n_random: int = 4, max_vertices: int = 12,
           max_size: int = 20_000, seed: int = 0) -> list[tuple[dict[str, float], float]]:
    """Design points ``(weights, size)``; sizes in samples, capped at ``max_size``."""
    rng = np.random.default_rng(seed)
    k = len(pools)
    vertices = rng.permutation(k)[:max_vertices] if k > max_vertices else np.arange(k)
    mixtures = [np.eye(k)[i] for i in sorted(vertices)] + [np.full(k, 1.0 / k)]
    mixtures += list(rng.dirichlet(np.full(k, 0.5), size=n_random)) if k > 1 else []
    total = float(np.sum(unique))
    sizes = sorted({int(min(max_size, max(20, round(f * total)))) for f in (0.1, 0.4, 1.6)})
    return [({name: float(w) for name, w in zip(pools, mixture) if w > 0}, float(size))
            for size in sizes for mixture in mixtures]


def draw(pool_texts: Mapping[str, Sequence], weights: Mapping[str, float], size: float,
         rng: np.random.Generator) -> list:
    """``round(w_i * size)`` documents (texts, or their token ids) of each pool, its documents in a
    seeded order, cycled when repeated."""
    texts: list = []
    for name, weight in weights.items():
        documents = pool_texts[name]
        count = int(round(weight * size))
        if count and documents:
            order = rng.permutation(len(documents))
            texts.extend(documents[i] for i in np.resize(order, count))
    return texts


def proxy_observations(pool_texts: Mapping[str, Sequence[str]], target_texts: Sequence[str], *, seed: int = 0,
                       unique: Mapping[str, int] | None = None, n_random: int = 4, max_vertices: int = 12,
                       max_size: int = 20_000, buckets: int = 2**18,
                       progress: Callable[[int, int], None] | None = None) -> list[Observation]:
    """Proxy observations for the mixtures of :func:`design` over ``pool_texts`` (pool -> its documents).

    A pool larger than ``max_size`` may be given as a random subset of at least ``max_size``
    of its documents, with its true size in ``unique``: no draw takes more than ``max_size``.
    """
    if not target_texts:
        raise ValueError("the proxy needs target texts")
    names = list(pool_texts)
    sizes = [unique[n] if unique else len(pool_texts[n]) for n in names]
    if any(len(pool_texts[n]) < min(s, max_size) for n, s in zip(names, sizes)):
        raise ValueError(f"every pool needs its documents, or at least max_size={max_size} of them")
    points = design(names, sizes, n_random=n_random, max_vertices=max_vertices, max_size=max_size, seed=seed)
    # every document is tokenised once, not once per draw that takes it
    pool_ids = {name: [token_ids(text, buckets) for text in pool_texts[name]] for name in names}
    target_ids = [token_ids(text, buckets) for text in target_texts]
    observations = []
    for position, (weights, size) in enumerate(points):
        rng = np.random.default_rng([seed, position])
        model = BigramProxy(buckets=buckets).fit_ids(draw(pool_ids, weights, size, rng))
        observations.append(Observation(weights=weights, size=size, value=model.cross_entropy_ids(target_ids),
                                        origin="proxy"))
        if progress:
            progress(position + 1, len(points))
    return observations
