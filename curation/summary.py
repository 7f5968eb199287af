"""Plain-text lines that summarise a curation result, shared by ``python -m curation curate``
and ``manage.py demo``: every number says what it counts, its unit and band level where known."""
from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

from curation.pilots import metric_unit


def pool_table(rows: Sequence[Mapping], *, indent: str = "  ") -> list[str]:
    """The mixture's pools, largest weight first: weight, unique documents used of those
    available, and repetitions (samples shown per available document: 28 of 32 documents
    shown once each is 0.88)."""
    lines = [f"{indent}{'pool':<24}{'weight':>8}{'unique used / available':>26}{'repetitions':>13}"]
    for row in sorted(rows, key=lambda r: -r["weight"]):
        used = f"{row['unique_documents']} / {row['available_documents']}"
        lines.append(f"{indent}{row['pool']:<24}{row['weight']:>8.3f}{used:>26}{row['repetitions']:>13.2f}")
    return lines


def prediction_line(predicted: Mapping) -> str:
    """``Predicted <metric> (<unit>, lower is better): value, 95% band [low, high]; parameters from:
    proxy (tau: defaults)``: the source most parameters came from, then each parameter that came from
    another (a default is one the data could not identify), then the flags a reader must not miss."""
    unit = predicted.get("unit") or metric_unit(predicted["metric"])
    direction = f"{'higher' if predicted['higher_is_better'] else 'lower'} is better"
    level = predicted.get("level")
    band = f"{level:.0%} band" if level else "band"
    provenance = predicted.get("provenance") or {}
    counts = Counter(provenance.values())
    main = max(sorted(counts), key=lambda source: (counts[source], source != "defaults")) if counts else "unknown"
    others = ", ".join(f"{name}: {source}" for name, source in provenance.items() if source != main)
    flags = [text for key, text in (("extrapolated", "EXTRAPOLATED beyond the observed sizes or repetitions"),
                                    ("clamped", "CLAMPED to the metric's possible range"))
             if predicted.get(key)]
    return (f"Predicted {predicted['metric']} ({f'{unit}, ' if unit else ''}{direction}): {predicted['value']:.3f}, "
            f"{band} [{predicted['low']:.3f}, {predicted['high']:.3f}]; parameters from: {main}"
            f"{f' ({others})' if others else ''}{''.join(f'; {flag}' for flag in flags)}")


def backtest_line(predicted: Mapping) -> str | None:
    """``Law effective_data (chosen by backtest at the largest pilot size); held-out error 0.215 at the
    largest pilot size, 0.524 on unseen mixtures; the 95% band held 96% of 68 held-out pilots``;
    None for a model fitted before backtests."""
    backtest = predicted.get("backtest")
    if not backtest:
        return None
    how = {"both": "chosen by backtest at the largest pilot size and on unseen mixtures",
           "size": "chosen by backtest at the largest pilot size", "mixtures": "chosen by backtest on unseen "
           "mixtures", "fit_error": "chosen by fit error", "requested": "as asked",
           "only": "the only law these pilots fit"}[backtest["selected_by"]]
    errors = [f"{backtest[key]:.3g} {where}" for key, where in (("size_rmse", "at the largest pilot size"),
                                                                  ("mixtures_rmse", "on unseen mixtures"))
              if backtest.get(key) is not None]
    coverage = backtest.get("coverage") or {}
    held = (f"; the {coverage['level']:.0%} band held {coverage['covered']:.0%} of {coverage['points']} held-out "
            "pilots") if coverage.get("covered") is not None else ""
    bound = "; ended on a bound: " + ", ".join(predicted["at_bound"]) if predicted.get("at_bound") else ""
    return (f"Law {backtest['law']} ({how}); held-out error {', '.join(errors) if errors else 'not measured'}"
            f"{held}{bound}")


def budget_policy_lines(policy: Mapping | None) -> list[str]:
    """How the budget decided the selection: ``Budget: 12,000 samples (1.2e+06 tokens)``, the prune
    policy and BETR's share of tokens, each with its reason; none for a result without a policy."""
    if not policy:
        return []
    keep = policy["prune"].get("keep")
    return [f"Budget: {policy['budget_samples']:,.0f} samples ({policy['budget_tokens']:.3g} tokens)",
            f"  prune: {f'keep {keep}: ' if keep else ''}{policy['prune']['reason']}",
            f"  BETR: keep {policy['betr']['token_fraction']:.1%} of tokens: {policy['betr']['reason']}"]


