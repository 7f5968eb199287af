"""Ingest benchmark: throughput and peak RSS of ``curation.ingest.ingest_file`` on generated JSONL.

For each size (MB = 10**6 bytes) a deterministic JSONL file of synthetic documents
(0.5-2 KB of text each, several ``source`` values, a couple of extra fields that end
up in ``meta``) is written to a temporary directory, then ingested into Parquet
shards (``shard_size=10000``) in a *fresh* Python process, so the figure is the
ingest's own peak RSS (``VmHWM`` of that process) and not the generator's. The
baseline, also in a fresh process, is ``pyarrow.json.read_json`` of the same file
plus ``pyarrow.parquet.write_table`` (zstd, like our shards): it loads the whole file
into memory, so its peak RSS grows with the size; it is skipped when its estimated
peak would exceed ``--baseline-max-rss-mb``.

    .venv/bin/python bench/bench_ingest.py                      # 10, 100, 1000 MB
    .venv/bin/python bench/bench_ingest.py --sizes 10,100 --gzip
    .venv/bin/python bench/bench_ingest.py --sizes 100 --profile  # cProfile of our ingest

Aim (issue 2): >= 30 MB/s and peak RSS < 500 MB at 1 GB, memory flat in the size.
Everything generated is removed at the end. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from harness import Run  # bench/harness.py, beside this script: machine, libraries, threads, load

ROOT = Path(__file__).resolve().parent.parent
MB = 10**6
AIM_MBPS = 30.0
AIM_RSS_MB = 500.0
SOURCES = [("web", 40), ("news", 20), ("wiki", 15), ("forum", 12), ("books", 8), ("code", 5)]
_SYLLABLES = ("ka ra to mi ne lo su ve di po an er in on us at el ir or um sta pre con tion ment ing "
              "ble ver com pro dis ex tra ful ness ly al ic ous ive age ure").split()
_EXTRA_WORDS = ["café", "naïve", "Zürich", "São", "–", "“quoted”", "résumé", "Ωmega", "日本", "😀"]


# --------------------------------------------------------------------------- data

def _vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.choice((1, 2, 2, 3, 3, 4)))))
    vocabulary = sorted(words)
    rng.shuffle(vocabulary)  # rank order for the Zipf weights below
    return vocabulary + _EXTRA_WORDS


def _sentence_pool(seed: int, count: int = 40_000) -> list[str]:
    rng = random.Random(seed)
    vocabulary = _vocabulary(rng)
    weights = [1.0 / (rank + 1) for rank in range(len(vocabulary))]  # Zipf-like word frequencies
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    pool = []
    for _ in range(count):
        words = rng.choices(vocabulary, cum_weights=cum, k=rng.randint(6, 28))
        words[0] = words[0].capitalize()
        if rng.random() < 0.15:
            words.insert(rng.randrange(1, len(words)), f"{rng.randint(1, 9999)},")
        pool.append(" ".join(words) + rng.choice(".....?!"))
    return pool


def generate_jsonl(path: Path, size_bytes: int, seed: int = 0) -> int:
    """Write documents until the file holds at least ``size_bytes``; return the document count."""
    rng = random.Random(seed + 1)
    pool = _sentence_pool(seed)
    source_names = [name for name, _ in SOURCES]
    source_weights = [weight for _, weight in SOURCES]
    written = documents = 0
    buffer: list[str] = []
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        while written < size_bytes:
            target = rng.randint(500, 2000)
            parts, length = [], 0
            for sentence in rng.choices(pool, k=24):
                parts.append(sentence)
                length += len(sentence) + 1
                if length >= target:
                    break
                if rng.random() < 0.12:
                    parts.append("\n\n")  # paragraph breaks, escaped in the JSON
            source = rng.choices(source_names, weights=source_weights)[0]
            record = {"id": f"doc-{documents:09d}", "text": " ".join(parts)[:target].rstrip(), "source": source,
                      "url": f"https://{source}.example.org/{rng.getrandbits(40):010x}", "lang": "en"}
            line = json.dumps(record, ensure_ascii=False) + "\n"
            buffer.append(line)
            written += len(line.encode("utf-8"))
            documents += 1
            if len(buffer) >= 4096:
                handle.write("".join(buffer))
                buffer.clear()
        handle.write("".join(buffer))
    return documents


def gzip_file(source: Path, target: Path, level: int = 6) -> None:
    with open(source, "rb") as src, gzip.open(target, "wb", compresslevel=level) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


# --------------------------------------------------------------------------- child processes

def _rss_mb(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process in MB (VmHWM is per address space, reset by exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / MB
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB


def _child(mode: str, path: str, out_dir: str) -> dict:
    sys.path.insert(0, str(ROOT))
    import pyarrow as pa
    import pyarrow.json as pajson
    import pyarrow.parquet as pq

    from curation.ingest import ingest_file

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    rss_before = _rss_mb("VmRSS")
    info: dict = {}
    if mode in ("ours", "profile"):
        def run():
            return ingest_file(path, filename=Path(path).name, out_dir=out_dir, shard_size=10_000,
                               max_bytes=64 * 1024**3)

        started = time.perf_counter()
        if mode == "profile":
            import cProfile
            import io
            import pstats

            profiler = cProfile.Profile()
            result = profiler.runcall(run)
            stream = io.StringIO()
            pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(25)
            info["profile"] = stream.getvalue()
        else:
            result = run()
        seconds = time.perf_counter() - started
        info.update(documents=result.documents, shards=len(result.shards), stored_bytes=result.stored_bytes,
                    sources=len(result.sources))
    else:  # baseline: whole file into an Arrow table, then one Parquet file
        started = time.perf_counter()
        source = pa.input_stream(path, compression="gzip") if path.endswith(".gz") else path
        table = pajson.read_json(source)
        pq.write_table(table, os.path.join(out_dir, "baseline.parquet"), compression="zstd")
        seconds = time.perf_counter() - started
        info.update(documents=table.num_rows)
    info.update(seconds=seconds, rss_before_mb=rss_before, peak_rss_mb=_rss_mb("VmHWM"))
    return info


def run_child(mode: str, path: Path, out_dir: Path) -> dict:
    """Run one ingest (or baseline) in a fresh interpreter and return its measurements."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", mode, str(path), str(out_dir)]
    done = subprocess.run(command, capture_output=True, text=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- main

def machine() -> str:
    """The versions of the libraries this benchmark measures."""
    import pyarrow

    return f"pyarrow {pyarrow.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="file sizes in MB (10**6 bytes), comma-separated")
    parser.add_argument("--gzip", action="store_true", help="also ingest a gzip copy of each file")
    parser.add_argument("--no-baseline", action="store_true", help="skip the pyarrow baseline")
    parser.add_argument("--baseline-max-rss-mb", type=float, default=8000,
                        help="skip the baseline where its estimated peak RSS exceeds this (MB)")
    parser.add_argument("--profile", action="store_true", help="cProfile our ingest of the smallest size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default=None, help="parent of the temporary directory (default: system temp)")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the aim is missed")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(_child(*args.child)))
        return 0

    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    run = Run(f"Ingest: {machine()}")
    rows, notes = [], []
    baseline_per_mb: float | None = None  # baseline peak RSS growth per input MB, for the skip estimate
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.tmp))
    try:
        for size in sizes:
            data = work / f"docs-{size}MB.jsonl"
            started = time.perf_counter()
            documents = generate_jsonl(data, size * MB, seed=args.seed)
            file_bytes = data.stat().st_size
            print(f"generated {data.name}: {file_bytes / MB:.1f} MB, {documents} docs "
                  f"in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
            inputs = [(data, "jsonl")]
            if args.gzip:
                gz = work / (data.name + ".gz")
                gzip_file(data, gz)
                inputs.append((gz, "jsonl.gz"))
            if args.profile and size == sizes[0]:
                profiled = run_child("profile", data, work / "out")
                print(f"\n### cProfile of ingest_file, {size} MB (tottime, top 25)\n\n```\n"
                      f"{profiled['profile']}```\n", flush=True)
            for path, kind in inputs:
                ours = run_child("ours", path, work / "out")
                assert ours["documents"] == documents, (ours["documents"], documents)
                row = {"size": size, "kind": kind, "file_mb": file_bytes / MB, "stored_mb": path.stat().st_size / MB,
                       "documents": documents, "ours": ours, "baseline": None}
                print(f"ours {kind} {size} MB: {ours}", file=sys.stderr, flush=True)
                if not args.no_baseline:
                    estimate = (1.5 * 4 * file_bytes / MB + 300 if baseline_per_mb is None
                                else baseline_per_mb * file_bytes / MB + 300)
                    if estimate > args.baseline_max_rss_mb:
                        notes.append(f"baseline skipped at {size} MB {kind}: estimated peak RSS {estimate:.0f} MB "
                                     f"> {args.baseline_max_rss_mb:.0f} MB")
                    else:
                        base = run_child("baseline", path, work / "out")
                        assert base["documents"] == documents, (base["documents"], documents)
                        row["baseline"] = base
                        if kind == "jsonl":
                            grown = max(base["peak_rss_mb"] - base["rss_before_mb"], 0.0)
                            baseline_per_mb = max(baseline_per_mb or 0.0, grown / (file_bytes / MB))
                        print(f"baseline {kind} {size} MB: {base}", file=sys.stderr, flush=True)
                rows.append(row)
            for path, _ in inputs:
                path.unlink()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\n| input | size (MB) | docs | time (s) | MB/s | docs/s | peak RSS (MB) | baseline time (s) "
          "| ratio ours/baseline | baseline peak RSS (MB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        ours, base = row["ours"], row["baseline"]
        mbps = row["file_mb"] / ours["seconds"]
        base_cells = ("skipped", "–", "skipped") if base is None else (
            f"{base['seconds']:.2f}", f"{base['seconds'] / ours['seconds']:.2f}", f"{base['peak_rss_mb']:.0f}")
        label = row["kind"] if row["kind"] == "jsonl" else f"{row['kind']} ({row['stored_mb']:.0f} MB gz)"
        print(f"| {label} | {row['file_mb']:.0f} | {row['documents']:,} | {ours['seconds']:.2f} | {mbps:.1f} "
              f"| {row['documents'] / ours['seconds']:,.0f} | {ours['peak_rss_mb']:.0f} | {base_cells[0]} "
              f"| {base_cells[1]} | {base_cells[2]} |")
    print("\nMB = 10^6 bytes of uncompressed JSONL; MB/s counts uncompressed bytes for gzip inputs too. "
          "Peak RSS = VmHWM of a fresh process doing only that ingest "
          f"(interpreter + imports alone: {rows[0]['ours']['rss_before_mb']:.0f} MB). "
          "Ratio = our throughput / baseline throughput.")
    for note in notes:
        print(f"Note: {note}.")
    largest = [r for r in rows if r["size"] == sizes[-1] and r["kind"] == "jsonl"][0]
    mbps = largest["file_mb"] / largest["ours"]["seconds"]
    peak = largest["ours"]["peak_rss_mb"]
    met = mbps >= AIM_MBPS and peak < AIM_RSS_MB
    print(f"\nAim at {sizes[-1]} MB: >= {AIM_MBPS:.0f} MB/s and peak RSS < {AIM_RSS_MB:.0f} MB -> "
          f"{mbps:.1f} MB/s, {peak:.0f} MB: {'MET' if met else 'MISSED'}")
    run.finish()
    return 0 if met or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
