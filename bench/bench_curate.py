"""``curate`` end to end: wall time per step on generated corpora of growing size.

Runs the whole pipeline (:func:`curation.cli.curate_files`, the same steps as the
service's ``curate`` job) in a fresh child process per size, on a corpus made by the
deterministic demo generator (:func:`curation.demo_data.demo_corpus`, several domains
with near-duplicates and junk) and its science benchmark, with a budget of half the
corpus. Prints seconds per step, documents/s over the whole run and the child's peak
RSS. The hashing embedder stands in for MiniLM by default (``--embedder minilm`` for
the real one: about 50 documents/s on this 2-core CPU).

    .venv/bin/python bench/bench_curate.py
    .venv/bin/python bench/bench_curate.py --sizes 10000 --embedder minilm
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import Run  # bench/harness.py, beside this script: machine, libraries, threads, load

ROOT = Path(__file__).resolve().parents[1]


def child(size: int, embedder: str, folder: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from curation.cli import main
    from curation.demo_data import demo_benchmark, demo_corpus, write_jsonl

    corpus = write_jsonl(demo_corpus(size), folder / "corpus.jsonl")
    bench = write_jsonl(demo_benchmark(200), folder / "bench.jsonl")
    code = main(["curate", "--corpus", str(corpus), "--benchmark", str(bench), "--budget", str(size // 2),
                 "--embedder", embedder, "--eps", "0.05", "--out", str(folder / "out")])
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    (folder / "peak.json").write_text(json.dumps({"code": code, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--embedder", default="hashing")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1], Path(args.child[2]))
        return
    run = Run(f"Curate end to end: embedder {args.embedder}")
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-curate-") as tmp:
            subprocess.run([sys.executable, __file__, "--child", str(size), args.embedder, tmp], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"})
            mixture = json.loads((Path(tmp) / "out" / "mixture.json").read_text())
            peak = json.loads((Path(tmp) / "peak.json").read_text())
            rows.append((size, mixture["timings"], peak["peak_mb"]))
    steps = list(rows[0][1])
    print("| documents | " + " | ".join(f"{s} s" for s in steps) + " | total s | docs/s | peak RSS MB |")
    print("|" + "---|" * (len(steps) + 4))
    for size, timings, peak in rows:
        total = sum(timings.values())
        print(f"| {size:,} | " + " | ".join(f"{timings[s]:.1f}" for s in steps)
              + f" | {total:.1f} | {size / total:,.0f} | {peak:,.0f} |")
    run.finish()


if __name__ == "__main__":
    main()
