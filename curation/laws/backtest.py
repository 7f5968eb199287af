r"""Backtests that choose a performance law and calibrate its band (DESIGN.md 3.6).

Two held-out splits match how predictions are used:

* ``size``: fit on the observations below the largest pilot size, predict those at it
  (extrapolation in size, what a budget above the pilots asks);
* ``mixtures``: k-fold over the distinct mixtures (every observation of a mixture in one fold),
  predict the held-out mixtures at the sizes seen (what a new mixture asks).

:func:`select_law` fits every registered law that the observations allow, backtests each, and
keeps the one whose worse error over the two splits is lowest (a law that extrapolates in size
well but misses unseen mixtures by orders of magnitude is not chosen; one split where the
other cannot be made), unless a ``kind`` is asked for. The chosen law's band scales come from its held-out residuals
(:func:`band_scales`: ``band_rmse`` from new mixtures at seen sizes, ``band_growth`` from the
held-out largest size, per unit of the band's growth outside the observations,
:mod:`curation.laws.base`), and the band's coverage is measured on the same held-out points.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

import numpy as np
from scipy.stats import norm

from curation.laws.base import LAWS, Observation, PerformanceLaw, Pool, band_half_width, growth
from curation.laws.regression import size_groups

#: Folds of the ``mixtures`` split (fewer when there are fewer distinct mixtures).
FOLDS = 5
#: The band level whose coverage is measured.
LEVEL = 0.95


def _fit(kind: str, pools, observations, higher_is_better: bool, value_range, start=None) -> PerformanceLaw:
    law = LAWS[kind].fit(pools, observations, higher_is_better=higher_is_better, start=start)
    return replace(law, value_range=value_range)


def _held_out(law: PerformanceLaw, observations: Sequence[Observation], split: str) -> list[dict]:
    rows = []
    for o in observations:
        prediction = law.predict(o.weights, o.size, level=LEVEL)
        rows.append({"weights": {k: float(v) for k, v in o.weights.items() if v > 0}, "size": float(o.size),
                     "observed": float(o.value), "predicted": prediction.value, "outside": prediction.outside,
                     "split": split})
    return rows


def mixture_key(weights) -> tuple:
    """A mixture's identity: its non-zero weights rounded to 1e-6."""
    return tuple(sorted((k, round(float(v), 6)) for k, v in weights.items() if v > 1e-9))


def backtest(kind: str, pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
             value_range=(-math.inf, math.inf), folds: int = FOLDS, seed: int = 0,
             start: PerformanceLaw | None = None) -> dict:
    """The held-out points of both splits for the law of ``kind``, and each split's RMS error; every
    refit starts from ``start`` (the fit to all observations) where given.

    Returns ``{"size": {"rmse", "points"} | {"error"} | None, "mixtures": ..., "heldout": [rows]}``;
    a split is ``None`` where it cannot be made (one size; one mixture) and ``{"error": reason}``
    where the law cannot be fitted to its training part.
    """
    observations = list(observations)
    sizes = np.array([o.size for o in observations], dtype=np.float64)
    out: dict = {"size": None, "mixtures": None, "heldout": []}
    groups = size_groups(sizes)
    if len(groups) >= 2:
        test = set(groups[-1].tolist())
        train = [o for i, o in enumerate(observations) if i not in test]
        out["size"] = _split(kind, pools, train, [observations[i] for i in sorted(test)], "size",
                             higher_is_better, value_range, out["heldout"], start)
    keys = sorted({mixture_key(o.weights) for o in observations})
    if len(keys) >= 2:
        order = np.random.default_rng(seed).permutation(len(keys))
        fold_of = {keys[i]: position % min(folds, len(keys)) for position, i in enumerate(order)}
        rows, errors = [], []
        for fold in range(min(folds, len(keys))):
            held = [o for o in observations if fold_of[mixture_key(o.weights)] == fold]
            train = [o for o in observations if fold_of[mixture_key(o.weights)] != fold]
            result = _split(kind, pools, train, held, "mixtures", higher_is_better, value_range, rows, start)
            if "error" in result:
                errors.append(result["error"])
        if errors and not rows:
            out["mixtures"] = {"error": errors[0]}
        else:
            residual = np.array([r["predicted"] - r["observed"] for r in rows])
            out["mixtures"] = {"rmse": float(np.sqrt(np.mean(residual ** 2))), "points": len(rows),
                               "folds_failed": len(errors)}
            out["heldout"].extend(rows)
    return out


def _split(kind, pools, train, test, name, higher_is_better, value_range, sink: list, start) -> dict:
    try:
        law = _fit(kind, pools, train, higher_is_better, value_range, start)
        rows = _held_out(law, test, name)
    except ValueError as exc:
        return {"error": str(exc)}
    sink.extend(rows)
    residual = np.array([r["predicted"] - r["observed"] for r in rows])
    return {"rmse": float(np.sqrt(np.mean(residual ** 2))), "points": len(rows)}


