"""SemDeDup benchmark: ``curation.semdedup.semdedup`` against an all-pairs search on the same clusters.

Input: ``n`` deterministic synthetic embeddings of dimension 384 (unit rows): ``n / 500``
random topic directions, each document a topic plus Gaussian noise (cosine to its topic
~0.6, to another document of its topic ~0.36), and 5% of the documents near-copies of
another one (cosine ~0.999). Both methods cluster with the same
``numeric_kernels.kmeans.spherical_kmeans(x, k, seed=0)`` (``k = n / docs-per-cluster``; SemDeDup's
default is ``n / 100``, larger clusters show the all-pairs matrices' memory) and apply the same rule
(within a cluster, in increasing similarity to the centroid, a document is a duplicate
when an earlier one has cosine >= 1 - eps):

- ``semdedup``: the library, which compares ``block x cluster`` products (block 1024);
- ``all-pairs``: per cluster the full ``n_c x n_c`` similarity matrix in numpy (and its
  lower triangle, ``np.tril``), then the maximum over earlier documents of each row.

Each run is a fresh Python process (like ``bench_ingest.py``), so peak RSS is that
run's own ``VmHWM``; the data are generated in the process before the clock starts
(``RSS before`` includes them, and the peak is reset after generating them). The two
results must agree document for document. k-means time is reported apart (SemDeDup's is
timed by wrapping the function it calls). Each method runs ``--repeat`` times,
interleaved; the table shows the fastest run's times and the highest peak RSS.

    .venv/bin/python bench/bench_semdedup.py                  # 10k and 100k documents
    .venv/bin/python bench/bench_semdedup.py --configs 10000:100  # n:docs-per-cluster, comma-separated

1M documents are not in the defaults: ``--configs 1000000:10000`` (k = 100) takes 7 and
15 minutes on a 2-core CPU, 5 of them k-means; at SemDeDup's default k = n / 100 = 10,000,
k-means alone (3 starts x 25 iterations of n x k x 384 products, ~3e14 flops) would take hours.

On a machine whose cores are shared with other jobs, ``--threads 1`` gives stable
figures: multi-threaded OpenBLAS spin-waits on the many small within-cluster products
and can be 10-60x slower under contention.

Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from harness import Run  # bench/harness.py, beside this script: machine, libraries, threads, load

ROOT = Path(__file__).resolve().parent.parent
MB = 10**6
DIM = 384
DUPLICATE_SHARE = 0.05


def embeddings(n: int, seed: int = 0) -> np.ndarray:
    """(n, 384) float32 unit rows: topics plus noise, with 5% near-duplicates of other rows."""
    rng = np.random.default_rng(seed)
    topics = rng.normal(size=(max(1, n // 500), DIM)).astype(np.float32)
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    x = topics[rng.integers(0, len(topics), n)]
    x += 0.068 * rng.standard_normal(size=(n, DIM), dtype=np.float32)
    copies = rng.choice(n, size=int(DUPLICATE_SHARE * n), replace=False)
    x[copies] = x[rng.integers(0, n, len(copies))] + 0.002 * rng.standard_normal((len(copies), DIM), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _reset_peak() -> None:
    """Reset ``VmHWM`` to the current RSS (Linux ``/proc/self/clear_refs``), so the peak excludes the data's
    generation."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _rss_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"{field} not in /proc/self/status")


def all_pairs_kept(x: np.ndarray, labels: np.ndarray, similarity: np.ndarray, k: int, eps: float) -> np.ndarray:
    """The SemDeDup rule with one full similarity matrix per cluster."""
    kept = np.ones(len(x), dtype=bool)
    for cluster in range(k):
        members = np.flatnonzero(labels == cluster)
        members = members[np.argsort(similarity[members], kind="stable")]
        earlier = np.tril(x[members] @ x[members].T, -1)  # only earlier documents count (0 elsewhere)
        kept[members[1:]] = earlier[1:].max(axis=1) < 1.0 - eps
    return kept


