r"""The performance-law interface (DESIGN.md 3.6): the types every law shares and the base class.

A law is an estimator (STYLE.md, "Laws and predictions"): a class method :meth:`~PerformanceLaw.fit`
takes named pools and pilot observations and returns the fitted law, whose fitted attributes
are its parameters, fit error (``rmse``), observed range and provenance; the fitted law
predicts the metric of a mixture at a budget with an uncertainty band, finds the mixture of
best predicted metric at a budget, and stores itself as plain JSON (``to_stored``) and comes
back from it (``restore``) unchanged.

A law implements four things: how the metric follows from the samples shown per pool
(:meth:`~PerformanceLaw.metric_at`), the optimiser, its parameters and pool rows, and fitting.
Everything else (validating weights, the band, predictions at observations, the frontier,
serialisation) is here, the same for every law.

The band is the same for every law (:func:`band_half_width`): half-width

.. math::

    z_{(1+\text{level})/2} \sqrt{s_m^2 + \big(s_d \, g(o)\big)^2}, \qquad g(o) = o (1 + o) / 2,

where :math:`o \ge 0` is how far the request lies outside the observations, in doublings of
the budget or of the most repeated pool's repetitions; :math:`s_m` (``band_rmse``) is the
backtest's held-out error at the observed sizes (new mixtures), never less than the in-sample
``rmse``, and :math:`s_d` (``band_growth``) the extra error per unit of :math:`g`, measured by
holding the largest pilot size out (:mod:`curation.laws.backtest`); without a backtest both are
the in-sample ``rmse``. :math:`g(1) = 1` where the backtest measures it; beyond, the error is
taken to grow quadratically in doublings (an error in a fitted exponent does), which is
conservative. A prediction more than ``far`` doublings outside (default 0: anywhere outside)
is flagged ``extrapolated``.

A value outside the metric's possible range (``value_range``: a loss below 0 or above the
loss of a model that saw no data, an accuracy outside [0, 1] or [0, 100]) is clamped into it
and flagged ``clamped``; so are the band's ends.
"""
from __future__ import annotations

import abc
import math
from dataclasses import asdict, dataclass, field
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import norm

#: The implementations by ``kind`` (the value of ``PerformanceModel.kind``); filled by :func:`register`.
LAWS: dict[str, type["PerformanceLaw"]] = {}


@dataclass(frozen=True)
class Pool:
    """A pool's ``name``, its ``unique`` documents and raw features (``ot`` distance to the target,
    ``quality`` mean score; NaN when unknown)."""

    name: str
    unique: int
    ot: float = math.nan
    quality: float = math.nan


@dataclass(frozen=True)
class Observation:
    """A measured ``value`` of the metric after training on ``weights`` (pool -> weight) for ``size`` samples;
    ``origin`` is ``pilot_runs`` (the user's runs) or ``proxy``."""

    weights: Mapping[str, float]
    size: float
    value: float
    origin: str = "pilot_runs"


@dataclass(frozen=True)
class Allocation:
    """Samples ``shown`` (P,) per pool at ``budget``; ``weights`` = shown / budget, ``repetitions`` = shown / unique."""

    budget: float
    pools: list[str]
    shown: np.ndarray
    weights: np.ndarray
    repetitions: np.ndarray
    unique_used: np.ndarray

    def as_rows(self, available: Sequence[int]) -> list[dict]:
        return [{"pool": name, "weight": float(w), "unique_documents": int(u), "available_documents": int(a),
                 "repetitions": float(r), "samples": float(s)}
                for name, w, u, a, r, s in zip(self.pools, self.weights, self.unique_used, available,
                                               self.repetitions, self.shown)]


@dataclass(frozen=True)
class Prediction:
    """``value`` with a ``[low, high]`` band; ``outside`` doublings beyond the observed range (0 inside),
    ``extrapolated`` when that is more than the law's ``far``; ``clamped`` when the law's value left the
    metric's possible range and was put back at its edge."""

    value: float
    low: float
    high: float
    outside: float
    extrapolated: bool
    clamped: bool = False


