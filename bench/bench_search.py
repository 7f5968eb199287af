"""Search and clustering benchmark: blocked top-k and spherical k-means against numpy, scikit-learn and FAISS.

Data: ``n`` unit vectors in d = 384 drawn from a Gaussian mixture that looks like text
embeddings (1,000 Zipf-sized clusters, each spread over its own 16-dim subspace, cosine
to the centre ~0.65-0.9, plus isotropic noise), and ``--queries`` query vectors from the
same mixture. For every size (default 10k, 100k, 1M), in one fresh Python process:

Top-k (``k = 10`` for each of the queries, over all ``n`` keys):

- ``ours``: ``numeric_kernels.topk.cosine_topk(queries, keys, 10)`` (numpy in: FAISS per key block);
- ``faiss``: ``faiss.IndexFlatIP`` (``add`` once before the rounds; ``search`` is timed);
- ``numpy``: ``queries @ keys.T`` then ``np.argpartition`` + sort of the k best, on the whole
  (q x n) matrix, or on query chunks where that matrix would exceed ``--numpy-max-mb``.

Spherical k-means (``--clusters`` clusters, ``--iters`` iterations, one initialisation each):

- ``ours``: ``numeric_kernels.kmeans.spherical_kmeans(x, k, n_iter, n_init=1)`` (k-means++ seeding,
  FAISS iterations on every point, final assignment);
- ``faiss``: ``faiss.Kmeans(d, k, niter, spherical=True)`` trained on every point (its default
  subsamples to 256 points per centroid; switched off to do the same work), then assignment;
- ``sklearn``: ``sklearn.cluster.KMeans(k, n_init=1, max_iter=iters, tol=0)`` (Euclidean
  k-means++ and Lloyd; on unit rows the same partition problem up to the centroid norm).
  Above ``--sklearn-max`` points (default 100k) it is skipped, with a note: at one thread it
  takes ~30 s a round at 100k, so ~5 min a round at 1M.

Every call runs ``--rounds`` times (``--large-rounds`` from 1M), interleaved by :mod:`harness`
(the order of the methods rotating between rounds); the median time and the median paired
ratio are reported, with the libraries, their threads and the load (flagged above the core count). Peak RSS is the process's ``VmHWM``, reset
through ``/proc/self/clear_refs`` before each call (the bench_embed/bench_sinkhorn approach,
with one fresh process per size as in bench_ingest); "Δ RSS" is that peak minus the RSS
before the call, i.e. the method's own working memory beyond the resident data.
Quality columns: top-k recall@10 against ``faiss.IndexFlatIP`` (ties aside, 1.0 = exact);
k-means mean ``1 - cos(x, own normalised centroid)``, lower is better.

Every BLAS and OpenMP pool in the process (FAISS, OpenBLAS, scikit-learn, torch) gets
``--threads`` threads, the same for every method (default: all cores). On a machine whose
cores other processes also use, ``--threads 1`` gives steadier figures: OpenMP barriers
spin-wait for descheduled threads, which slowed FAISS and scikit-learn 3-10x at 2 threads
under a load average of ~8 on 2 cores (see docs/BENCHMARKS.md).

Aims: top-k and k-means within 0.9x of FAISS, at least 5x faster than numpy / scikit-learn,
near-linear growth in n.

    .venv/bin/python bench/bench_search.py --threads 1 --large-rounds 2   # 10k, 100k, 1M: ~11 min on 2 cores
    .venv/bin/python bench/bench_search.py --sizes 10000,100000 --rounds 5 --no-kmeans
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from harness import Run, interleave, rss_mb, sizes_in_fresh_processes  # bench/harness.py (run as a script: bench/ is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
MB = 10**6
DIM, CLUSTERS, INTRINSIC, K = 384, 1000, 16, 10
AIM_VS_FAISS, AIM_VS_SLOW = 0.9, 5.0


# --------------------------------------------------------------------------- data and memory

def mixture(n: int, seed: int):
    """``n`` unit rows (float32) from the fixed mixture described in the module docstring."""
    import numpy as np

    fixed = np.random.default_rng(2024)
    centers = fixed.normal(size=(CLUSTERS, DIM)).astype(np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    bases = (fixed.normal(size=(CLUSTERS, INTRINSIC, DIM)) / np.sqrt(DIM)).astype(np.float32)
    spread = fixed.uniform(0.5, 1.2, size=CLUSTERS).astype(np.float32)
    sizes = 1.0 / np.arange(1, CLUSTERS + 1) ** 0.8
    rng = np.random.default_rng(seed)
    labels = rng.choice(CLUSTERS, size=n, p=sizes / sizes.sum())
    x = np.empty((n, DIM), dtype=np.float32)
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(CLUSTERS + 1))
    for j in range(CLUSTERS):
        members = order[bounds[j]:bounds[j + 1]]
        if len(members):
            z = rng.standard_normal((len(members), INTRINSIC), dtype=np.float32) * (spread[j] / np.sqrt(INTRINSIC))
            noise = rng.standard_normal((len(members), DIM), dtype=np.float32) * (0.1 / np.sqrt(DIM))
            x[members] = centers[j] + z @ bases[j] + noise
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


# --------------------------------------------------------------------------- the methods

def topk_methods(queries, keys, numpy_max_mb: float):
    import faiss
    import numpy as np

    from numeric_kernels.topk import cosine_topk

    def ours():
        return cosine_topk(queries, keys, K).indices

    index = faiss.IndexFlatIP(keys.shape[1])  # built once, outside the timed calls: only search is timed
    index.add(keys)

    def flat():
        return index.search(queries, K)[1]

    # the whole (q x n) float32 product, its argpartition (int64) and a temporary copy
    chunk = max(1, min(len(queries), int(numpy_max_mb * MB / (16 * len(keys)))))

    def plain():
        out = []
        for start in range(0, len(queries), chunk):
            scores = queries[start:start + chunk] @ keys.T
            top = np.argpartition(scores, -K, axis=1)[:, -K:]
            order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
            out.append(np.take_along_axis(top, order, 1))
        return np.concatenate(out)

    note = "" if chunk == len(queries) else f"numpy top-k in chunks of {chunk} queries (--numpy-max-mb)"
    return {"ours": ours, "faiss": flat, "numpy": plain}, note


def kmeans_methods(x, clusters: int, iters: int, sklearn_max: int):
    import faiss

    from numeric_kernels.kmeans import spherical_kmeans

    def ours():
        result = spherical_kmeans(x, clusters, n_iter=iters, n_init=1, seed=0)
        return result.centroids_, result.labels_

    def faiss_kmeans():
        kmeans = faiss.Kmeans(x.shape[1], clusters, niter=iters, seed=0, spherical=True, verbose=False,
                              max_points_per_centroid=len(x) // clusters + 1)
        kmeans.train(x)
        return kmeans.centroids, kmeans.index.search(x, 1)[1][:, 0]

    def sklearn_kmeans():
        from sklearn.cluster import KMeans

        model = KMeans(clusters, n_init=1, max_iter=iters, tol=0.0, random_state=0, algorithm="lloyd").fit(x)
        return model.cluster_centers_, model.labels_

    methods = {"ours": ours, "faiss": faiss_kmeans}
    note = ""
    if len(x) <= sklearn_max:
        methods["sklearn"] = sklearn_kmeans
    else:
        note = f"scikit-learn KMeans skipped at n = {len(x):,} (> --sklearn-max {sklearn_max:,})"
    return methods, note


def spherical_objective(x, centroids, labels, chunk: int = 65_536) -> float:
    """Mean of ``1 - cos(x_i, c_{label_i})`` with the centroids normalised (chunked: no (n, d) gather)."""
    import numpy as np

    centroids = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
    total = sum(float(np.einsum("nd,nd->", x[i:i + chunk], centroids[labels[i:i + chunk]]))
                for i in range(0, len(x), chunk))
    return 1.0 - total / len(x)


def _child(n: int, args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    import faiss
    import sklearn.cluster  # noqa: F401 - loads its OpenMP runtime before the limit below
    from threadpoolctl import threadpool_limits

    import numeric_kernels.topk  # noqa: F401 - loads torch's OpenMP runtime

    faiss.omp_set_num_threads(args.threads)
    threadpool_limits(args.threads)  # every BLAS and OpenMP pool loaded: the same threads for all methods
    started = time.perf_counter()
    keys, queries = mixture(n, seed=0), mixture(args.queries, seed=1)
    generated = time.perf_counter() - started
    rss_data = rss_mb()
    rounds = args.rounds if n < 1_000_000 else args.large_rounds
    run = Run(f"n = {n:,}", quiet=True)
    results: dict = {"n": n, "generate_s": generated, "rss_data_mb": rss_data, "rounds": rounds, "notes": []}
    tasks = {"topk": topk_methods(queries, keys, args.numpy_max_mb)}
    if not args.no_kmeans:
        tasks["kmeans"] = kmeans_methods(keys, args.clusters, args.iters, args.sklearn_max)
    for task, (methods, note) in tasks.items():
        if note:
            results["notes"].append(note)
        compared = interleave(methods, rounds=rounds, run=run,
                              log=lambda line: print(f"  n={n:,} {task} {line}", file=sys.stderr, flush=True))
        runs = {}
        for name in methods:
            output = compared.result(name)
            if task == "topk":
                exact = compared.result("faiss")
                quality = float(np.mean([len(set(a) & set(b)) / K for a, b in zip(output, exact)]))
            else:
                quality = spherical_objective(keys, *output)
            runs[name] = {"seconds": compared.seconds(name), "median_s": compared.median_s(name),
                          "paired": None if name == "ours" else compared.paired_ratio(name, "ours"),
                          "peak_mb": max(m.peak_mb for m in compared.runs[name]),
                          "delta_mb": compared.peak_above_mb(name), "quality": quality}
        results[task] = runs
    results["load"] = run.finish()
    return results



# --------------------------------------------------------------------------- main

LABELS = {
    ("topk", "ours"): "ours: `numeric_kernels.topk.cosine_topk`",
    ("topk", "faiss"): "faiss: `IndexFlatIP.search`",
    ("topk", "numpy"): "numpy: matmul + `argpartition`",
    ("kmeans", "ours"): "ours: `numeric_kernels.kmeans.spherical_kmeans`",
    ("kmeans", "faiss"): "faiss: `faiss.Kmeans(spherical=True)`",
    ("kmeans", "sklearn"): "scikit-learn: `KMeans` (lloyd)",
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="numbers of vectors, comma-separated")
    parser.add_argument("--queries", type=int, default=500, help="top-k queries (k = 10)")
    parser.add_argument("--clusters", type=int, default=100, help="k-means clusters")
    parser.add_argument("--iters", type=int, default=10, help="k-means iterations")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per method below 1M vectors")
    parser.add_argument("--large-rounds", type=int, default=1, help="timed runs per method from 1M vectors")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads of every BLAS / OpenMP pool (FAISS, OpenBLAS, scikit-learn, torch), all methods")
    parser.add_argument("--numpy-max-mb", type=float, default=4000,
                        help="largest (q x n) product + argpartition the numpy baseline may build at once (MB)")
    parser.add_argument("--sklearn-max", type=int, default=100_000, help="skip scikit-learn above this n")
    parser.add_argument("--no-kmeans", action="store_true", help="top-k only")
    parser.add_argument("--strict", action="store_true", help="exit 1 when an aim is missed")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args)))
        return 0

    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    import faiss
    import numpy
    import sklearn

    header = Run(f"Search and clustering: numpy {numpy.__version__}, faiss {faiss.__version__}, "
                 f"scikit-learn {sklearn.__version__}")
    print(f"Every pool is limited to {args.threads} thread(s) in the measuring processes.", flush=True)
    passed = list(argv if argv is not None else sys.argv[1:])
    results, total = sizes_in_fresh_processes(__file__, sizes, passed)

    print("\n| task | n | method | time (s) | docs/s | peak RSS (MiB) | Δ RSS (MiB) | speed-up of ours vs this | quality |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    ratios: dict[tuple[str, str], list[float]] = {}
    for result in results:
        for task in ("topk", "kmeans"):
            if task not in result:
                continue
            runs = result[task]
            for name, run in runs.items():
                median, ratio = run["median_s"], run["paired"]
                if name != "ours":
                    ratios.setdefault((task, name), []).append(ratio)
                quality = f"{run['quality']:.3f}" if task == "topk" else f"{run['quality']:.4f}"
                print(f"| {'top-k' if task == 'topk' else 'k-means'} | {result['n']:,} | {LABELS[task, name]} "
                      f"| {median:.2f} | {result['n'] / median:,.0f} | {run['peak_mb']:.0f} | {run['delta_mb']:.0f} "
                      f"| {'–' if name == 'ours' else f'{ratio:.2f}'} | {quality} |")
    rounds = ", ".join(f"{r['n']:,}: {r['rounds']}" for r in results)
    print(f"\n{args.threads} thread(s) in every BLAS / OpenMP pool, for every method. d = {DIM}; top-k: {args.queries} queries, k = {K}, docs/s = keys scanned per second for the whole "
          f"query batch; k-means: {args.clusters} clusters, {args.iters} iterations, one initialisation. Time = median "
          f"of the interleaved rounds (n: rounds = {rounds}). Speed-up = median over rounds of that method's time / "
          f"ours in the same round (> 1: ours is faster). "
          f"Peak RSS = VmHWM during the call; Δ RSS = peak - RSS before it (data resident: "
          + ", ".join(f"{r['rss_data_mb']:.0f} MB at {r['n']:,}" for r in results)
          + f"). Quality: top-k recall@10 against IndexFlatIP; k-means mean 1 - cos to the own centroid. "
          f"Total {total / 60:.1f} min.")
    for note in sorted({note for r in results for note in r["notes"]}):
        print(f"Note: {note}.")
    for result in results:
        print(f"n = {result['n']:,}: {result['load']}")

    verdicts = []
    for (task, name), values in sorted(ratios.items()):
        aim = AIM_VS_FAISS if name == "faiss" else AIM_VS_SLOW
        met = min(values) >= aim
        verdicts.append(met)
        print(f"Aim {task} vs {name}: speed-up >= {aim} at every size -> "
              f"{', '.join(f'{v:.2f}' for v in values)}: {'MET' if met else 'MISSED'}")
    for task in ("topk", "kmeans"):
        rates = [(r["n"], r["n"] / r[task]["ours"]["median_s"]) for r in results if task in r]
        if len(rates) > 1:
            print(f"Growth {task}: ours docs/s " + " -> ".join(f"{rate:,.0f} (n={n:,})" for n, rate in rates)
                  + f"; largest/smallest rate {rates[-1][1] / rates[0][1]:.2f} (1.00 = linear time)")
    header.finish()
    return 0 if all(verdicts) or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
