"""``python -m curation curate``: the whole curation on local files, without the service.

Runs the service's ``curate`` plan (:func:`curation.plans.curate_plan`) with the local
executor: ingest (validated, into Parquet shards) -> embed per shard -> index -> prune
(SemDeDup by default) -> BETR rank, classifier and scores -> pools (source x BETR decile)
-> OT per pool -> proxy pilot observations -> fit -> the best mixture at the budget.
The same inputs, params and seed give the service's results exactly. Work lives in
``--out``/work; a run killed part-way resumes there (finished units are not redone)
when rerun with the same inputs and options. Writes into ``--out``: ``mixture.json``
(weights, unique documents and repetitions per pool, predicted metric with band and
provenance, frontier), ``manifest.parquet`` (``id, pool, repeats``) and ``timings.json``
(the units' seconds per stage kind: ``--dry-run`` prints the plan and an estimate from them,
:func:`curation.executor.plan_estimate`, running nothing but the ingest).

    python -m curation curate --corpus corpus.jsonl --benchmark bench.jsonl --budget 100000
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import uuid
from pathlib import Path

from tqdm import tqdm

from curation import summary
from curation.embedders import DEFAULT_EMBEDDER
from curation.executor import LocalExecutor, pilots_source, plan_estimate, plan_work, recorded_timings
from curation.ingest import FieldMapping, IngestError, ingest_file
from curation.laws import budget_in_samples, check_budget_bounds
from curation.plans import CurateParams, curate_plan
from curation.pruning import NEEDS_EMBEDDINGS
from curation.steps import MAX_SEED, DatasetRef
from curation.storage import Keys, LocalStorage, Storage, key

STATE = "run.json"
#: Seconds and work of the units run in this --out folder, per stage kind (what --dry-run estimates
#: from; beside work/, which other inputs replace, so it outlives them).
TIMINGS = "timings.json"


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
    curate.add_argument("--prune-method", choices=sorted(NEEDS_EMBEDDINGS), default="semdedup")
    curate.add_argument("--eps", type=float, default=0.01, help="SemDeDup / D4 threshold: cos >= 1 - eps")
    curate.add_argument("--prune-fraction", type=float, default=0.8, help="documents kept by d4 / prototypes")
    curate.add_argument("--keep", choices=["auto", "hard", "easy"], default="auto",
                        help="d4 / prototypes: auto decides by the budget (abundant data: hard)")
    curate.add_argument("--betr-keep-fraction", type=float, help="share of tokens BETR keeps (default: by the budget)")
    curate.add_argument("--no-quality-pools", action="store_true", help="pools are sources, not source x decile")
    curate.add_argument("--sample-size", type=int, default=200_000, help="documents BETR ranks")
    curate.add_argument("--shard-size", type=int, default=10_000, help="documents per Parquet shard")
    curate.add_argument("--text-field", default="text")
    curate.add_argument("--id-field")
    curate.add_argument("--source-field")
    curate.add_argument("--seed", type=int, default=0)
    curate.add_argument("--pilot-model", choices=["bigram", "tiny_lm"], default="bigram", help=(
        "who makes the pilot observations: a bigram proxy (seconds) or a tiny transformer per run (measures "
        "repetition; CUDA when present)"))
    curate.add_argument("--pilot-runs", type=int, default=20, help="tiny_lm: pilot runs")
    curate.add_argument("--pilot-tokens", type=int, default=1_000_000, help="tiny_lm: tokens of the largest run")
    curate.add_argument("--dry-run", action="store_true", help=(
        "validate and ingest the inputs (into --out/work, where the real run finds them), then print the plan's "
        "stages, units and estimated seconds (from this folder's earlier runs, else defaults); run no stage"))
    args = parser.parse_args(argv)
    try:
        summary = curate_files(args)
    except (IngestError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


def _fingerprint(args) -> dict:
    """What a resumed run must share with the run that left the work folder."""
    files = [args.corpus, *args.benchmark]
    for path in files:
        if not path.is_file():
            raise ValueError(f"{path} is not a file")
    options = {k: v for k, v in sorted(vars(args).items()) if k not in ("out", "corpus", "benchmark", "dry_run")}
    return {"files": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files], "options": options}


def _work(args) -> tuple[LocalStorage, str]:
    """The work folder's storage and run id: resumed when the inputs and options match, else fresh."""
    work = args.out / "work"
    fingerprint = _fingerprint(args)
    state = work / STATE
    if state.is_file():
        saved = json.loads(state.read_text())
        if saved["fingerprint"] == fingerprint:
            return LocalStorage(work), saved["run"]
    shutil.rmtree(work, ignore_errors=True)  # other inputs: never mix their shards with these
    work.mkdir(parents=True)
    run = str(uuid.uuid4())
    state.write_text(json.dumps({"run": run, "fingerprint": fingerprint}))
    return LocalStorage(work), run


def _ingest(storage: Storage, path: Path, dataset_id: str, kind: str, mapping: FieldMapping,
            shard_size: int) -> DatasetRef:
    """Validate ``path`` into the dataset's shards (once; a resumed run reads the stored summary)."""
    summary = key("datasets", dataset_id, "dataset.json")
    if not storage.exists(summary):
        with storage.staging() as folder, tqdm(total=path.stat().st_size, desc=f"ingest {path.name}", unit="B",
                                               unit_scale=True, file=sys.stderr) as bar:
            (folder / "shards").mkdir()
            result = ingest_file(path, filename=path.name, out_dir=folder / "shards", mapping=mapping,
                                 shard_size=shard_size, on_progress=lambda n: bar.update(n - bar.n))
            bar.update(bar.total - bar.n)
            storage.commit(folder / "shards", Keys.shards(dataset_id))
        storage.write_bytes(summary, json.dumps({
            "name": path.name, "documents": result.documents, "tokens": result.tokens,
            "shard_documents": [s.documents for s in result.shards]}).encode())
    stored = json.loads(storage.read_bytes(summary))
    return DatasetRef(id=dataset_id, name=stored["name"], kind=kind, documents=stored["documents"],
                      tokens=stored["tokens"], shard_documents=tuple(stored["shard_documents"]))