def contamination_line(contamination: Mapping | None, where: str = "") -> str:
    """``Decontamination: 3 of 2,225 documents hold a benchmark example and are in no selection (gsm8k 3)``."""
    if not contamination:
        return "Decontamination: off (no document was checked against the benchmarks)"
    per = ", ".join(f"{b.get('name') or key} {b['documents']}" for key, b in contamination["benchmarks"].items())
    return (f"Decontamination: {contamination['contaminated']:,} of {contamination['documents']:,} documents hold a "
            f"benchmark example and are in no selection ({per}){f'  ({where})' if where else ''}")


def betr_line(betr: Mapping) -> str:
    """What BETR kept: a share of tokens, counted in tokens and documents, and the documents by source."""
    kept_tokens, total = betr.get("kept_tokens"), betr.get("total_tokens")
    share = f"{betr['token_fraction']:.0%}" if betr.get("token_fraction") is not None else "a share"
    tokens = f" ({kept_tokens:,} of {total:,} tokens)" if kept_tokens is not None and total else ""
    documents = sum(betr["kept_per_source"].values())
    by_source = ", ".join(f"{k or '(none)'} {v}" for k, v in sorted(betr["kept_per_source"].items(),
                                                                      key=lambda kv: (-kv[1], kv[0])))
    return (f"BETR classifier: held-out accuracy {betr['holdout_accuracy']:.2f}; kept the best-scored {share} of "
            f"tokens{tokens}: {documents} documents, by source: {by_source}")


def pilots_lines(pilots: Mapping, fit: Mapping) -> list[str]:
    """Who made the observations and, for the effective-data law, the repetition half-life it fitted:
    ``Pilots: 20 tiny-LM runs (1.5M parameters) on 1,234,567 tokens in 95.2 s (12,968 tokens/s on cpu)``
    and ``Repetition half-life: tau = 3.2 repetitions (from tiny_lm)``."""
    if pilots.get("origin") == "tiny_lm":
        line = (f"Pilots: {pilots['observations']} tiny-LM runs ({pilots['parameters'] / 1e6:.1f}M parameters) on "
                f"{pilots['tokens']:,} tokens in {pilots['seconds']:.1f} s ({pilots['tokens_per_second']:,.0f} "
                f"tokens/s on {pilots['device']})")
    elif pilots.get("origin") == "pilot_runs":
        line = f"Pilots: {pilots['observations']} of your pilot runs of {pilots['metric']}"
    else:
        line = f"Pilots: {pilots['observations']} bigram-proxy observations (pilot_model tiny_lm measures repetition)"
    lines = [line]
    tau = (fit.get("parameters") or {}).get("tau")
    if tau is not None:
        source = fit["provenance"].get("tau", "defaults")
        if "tau" in (fit.get("at_bound") or {}):
            told = f"not identified: {fit['at_bound']['tau']}"
        else:
            told = "a default: no pilot run repeats a pool" if source == "defaults" else f"from {source}"
        lines.append(f"Repetition half-life: tau = {tau:.2f} repetitions ({told})")
    return lines


def estimate_lines(estimate: Mapping, *, indent: str = "  ") -> list[str]:
    """A plan's estimate (:func:`curation.executor.plan_estimate`): every stage's units, work and
    estimated seconds with their basis (``measured (12 units)`` or ``default``), then the total."""
    lines = [f"{indent}{'stage':<20}{'queue':<6}{'units':>6}{'work':>20}{'seconds':>10}  basis"]
    for stage in estimate["stages"]:
        work = f"{stage['work']:,.0f} {stage['work_unit'] if stage['work'] != 1 else stage['work_unit'][:-1]}"
        units = stage["measured_units"]
        basis = stage["basis"] if stage["basis"] != "measured" else f"measured ({units} unit{'s' * (units != 1)})"
        lines.append(f"{indent}{stage['name']:<20}{stage['queue']:<6}{stage['units']:>6}{work:>20}"
                     f"{stage['seconds']:>10.2f}  {basis}")
    lines.append(f"Estimated total: {estimate['seconds']:.1f} s, for {estimate['worker_slots_per_queue']} worker "
                 "slot per queue (a stage's units one after another)")
    return lines
