"""Sinkhorn benchmark: ``numeric_kernels.sinkhorn.solve`` against POT's fastest method on the same problem.

The problem is the one :func:`curation.ot.embedding_distance` solves by default: two
clouds of n = m points in dimension 384 (20 Gaussian clusters, L2-normalised, the target
shifted), cosine cost, uniform weights, ``reg = 0.05``, tolerance 1e-6 on the L2
column-marginal error (POT's stopping rule, which both solvers check), float64. On the
same cost matrix, interleaved in rounds by :mod:`harness` (medians, median paired ratio):

- ``ours``: ``solve(a, b, cost=torch.from_numpy(M), reg=reg, tol=tol)``;
- ``pot sinkhorn``: ``ot.sinkhorn2(a, b, M, reg, method="sinkhorn", stopThr=tol)`` (numpy, the
  scaling-domain algorithm ours also iterates);
- ``pot sinkhorn_log``: the same with ``method="sinkhorn_log"`` (numpy; up to ``--log-max``
  points, default 1,000, and in the batch: it costs two passes of exponentials per iteration);
- ``pot torch``: ``ot.sinkhorn2`` with ``method="sinkhorn"`` on the torch tensors ours reads.

Every POT result is checked against ours (relative difference of the value). Then: a batch
of ``--batch`` problems of ``--batch-n`` points in one call against a loop of POT's fastest
method; a clustered problem that needs many iterations (MiniLM embeddings of AG News
against SciQ from ``var/test-cache`` when the test suite has cached them, else tight
synthetic clusters; ``reg = 0.01``); and the ``online`` method's memory on ``--online-n``
points (float32, ``--online-iters`` iterations).

    .venv/bin/python bench/bench_sinkhorn.py                      # ~6 minutes on 2 cores
    .venv/bin/python bench/bench_sinkhorn.py --log-max 2000       # sinkhorn_log at 2k too: ~14 minutes
    .venv/bin/python bench/bench_sinkhorn.py --sizes 1000 --online-n 0
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import ot
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness import Run, interleave, measure  # noqa: E402  (bench/ is on sys.path: run as a script)
from numeric_kernels.sinkhorn import solve  # noqa: E402

DIM, REG, TOL, METRIC = 384, 0.05, 1e-6, "cosine"
CACHE = Path(__file__).resolve().parent.parent / "var" / "test-cache"


def clouds(n: int, seed: int, dtype=np.float64, spread: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, DIM))

    def draw(shift):
        x = centres[rng.integers(0, 20, n)] + spread * rng.normal(size=(n, DIM)) + shift
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)

    return draw(0.0), draw(0.05)


def pot_methods(a, b, cost, reg, tol, *, with_log: bool) -> dict:
    """POT's methods on the same problem, each returning ``(value, iterations)``."""
    def numpy_method(method):
        def call():
            value, log = ot.sinkhorn2(a, b, cost, reg, method=method, stopThr=tol, numItermax=100000, log=True,
                                      warn=False)
            return float(value), int(log["niter"]) + 1
        return call

    a_t, b_t, cost_t = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(cost)

    def torch_method():
        value, log = ot.sinkhorn2(a_t, b_t, cost_t, reg, method="sinkhorn", stopThr=tol, numItermax=100000,
                                  log=True, warn=False)
        return float(value), int(log["niter"]) + 1

    methods = {"pot sinkhorn": numpy_method("sinkhorn"), "pot torch": torch_method}
    if with_log:
        methods["pot sinkhorn_log"] = numpy_method("sinkhorn_log")
    return methods


def compare(run: Run, a, b, cost, reg: float, tol: float, rounds: int, with_log: bool, label: str) -> None:
    """One problem: ours and POT's methods interleaved; one table row per method."""
    cost_t = torch.from_numpy(cost)

    def ours():
        res = solve(torch.from_numpy(a), torch.from_numpy(b), cost=cost_t, reg=reg, tol=tol, max_iter=100000)
        return float(res.value), res.n_iter

    methods = {"ours": ours, **pot_methods(a, b, cost, reg, tol, with_log=with_log)}
    result = interleave(methods, rounds=rounds, run=run, warmup=False,
                        log=lambda line: print(f"  {label}: {line}", file=sys.stderr, flush=True))
    ours_value = result.result("ours")[0]
    pot_names = [name for name in methods if name != "ours"]
    fastest = min(pot_names, key=result.median_s)
    for name in methods:
        value, iters = result.result(name)
        diff = "–" if name == "ours" else f"{abs(value - ours_value) / abs(ours_value):.1e}"
        ratio = "–" if name == "ours" else f"{result.paired_ratio(name, 'ours'):.2f}"
        print(f"| {label} | {name}{' (fastest POT)' if name == fastest else ''} | {result.median_s(name):.3f} "
              f"| {result.best_s(name):.3f} | {iters} | {result.peak_above_mb(name):,.0f} | {ratio} | {diff} |",
              flush=True)


def header(title: str) -> None:
    print(f"\n## {title}\n\n| problem | method | median s | best s | iterations | peak MiB above start "
          "| speed-up of ours (median paired) | rel. value diff to ours |\n|---|---|---:|---:|---:|---:|---:|---:|")


