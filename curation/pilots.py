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

from curation.laws import Observation, PerformanceLaw
from curation.laws.backtest import LEVEL
from curation.proxy import BigramProxy, token_ids
from curation.tinylm import METRIC as TINY_LM_METRIC, PilotResult, TinyLMConfig, train_pilot

METRIC = "proxy_cross_entropy"
#: How often a tiny-LM single-pool run shows its pool (:func:`tiny_lm_design`).
SINGLE_POOL_REPETITIONS = 4.0
#: The pilot models the service trains itself: ``bigram`` (:class:`curation.proxy.BigramProxy`, seconds
#: on a CPU) and ``tiny_lm`` (:mod:`curation.tinylm`, a transformer per pilot run: measures repetition).
PILOT_METRICS = {"bigram": METRIC, "tiny_lm": TINY_LM_METRIC}
#: Units of the metrics the service defines (a pilot run's metric is the user's own: unit unknown).
METRIC_UNITS = {METRIC: "nats per token", TINY_LM_METRIC: "nats per token"}
#: The values the metrics the service defines can take: a cross-entropy is >= 0 and unbounded above
#: (the smoothed bigram can give a target token less than 1/buckets).
METRIC_RANGES = {METRIC: (0.0, math.inf), TINY_LM_METRIC: (0.0, math.inf)}


def metric_unit(metric: str) -> str | None:
    """The unit of ``metric`` where the service knows it (a ``pilots`` job's runs are ``<metric>:<job id>``),
    else ``None``."""
    return METRIC_UNITS.get(metric.partition(":")[0])


def known_metric_range(metric: str) -> tuple[float, float] | None:
    """The range of ``metric`` where the service defines it, else ``None`` (then
    :func:`curation.laws.base.metric_range` infers one from the observations)."""
    return METRIC_RANGES.get(metric.partition(":")[0])


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
        if count and len(documents):
            order = rng.permutation(len(documents))
            texts.extend(documents[i] for i in np.resize(order, count))
    return texts


def stream_order(pool_documents: Mapping[str, Sequence], run: Mapping, *, seed: int, index: int) -> list:
    """The documents design run ``index`` (``{"mixture", "size"}``) trains on, in training order:
    :func:`draw` shuffled into one stream (repeats spread over the run, pools interleaved, as the
    training-ready dataset orders them), by the generator ``[seed, index]``, so a service unit and
    :func:`tiny_lm_runs` give run ``index`` the same stream."""
    rng = np.random.default_rng([seed, index])
    documents = draw(pool_documents, run["mixture"], run["size"], rng)
    return [documents[i] for i in rng.permutation(len(documents))]


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


def tiny_lm_runs(pool_documents: Mapping[str, Sequence[np.ndarray]], targets: Sequence[np.ndarray],
                 runs: Sequence[Mapping], config: TinyLMConfig = TinyLMConfig(), *, seed: int = 0,
                 device: str | None = None) -> list[tuple[Observation, PilotResult]]:
    """Train a tiny LM (:func:`curation.tinylm.train_pilot`) for each run ``{"mixture", "size"}`` on pools
    of token-id documents (:func:`curation.tinylm.tokenize`), in :func:`stream_order` (as the service's
    ``pilots`` units draw run ``index``), every model from the same initialisation ``seed``; the
    observation is the cross-entropy of ``targets``."""
    results = []
    for index, run in enumerate(runs):
        result = train_pilot(stream_order(pool_documents, run, seed=seed, index=index), targets, config, seed=seed, device=device)
        results.append((Observation(weights=dict(run["mixture"]), size=float(run["size"]), value=result.value,
                                    origin="tiny_lm"), result))
    return results


