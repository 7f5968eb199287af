"""Sinkhorn benchmark: ``kernels.sinkhorn.solve`` against POT's numpy ``sinkhorn_log``.

The problem is the one :func:`curation.ot.embedding_distance` solves by default: two
clouds of n = m points in dimension 384 (20 Gaussian clusters, L2-normalised, the target
shifted), cosine cost (``--metric``), uniform weights, ``reg = 0.05`` (``--reg``),
tolerance 1e-6 (``--tol``) on the L2 column-marginal error (POT's rule, checked by both).
In the same process and on the same float64 cost matrix:

- ``pot``: ``ot.sinkhorn2(a, b, M, reg, method="sinkhorn_log", stopThr=tol)`` (numpy);
- ``ours``: ``solve(a, b, cost=torch.from_numpy(M), reg=reg, tol=tol)``;
- ``ours f32``: the same on the float32 cost.

POT's numpy solver costs seconds per iteration from n = 5k on a small machine, so above
``--pot-full-max`` it runs only ``--pot-iters`` iterations: that row reports its time per
iteration, the speed-up is then the ratio of times per iteration, and there is no value
to compare.

Then batched throughput (B problems of 256 x 256 in one call, against a loop of single
calls and of POT) and the ``online`` method on 50k x 50k float32 points, which never
stores the 50k x 50k cost (capped at ``--online-iters`` iterations to bound the run).

Time is wall-clock of one run after a small warm-up; memory is the process's peak RSS
(``VmHWM``, reset before each measurement through ``/proc/self/clear_refs``) above the
RSS before it. The machine's cores may be shared: the load average is printed.

    .venv/bin/python bench/bench_sinkhorn.py                    # about 45 minutes on 2 cores (POT at 5k: 25)
    .venv/bin/python bench/bench_sinkhorn.py --sizes 1000 --online-n 5000 --online-iters 3
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import ot
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from kernels.sinkhorn import solve  # noqa: E402

DIM, REG, TOL, METRIC = 384, 0.05, 1e-6, "cosine"


def clouds(n: int, seed: int, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(20, DIM))

    def draw(shift):
        x = centres[rng.integers(0, 20, n)] + 0.7 * rng.normal(size=(n, DIM)) + shift
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)

    return draw(0.0), draw(0.05)


def _status(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


def measure(fn):
    """(result, seconds, peak RSS above the RSS before, bytes)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass
    before = _status("VmRSS:")
    start = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - start
    return result, seconds, max(_status("VmHWM:") - before, 0)


def mib(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:,.0f}"