def _child(mode: str, n: int, k: int, eps: float, threads: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import faiss
    from threadpoolctl import threadpool_limits

    import curation.semdedup as semdedup_module
    from numeric_kernels.kmeans import spherical_kmeans

    if threads:
        threadpool_limits(threads)
        faiss.omp_set_num_threads(threads)

    x = embeddings(n)
    _reset_peak()
    rss_before = _rss_mb("VmRSS")
    kmeans_seconds = []

    def timed_kmeans(*args, **kwargs):
        started = time.perf_counter()
        result = spherical_kmeans(*args, **kwargs)
        kmeans_seconds.append(time.perf_counter() - started)
        return result

    started = time.perf_counter()
    if mode == "semdedup":
        semdedup_module.spherical_kmeans = timed_kmeans
        result = semdedup_module.semdedup(x, eps=eps, k=k, seed=0)
        kept, labels = result.kept, result.labels
    else:
        clusters = timed_kmeans(x, k, seed=0)
        labels = clusters.labels_
        kept = all_pairs_kept(x, labels, clusters.similarity_, k, eps)
    seconds = time.perf_counter() - started
    sizes = np.bincount(labels, minlength=k)
    return {"seconds": seconds, "kmeans_seconds": kmeans_seconds[0], "kept": int(kept.sum()),
            "kept_digest": hashlib.sha256(np.packbits(kept).tobytes()).hexdigest()[:16],
            "largest_cluster": int(sizes.max()), "rss_before_mb": rss_before, "peak_rss_mb": _rss_mb("VmHWM")}


def run_child(mode: str, n: int, k: int, eps: float, threads: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(n), str(k), str(eps),
               str(threads)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def best_of(runs: list[dict]) -> dict:
    """The fastest run's times, the highest peak RSS of all runs."""
    best = dict(min(runs, key=lambda r: r["seconds"]))
    best["peak_rss_mb"] = max(r["peak_rss_mb"] for r in runs)
    return best


def machine() -> str:
    """The versions of the libraries this benchmark measures."""
    import faiss

    return (f"numpy {np.__version__}, faiss {faiss.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="10000:100,10000:1000,100000:1000,100000:10000",
                        help="n:docs-per-cluster pairs (k = n / docs-per-cluster), comma-separated")
    parser.add_argument("--eps", type=float, default=0.01)
    parser.add_argument("--repeat", type=int, default=2, help="runs per method; the fastest is reported")
    parser.add_argument("--threads", type=int, default=0,
                        help="BLAS and OpenMP threads per run (0: the libraries' defaults)")
    parser.add_argument("--child", nargs=5, metavar=("MODE", "N", "K", "EPS", "THREADS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        mode, n, k, eps, threads = args.child
        print(json.dumps(_child(mode, int(n), int(k), float(eps), int(threads))))
        return 0

    run = Run(f"SemDeDup: {machine()}")
    print(f"Threads per run: {args.threads or 'library defaults'}", flush=True)
    rows = []
    for config in args.configs.split(","):
        n, per_cluster = (int(part) for part in config.split(":"))
        k = max(1, round(n / per_cluster))
        runs = {"semdedup": [], "all-pairs": []}
        for _ in range(args.repeat):  # interleaved, so both methods share the machine's load changes
            for mode, done in runs.items():
                done.append(run_child(mode, n, k, args.eps, args.threads))
        ours, base = (best_of(runs[mode]) for mode in ("semdedup", "all-pairs"))
        print(f"n={n} k={k}: semdedup {ours}\n  all-pairs {base}", file=sys.stderr, flush=True)
        if ours["kept_digest"] != base["kept_digest"]:
            raise AssertionError(f"n={n}, k={k}: the methods disagree ({ours['kept']} vs {base['kept']} kept)")
        rows.append((n, k, ours, base))

    print("\n| docs | k | largest cluster | method | k-means (s) | within-cluster (s) | total (s) | docs/s "
          "| peak RSS (MB) | RSS before (MB) | all-pairs / semdedup time (within, total) |")
    print("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for n, k, ours, base in rows:
        within = {name: r["seconds"] - r["kmeans_seconds"] for name, r in (("ours", ours), ("base", base))}
        for name, r in (("semdedup", ours), ("all-pairs", base)):
            ratio = (f"{within['base'] / within['ours']:.2f}, {base['seconds'] / ours['seconds']:.2f}"
                     if name == "semdedup" else "")
            print(f"| {n:,} | {k:,} | {r['largest_cluster']:,} | {name} | {r['kmeans_seconds']:.2f} "
                  f"| {r['seconds'] - r['kmeans_seconds']:.2f} | {r['seconds']:.2f} | {n / r['seconds']:,.0f} "
                  f"| {r['peak_rss_mb']:.0f} | {r['rss_before_mb']:.0f} | {ratio} |")
    print(f"\nKept (both methods, identical documents): "
          + ", ".join(f"{ours['kept']:,} of {n:,} at k = {k:,}" for n, k, ours, _ in rows)
          + f"; eps = {args.eps}, {DUPLICATE_SHARE:.0%} planted near-duplicates.")
    run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