def pilot_design(pool_documents: Mapping[str, int], *, runs: int = 16, sizes: Sequence[float] | None = None,
                 seed: int = 0) -> list[dict]:
    """The pilot runs a user should train so that every law can be fitted and backtested.

    ``pool_documents`` maps each pool to its documents. The design, in this order:

    * ``natural``: the corpus's own proportions (documents per pool), at every size;
    * ``single_pool``: each pool alone (up to ``runs // 3`` of them, the largest first) at the
      largest size, so that it is repeated (``repetitions`` > 1 for pools smaller than the size):
      what identifies the half-life tau and each pool's worth;
    * ``space_filling``: the rest, mixtures drawn from Dirichlet(2 * P * natural) and chosen
      greedily for the largest L1 distance to those already chosen (maximin), each at one of
      the sizes in turn, so that new mixtures are seen at every size (the ``mixtures`` backtest).

    ``sizes`` are in samples (default: 0.1, 0.4 and 1.6 times the corpus's documents: three
    sizes, so that the largest can be held out and still leave two). Returns ``runs`` rows
    ``{"mixture", "size", "purpose", "repetitions"}`` (repetitions: the most any pool is shown
    per document).
    """
    names = sorted(pool_documents)
    if not names or any(int(pool_documents[n]) < 1 for n in names):
        raise ValueError("every pool needs at least one document")
    counts = np.array([float(pool_documents[n]) for n in names])
    total = counts.sum()
    sizes = sorted(float(s) for s in (sizes or (0.1 * total, 0.4 * total, 1.6 * total)))
    if len(sizes) < 2 or any(not math.isfinite(s) or s <= 0 for s in sizes):
        raise ValueError("sizes must be at least two positive sample counts")
    if runs < len(sizes) + 1:
        raise ValueError(f"runs must be at least {len(sizes) + 1} (the natural mixture at every size, plus one)")
    natural = counts / total
    rows: list[dict] = []

    def add(weights: np.ndarray, size: float, purpose: str) -> None:
        mixture = _mixture(names, weights)
        repetitions = max(w * size / pool_documents[n] for n, w in mixture.items())
        rows.append({"mixture": mixture, "size": size, "purpose": purpose, "repetitions": repetitions})

    for size in sizes:
        add(natural, size, "natural")
    if len(names) > 1:
        for i in np.argsort(-counts, kind="stable")[:max(0, min(len(names), runs // 3, runs - len(rows)))]:
            add(np.eye(len(names))[i], sizes[-1], "single_pool")
        rng = np.random.default_rng(seed)
        candidates = rng.dirichlet(np.maximum(2 * len(names) * natural, 0.05), size=max(64, 8 * runs))
        # L1 distance of every candidate to its nearest chosen mixture (natural and the vertices first)
        distance = np.abs(candidates - natural).sum(1)
        for i in range(len(names)):
            distance = np.minimum(distance, np.abs(candidates - np.eye(len(names))[i]).sum(1))
        for position, best in enumerate(_maximin(candidates, distance, runs - len(rows))):
            add(candidates[best], sizes[position % len(sizes)], "space_filling")
    else:
        while len(rows) < runs:  # one pool: only the size varies
            add(natural, float(np.geomspace(sizes[0], sizes[-1], runs)[len(rows)]), "natural")
    return rows


def tiny_lm_design(pool_documents: Mapping[str, int], *, runs: int, largest: float,
                   seed: int = 0) -> list[dict]:
    """The tiny-LM pilot runs of a corpus: :func:`pilot_design` at ``largest`` / 16, / 4 and ``largest``
    samples (the largest run the token budget allows), so that the largest size can be held out by
    the backtest, with each single-pool run shown its pool :data:`SINGLE_POOL_REPETITIONS` times
    (or at ``largest``, when that is less): a tiny model trained on a few dozen documents ten times
    over memorises them and scores worse than after one pass (BBC News, 50-document pools: 7.1-7.2
    nats against 6.93 for 33 fresh documents), which no half-life describes; a few repetitions
    measure how fast repetition loses its worth."""
    if not largest > 0:
        raise ValueError("the pilots' token budget must allow at least one document")
    rows = pilot_design(pool_documents, runs=runs, sizes=(largest / 16, largest / 4, largest), seed=seed)
    for row in rows:
        if row["purpose"] == "single_pool":
            (name,) = row["mixture"]
            row["size"] = min(row["size"], SINGLE_POOL_REPETITIONS * float(pool_documents[name]))
            row["repetitions"] = row["size"] / pool_documents[name]
    return rows


def next_runs(law: PerformanceLaw, committee: Sequence[PerformanceLaw], observations: Sequence[Observation], *,
              runs: int = 8, sizes: Sequence[float] | None = None, seed: int = 0) -> list[dict]:
    r"""After a fit: ``runs`` more pilot runs that test ``law`` where its predictions are used.

    At each size of ``sizes`` in turn (default: twice the largest pilot size, where the backtest's
    extrapolation error is made): first ``law``'s optimal mixture there (``optimum``: the run that
    checks the recommendation itself), then mixtures far from every pilot run (``space_filling``:
    drawn from Dirichlet(2 * P * m), m the pilots' mean mixture, and chosen greedily for the largest
    L1 distance to the runs made and chosen, maximin). Space-filling draws from where mixtures are
    asked about, not the points of largest predicted uncertainty: in the RegMix-style test, runs
    chosen for the committee's disagreement or the widest band (query by committee) were extreme
    mixtures that reduced the held-out error less than random draws did.

    Every row states what is expected of it: ``predicted`` (``law``'s value), ``band`` (its band
    half-width at 95%) and ``disagreement`` (the standard deviation of the predictions of
    ``committee``, every law fitted to the same pilots; 0 with one). Returns rows ``{"mixture",
    "size", "purpose", "repetitions", "predicted", "band", "disagreement"}``.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    if not observations:
        raise ValueError("next runs need the pilot runs of the fit")
    names, k = law.names, len(law.names)
    sizes = sorted({float(s) for s in (sizes or (2 * max(o.size for o in observations),))})
    if any(not math.isfinite(s) or s <= 0 for s in sizes):
        raise ValueError("sizes must be positive sample counts")
    seen = np.array([law.weights_vector(o.weights) for o in observations])
    rng = np.random.default_rng(seed)
    candidates = rng.dirichlet(np.maximum(2 * k * seen.mean(0), 0.05), max(256, 16 * runs))
    distance = np.min([np.abs(candidates - w).sum(1) for w in seen], axis=0)
    documents = dict(zip(names, law.unique))
    rows: list[dict] = []

    def add(weights: np.ndarray, size: float, purpose: str) -> None:
        mixture = _mixture(names, weights)
        prediction = law.predict(mixture, size, level=LEVEL)
        values = [member.predict(mixture, size, level=LEVEL).value for member in committee]
        rows.append({"mixture": mixture, "size": size, "purpose": purpose,
                     "repetitions": max(w * size / documents[n] for n, w in mixture.items()),
                     "predicted": prediction.value, "band": (prediction.high - prediction.low) / 2,
                     "disagreement": float(np.std(values)) if len(values) > 1 else 0.0})

    for size in sizes:
        optimum = law.optimize(size).weights
        add(optimum, size, "optimum")
        distance = np.minimum(distance, np.abs(candidates - optimum).sum(1))
        if len(rows) == runs:
            return rows
    for position, best in enumerate(_maximin(candidates, distance, runs - len(rows))):
        add(candidates[best], sizes[position % len(sizes)], "space_filling")
    return rows


def _maximin(candidates: np.ndarray, distance: np.ndarray, count: int) -> list[int]:
    """``count`` rows of ``candidates`` (n, P), each the farthest (L1) from the mixtures before it;
    ``distance`` (n,) is each candidate's distance to the runs already chosen."""
    chosen = []
    for _ in range(min(count, len(candidates))):
        best = int(np.argmax(distance))
        chosen.append(best)
        distance = np.minimum(distance, np.abs(candidates - candidates[best]).sum(1))
        distance[best] = -1.0
    return chosen


def _mixture(names: Sequence[str], weights: np.ndarray) -> dict[str, float]:
    """``weights`` (P,) as ``{pool: weight}``: rounded to 1e-6, zeros left out, summing to 1."""
    mixture = {n: round(float(w), 6) for n, w in zip(names, weights) if w > 1e-6}
    scale = sum(mixture.values())
    return {n: w / scale for n, w in mixture.items()}
