"""BETR benchmark: classifier scoring throughput against raw fastText predict, and rank-score time.

Two measurements, each size in a *fresh* Python process (so peak RSS is that size's own):

- **Scoring** (``--sizes``, default 10k, 100k, 1M documents): ``BetrClassifier.score(texts)``
  (what a worker runs per shard: newline removal, batches of 8,192, ``P(positive)`` as
  float32) against raw ``model.predict(texts, k=1)`` of the same fastText model on the
  same list, in the same process, interleaved over ``--rounds`` rounds (best of). One
  thread: fastText predicts on the calling thread. The model is trained once in the
  parent with the default settings of ``curation.betr.train_classifier`` (AG News
  Sci/Tech against the rest, balanced) and loaded in each child from its ``.bin``, the
  path a worker takes.
- **Rank scores** (``--rank-sizes``, default 10k, 100k documents): ``rank_scores`` of
  ``--targets`` benchmark examples (1,000, SciQ's size) against the documents, 384-d
  clustered unit vectors, with the default adaptive ``k``; the baseline is the all-pairs
  computation (every example's full ranking, ``argsort`` per example, blocks of 64
  examples). FAISS runs on ``--threads`` threads (default 1).

Documents are synthesised by recombining the words of ``../shared/data/corpora/ag_news_test.jsonl``
with a seeded RNG: lengths drawn from the AG News length distribution (mean ~37 words),
words drawn from its token stream (so unigram frequencies match); nothing is stored.
Peak RSS is ``VmHWM``, reset before each measured call through ``/proc/self/clear_refs``.
Docs/s is wall-clock; "docs per CPU-s" uses the thread's CPU time, which is less
sensitive to other processes on a shared machine.

    .venv/bin/python bench/bench_betr.py
    .venv/bin/python bench/bench_betr.py --sizes 10000,100000 --rank-sizes 10000 --rounds 2

Aim (the BETR issue): >= 50k docs per CPU-second scoring on one core, ours/raw >= 0.9.
Prints Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import random
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import Run, shared_data_dir  # bench/harness.py, beside this script: machine, libraries, threads, load

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
CORPUS = shared_data_dir() / "corpora" / "ag_news_test.jsonl"
AIM_DOCS_PER_S = 50_000
AIM_RATIO = 0.9
DIM = 384


# --------------------------------------------------------------------------- data

def load_corpus() -> tuple[list[str], list[str]]:
    if not CORPUS.is_file():
        sys.exit(f"{CORPUS} is absent (see ../shared/data/SOURCES.md)")
    with open(CORPUS, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [r["text"] for r in rows], [r["source"] for r in rows]


def synthetic_documents(count: int, seed: int) -> list[str]:
    """``count`` documents of AG News words recombined at random (seeded)."""
    texts, _ = load_corpus()
    words = " ".join(texts).split()
    rng = np.random.default_rng(seed)
    lengths = rng.choice([len(t.split()) for t in texts], size=count)
    documents = []
    for start in range(0, count, 10_000):  # bounded lists of word indices
        chunk = lengths[start:start + 10_000]
        picks = list(map(words.__getitem__, rng.integers(0, len(words), int(chunk.sum())).tolist()))
        ends = np.cumsum(chunk).tolist()
        documents.extend(" ".join(picks[end - length:end]) for end, length in zip(ends, chunk.tolist()))
    return documents


def clustered_embeddings(n: int, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, DIM))

    def draw(count):
        x = centres[rng.integers(0, 50, count)] + 0.8 * rng.normal(size=(count, DIM))
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    return draw(n), draw(m)


# --------------------------------------------------------------------------- measurement

def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pass


def measure(fn) -> dict:
    reset_peak()
    wall, cpu = time.perf_counter(), time.thread_time()
    fn()
    return {"seconds": time.perf_counter() - wall, "cpu_seconds": time.thread_time() - cpu,
            "peak_rss_mb": rss_mb("VmHWM")}


def best(runs: list[dict]) -> dict:
    return {"seconds": min(r["seconds"] for r in runs), "cpu_seconds": min(r["cpu_seconds"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def child_score(model_path: str, size: int, rounds: int, seed: int) -> dict:
    from curation.betr import BetrClassifier

    texts = synthetic_documents(size, seed)
    classifier = BetrClassifier.load(model_path)
    classifier.score(texts[:1000])
    classifier.model.predict(texts[:1000], k=1)
    info = {"rss_before_mb": rss_mb(), "words": sum(len(t.split()) for t in texts)}
    ours, raw = [], []
    for round_ in range(rounds):
        paths = [("ours", lambda: classifier.score(texts)), ("raw", lambda: classifier.model.predict(texts, k=1))]
        for name, fn in paths if round_ % 2 == 0 else paths[::-1]:
            (ours if name == "ours" else raw).append(measure(fn))
    info.update(ours=best(ours), raw=best(raw),
                paired=statistics.median(r["cpu_seconds"] / o["cpu_seconds"] for o, r in zip(ours, raw)))
    return info


def all_pairs_best_rank(docs: np.ndarray, targets: np.ndarray, block: int = 64) -> np.ndarray:
    best_rank = np.full(len(docs), len(docs) + 1, dtype=np.int64)
    positions = np.arange(1, len(docs) + 1)
    for start in range(0, len(targets), block):
        similarity = targets[start:start + block] @ docs.T
        for row in similarity:
            ranks = np.empty(len(docs), dtype=np.int64)
            ranks[np.argsort(-row)] = positions
            np.minimum(best_rank, ranks, out=best_rank)
    return best_rank


def child_rank(size: int, targets: int, threads: int, seed: int) -> dict:
    import faiss

    from curation.betr import rank_scores

    faiss.omp_set_num_threads(threads)
    docs, examples = clustered_embeddings(size, targets, seed)
    rank_scores(docs[:1000], examples[:10])
    info = {"rss_before_mb": rss_mb()}
    result = {}
    info["ours"] = measure(lambda: result.update(r=rank_scores(docs, examples)))
    ranking = result["r"]
    info.update(k=ranking.k, scored=ranking.n_scored)
    info["baseline"] = measure(lambda: result.update(b=all_pairs_best_rank(docs, examples)))
    top, reference = ranking.top(0.1), result["b"]
    info["top_rank_differs"] = int(np.count_nonzero(ranking.best_rank[top] != reference[top]))
    info["top_size"] = len(top)
    info["missed"] = int(np.count_nonzero((reference <= ranking.k) & (ranking.best_rank == 0)))
    return info


def run_child(*args: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main

def machine() -> str:
    """The versions of the libraries this benchmark measures."""
    from importlib.metadata import version

    import faiss

    return (f"fasttext-numpy2 {version('fasttext-numpy2')}, faiss {faiss.__version__}, numpy {np.__version__}")


def train_model(path: Path, seed: int) -> dict:
    from curation.betr import train_classifier

    texts, sources = load_corpus()
    positive = [i for i, s in enumerate(sources) if s == "Sci/Tech"]
    negative = random.Random(seed).sample([i for i, s in enumerate(sources) if s != "Sci/Tech"], len(positive))
    chosen = positive + negative
    started = time.perf_counter()
    trained = train_classifier([texts[i] for i in chosen], np.arange(len(chosen)) < len(positive), seed=seed)
    seconds = time.perf_counter() - started
    trained.classifier.save(path)
    return {"documents": len(chosen), "seconds": seconds, "accuracy": trained.holdout_accuracy,
            "epoch": trained.epoch, "bin_mb": path.stat().st_size / 2**20}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="documents to score, comma-separated")
    parser.add_argument("--rank-sizes", default="10000,100000", help="documents to rank, comma-separated")
    parser.add_argument("--targets", type=int, default=1000, help="benchmark examples for rank_scores")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per scoring size (best of)")
    parser.add_argument("--threads", type=int, default=1, help="FAISS threads for rank_scores")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        mode, *rest = args.child
        if mode == "score":
            print(json.dumps(child_score(rest[0], int(rest[1]), args.rounds, args.seed)))
        else:
            print(json.dumps(child_rank(int(rest[0]), args.targets, args.threads, args.seed)))
        return 0

    run = Run(f"BETR scoring and ranking: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="bench-betr-"))
    try:
        model = work / "betr.bin"
        trained = train_model(model, args.seed)
        print(f"Model: {trained['documents']} AG News documents, {trained['epoch']} epochs, "
              f"{trained['seconds']:.1f} s to train (with the held-out run), held-out accuracy "
              f"{trained['accuracy']:.3f}, .bin {trained['bin_mb']:.0f} MiB", flush=True)
        scoring = []
        for size in (int(s) for s in args.sizes.split(",") if s.strip()):
            scoring.append((size, run_child("score", str(model), str(size), "--rounds", str(args.rounds),
                                            "--seed", str(args.seed))))
            print(f"scored {size}: {scoring[-1]}", file=sys.stderr, flush=True)
        ranking = []
        for size in (int(s) for s in args.rank_sizes.split(",") if s.strip()):
            ranking.append((size, run_child("rank", str(size), "--targets", str(args.targets), "--threads",
                                            str(args.threads), "--seed", str(args.seed))))
            print(f"ranked {size}: {ranking[-1]}", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n### Classifier scoring, one thread, best of {args.rounds} interleaved rounds\n")
    print("| path | documents | words/doc | time (s) | docs/s | docs per CPU-s | peak RSS (MB) "
          "| ratio ours/raw (wall, best / CPU, median paired) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for size, info in scoring:
        for name, label in (("ours", "ours: `BetrClassifier.score`"), ("raw", "raw: `model.predict(texts, k=1)`")):
            m = info[name]
            ratio = (f"{info['raw']['seconds'] / info['ours']['seconds']:.2f} / {info['paired']:.2f}"
                     if name == "ours" else "1.00 / 1.00")
            print(f"| {label} | {size:,} | {info['words'] / size:.1f} | {m['seconds']:.2f} "
                  f"| {size / m['seconds']:,.0f} | {size / m['cpu_seconds']:,.0f} | {m['peak_rss_mb']:.0f} | {ratio} |")
    before = ", ".join(f"{size:,}: {info['rss_before_mb']:.0f} MB" for size, info in scoring)
    print("\nRatio = our docs/s / raw docs/s: of the best wall times, and the median over rounds of the ratio of "
          "CPU times measured back to back (the figure least affected by other load). Peak RSS includes the "
          f"loaded model and the documents (RSS before the first measured call: {before}).")

    print(f"\n### Rank scores, {args.targets:,} targets, d = {DIM}, FAISS threads = {args.threads}\n")
    print("| path | documents | k | scored | time (s) | docs/s | peak RSS (MB) | ratio ours/all-pairs |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for size, info in ranking:
        ours, base = info["ours"], info["baseline"]
        print(f"| ours: `rank_scores` (adaptive k) | {size:,} | {info['k']} | {info['scored']:,} "
              f"| {ours['seconds']:.2f} | {size / ours['seconds']:,.0f} | {ours['peak_rss_mb']:.0f} "
              f"| {base['seconds'] / ours['seconds']:.1f} |")
        print(f"| all-pairs ranks (numpy argsort) | {size:,} | {size} | {size:,} | {base['seconds']:.2f} "
              f"| {size / base['seconds']:,.0f} | {base['peak_rss_mb']:.0f} | 1.0 |")
    for size, info in ranking:
        print(f"\n{size:,} documents: of the top {info['top_size']:,}, {info['top_rank_differs']} have a best rank "
              f"other than the all-pairs one (float32 near-ties: FAISS and numpy sum in different orders); "
              f"{info['missed']} documents within the all-pairs top-k were missed.")

    size, largest = scoring[-1]
    rate = size / largest["ours"]["cpu_seconds"]
    met = rate >= AIM_DOCS_PER_S and largest["paired"] >= AIM_RATIO
    print(f"\nAim at {size:,} documents: >= {AIM_DOCS_PER_S:,} docs per CPU-s on one core and ours/raw >= "
          f"{AIM_RATIO} (median paired) -> {rate:,.0f}, {largest['paired']:.2f}: {'MET' if met else 'MISSED'}")
    run.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main())