def problem_cost(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return ot.dist(x, y, metric=METRIC)


def dense_table(sizes: list[int], pot_full_max: int, pot_iters: int) -> None:
    print(f"\n## Dense: n = m points, d = {DIM}, {METRIC} cost, reg = {REG}, tol = {TOL:g} (float64)\n")
    print("| n | POT sinkhorn_log s | POT iters | POT s / iter | POT peak MiB | ours s | ours iters | ours s / iter "
          "| ours peak MiB | speed-up | rel. value diff | ours f32 s | ours f32 iters |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        x, y = clouds(n, seed=n)
        cost = problem_cost(x, y)
        a = b = np.full(n, 1.0 / n)
        cost_t = torch.from_numpy(cost)
        solve(a[:50], b[:50], cost=cost_t[:50, :50], reg=REG, tol=TOL)  # warm-up
        full = n <= pot_full_max
        (pot_value, log), pot_s, pot_mem = measure(lambda: ot.sinkhorn2(
            a, b, cost, REG, method="sinkhorn_log", stopThr=TOL if full else 0.0,
            numItermax=10000 if full else pot_iters, log=True, warn=False))
        pot_n = log["niter"] + 1 if full else pot_iters
        res, ours_s, ours_mem = measure(lambda: solve(a, b, cost=cost_t, reg=REG, tol=TOL, max_iter=10000))
        cost32 = cost_t.float()
        res32, f32_s, _ = measure(lambda: solve(cost=cost32, reg=REG, tol=TOL, max_iter=10000))
        if full:
            speed_up = f"{pot_s / ours_s:.1f}x"
            diff = f"{abs(float(res.value) - float(pot_value)) / abs(float(pot_value)):.1e}"
        else:
            speed_up = f"{(pot_s / pot_n) / (ours_s / res.n_iter):.1f}x per iter"
            diff = "n/a (POT capped)"
        print(f"| {n:,} | {pot_s:.2f} | {pot_n}{'' if full else ' (cap)'} | {pot_s / pot_n:.3f} | {mib(pot_mem)} "
              f"| {ours_s:.2f} | {res.n_iter} | {ours_s / res.n_iter:.4f} | {mib(ours_mem)} | {speed_up} | {diff} "
              f"| {f32_s:.2f} | {res32.n_iter} |", flush=True)
        del cost, cost_t, cost32


def batched_table(batch: int, n: int) -> None:
    print(f"\n## Batched: {batch} problems of {n} x {n}, d = {DIM}, {METRIC} cost, reg = {REG}, "
          f"tol = {TOL:g} (float64)\n")
    pairs = [clouds(n, seed=1000 + k) for k in range(batch)]
    costs = np.stack([problem_cost(x, y) for x, y in pairs])
    costs_t = torch.from_numpy(costs)
    solve(cost=costs_t[:2], reg=REG, tol=TOL)  # warm-up
    res, batched_s, _ = measure(lambda: solve(cost=costs_t, reg=REG, tol=TOL, max_iter=10000))
    _, loop_s, _ = measure(lambda: [solve(cost=costs_t[k], reg=REG, tol=TOL, max_iter=10000) for k in range(batch)])
    a = np.full(n, 1.0 / n)
    pot_values, pot_s, _ = measure(lambda: [ot.sinkhorn2(a, a, costs[k], REG, method="sinkhorn_log", stopThr=TOL,
                                                         numItermax=10000) for k in range(batch)])
    pot_values = np.array([float(v) for v in pot_values])
    diff = np.max(np.abs(res.value.numpy() - pot_values) / np.abs(pot_values))
    print("| way | problems/s |\n|---|---|")
    print(f"| ours, one batched call | {batch / batched_s:.1f} |")
    print(f"| ours, loop of single calls | {batch / loop_s:.1f} |")
    print(f"| POT sinkhorn_log, loop | {batch / pot_s:.1f} |")
    print(f"\nlargest relative value difference batched vs POT: {diff:.1e}")


def online_table(n: int, iters: int) -> None:
    print(f"\n## Online: {n:,} x {n:,} points, d = {DIM}, float32, {METRIC} cost, reg = {REG}, tol = {TOL:g}, "
          f"at most {iters} iterations\n")
    x, y = clouds(n, seed=7, dtype=np.float32)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    dense_bytes = n * n * 4
    res, seconds, peak = measure(lambda: solve(x=xt, y=yt, metric=METRIC, reg=REG, tol=TOL, max_iter=iters,
                                               method="online", warn=False))
    print("| n | time s | s / iteration | iterations | converged | marginal error | peak RSS above start MiB "
          "| one dense n x n float32 MiB |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {n:,} | {seconds:.1f} | {seconds / res.n_iter:.1f} | {res.n_iter} | {res.converged} | "
          f"{float(res.marginal_error):.1e} | {mib(peak)} | {mib(dense_bytes)} |")
    print(f"\nvalue <P, C> = {float(res.value):.6f}; process peak RSS (VmHWM) {mib(_status('VmHWM:'))} MiB")


def main() -> None:
    global REG, TOL, METRIC
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 5000, 10000],
                        help="dense problem sizes (none: skip the dense table)")
    parser.add_argument("--tol", type=float, default=TOL, help="marginal-error tolerance of both solvers")
    parser.add_argument("--reg", type=float, default=REG, help="entropic regularisation")
    parser.add_argument("--metric", choices=["cosine", "sqeuclidean"], default=METRIC)
    parser.add_argument("--pot-full-max", type=int, default=5000,
                        help="largest n at which POT runs to convergence")
    parser.add_argument("--pot-iters", type=int, default=20, help="POT's iterations above --pot-full-max")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batch-n", type=int, default=256)
    parser.add_argument("--online-n", type=int, default=50000, help="online problem size (0: skip)")
    parser.add_argument("--online-iters", type=int, default=3, help="iterations of the online problem")
    args = parser.parse_args()
    print(f"# Sinkhorn benchmark\n\n{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), POT {ot.__version__}, "
          f"numpy {np.__version__}; load average at start {os.getloadavg()[0]:.2f}")
    REG, TOL, METRIC = args.reg, args.tol, args.metric
    if args.sizes:
        dense_table(args.sizes, args.pot_full_max, args.pot_iters)
    batched_table(args.batch, args.batch_n)
    if args.online_n:
        online_table(args.online_n, args.online_iters)
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
