"""One pipeline, two executors: ``python -m curation curate`` (the local executor) and the
service's ``curate`` job (the Celery executor's unit runner) give identical results on a
real corpus, and the local executor resumes after SIGKILL without redoing finished units."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from api.core.artifacts import tenant_storage
from api.datasets.services import dataset_create
from api.jobs.services import job_create
from curation.cli import main
from curation.demo_data import demo_benchmark, demo_corpus, write_jsonl
from curation.ingest import FieldMapping
from curation.storage import Keys, LocalStorage
from tests.api.test_jobs import run_inline
from tests.shared import shared_path

REPO = Path(__file__).resolve().parents[1]
OPTIONS = {"budget": 400.0, "embedder": "hashing", "seed": 0}


def _kept_ids(storage, run: str, metric: str, shards: int) -> list[str]:
    tables = [pq.read_table(storage.local_path(Keys.scores(run, metric, i)), columns=["id", "kept"])
              for i in range(shards)]
    return [i for t in tables for i, k in zip(t.column("id").to_pylist(), t.column("kept").to_pylist()) if k]


def _manifest(storage, mixture: str) -> list[dict]:
    return pq.read_table(storage.local_path(Keys.manifest(mixture))).to_pylist()


@pytest.mark.slow
def test_cli_and_service_curate_give_identical_results_on_bbc_news(make_tenant, dispatched, tmp_path, capsys):
    corpus_file = shared_path("corpora/bbc_news.jsonl")
    bench_file = shared_path("benchmarks/mmlu_computer_science.jsonl")
    tenant, _ = make_tenant("parity")
    corpus = dataset_create(tenant=tenant, kind="corpus", name=corpus_file.name, shard_size=1000,
                            upload=SimpleUploadedFile(corpus_file.name, corpus_file.read_bytes()), mapping=FieldMapping())
    bench = dataset_create(tenant=tenant, kind="benchmark", name=bench_file.name, mapping=FieldMapping(),
                           upload=SimpleUploadedFile(bench_file.name, bench_file.read_bytes()))
    job = run_inline(str(job_create(tenant=tenant, kind="curate", params={
        "corpus": str(corpus.pk), "benchmarks": [str(bench.pk)], **OPTIONS}).pk))
    assert job.status == "succeeded", job.error
    service = job.result

    out = tmp_path / "out"
    assert main(["curate", "--corpus", str(corpus_file), "--benchmark", str(bench_file), "--budget", "400",
                 "--embedder", "hashing", "--seed", "0", "--shard-size", "1000", "--out", str(out)]) == 0
    capsys.readouterr()
    cli = json.loads((out / "mixture.json").read_text())
    work = LocalStorage(out / "work")
    run = json.loads((out / "work" / "run.json").read_text())["run"]

    assert corpus.shard_count == 3 and len(cli["pools"]) >= 4
    assert cli["weights"] == service["weights"] and cli["pools"] == service["pools"]
    assert cli["predicted"] == service["predicted"] and cli["budget_samples"] == service["budget_samples"]
    assert cli["stages"] == service["stages"]
    store = tenant_storage(tenant.pk)
    for metric in ("semdedup", "betr"):
        assert _kept_ids(work, run, metric, 3) == _kept_ids(store, str(job.pk), metric, 3), metric
    manifest = _manifest(store, service["mixture"])
    assert manifest and _manifest(work, cli["mixture"]) == manifest
    assert pq.read_table(out / "manifest.parquet").to_pylist() == manifest


def _markers(out: Path) -> int:
    return len(list((out / "work" / "jobs").glob("*/units/*.json"))) if (out / "work" / "jobs").is_dir() else 0


@pytest.mark.slow
def test_the_local_executor_resumes_after_sigkill_without_redoing_finished_units(tmp_path, capsys):
    corpus = write_jsonl(demo_corpus(900, seed=3), tmp_path / "corpus.jsonl")
    bench = write_jsonl(demo_benchmark(40), tmp_path / "bench.jsonl")
    args = ["curate", "--corpus", str(corpus), "--benchmark", str(bench), "--budget", "300", "--embedder", "hashing",
            "--shard-size", "100", "--eps", "0.05", "--no-quality-pools"]  # few pools: a fast fit, the same units
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert main(args + ["--out", str(clean)]) == 0
    total = int(capsys.readouterr().out.split("Units run: ")[1].split()[0])
    assert total == _markers(clean) == 10 + 1 + 9 + 1 + (1 + 9 + 9 + 1) + 1 + 9 + 1 + 4, \
        "embedding 10, index, decontamination 9+1, prune 1+9+9+1 (k-means, shards, cluster groups, select), " \
        "BETR 1+9+1, model 4"

    process = subprocess.Popen([sys.executable, "-m", "curation", *args, "--out", str(killed)], cwd=REPO,
                               env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while _markers(killed) < 12 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = _markers(killed)
    assert 12 <= done < total, f"killed after {done} of {total} units"

    assert main(args + ["--out", str(killed)]) == 0
    printed = capsys.readouterr().out
    assert f"Units run: {total - done} " in printed, printed
    run_specific = {"mixture": None, "timings": None}  # the run's own id, and its seconds
    assert json.loads((killed / "mixture.json").read_text()) | run_specific == \
        json.loads((clean / "mixture.json").read_text()) | run_specific
    assert pq.read_table(killed / "manifest.parquet").equals(pq.read_table(clean / "manifest.parquet"))
