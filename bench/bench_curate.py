"""``curate`` at growing sizes: seconds and peak RSS of every stage, to check that memory stays flat.

For each size a fresh process generates the corpus (:func:`curation.demo_data.demo_corpus`,
written to JSONL, the generator's memory freed in its own process), then another fresh
process runs ``python -m curation curate`` (hashing embedder, shards of 10,000 documents,
local disk) with every stage's units wrapped: before a unit the process's ``VmHWM`` is
reset to its current RSS (``/proc/self/clear_refs``), after it ``VmHWM`` is that unit's peak
RSS. The local executor runs units in this one process, so a stage's peak is the process's
peak while its units ran (what a worker running that unit would need, plus what the
process still held). Prints, per size, the seconds and the highest unit peak of each stage,
the total, throughput, the whole process's peak, and the slope of time from one size to the
next (1.0 = linear).

    .venv/bin/python bench/bench_curate.py                      # 10k and 100k
    .venv/bin/python bench/bench_curate.py --sizes 10000 100000 1000000
"""
from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness import Run, reset_peak, rss_mb  # bench/harness.py, beside this script

ROOT = Path(__file__).resolve().parents[1]
SHARD_SIZE = 10_000


def generate(size: int, folder: Path) -> None:
    sys.path.insert(0, str(ROOT))
    from curation.demo_data import demo_benchmark, demo_corpus, write_jsonl

    write_jsonl(demo_corpus(size), folder / "corpus.jsonl")
    write_jsonl(demo_benchmark(200), folder / "bench.jsonl")


def curate(size: int, folder: Path, embedder: str) -> None:
    """Run the CLI's curate with every unit measured; writes ``units.json`` beside ``out/``."""
    sys.path.insert(0, str(ROOT))
    import curation.cli as cli

    measured: dict[str, dict] = {}

    def wrapped(stage):
        def run(ctx, index):
            reset_peak()
            before = rss_mb()
            output = stage.run(ctx, index)
            figures = measured.setdefault(stage.name, {"units": 0, "peak_mb": 0.0, "rss_before_mb": 0.0})
            figures["units"] += 1
            figures["peak_mb"] = max(figures["peak_mb"], rss_mb("VmHWM"))
            figures["rss_before_mb"] = max(figures["rss_before_mb"], before)
            return output
        return replace(stage, run=run)

    plan_of = cli.curate_plan
    cli.curate_plan = lambda params: [wrapped(stage) for stage in plan_of(params)]
    code = cli.main(["curate", "--corpus", str(folder / "corpus.jsonl"), "--benchmark", str(folder / "bench.jsonl"),
                     "--budget", str(size // 2), "--embedder", embedder, "--eps", "0.05", "--shard-size",
                     str(SHARD_SIZE), "--out", str(folder / "out")])
    (folder / "units.json").write_text(json.dumps({"code": code, "units": measured}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--embedder", default="hashing", help="hashing (default) or minilm (~50 documents/s on 2 CPUs)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.child[0] == "generate":
            generate(int(args.child[1]), Path(args.child[2]))
        else:
            curate(int(args.child[1]), Path(args.child[2]), args.embedder)
        return
    run = Run(f"curate at scale: {args.embedder} embedder, shards of 10,000, local disk; per-stage seconds and peak RSS")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            subprocess.run([sys.executable, __file__, "--child", "generate", str(size), tmp], check=True, env=env)
            started = time.perf_counter()
            done = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, __file__, "--embedder", args.embedder,
                                   "--child", "curate", str(size), tmp], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True)
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise RuntimeError(f"curate at {size} failed:\n{done.stderr[-3000:]}")
            process_peak = int(done.stderr.strip().splitlines()[-1]) / 1024
            timings = json.loads((Path(tmp) / "out" / "mixture.json").read_text())["timings"]
            units = json.loads((Path(tmp) / "units.json").read_text())["units"]
            rows.append({"size": size, "wall": wall, "timings": timings, "units": units, "peak": process_peak})
            run.note_load()
            print(f"n = {size:,}: {wall:.0f} s, process peak {process_peak:,.0f} MB, load {run.note_load():.2f}",
                  file=sys.stderr, flush=True)
    stages = list(dict.fromkeys(stage for r in reversed(rows) for stage in r["timings"]))  # the largest has most
    print("| stage | " + " | ".join(f"{r['size']:,}: s | peak MB" for r in rows) + " |")
    print("|---|" + "---|---|" * len(rows))
    for stage in stages:
        cells = []
        for r in rows:
            unit = r["units"].get(stage)
            seconds = r["timings"].get(stage)
            cells.append(("-" if seconds is None else f"{seconds:.1f}") + " | "
                         + (f"{unit['peak_mb']:,.0f} ({unit['units']} units)" if unit else "-"))
        print(f"| {stage} | " + " | ".join(cells) + " |")
    print("\n| documents | wall s | docs/s | process peak RSS MB | time ratio to the previous size | slope |")
    print("|---|---|---|---|---|---|")
    for previous, r in zip([None, *rows], rows):
        ratio = r["wall"] / previous["wall"] if previous else float("nan")
        slope = math.log(ratio) / math.log(r["size"] / previous["size"]) if previous else float("nan")
        print(f"| {r['size']:,} | {r['wall']:.1f} | {r['size'] / r['wall']:,.0f} | {r['peak']:,.0f} | "
              f"{ratio:.2f} | {slope:.2f} |")
    run.finish()


if __name__ == "__main__":
    main()
