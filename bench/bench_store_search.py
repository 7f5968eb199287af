"""Vector-store search latency: one query at a time, k = 10, through an IVF-SQ8
``curation.stores`` store, against exact search with ``faiss.IndexFlatIP``.

This is the search ``POST /api/v1/corpora/{id}/search/`` does for one text
(``api.datasets.services.corpus_search``: ``nearest_documents(store, queries, k)`` on the one
embedded query); the embedding of the text, ``store.locate`` and reading the documents'
Parquet rows are not measured here.

Data: ``n`` unit vectors of d = 384 from the Gaussian mixture of ``bench_search.py`` (1,000
Zipf-sized clusters, each spread over its own 16-dim subspace), generated and written in
shards of ``--shard`` (100k) rows as float16 ``.npy`` files named ``shard-00000.npy``, ...,
the format ``curation.pipeline.embed_shard`` writes (shard ``s`` drawn with seed ``s``, so
the whole corpus is never in memory as float32 at once). For every size (default 100k and 1M),
in one fresh Python process:

- build: ``curation.stores.build_store(shards, out, kind="ivf_sq8", seed=0)`` (its defaults:
  ``nlist = 4 sqrt(n)``, 40 training points per list, ``nprobe`` tuned to the smallest value
  whose recall@10 on 1,000 corpus rows reaches 0.95); its time, peak RSS above the RSS before it,
  and the ``recall_at_10`` and ``nprobe`` it measured and stored in its meta;
- ``--queries`` (1,000) fresh queries from the same mixture (another seed), searched one at a
  time (a (1, 384) array per call), each call timed on its own:
  ``store.search(q, 10)`` (``VectorStore.search``), ``nearest_documents(store, q, 10)`` and
  the baseline ``faiss.IndexFlatIP.search(q, 10)`` over the same float16-rounded vectors (added
  once, before the clock). The queries are cut into ``--rounds`` (10) blocks; block ``r`` runs
  through every method in round ``r``, interleaved by :mod:`harness` (order rotating), so all
  three see the same changes of load.

Reported: p50, p99 and mean latency per query (ms), queries/s, the median over blocks of the
paired ratio (flat block time / this block time: > 1 means faster than exact search), and the
recall@10 of the approximate results against the exact ones on those queries. FAISS's OpenMP
and every BLAS pool get ``--threads`` threads (default: all cores) for the build and the
searches; a single-query IVF search probes its lists in one thread.

    .venv/bin/python bench/bench_store_search.py                  # 100k and 1M vectors
    .venv/bin/python bench/bench_store_search.py --sizes 20000 --queries 200
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench_search import mixture  # bench/bench_search.py, beside this script: the same synthetic embeddings
from harness import Run, interleave, measure, rss_mb, sizes_in_fresh_processes

ROOT = Path(__file__).resolve().parent.parent
DIM, K = 384, 10
QUERY_SEED = 1_000_003


def _percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def _recall(found, exact) -> float:
    return sum(len(set(f[f >= 0].tolist()) & set(e.tolist())) for f, e in zip(found, exact)) / (K * len(exact))


def _child(n: int, args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    import faiss
    import numpy as np
    from threadpoolctl import threadpool_limits

    from curation.storage import shard_name
    from curation.stores import build_store, nearest_documents

    faiss.omp_set_num_threads(args.threads)
    threadpool_limits(args.threads)
    tmp = tempfile.TemporaryDirectory(prefix="bench_store_")
    directory = Path(tmp.name)

    started = time.perf_counter()
    paths = []
    for number, start in enumerate(range(0, n, args.shard)):
        path = directory / shard_name(number, ".npy")
        np.save(path, mixture(min(args.shard, n - start), seed=number).astype(np.float16))
        paths.append(path)
    generated = time.perf_counter() - started

    rss_before_build = rss_mb()
    built = measure(lambda: build_store(paths, directory / "store", kind="ivf_sq8", seed=0,
                                        embedder_key="synthetic-384"))
    store = built.result
    meta = store.meta

    flat = faiss.IndexFlatIP(DIM)  # the same float16-rounded vectors as the store, added before the clock
    for path in paths:
        flat.add(np.load(path).astype(np.float32))
    queries = mixture(args.queries, seed=QUERY_SEED)
    blocks = np.array_split(np.arange(args.queries), args.rounds)

    latencies = {"store.search": [], "nearest_documents": [], "flat": []}
    results = {name: [] for name in latencies}

    def method(name, call):
        remaining = iter(blocks)

        def run_block():
            times, out = latencies[name], results[name]
            for i in next(remaining):
                q = queries[i:i + 1]
                t = time.perf_counter()
                found = call(q)
                times.append(time.perf_counter() - t)
                out.append(found)
        return run_block

    methods = {
        "store.search": method("store.search", lambda q: store.search(q, K).indices[0]),
        "nearest_documents": method("nearest_documents", lambda q: nearest_documents(store, q, K)[0]),
        "flat": method("flat", lambda q: flat.search(q, K)[1][0]),
    }
    # warm-up (untimed): a few queries through each, outside the blocks
    for _ in range(3):
        store.search(queries[:1], K), nearest_documents(store, queries[:1], K), flat.search(queries[:1], K)
    run = Run(f"n = {n:,}", quiet=True)
    compared = interleave(methods, rounds=args.rounds, run=run,
                          log=lambda line: print(f"  n={n:,} {line}", file=sys.stderr, flush=True))
    peak = rss_mb("VmHWM")
    tmp.cleanup()

    exact = np.stack(results["flat"])
    out = {}
    for name in latencies:
        ms = [t * 1e3 for t in latencies[name]]
        found = [np.asarray(f) for f in results[name]]
        out[name] = {"p50_ms": _percentile(ms, 50), "p99_ms": _percentile(ms, 99), "mean_ms": statistics.mean(ms),
                     "max_ms": max(ms), "qps": len(ms) / (sum(ms) / 1e3),
                     "paired": None if name == "flat" else compared.paired_ratio("flat", name),
                     "recall": _recall(found, exact)}
    return {"n": n, "generate_s": generated, "shards": len(paths), "rss_before_build_mb": rss_before_build,
            "build_s": built.seconds, "build_cpu_s": built.cpu_seconds, "build_delta_mb": built.peak_above_mb,
            "meta_build_s": meta.build_seconds, "kind": meta.kind, "params": meta.params,
            "recall_at_10": meta.recall_at_10, "recall_curve": meta.recall_curve, "peak_mb": peak,
            "methods": out, "load": run.finish()}



LABELS = {"store.search": "ours: `VectorStore.search` (IVF-SQ8)",
          "nearest_documents": "ours: `nearest_documents` (IVF-SQ8)",
          "flat": "faiss: `IndexFlatIP.search` (exact)"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="numbers of vectors, comma-separated")
    parser.add_argument("--queries", type=int, default=1_000, help="single-query searches per method")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved blocks the queries are cut into")
    parser.add_argument("--shard", type=int, default=100_000, help="rows per float16 embedding shard")
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="threads of FAISS's OpenMP and every BLAS pool (build and search)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args)))
        return 0

    import faiss
    import numpy

    header = Run(f"Vector-store search: numpy {numpy.__version__}, faiss {faiss.__version__}")
    print(f"FAISS OpenMP and every BLAS pool limited to {args.threads} thread(s) in the measuring processes; "
          f"d = {DIM}, k = {K}, {args.queries:,} single-query searches per method in {args.rounds} interleaved blocks.",
          flush=True)
    passed = list(argv if argv is not None else sys.argv[1:])
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    results, total = sizes_in_fresh_processes(__file__, sizes, passed)

    print("\n| vectors | build (s) | CPU/wall | build Δ RSS (MiB) | nlist | nprobe | store's recall@10 (meta) "
          "| recall curve (nprobe: recall) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        p = r["params"]
        curve = ", ".join(f"{k}: {v:.3f}" for k, v in sorted(r["recall_curve"].items(), key=lambda kv: int(kv[0])))
        print(f"| {r['n']:,} | {r['build_s']:.1f} | {r['build_cpu_s'] / r['build_s']:.2f} | {r['build_delta_mb']:.0f} "
              f"| {p['nlist']:,} | {p['nprobe']} | {r['recall_at_10']:.3f} | {curve} |")

    print("\n| vectors | method | p50 (ms) | p99 (ms) | mean (ms) | max (ms) | queries/s "
          "| speed-up vs flat (paired) | recall@10 vs flat |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        for name, m in r["methods"].items():
            paired = "–" if m["paired"] is None else f"{m['paired']:.1f}"
            print(f"| {r['n']:,} | {LABELS[name]} | {m['p50_ms']:.3f} | {m['p99_ms']:.3f} | {m['mean_ms']:.3f} "
                  f"| {m['max_ms']:.2f} | {m['qps']:,.0f} | {paired} | {m['recall']:.3f} |")

    print(f"\nBuild = `build_store(kind=\"ivf_sq8\")` wall time (k-means training, adding, tuning nprobe by recall, "
          f"writing the index); Δ RSS = its peak RSS above the RSS before it. Shards of {args.shard:,} float16 rows "
          f"(generation: " + ", ".join(f"{r['generate_s']:.0f} s for {r['n']:,}" for r in results)
          + "). Latency = each single-query call timed on its own; speed-up = median over the blocks of flat's block "
          f"time / this method's in the same round; recall@10 = |found ∩ exact top-10| / 10 over the queries. "
          f"Process peak RSS: " + ", ".join(f"{r['peak_mb']:.0f} MiB at {r['n']:,}" for r in results)
          + f". Total {total / 60:.1f} min.")
    for r in results:
        print(f"n = {r['n']:,}: {r['load']}")
    header.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