def band_scales(heldout: Sequence[dict], rmse: float) -> tuple[float, float]:
    r"""``(s_m, s_d)`` of :func:`curation.laws.base.band_half_width` from held-out rows.

    :math:`s_m` is the RMS residual of the ``mixtures`` split (the in-sample ``rmse`` without it),
    :math:`s_d^2 = \mathrm{mean}_j \max(r_j^2 - s_m^2, 0) / g(o_j)^2` over the ``size`` split
    (:math:`g(o_j) \ge 1/4`); NaN where a split is missing.
    """
    mixtures = np.array([r["predicted"] - r["observed"] for r in heldout if r["split"] == "mixtures"])
    in_range = float(np.sqrt(np.mean(mixtures ** 2))) if mixtures.size else rmse
    size = [r for r in heldout if r["split"] == "size"]
    if not size:
        return in_range, math.nan
    excess = np.array([max((r["predicted"] - r["observed"]) ** 2 - in_range ** 2, 0.0) for r in size])
    g = np.maximum(growth([r["outside"] for r in size]), 0.25)
    return in_range, float(np.sqrt(np.mean(excess / g ** 2)))


def coverage(heldout: Sequence[dict], law: PerformanceLaw, level: float = LEVEL) -> dict:
    """The fraction of held-out observations inside ``law``'s band at their doublings outside."""
    if not heldout:
        return {"level": level, "covered": None, "points": 0}
    half = band_half_width(norm.ppf(0.5 + level / 2), law.band_scale, law.growth_scale,
                           [r["outside"] for r in heldout])
    inside = np.abs([r["predicted"] - r["observed"] for r in heldout]) <= half + 1e-12
    return {"level": level, "covered": float(np.mean(inside)), "points": len(heldout)}


def select_law(pools: Sequence[Pool], observations: Sequence[Observation], *, higher_is_better: bool,
               kind: str | None = None, value_range=(-math.inf, math.inf), seed: int = 0
               ) -> tuple[PerformanceLaw, dict]:
    """The chosen law, with ``band_rmse`` from its backtest, and the backtest report.

    The report: ``chosen``, ``selected_by`` (``both``, ``size``, ``mixtures``: the splits it was ranked on;
    ``fit_error`` where no split could be made; ``requested`` or ``only``),
    ``laws`` (kind -> ``fit_error``, ``size`` and ``mixtures`` split results and the law fitted to every
    observation, ``stored`` (:meth:`~PerformanceLaw.to_stored`: the committee of
    :func:`curation.pilots.next_runs`), or ``error`` where the law cannot be fitted), the chosen law's
    ``heldout`` points and the band's ``coverage``.
    ``ValueError`` when no law (or the requested one) can be fitted, naming why.
    """
    kinds = [kind] if kind else sorted(LAWS)
    laws, table = {}, {}
    for k in kinds:
        try:
            laws[k] = _fit(k, pools, observations, higher_is_better, value_range)
        except ValueError as exc:
            table[k] = {"error": str(exc)}
            continue
        result = backtest(k, pools, observations, higher_is_better=higher_is_better, value_range=value_range,
                          seed=seed, start=laws[k])
        table[k] = {"fit_error": laws[k].rmse, "size": result["size"], "mixtures": result["mixtures"],
                    "heldout": result["heldout"], "stored": laws[k].to_stored()}
    if not laws:
        reasons = "; ".join(f"{k}: {v['error']}" for k, v in table.items())
        raise ValueError(f"no performance law can be fitted to these observations ({reasons})")

    def error(k: str, split: str) -> float:
        value = table[k][split]
        return value["rmse"] if value and "rmse" in value else math.inf

    if kind:
        chosen, selected_by = kind, "requested"
    elif len(laws) == 1:
        chosen, selected_by = next(iter(laws)), "only"
    else:
        # A law must predict both what a larger budget asks (size) and what a new mixture asks (mixtures):
        # it is ranked by the worse of its errors over the splits some law could be tested on.
        splits = [s for s in ("size", "mixtures") if any(math.isfinite(error(k, s)) for k in laws)]

        def worst(k: str) -> float:
            return max((error(k, s) for s in splits), default=math.inf)

        ranked = sorted(laws, key=lambda k: (worst(k), table[k]["fit_error"]))
        by = "both" if len(splits) == 2 else splits[0] if splits else "fit_error"
        chosen, selected_by = ranked[0], by if math.isfinite(worst(ranked[0])) else "fit_error"
    heldout = table[chosen]["heldout"]
    in_range, per_growth = band_scales(heldout, laws[chosen].rmse)
    law = replace(laws[chosen], band_rmse=in_range, band_growth=per_growth)
    report = {"chosen": chosen, "selected_by": selected_by,
              "laws": {k: {key: value for key, value in v.items() if key != "heldout"} for k, v in table.items()},
              "heldout": heldout, "coverage": coverage(heldout, law),
              "band": {"in_range": law.band_scale, "per_growth": law.growth_scale}}
    return law, report


def backtest_summary(report: dict | None) -> dict | None:
    """What a prediction states about its law (JSON): ``law`` (the chosen kind), ``selected_by``, the
    chosen law's held-out RMS errors ``size_rmse`` (the largest pilot size, predicted from the others:
    the extrapolation error) and ``mixtures_rmse`` (unseen mixtures at seen sizes), None where that
    split could not be made, and the band's measured ``coverage`` ``{"level", "covered", "points"}``;
    None for no report (a model fitted before backtests)."""
    if not report:
        return None
    chosen = report["laws"][report["chosen"]]

    def rmse(split: str):
        value = chosen.get(split)
        return value.get("rmse") if value else None

    return {"law": report["chosen"], "selected_by": report["selected_by"], "size_rmse": rmse("size"),
            "mixtures_rmse": rmse("mixtures"), "coverage": report["coverage"]}