@dataclass(frozen=True, kw_only=True)
class FitRange:
    """The fit-quality fields every law carries (see :class:`PerformanceLaw`), keyword-only with their
    defaults; a law is a frozen dataclass deriving from this and :class:`PerformanceLaw`."""

    rmse: float = 0.0
    band_rmse: float = math.nan
    band_growth: float = math.nan
    observed_sizes: tuple[float, float] = (math.nan, math.nan)
    observed_repetitions: float = math.nan
    provenance: Mapping[str, str] = field(default_factory=dict)
    far: float = 0.0
    at_bound: Mapping[str, str] = field(default_factory=dict)


def register(cls: type["PerformanceLaw"]) -> type["PerformanceLaw"]:
    """Class decorator: add a law to :data:`LAWS` under its ``kind``."""
    known = LAWS.get(cls.kind)
    if known is not None and known.__qualname__ != cls.__qualname__:  # the same class again: a reload
        raise ValueError(f"two laws of kind {cls.kind!r}: {LAWS[cls.kind].__name__} and {cls.__name__}")
    LAWS[cls.kind] = cls
    return cls


class PerformanceLaw(abc.ABC):
    """A fitted performance law over named ``pools``.

    Implementations are frozen dataclasses with a class attribute ``kind`` and at least these
    fields: ``pools`` (tuple of :class:`Pool`), ``higher_is_better``, ``rmse`` (the fit's RMS
    residual, metric units), ``band_rmse`` and ``band_growth`` (the band's scales from the backtest;
    NaN: ``rmse``),
    ``observed_sizes`` ((min, max) samples of the observations), ``observed_repetitions`` (the
    most any observation repeated a pool), ``provenance`` (parameter -> ``pilot_runs``,
    ``proxy``, ``defaults`` or ``published``), ``far`` (doublings outside the observations
    beyond which a prediction is flagged), ``value_range`` ((low, high) the metric can take)
    and ``at_bound`` (parameter -> what the fit did about it ending on a bound of its search).
    """

    kind: str
    pools: tuple[Pool, ...]
    higher_is_better: bool
    rmse: float
    observed_sizes: tuple[float, float]
    observed_repetitions: float
    provenance: Mapping[str, str]
    far: float
    band_rmse: float
    band_growth: float
    value_range: tuple[float, float]
    at_bound: Mapping[str, str]

    # -- what each law implements --------------------------------------------------------
    @classmethod
    @abc.abstractmethod
    def fit(cls, pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
            **options) -> "PerformanceLaw":
        """The law fitted to ``observations`` over ``pools``; ``ValueError`` when it cannot be."""

    @classmethod
    @abc.abstractmethod
    def minimum_observations(cls, pools: int) -> int:
        """The fewest observations a fit over ``pools`` pools can take (fewer: ``fit`` refuses them)."""

    @abc.abstractmethod
    def metric_at(self, shown) -> np.ndarray:
        """The predicted metric for samples ``shown`` (..., P) per pool; returns shape (...)."""

    @abc.abstractmethod
    def optimize(self, budget: float) -> Allocation:
        """The mixture of best predicted metric at ``budget`` samples."""

    @abc.abstractmethod
    def parameters(self) -> dict:
        """The fitted parameters, direction, fit error and observed range, as JSON values."""

    @abc.abstractmethod
    def pool_rows(self) -> list[dict]:
        """One JSON row per pool: ``name``, ``unique``, its features and its fitted per-pool values."""

    @classmethod
    @abc.abstractmethod
    def from_stored(cls, parameters: Mapping, pools: Sequence[Mapping], provenance: Mapping[str, str]
                    ) -> "PerformanceLaw":
        """The law of :meth:`parameters`, :meth:`pool_rows` and ``provenance``."""

    # -- the same for every law ----------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [p.name for p in self.pools]

    @property
    def unique(self) -> np.ndarray:
        return np.array([p.unique for p in self.pools], dtype=np.float64)

    def weights_vector(self, weights: Mapping[str, float]) -> np.ndarray:
        unknown = sorted(set(weights) - set(self.names))
        if unknown:
            raise ValueError(f"unknown pool(s) {unknown}; this model's pools are {self.names}")
        w = np.array([float(weights.get(name, 0.0)) for name in self.names])
        if not np.all(np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1) > 1e-6:
            raise ValueError(f"weights must be finite, >= 0 and sum to 1; they sum to {w.sum():.8g}")
        return w

    def predict(self, weights: Mapping[str, float], budget: float, *, level: float = 0.95) -> Prediction:
        """The metric after ``budget`` samples of ``weights`` with a band widened outside the observed range."""
        check_budget(budget)
        shown = self.weights_vector(weights) * budget
        return self._band(float(self.metric_at(shown)), budget, shown, level)

    def fitted(self, observations: Sequence[Observation]) -> np.ndarray:
        """The predicted metric (n,) at each observation's mixture and size (the fit's fitted values)."""
        if not observations:
            return np.zeros(0)
        return np.asarray(self.metric_at(np.stack([self.weights_vector(o.weights) * o.size for o in observations])),
                          dtype=np.float64)

    def frontier(self, budgets: Sequence[float], *, level: float = 0.95) -> list[dict]:
        """Best mixture and its predicted metric at each budget (ascending)."""
        rows = []
        for budget in sorted(float(b) for b in budgets):
            allocation = self.optimize(budget)
            prediction = self._band(float(self.metric_at(allocation.shown)), budget, allocation.shown, level)
            rows.append({"budget": budget, "value": prediction.value, "low": prediction.low,
                         "high": prediction.high, "extrapolated": prediction.extrapolated,
                         "clamped": prediction.clamped,
                         "weights": {n: float(w) for n, w in zip(allocation.pools, allocation.weights) if w > 0}})
        return rows

    def to_stored(self) -> dict:
        """The law as JSON, keyed like the ``PerformanceModel`` columns: ``kind``, ``parameters``, ``pools``,
        ``provenance`` and ``fit_error``."""
        return {"kind": self.kind, "parameters": self.parameters(), "pools": self.pool_rows(),
                "provenance": dict(self.provenance), "fit_error": float(self.rmse)}

    @classmethod
    def restore(cls, stored: Mapping) -> "PerformanceLaw":
        """The law of :meth:`to_stored` (``parameters``, ``pools`` and optional ``provenance``)."""
        if stored.get("kind", cls.kind) != cls.kind:
            raise ValueError(f"a stored {stored['kind']!r} law is not a {cls.kind!r} law")
        return cls.from_stored(stored["parameters"], stored["pools"], stored.get("provenance") or {})

    # -- helpers for the implementations -------------------------------------------------
    def _allocation(self, budget: float, shown: np.ndarray) -> Allocation:
        size = self.unique
        return Allocation(budget=budget, pools=self.names, shown=shown, weights=shown / budget,
                          repetitions=shown / size, unique_used=np.ceil(np.minimum(shown, size) - 1e-9).astype(int))

    def _band(self, value: float, budget: float, shown: np.ndarray, level: float) -> Prediction:
        if not 0 < level < 1:
            raise ValueError(f"level must be in (0, 1); got {level}")
        low_n, high_n = self.observed_sizes
        repetitions = float((shown / self.unique).max())
        outside = max(0.0, math.log2(budget / high_n), math.log2(low_n / budget),
                      math.log2(max(repetitions, 1.0) / max(self.observed_repetitions, 1.0)))
        half = band_half_width(norm.ppf(0.5 + level / 2), self.band_scale, self.growth_scale, outside)
        lowest, highest = self.value_range
        clamped = not lowest <= value <= highest
        value = min(max(value, lowest), highest)
        return Prediction(value=value, low=max(value - half, lowest), high=min(value + half, highest),
                          outside=outside, extrapolated=outside > self.far + 1e-9, clamped=clamped)

    @property
    def band_scale(self) -> float:
        """:math:`s_m` of the module docstring: ``band_rmse`` (``rmse`` without a backtest), at least ``rmse``."""
        return self.rmse if math.isnan(self.band_rmse) else max(self.band_rmse, self.rmse)

    @property
    def growth_scale(self) -> float:
        """:math:`s_d` of the module docstring: ``band_growth`` (``rmse`` without a backtest)."""
        return self.rmse if math.isnan(self.band_growth) else self.band_growth