def curate_files(args) -> str:
    """Run the pipeline of the module docstring; returns the printed summary."""
    # Bounds first, so that a budget or seed the last stages cannot take fails before the first.
    if not 0 <= args.seed <= MAX_SEED:
        raise ValueError(f"--seed must be in [0, {MAX_SEED}]; got {args.seed}")
    check_budget_bounds(args.budget, args.budget_unit)
    started = time.perf_counter()
    storage, run = _work(args)
    ingest_started = time.perf_counter()
    mapping = FieldMapping(text_field=args.text_field, id_field=args.id_field, source_field=args.source_field)
    corpus = _ingest(storage, args.corpus, "corpus", "corpus", mapping, args.shard_size)
    budget_in_samples(args.budget, args.budget_unit, tokens_per_sample=corpus.tokens_per_sample,
                      parameters=args.model_parameters)
    benchmarks = tuple(_ingest(storage, path, f"benchmark-{i}", "benchmark", FieldMapping(text_field=args.text_field),
                               args.shard_size) for i, path in enumerate(args.benchmark))
    params = CurateParams(corpus=corpus, benchmarks=benchmarks, budget=args.budget, embedder=args.embedder,
                          budget_unit=args.budget_unit, model_parameters=args.model_parameters,
                          prune_method=args.prune_method, eps=args.eps, prune_fraction=args.prune_fraction,
                          quality_pools=not args.no_quality_pools, sample_size=args.sample_size, seed=args.seed,
                          keep=args.keep, betr_keep_fraction=args.betr_keep_fraction, pilot_model=args.pilot_model,
                          pilot_runs=args.pilot_runs, pilot_tokens=args.pilot_tokens)
    ingest_seconds = round(time.perf_counter() - ingest_started, 3)
    plan = curate_plan(params)
    work = plan_work(plan, job_kind="curate", datasets=(corpus, *benchmarks), embedder=args.embedder,
                     pilots=pilots_source(metric=None, pilot_model=args.pilot_model),
                     run_tokens=[args.pilot_tokens] * args.pilot_runs if args.pilot_model == "tiny_lm" else None)
    timings_path = args.out / TIMINGS
    if args.dry_run:
        recorded = recorded_timings(timings_path)
        estimate = plan_estimate(work, lambda kind: recorded.get(kind, []))
        return "\n".join([
            f"Plan of curate: {corpus.documents:,} documents in {corpus.shard_count} shards, "
            f"{len(benchmarks)} benchmark(s); estimated from {timings_path if recorded else 'defaults'}",
            *summary.estimate_lines(estimate),
            *(["  (tiny-LM runs counted at --pilot-tokens each: an upper bound, the design's smaller runs take "
               "less)"] if args.pilot_model == "tiny_lm" else []),
            f"Dry run: nothing ran but the ingest ({args.out / 'work'}, reused by the real run)"])
    executor = LocalExecutor(storage, run)
    result = executor.run(plan)
    executor.record_timings(timings_path, work)
    timings = {"ingest": ingest_seconds, **executor.seconds}
    out = args.out
    shutil.copyfile(storage.local_path(Keys.manifest(result["mixture"])), out / "manifest.parquet")
    dataset = out / "dataset"
    shutil.rmtree(dataset, ignore_errors=True)
    dataset.mkdir()
    for name in storage.list(Keys.training_dataset(result["mixture"])):
        shutil.copyfile(storage.local_path(name), dataset / name.rsplit("/", 1)[-1])
    fit = executor.outputs("fit")[0]
    mixture = {**result, "performance_model": {k: fit["model"][k] for k in ("kind", "parameters", "pools",
                                                                               "fit_error")},
               "timings": timings}
    (out / "mixture.json").write_text(json.dumps(mixture, indent=1))

    prune = result["stages"]["prune"]
    lines = [f"Mixture at {args.budget:g} {args.budget_unit} ({result['budget_samples']:,.0f} samples); "
             f"{args.prune_method} dropped {prune['dropped']} of {corpus.documents} documents",
             summary.contamination_line(result.get("contamination")),
             *summary.budget_policy_lines(result["budget_policy"]), *summary.pool_table(result["pools"]),
             *summary.pilots_lines(result["stages"]["pilots"], result["stages"]["fit"]),
             summary.prediction_line(result["predicted"])]
    if law_line := summary.backtest_line(result["predicted"]):
        lines.append(law_line)
    lines.append("Seconds per stage: " + ", ".join(f"{stage} {seconds:.1f}" for stage, seconds in timings.items()))
    lines.append(f"Units run: {executor.units_run} (finished units of an earlier run are reused)")
    lines.append(f"Wrote {out / 'mixture.json'}, {out / 'manifest.parquet'} ({result['documents']} documents) and "
                 f"the training-ready {dataset}/ ({result['dataset']['rows']:,} rows in {result['dataset']['shards']} "
                 f"Parquet shards, shuffled with seed {result['dataset']['seed']}) in "
                 f"{time.perf_counter() - started:.1f} s")
    return "\n".join(lines)
