"""N-gram decontamination benchmark: ``curation.decontamination.NgramIndex`` against datatrove's
``NGramsDecontFilter`` on the same benchmark examples and the same corpus documents.

Benchmark items: the ``text`` of every example of every ``benchmarks/*.jsonl`` under the shared
data directory (``$SHARED_DATA_DIR``, default ``../shared/data``), files in name order, up to
``--items`` (10,000). Corpus documents: the real texts of ``corpora/*.jsonl`` (bbc_news,
ag_news_test, 20newsgroups_test), cycled to ``n`` documents; document ``i`` is corpus text
``i mod T`` followed by the word ``i`` (so no two documents are the same string), and one
document in ``--plant-every`` (1,000: 0.1%) also quotes a benchmark item verbatim (an item of
at least 13 words, so that both methods can find it) before that word. Documents are generated
on the fly, batch by batch: the whole list of texts is never in memory.

- ``ours``: ``NgramIndex.build(items, n=13)`` once, then ``index.find(batch)`` for every batch of
  ``--batch`` (10,000) documents (each batch hashed at once with numpy);
- ``datatrove``: its index built the way ``tests/curation/test_decontamination.py`` builds it
  (``simplify_text`` with numbers kept, whitespace words, ``ngrams``, sha1 hashes to uint64,
  written as ``<task>.index.hashes`` and loaded by the filter); then
  ``NGramsDecontFilter.filter(Document(...))`` for every document, one at a time (its
  English tokenizer needs NLTK data that is not installed: a whitespace ``WordTokenizer``
  subclass, as in the test; ``simplify_text`` has already reduced the text to single-space
  separated words). Only the filtering is timed; both index builds are timed apart.
- ``generate``: the same document generator consumed without doing anything, so that its
  (small) share of both times is visible.

Each size runs in a fresh Python process with every BLAS / OpenMP pool limited to one thread
(``threadpoolctl``): ours is numpy in one process, datatrove's filter pure Python in one
process, so documents/s is also documents/s per core (the CPU/wall column shows the cores
actually used). The methods run ``--rounds`` times (``--large-rounds`` from 1M), interleaved by
:mod:`harness` (order rotating); the table shows medians, the median paired ratio (datatrove's
time per document / ours in the same round: > 1 means ours is faster) and the peak RSS of the
call above the RSS before it (``VmHWM`` reset through ``/proc/self/clear_refs``; the process
already holds the corpus texts, the items and both indexes). If datatrove would take longer
than ``--datatrove-max-s`` (600 s, estimated from an untimed probe of 2,000 documents spread
over the corpus), it filters every ``s``-th document only (about ``--datatrove-subset``, 100k
documents) and the table says so; its rate and the ratio are then per document.

Agreement: the sets of contaminated documents the two methods report are compared at every
size (on datatrove's subset where it ran on one) and printed; they must be equal at the
smallest size.

Aim: at least 20,000 documents/s per core for ours, and peak memory flat in corpus size.

    .venv/bin/python bench/bench_decontaminate.py                  # 100k and 1M documents
    .venv/bin/python bench/bench_decontaminate.py --sizes 2000 --rounds 1
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from harness import Run, interleave, measure, rss_mb, sizes_in_fresh_processes, shared_data_dir  # bench/harness.py, beside this script

ROOT = Path(__file__).resolve().parent.parent
N = 13
CORPORA = ("bbc_news", "ag_news_test", "20newsgroups_test")
AIM_PER_CORE = 20_000


# --------------------------------------------------------------------------- data

def _jsonl_texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["text"] for line in handle if line.strip()]


def benchmark_items(limit: int) -> tuple[list[str], list[str]]:
    """(items, the files they came from) in file-name order, up to ``limit`` items."""
    items, files = [], []
    for path in sorted((shared_data_dir() / "benchmarks").glob("*.jsonl")):
        if len(items) >= limit:
            break
        items.extend(_jsonl_texts(path)[:limit - len(items)])
        files.append(path.stem)
    return items, files


def corpus_texts() -> list[str]:
    texts = []
    for name in CORPORA:
        texts.extend(_jsonl_texts(shared_data_dir() / "corpora" / f"{name}.jsonl"))
    return texts


class Documents:
    """The ``n`` corpus documents, generated on the fly (see the module docstring)."""

    def __init__(self, base: list[str], plants: list[str], n: int, plant_every: int):
        self.base, self.plants, self.n, self.every = base, plants, n, plant_every

    def text(self, i: int) -> str:
        text = self.base[i % len(self.base)]
        if i % self.every == self.every // 2:
            text = f"{text}\n\n{self.plants[(i // self.every) % len(self.plants)]}"
        return f"{text} {i}"

    def batches(self, size: int) -> Iterator[tuple[int, list[str]]]:
        text = self.text
        for start in range(0, self.n, size):
            yield start, [text(i) for i in range(start, min(start + size, self.n))]

    def subset(self, stride: int) -> Iterator[tuple[int, str]]:
        text = self.text
        for i in range(0, self.n, stride):
            yield i, text(i)

    @property
    def planted(self) -> int:
        return len(range(self.every // 2, self.n, self.every))


# --------------------------------------------------------------------------- datatrove

def datatrove_filter(items: list[str], folder: Path):
    """datatrove's index of the items' 13-grams (as tests/curation/test_decontamination.py builds it) and
    its filter over that index, hashes loaded."""
    import numpy as np
    from datatrove.pipeline.decont import n_grams as decont
    from datatrove.utils.hashing import HashConfig, create_hash_func
    from datatrove.utils.text import TextNormConfig, ngrams, simplify_text
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text):
            return text.split()

        def sent_tokenize(self, text):
            return [text]

        def span_tokenize(self, text):
            return [(0, len(text))]

    config = decont.NGramsDecontConfig(n_grams=N, norm_config=TextNormConfig(norm_numbers=False),
                                       hash_config=HashConfig(hash_fc="sha1"))
    hash_of = create_hash_func(config.hash_config)
    hashes = {hash_of(" ".join(g)) for text in items
              for g in ngrams(simplify_text(text, config.norm_config).split(), config.n_grams)}
    np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(folder / "benchmarks.index.hashes")
    reference = decont.NGramsDecontFilter(str(folder), config=config, language=Whitespace("en"))
    reference.load_index_hashes()
    return reference, len(hashes)


# --------------------------------------------------------------------------- one size, in a fresh process

def _child(n: int, args: argparse.Namespace) -> dict:
    sys.path.insert(0, str(ROOT))
    from datatrove.data import Document
    from threadpoolctl import threadpool_limits

    from curation.decontamination import NgramIndex, normalise_words

    threadpool_limits(1)
    items, _ = benchmark_items(args.items)
    base = corpus_texts()
    plants = [t for t in items if len(normalise_words(t)) >= N]
    step = max(1, len(plants) // 997)  # spread the plants over all the benchmark files
    docs = Documents(base, plants[::step], n, args.plant_every)
    rss_data = rss_mb()

    built = measure(lambda: NgramIndex.build(items, n=N))
    index = built.result
    tmp = tempfile.TemporaryDirectory(prefix="bench_decont_")
    dt_built = measure(lambda: datatrove_filter(items, Path(tmp.name)))
    reference, dt_hashes = dt_built.result

    # warm-up (untimed): one batch through ours; a probe of 2,000 documents spread over the corpus through datatrove
    index.find(next(docs.batches(min(n, args.batch)))[1])
    probe = list(docs.subset(max(1, n // 2_000)))
    started = time.perf_counter()
    for i, text in probe:
        reference.filter(Document(text=text, id=str(i)))
    dt_rate = len(probe) / (time.perf_counter() - started)
    stride = 1
    if n / dt_rate > args.datatrove_max_s:
        stride = max(1, math.ceil(n / args.datatrove_subset))
    dt_docs = len(range(0, n, stride))

    def ours():
        found = []
        for start, batch in docs.batches(args.batch):
            found.extend(start + m.document for m in index.find(batch))
        return found

    def theirs():
        found = []
        for i, text in docs.subset(stride):
            if reference.filter(Document(text=text, id=str(i))) is not True:
                found.append(i)
        return found

    def generate():
        return sum(len(batch) for _, batch in docs.batches(args.batch))

    rounds = args.rounds if n < 1_000_000 else args.large_rounds
    run = Run(f"n = {n:,}", quiet=True)
    compared = interleave({"ours": ours, "datatrove": theirs, "generate": generate}, rounds=rounds, run=run,
                          log=lambda line: print(f"  n={n:,} {line}", file=sys.stderr, flush=True))
    tmp.cleanup()

    ours_found, theirs_found = set(compared.result("ours")), set(compared.result("datatrove"))
    ours_on_subset = {i for i in ours_found if i % stride == 0}
    planted = set(range(args.plant_every // 2, n, args.plant_every))
    per_doc = statistics.median((b / dt_docs) / (o / n) for b, o in zip(compared.seconds("datatrove"),
                                                                         compared.seconds("ours")))
    methods = {}
    for name, count in (("ours", n), ("datatrove", dt_docs), ("generate", n)):
        methods[name] = {"docs": count, "seconds": compared.seconds(name), "median_s": compared.median_s(name),
                         "cpu_s": statistics.median(m.cpu_seconds for m in compared.runs[name]),
                         "peak_mb": max(m.peak_mb for m in compared.runs[name]),
                         "delta_mb": compared.peak_above_mb(name)}
    return {
        "n": n, "rounds": rounds, "rss_data_mb": rss_data, "stride": stride, "probe_rate": dt_rate,
        "build": {"ours_s": built.seconds, "ours_delta_mb": built.peak_above_mb, "grams": index.grams,
                  "too_short": index.too_short, "datatrove_s": dt_built.seconds,
                  "datatrove_delta_mb": dt_built.peak_above_mb, "datatrove_hashes": dt_hashes},
        "methods": methods, "paired_per_doc": per_doc,
        "found": {"ours": len(ours_found), "ours_on_subset": len(ours_on_subset), "datatrove": len(theirs_found),
                  "agree": ours_on_subset == theirs_found,
                  "only_ours": sorted(ours_on_subset - theirs_found)[:20],
                  "only_datatrove": sorted(theirs_found - ours_on_subset)[:20],
                  "only_ours_count": len(ours_on_subset - theirs_found),
                  "only_datatrove_count": len(theirs_found - ours_on_subset),
                  "planted": len(planted), "planted_found_ours": len(planted & ours_found),
                  "planted_on_subset": len({i for i in planted if i % stride == 0}),
                  "planted_found_datatrove": len(planted & theirs_found),
                  "unplanted_ours": len(ours_found - planted), "unplanted_datatrove": len(theirs_found - planted)},
        "load": run.finish(),
    }



# --------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000", help="corpus documents, comma-separated")
    parser.add_argument("--items", type=int, default=10_000, help="benchmark examples indexed")
    parser.add_argument("--batch", type=int, default=10_000, help="documents per find() call (ours)")
    parser.add_argument("--plant-every", type=int, default=1_000, help="one document in this many quotes an item")
    parser.add_argument("--rounds", type=int, default=2, help="timed runs per method below 1M documents")
    parser.add_argument("--large-rounds", type=int, default=1, help="timed runs per method from 1M documents")
    parser.add_argument("--datatrove-max-s", type=float, default=600,
                        help="longest datatrove pass (estimated) before it runs on a subset")
    parser.add_argument("--datatrove-subset", type=int, default=100_000, help="documents of that subset")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args)))
        return 0

    sys.path.insert(0, str(ROOT))
    import datatrove  # noqa: F401
    import numpy
    from importlib.metadata import version

    from curation.decontamination import normalise_words

    items, files = benchmark_items(args.items)
    base = corpus_texts()
    words = sum(len(normalise_words(t)) for t in base) / len(base)
    header = Run(f"N-gram decontamination: numpy {numpy.__version__}, datatrove {version('datatrove')}")
    print(f"Items: {len(items):,} benchmark examples from {len(files)} files ({', '.join(files)}) under "
          f"{shared_data_dir() / 'benchmarks'}; corpus: {len(base):,} real texts ({', '.join(CORPORA)}; "
          f"{words:.0f} words each on average), cycled. "
          f"n = {N}. Every BLAS / OpenMP pool limited to 1 thread in the measuring processes.", flush=True)
    passed = list(argv if argv is not None else sys.argv[1:])
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    results, total = sizes_in_fresh_processes(__file__, sizes, passed)

    print("\n| documents | method | documents timed | time (s) | documents/s | documents/s per core | CPU/wall "
          "| peak RSS (MiB) | Δ RSS (MiB) | datatrove / ours time per document |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        for name, label in (("ours", "ours: `NgramIndex.find`, batches of "f"{args.batch:,}"),
                            ("datatrove", "datatrove: `NGramsDecontFilter.filter`"),
                            ("generate", "document generation only")):
            m = r["methods"][name]
            rate = m["docs"] / m["median_s"]
            cores = m["cpu_s"] / m["median_s"] if m["median_s"] else 0
            ratio = f"{r['paired_per_doc']:.2f}" if name == "ours" else "–"
            timed = f"{m['docs']:,}" + (f" (every {r['stride']}th)" if name == "datatrove" and r["stride"] > 1 else "")
            print(f"| {r['n']:,} | {label} | {timed} | {m['median_s']:.2f} | {rate:,.0f} | {rate / max(cores, 1):,.0f} "
                  f"| {cores:.2f} | {m['peak_mb']:.0f} | {m['delta_mb']:.0f} | {ratio} |")

    print("\n| documents | index | build (s) | Δ RSS (MiB) | hashed n-grams |")
    print("|---:|---|---:|---:|---:|")
    for r in results:
        b = r["build"]
        print(f"| {r['n']:,} | ours: `NgramIndex.build(items, n=13)` | {b['ours_s']:.2f} | {b['ours_delta_mb']:.0f} "
              f"| {b['grams']:,} ({b['too_short']} items under 8 words) |")
        print(f"| {r['n']:,} | datatrove: sha1 13-grams, `.index.hashes`, `load_index_hashes` | {b['datatrove_s']:.2f} "
              f"| {b['datatrove_delta_mb']:.0f} | {b['datatrove_hashes']:,} distinct |")

    print("\nAgreement (contaminated documents):")
    for r in results:
        f = r["found"]
        where = f"on datatrove's subset (every {r['stride']}th document)" if r["stride"] > 1 else "on all documents"
        print(f"- n = {r['n']:,}: ours {f['ours']:,} (planted found {f['planted_found_ours']}/{f['planted']}, "
              f"others {f['unplanted_ours']}), datatrove {f['datatrove']:,} (planted found "
              f"{f['planted_found_datatrove']}/{f['planted_on_subset']}, others {f['unplanted_datatrove']}); "
              f"{where}: {'IDENTICAL' if f['agree'] else 'DIFFERENT'} sets"
              + ("" if f["agree"] else f" (only ours {f['only_ours_count']}: {f['only_ours']}, only datatrove "
                                       f"{f['only_datatrove_count']}: {f['only_datatrove']})"))

    rounds = ", ".join(f"{r['n']:,}: {r['rounds']}" for r in results)
    print(f"\nTime = median of the interleaved rounds (n: rounds = {rounds}); both passes include generating the "
          f"documents (the 'generation only' row). Ratio = median over rounds of datatrove's seconds per document / "
          f"ours in the same round (> 1: ours faster). Peak RSS = VmHWM during the call; Δ RSS = peak - RSS before it "
          f"(texts, items and both indexes resident: "
          + ", ".join(f"{r['rss_data_mb']:.0f} MiB of data at {r['n']:,}" for r in results)
          + f"). Total {total / 60:.1f} min.")
    for r in results:
        if r["stride"] > 1:
            print(f"Note: n = {r['n']:,}: datatrove's probe ran at {r['probe_rate']:,.0f} documents/s, "
                  f"i.e. ~{r['n'] / r['probe_rate'] / 60:.0f} min for all; it filtered every {r['stride']}th document "
                  f"({r['methods']['datatrove']['docs']:,}).")
    for r in results:
        print(f"n = {r['n']:,}: {r['load']}")
    for r in results:
        m = r["methods"]["ours"]
        rate = m["docs"] / m["median_s"] / max(m["cpu_s"] / m["median_s"], 1)
        print(f"Aim: ours >= {AIM_PER_CORE:,} documents/s per core at n = {r['n']:,}: {rate:,.0f} -> "
              f"{'MET' if rate >= AIM_PER_CORE else 'MISSED'}")
    if len(results) > 1:
        deltas = [r["methods"]["ours"]["delta_mb"] for r in results]
        print("Memory: ours Δ RSS " + " -> ".join(f"{d:.0f} MiB (n={r['n']:,})" for d, r in zip(deltas, results))
              + f"; largest/smallest {max(deltas) / max(min(deltas), 1):.2f} (flat: ~1)")
    header.finish()
    return 0 if all(r["found"]["agree"] for r in results[:1]) else 1


if __name__ == "__main__":
    sys.exit(main())