def growth(outside) -> np.ndarray:
    """:math:`g(o) = o (1 + o) / 2` of the module docstring."""
    outside = np.asarray(outside, dtype=np.float64)
    return outside * (1.0 + outside) / 2.0


def band_half_width(z: float, in_range: float, per_growth: float, outside):
    r""":math:`z \sqrt{s_m^2 + (s_d g(o))^2}` (module docstring), elementwise in ``outside``."""
    return z * np.sqrt(in_range ** 2 + (per_growth * growth(outside)) ** 2)


def check_budget(budget: float) -> None:
    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"budget must be a finite number > 0; got {budget}")


#: The largest training budget a request may name, per unit. Samples and tokens: 1e15, about
#: 70 times the largest published training runs (~1.5e13 tokens), and far inside int64, in which
#: a manifest counts repeats; flops: 1e30, about 10^4 times GPT-4's estimated 2e25. Converted to
#: samples (:func:`budget_in_samples`), a budget is held to ``MAX_BUDGET["samples"]`` as well.
MAX_BUDGET = {"samples": 1e15, "tokens": 1e15, "flops": 1e30}


def check_budget_bounds(budget: float, unit: str) -> None:
    """Raise ``ValueError`` unless ``budget`` is a number in ``(0, MAX_BUDGET[unit]]`` (never a boolean)."""
    if unit not in MAX_BUDGET:
        raise ValueError(f"budget_unit must be one of {', '.join(MAX_BUDGET)}; got {unit!r}")
    if isinstance(budget, bool) or not isinstance(budget, (int, float)):
        raise ValueError(f"budget must be a number; got {budget!r}")
    if not (0 < budget <= MAX_BUDGET[unit]):  # NaN fails too
        raise ValueError(f"budget must be > 0 and at most {MAX_BUDGET[unit]:g} {unit}; got {budget:g}")


