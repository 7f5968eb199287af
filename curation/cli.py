"""``python -m curation curate``: the whole curation on local files, without the service.

The same steps as the service's ``curate`` job, in one process with progress bars:
ingest (validated, into Parquet shards) -> embed per shard -> SemDeDup -> BETR rank,
classifier and scores -> pools (source x BETR decile) -> OT per pool -> proxy pilot
observations -> fit -> the best mixture at the budget. Writes into ``--out``:
``mixture.json`` (weights, unique documents and repetitions per pool, predicted metric
with band and provenance, frontier) and ``manifest.parquet`` (``id, pool, repeats``).

    python -m curation curate --corpus corpus.jsonl --benchmark bench.jsonl --budget 100000
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from curation import betr
from curation.embedders import DEFAULT_EMBEDDER, embedder_key, get_embedder
from curation.ingest import FieldMapping, IngestError, ingest_file, read_shard
from curation.manifest import select_documents, write_manifest
from curation.mixture import Pool, budget_in_samples, fit_mixture_law
from curation.ot import distance_table
from curation.pilots import METRIC as PROXY_METRIC, proxy_observations
from curation.pipeline import concat_column, concat_embeddings, embed_shard
from curation.pools import assign_pools
from curation.semdedup import semdedup
from curation.storage import shard_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m curation", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    curate = commands.add_parser("curate", help="curate a corpus for target benchmarks at a budget")
    curate.add_argument("--corpus", type=Path, required=True, help="JSONL, CSV or Parquet, optionally gzip")
    curate.add_argument("--benchmark", type=Path, action="append", required=True, help="repeatable")
    curate.add_argument("--budget", type=float, required=True, help="training budget in --budget-unit")
    curate.add_argument("--budget-unit", choices=["samples", "tokens", "flops"], default="samples")
    curate.add_argument("--model-parameters", type=float, help="model size, for a budget in flops")
    curate.add_argument("--out", type=Path, default=Path("curation-out"), help="output folder")
    curate.add_argument("--embedder", default=DEFAULT_EMBEDDER, help="minilm, hashing, hashing:DIM or st:PATH")
    curate.add_argument("--eps", type=float, default=0.01, help="SemDeDup threshold: cos >= 1 - eps")
    curate.add_argument("--no-quality-pools", action="store_true", help="pools are sources, not source x decile")
    curate.add_argument("--text-field", default="text")
    curate.add_argument("--id-field")
    curate.add_argument("--source-field")
    curate.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        summary = curate_files(args)
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


def _ingest(path: Path, out_dir: Path, mapping: FieldMapping) -> list[Path]:
    if not path.is_file():
        raise ValueError(f"{path} is not a file")
    out_dir.mkdir(parents=True)
    with tqdm(total=path.stat().st_size, desc=f"ingest {path.name}", unit="B", unit_scale=True) as bar:
        result = ingest_file(path, filename=path.name, out_dir=out_dir, mapping=mapping,
                             on_progress=lambda n: bar.update(n - bar.n))
    return [out_dir / shard_name(s.index, ".parquet") for s in result.shards]


def curate_files(args) -> str:
    """Run the pipeline of the module docstring; returns the printed summary."""
    started = last = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        nonlocal last
        now = time.perf_counter()
        timings[step] = round(now - last, 3)
        last = now

    work = args.out / "work"
    shutil.rmtree(work, ignore_errors=True)  # a fresh run: never mix shards of an earlier input
    mapping = FieldMapping(text_field=args.text_field, id_field=args.id_field, source_field=args.source_field)
    corpus_shards = _ingest(args.corpus, work / "corpus", mapping)
    benchmark_shards = [_ingest(path, work / f"benchmark-{i}", FieldMapping(text_field=args.text_field))
                        for i, path in enumerate(args.benchmark)]
    lap("ingest")
    embedder = get_embedder(args.embedder)
    key = embedder_key(embedder)

    def embed(shards: list[Path], label: str) -> np.ndarray:
        paths = [shard.parent.parent / f"{shard.parent.name}-embeddings" / key / shard.with_suffix(".npy").name
                 for shard in shards]
        for shard, path in tqdm(list(zip(shards, paths)), desc=f"embed {label}", unit="shard"):
            embed_shard(shard, path, path.with_suffix(".faiss"), embedder)
        return concat_embeddings(paths)

    vectors = embed(corpus_shards, "corpus")
    targets = {path.name: embed(shards, path.name) for path, shards in zip(args.benchmark, benchmark_shards)}
    ids = concat_column(corpus_shards, "id")
    texts = concat_column(corpus_shards, "text")
    sources = concat_column(corpus_shards, "source")
    lap("embed")

    print("SemDeDup ...", file=sys.stderr)
    dedup = semdedup(vectors, eps=args.eps, seed=args.seed)
    lap("semdedup")
    quality = None
    if not args.no_quality_pools:
        print("BETR: ranking, training the classifier, scoring ...", file=sys.stderr)
        ranking = betr.rank_scores(vectors, targets, seed=args.seed)
        labelled = betr.label_sample(ranking, seed=args.seed)
        trained = betr.train_classifier([texts[i] for i in labelled.indices], labelled.labels, seed=args.seed)
        quality = np.concatenate([trained.classifier.score(read_shard(s, ["text"]).column("text").to_pylist())
                                  for s in tqdm(corpus_shards, desc="BETR score", unit="shard")]).astype(np.float64)
    lap("betr")
    pools = assign_pools(sources, kept=dedup.kept, quality=quality)
    names = sorted({p for p in pools if p is not None})

    print(f"OT distances of {len(names)} pools to the benchmarks ...", file=sys.stderr)
    table = distance_table({name: vectors[pools == name] for name in names}, targets, seed=args.seed,
                           metric="cosine", reg=0.05, sample_size=300, n_resamples=5)
    lap("ot")
    target_texts = [t for shards in benchmark_shards for t in concat_column(shards, "text")]
    rng = np.random.default_rng(args.seed)
    target_texts = [target_texts[i] for i in sorted(rng.permutation(len(target_texts))[:1000])]
    text_array = np.array(texts, dtype=object)
    with tqdm(desc="proxy pilots", unit="run") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        observations = proxy_observations({name: list(text_array[pools == name]) for name in names}, target_texts,
                                          seed=args.seed, progress=progress)
    lap("pilots")
    law = fit_mixture_law([Pool(name, int((pools == name).sum()), ot=float(table.value[i].mean()),
                                quality=float(quality[pools == name].mean()) if quality is not None else np.nan)
                           for i, name in enumerate(names)], observations, higher_is_better=False)

    lap("fit")
    tokens_per_sample = sum(len(t.split()) for t in texts) / max(len(texts), 1)
    budget = budget_in_samples(args.budget, args.budget_unit, tokens_per_sample=tokens_per_sample,
                               parameters=args.model_parameters)
    allocation = law.optimize(budget)
    prediction = law.predict(dict(zip(allocation.pools, allocation.weights)), budget)
    rows = [row for row in allocation.as_rows(law.unique.astype(int)) if row["weight"] > 0]
    selection = select_documents(pools, allocation, quality=quality, seed=args.seed)
    documents = write_manifest(args.out / "manifest.parquet", ids=ids, selection=selection)
    mixture = {"budget": args.budget, "budget_unit": args.budget_unit, "budget_samples": budget,
               "weights": {row["pool"]: row["weight"] for row in rows}, "pools": rows,
               "predicted": {"metric": PROXY_METRIC, "higher_is_better": False, "value": prediction.value,
                             "low": prediction.low, "high": prediction.high,
                             "extrapolated": prediction.extrapolated, "provenance": dict(law.provenance)},
               "frontier": law.frontier(np.geomspace(budget / 100, budget * 100, 25)),
               "performance_model": {"parameters": law.parameters(), "pools": law.pool_rows(),
                                     "fit_error": law.rmse},
               "deduplicated": int((~dedup.kept).sum()), "documents": documents}
    lap("mixture")
    mixture["timings"] = timings
    (args.out / "mixture.json").write_text(json.dumps(mixture, indent=1))

    lines = [f"Mixture at {args.budget:g} {args.budget_unit} ({budget:,.0f} samples); "
             f"SemDeDup dropped {int((~dedup.kept).sum())} of {len(ids)} documents",
             f"  {'pool':<24}{'weight':>8}{'unique docs':>13}{'repetitions':>13}"]
    lines += [f"  {row['pool']:<24}{row['weight']:>8.3f}{row['unique_documents']:>13}{row['repetitions']:>13.2f}"
              for row in sorted(rows, key=lambda r: -r["weight"])]
    lines.append(f"Predicted {PROXY_METRIC} (lower is better): {prediction.value:.3f} "
                 f"[{prediction.low:.3f}, {prediction.high:.3f}]; parameters from: "
                 f"{', '.join(sorted(set(law.provenance.values())))}")
    lines.append("Seconds per step: " + ", ".join(f"{step} {seconds:.1f}" for step, seconds in timings.items()))
    lines.append(f"Wrote {args.out / 'mixture.json'} and {args.out / 'manifest.parquet'} ({documents} documents) "
                 f"in {time.perf_counter() - started:.1f} s")
    return "\n".join(lines)
