"""``python -m curation curate --dry-run``: the plan's stages with units and an estimate, running no
stage; and the timings the local executor records are what the next estimate measures from."""
from __future__ import annotations

import json

from curation.cli import TIMINGS, main
from curation.demo_data import demo_benchmark, demo_corpus, write_jsonl
from curation.executor import LocalExecutor, plan_estimate, plan_work, recorded_timings
from curation.steps import DatasetRef, Stage
from curation.storage import LocalStorage

STAGES = ["embedding", "index", "contamination_scan", "contamination", "prune_kmeans", "prune_assign", "prune_dedup",
          "prune", "betr_train", "betr_classify", "betr_select", "ot", "pilots", "fit", "mixture"]


def test_dry_run_prints_every_stage_with_units_and_an_estimate_and_runs_none(tmp_path, capsys):
    corpus = write_jsonl(demo_corpus(300), tmp_path / "corpus.jsonl")
    bench = write_jsonl(demo_benchmark(30), tmp_path / "bench.jsonl")
    out = tmp_path / "out"
    assert main(["curate", "--corpus", str(corpus), "--benchmark", str(bench), "--budget", "150", "--embedder",
                 "hashing", "--shard-size", "100", "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in printed.splitlines() if line.startswith("  ")}
    assert [name for name in rows if name != "stage"] == STAGES, printed
    assert rows["embedding"][1:5] == ["gpu", "4", "330", "documents"]  # 3 corpus shards + the benchmark's
    assert rows["betr_classify"][1:5] == ["cpu", "3", "300", "documents"]
    assert rows["prune_assign"][1:5] == ["cpu", "3", "300", "documents"]  # a unit per shard
    assert rows["prune_dedup"][1:5] == ["cpu", "3", "300", "documents"]  # a unit per group of clusters
    assert all(rows[name][-1] == "default" for name in STAGES), "no earlier run in this folder"
    assert "Estimated total:" in printed and "nothing ran but the ingest" in printed
    assert not (out / "mixture.json").exists() and not (out / TIMINGS).exists()
    assert not list((out / "work").rglob("units/*.json")), "no unit ran"


def test_recorded_timings_make_the_next_estimate_measured(tmp_path):
    """Two stages of sleeping units: the estimate from what the executor recorded is measured, per
    document of the corpus; a ``cached`` unit did no work and is not a sample."""
    import time

    corpus = DatasetRef("c", "c", "corpus", documents=30, tokens=300, shard_documents=(10, 10, 10))

    def scan(ctx, index):
        time.sleep(0.01)
        return {"cached": index == 2}

    plan = [Stage("contamination_scan", 3, scan), Stage("fit", 1, lambda ctx, index: {})]
    work = plan_work(plan, job_kind="curate", datasets=[corpus])
    assert [(w.kind, w.work_unit, w.per_unit) for w in work] == [
        ("contamination_scan", "documents", (10.0, 10.0, 10.0)), ("fit", "units", (1.0,))]
    executor = LocalExecutor(LocalStorage(tmp_path / "work"), "run", progress=False)
    executor.run(plan)
    executor.record_timings(tmp_path / TIMINGS, work)
    recorded = recorded_timings(tmp_path / TIMINGS)
    assert [w for _, w in recorded["contamination_scan"]] == [10.0, 10.0] and len(recorded["fit"]) == 1
    assert json.loads((tmp_path / TIMINGS).read_text()) == recorded

    bigger = DatasetRef("c", "c", "corpus", documents=300, tokens=3000, shard_documents=(100, 100, 100))
    estimate = plan_estimate(plan_work(plan, job_kind="curate", datasets=[bigger]),
                             lambda kind: recorded.get(kind, []))
    scan_figure = estimate["stages"][0]
    assert (scan_figure["basis"], scan_figure["measured_units"]) == ("measured", 2)
    assert 0.1 <= scan_figure["seconds"] <= 0.5, "10 ms per 10 documents, at 300 documents: ~0.3 s"