def observation_arrays(law: PerformanceLaw, observations: Sequence[Observation], *, minimum: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(weights (n, P), sizes (n,), values (n,))`` of validated observations, at least ``minimum`` of them."""
    if len(observations) < minimum:
        raise ValueError(f"fitting needs at least {minimum} observations; got {len(observations)}")
    w = np.stack([law.weights_vector(o.weights) for o in observations])
    n = np.array([o.size for o in observations], dtype=np.float64)
    y = np.array([o.value for o in observations], dtype=np.float64)
    if not (np.all(np.isfinite(n)) and np.all(n > 0) and np.all(np.isfinite(y))):
        raise ValueError("observation sizes must be finite and > 0 and values finite")
    return w, n, y


def origin_of(observations: Sequence[Observation]) -> str:
    """The provenance of parameters fitted to ``observations``: ``pilot_runs`` when any came from the user,
    else ``tiny_lm`` when any came from the service's tiny language models, else ``proxy``."""
    origins = {o.origin for o in observations}
    return next((origin for origin in ("pilot_runs", "tiny_lm") if origin in origins), "proxy")


def check_pools(pools: Sequence[Pool]) -> tuple[Pool, ...]:
    pools = tuple(pools)
    if len({p.name for p in pools}) != len(pools) or not pools:
        raise ValueError("pools must be a non-empty sequence with unique names")
    if any(p.unique < 1 for p in pools):
        raise ValueError("every pool needs at least one unique document")
    return pools


def pool_row(pool: Pool) -> dict:
    """A pool as JSON (NaN features as ``None``)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(pool).items()}


def pool_of_row(row: Mapping) -> Pool:
    """The :class:`Pool` of a :func:`pool_row` (extra keys ignored)."""
    return Pool(name=row["name"], unique=int(row["unique"]), ot=_float(row.get("ot")),
                quality=_float(row.get("quality")))


def stored_range(parameters: Mapping) -> dict:
    """The fit-quality fields every law stores in its parameters, read back (``None`` range ends: unbounded)."""
    low, high = parameters.get("value_range") or (None, None)
    band, band_growth = parameters.get("band_rmse"), parameters.get("band_growth")
    return {"higher_is_better": bool(parameters["higher_is_better"]), "rmse": float(parameters["rmse"]),
            "observed_sizes": tuple(float(s) for s in parameters["observed_sizes"]),
            "observed_repetitions": float(parameters["observed_repetitions"]),
            "far": float(parameters.get("far", 0.0)), "band_rmse": math.nan if band is None else float(band),
            "band_growth": math.nan if band_growth is None else float(band_growth),
            "value_range": (-math.inf if low is None else float(low), math.inf if high is None else float(high)),
            "at_bound": dict(parameters.get("at_bound") or {})}


def range_parameters(law: PerformanceLaw) -> dict:
    """The fit-quality fields of :func:`stored_range`, as JSON."""
    low, high = law.value_range
    return {"higher_is_better": law.higher_is_better, "rmse": law.rmse, "observed_sizes": list(law.observed_sizes),
            "observed_repetitions": law.observed_repetitions, "far": law.far,
            "band_rmse": None if math.isnan(law.band_rmse) else law.band_rmse,
            "band_growth": None if math.isnan(law.band_growth) else law.band_growth,
            "value_range": [None if math.isinf(low) else low, None if math.isinf(high) else high],
            "at_bound": dict(law.at_bound)}


def metric_range(values: Sequence[float], *, higher_is_better: bool, known: tuple[float, float] | None = None
                 ) -> tuple[float, float]:
    """The range a metric can take: ``known`` when the service defines the metric; else a score whose
    observations all lie in [0, 1] is a fraction and one in [0, 100] a percentage, and a loss is >= 0
    when every observation is (else unbounded)."""
    if known is not None:
        return known
    values = np.asarray(values, dtype=np.float64)
    if higher_is_better:
        for high in (1.0, 100.0):
            if values.size and values.min() >= 0 and values.max() <= high:
                return 0.0, high
        return -math.inf, math.inf
    return (0.0, math.inf) if values.size and values.min() >= 0 else (-math.inf, math.inf)


def budget_in_samples(budget: float, unit: str, *, tokens_per_sample: float, parameters: float | None = None) -> float:
    """Convert a budget to samples: ``samples``; ``tokens`` / tokens per sample; ``flops`` via
    tokens = FLOPs / (6 * parameters) (Kaplan et al. 2020).

    The budget must be within :data:`MAX_BUDGET` of its unit, and at most
    ``MAX_BUDGET["samples"]`` once converted; ``ValueError`` says which bound it passes.
    """
    check_budget_bounds(budget, unit)
    if unit == "samples":
        return float(budget)
    if tokens_per_sample <= 0:
        raise ValueError("the corpus has no tokens; give the budget in samples")
    if unit == "tokens":
        samples = budget / tokens_per_sample
    else:
        if not parameters or parameters <= 0:
            raise ValueError("a budget in flops needs model_parameters > 0 (tokens = flops / (6 * parameters))")
        samples = budget / (6.0 * parameters) / tokens_per_sample
    if samples > MAX_BUDGET["samples"]:
        raise ValueError(f"budget of {budget:g} {unit} is {samples:.3g} samples of this corpus "
                         f"({tokens_per_sample:.3g} tokens per sample); at most {MAX_BUDGET['samples']:g} samples")
    return samples


def _float(value) -> float:
    return math.nan if value is None else float(value)
