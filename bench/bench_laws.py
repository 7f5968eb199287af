"""Performance-law fit time: each law alone and the default fit (every law, backtested, the best kept).

Synthetic pilot runs from a seeded ground-truth effective-data law with per-pool offsets
(:class:`curation.mixture.MixtureLaw`): ``runs`` observations over ``pools`` pools, at three
sizes, Dirichlet(0.5) mixtures plus a few single-pool runs, 1% noise. For every (runs, pools)
cell it prints the wall and CPU seconds and peak memory of one fit of each law
(:func:`curation.laws.fit_law`) and of :func:`curation.laws.backtest.select_law` (the default
fit: every law that can be fitted, refitted for the backtest splits), under one BLAS thread as
the fit step runs it. There is no library baseline for these fits (nothing else fits these
laws); the aim is absolute: the default fit under 10 s at 200 runs x 50 pools on one core.

    .venv/bin/python bench/bench_laws.py
    .venv/bin/python bench/bench_laws.py --runs 40 200 --pools 10 50
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from harness import Run, measure  # bench/harness.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def pilots(runs: int, pools: int, seed: int = 0):
    """``(pools, observations)``: ``runs`` noisy observations of a seeded per-pool law."""
    from curation.laws import Observation, Pool
    from curation.mixture import MixtureLaw

    rng = np.random.default_rng(seed)
    names = [f"p{i:03d}" for i in range(pools)]
    pool_list = [Pool(name, int(rng.integers(200, 2000)), ot=float(rng.random()), quality=float(rng.random()))
                 for name in names]
    truth = MixtureLaw(pools=tuple(pool_list), c=2.0, A=3.0, beta=0.3, gamma=0.5, eta=0.3, tau=4.0,
                       higher_is_better=False, offsets=tuple(rng.normal(0, 0.5, pools)),
                       observed_sizes=(1.0, 1e12), observed_repetitions=1e6)
    total = sum(p.unique for p in pool_list)
    sizes = [0.1 * total, 0.4 * total, 1.6 * total]
    observations = []
    for i in range(runs):
        size = sizes[i % 3]
        if i // 3 < min(pools, runs // 6):  # single-pool runs: repetitions identify tau
            weights = {names[(i // 3) % pools]: 1.0}
        else:
            w = rng.dirichlet(np.full(pools, 0.5))
            weights = {n: float(x) for n, x in zip(names, w) if x > 0}
            scale = sum(weights.values())
            weights = {n: x / scale for n, x in weights.items()}
        value = truth.predict(weights, size).value
        observations.append(Observation(weights=weights, size=size, value=value * (1 + rng.normal(0, 0.01)),
                                        origin="pilot_runs"))
    return pool_list, observations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, nargs="+", default=[40, 200, 1000])
    parser.add_argument("--pools", type=int, nargs="+", default=[10, 50, 200])
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from curation.laws import LAWS, fit_law
    from curation.laws.backtest import select_law

    run = Run("Performance-law fits")
    print(f"{'runs':>6}{'pools':>7}  {'fit':<16}{'wall s':>9}{'cpu s':>9}{'peak MiB':>10}  result")
    with threadpool_limits(limits=1):
        for n_runs in args.runs:
            for n_pools in args.pools:
                pool_list, observations = pilots(n_runs, n_pools)
                for kind in sorted(LAWS):
                    def one(kind=kind):
                        try:
                            return fit_law(kind, pool_list, observations, higher_is_better=False)
                        except ValueError as exc:
                            return exc
                    m = measure(one)
                    outcome = (f"refused: {str(m.result)[:60]}" if isinstance(m.result, ValueError)
                               else f"rmse {m.result.rmse:.4f}")
                    print(f"{n_runs:>6}{n_pools:>7}  {kind:<16}{m.seconds:>9.2f}{m.cpu_seconds:>9.2f}"
                          f"{m.peak_above_mb:>10.0f}  {outcome}")
                m = measure(lambda: select_law(pool_list, observations, higher_is_better=False,
                                               value_range=(0.0, math.inf)))
                _, report = m.result
                chosen = report["laws"][report["chosen"]]
                print(f"{n_runs:>6}{n_pools:>7}  {'default fit':<16}{m.seconds:>9.2f}{m.cpu_seconds:>9.2f}"
                      f"{m.peak_above_mb:>10.0f}  chose {report['chosen']} ({report['selected_by']}); held-out "
                      f"rmse size {(chosen.get('size') or {}).get('rmse', float('nan')):.4f}, mixtures "
                      f"{(chosen.get('mixtures') or {}).get('rmse', float('nan')):.4f}", flush=True)
                run.note_load()
    run.finish()


if __name__ == "__main__":
    main()