def dense(run: Run, sizes: list[int], log_max: int, rounds: int) -> None:
    header(f"Dense: n = m points, d = {DIM}, {METRIC} cost, reg = {REG}, tol = {TOL:g} (float64)")
    for n in sizes:
        x, y = clouds(n, seed=n)
        cost = ot.dist(x, y, metric=METRIC)
        a = np.full(n, 1.0 / n)
        compare(run, a, a, cost, REG, TOL, rounds if n < 5000 else max(1, rounds // 2), n <= log_max, f"n = {n:,}")


def clustered(run: Run, n: int, rounds: int, log_max: int) -> None:
    """Many iterations: reg 0.01 on clustered real embeddings (cached MiniLM) or tight synthetic clusters."""
    news = sorted(CACHE.glob("ag_news_test-*-minilm-*.npy"))
    sciq = sorted(CACHE.glob("sciq_test-*-minilm-*.npy"))
    if news and sciq:
        x, y = np.load(news[0])[:n].astype(np.float64), np.load(sciq[0])[:n].astype(np.float64)
        source = f"MiniLM embeddings: AG News (first {len(x):,}) vs SciQ (first {len(y):,})"
    else:
        x, y = clouds(n, seed=3, spread=0.2)
        source = f"synthetic tight clusters, {n:,} x {n:,} (no cached MiniLM embeddings in {CACHE})"
    cost = ot.dist(x, y, metric=METRIC)
    a, b = np.full(len(x), 1.0 / len(x)), np.full(len(y), 1.0 / len(y))
    header(f"Clustered, many iterations: {source}, {METRIC} cost, reg = 0.01, tol = {TOL:g} (float64)")
    compare(run, a, b, cost, 0.01, TOL, rounds, max(len(x), len(y)) <= log_max, f"{len(x):,} x {len(y):,}, reg 0.01")


def batched(run: Run, batch: int, n: int, rounds: int) -> None:
    pairs = [clouds(n, seed=1000 + k) for k in range(batch)]
    costs = np.stack([ot.dist(x, y, metric=METRIC) for x, y in pairs])
    costs_t = torch.from_numpy(costs)
    a = np.full(n, 1.0 / n)

    def pot_loop(method):
        return lambda: np.array([float(ot.sinkhorn2(a, a, costs[k], REG, method=method, stopThr=TOL,
                                                    numItermax=100000)) for k in range(batch)])

    result = interleave({
        "ours, one batched call": lambda: solve(cost=costs_t, reg=REG, tol=TOL, max_iter=100000).value.numpy(),
        "ours, loop of single calls": lambda: np.array([float(solve(cost=costs_t[k], reg=REG, tol=TOL,
                                                                     max_iter=100000).value) for k in range(batch)]),
        "pot sinkhorn, loop": pot_loop("sinkhorn"),
        "pot sinkhorn_log, loop": pot_loop("sinkhorn_log"),
    }, rounds=rounds, run=run, log=lambda line: print(f"  batch: {line}", file=sys.stderr, flush=True))
    ours = result.result("ours, one batched call")
    print(f"\n## Batched: {batch} problems of {n} x {n}, d = {DIM}, {METRIC} cost, reg = {REG}, tol = {TOL:g} "
          f"(float64)\n\n| way | median s | problems/s | speed-up of the batched call (median paired) "
          "| largest rel. value diff to the batched call |\n|---|---:|---:|---:|---:|")
    for name in result.runs:
        values = result.result(name)
        ratio = "–" if name.startswith("ours, one") else f"{result.paired_ratio(name, 'ours, one batched call'):.2f}"
        print(f"| {name} | {result.median_s(name):.2f} | {batch / result.median_s(name):.1f} | {ratio} "
              f"| {np.max(np.abs(values - ours) / np.abs(ours)):.1e} |")


def online(run: Run, n: int, iters: int) -> None:
    x, y = clouds(n, seed=7, dtype=np.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    m = measure(lambda: solve(x=xt, y=yt, metric=METRIC, reg=REG, tol=TOL, max_iter=iters, method="online",
                              warn=False))
    run.note_load()
    res = m.result
    print(f"\n## Online: {n:,} x {n:,} points, d = {DIM}, float32, {METRIC} cost, reg = {REG}, "
          f"{iters} iteration(s)\n\n| n | time s | iterations | marginal error | peak RSS above start MiB "
          "| one dense n x n float32 MiB |\n|---|---:|---:|---:|---:|---:|")
    print(f"| {n:,} | {m.seconds:.1f} | {res.n_iter} | {float(res.marginal_error):.1e} | {m.peak_above_mb:,.0f} "
          f"| {n * n * 4 / 2**20:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 2000, 5000], help="dense sizes")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (half of them from n = 5,000)")
    parser.add_argument("--log-max", type=int, default=1000,
                        help="largest n at which sinkhorn_log runs (dense and clustered problems)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batch-n", type=int, default=256)
    parser.add_argument("--clustered-n", type=int, default=2000, help="points per side of the reg-0.01 problem")
    parser.add_argument("--online-n", type=int, default=20000, help="online problem size (0: skip)")
    parser.add_argument("--online-iters", type=int, default=2)
    args = parser.parse_args()
    run = Run(f"Sinkhorn: POT {ot.__version__}, numpy {np.__version__}")
    if args.sizes:
        dense(run, args.sizes, args.log_max, args.rounds)
    if args.clustered_n:
        clustered(run, args.clustered_n, args.rounds, args.log_max)
    if args.batch:
        batched(run, args.batch, args.batch_n, args.rounds)
    if args.online_n:
        online(run, args.online_n, args.online_iters)
    run.finish()


if __name__ == "__main__":
    main()
