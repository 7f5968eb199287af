"""``python -m curation curate`` on local files: outputs, and a clear error for bad input."""
from __future__ import annotations

import json

import pyarrow.parquet as pq

from curation.cli import main
from curation.demo_data import demo_benchmark, demo_corpus, write_jsonl


def test_curate_writes_the_mixture_and_the_manifest(tmp_path, capsys):
    corpus = write_jsonl(demo_corpus(300), tmp_path / "corpus.jsonl")
    bench = write_jsonl(demo_benchmark(30), tmp_path / "bench.jsonl")
    out = tmp_path / "out"
    assert main(["curate", "--corpus", str(corpus), "--benchmark", str(bench), "--budget", "150",
                 "--embedder", "hashing", "--eps", "0.05", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Predicted proxy_cross_entropy (nats per token, lower is better)" in printed
    assert "parameters from: proxy (half_lives: defaults)" in printed, "proxy pilots cannot identify half-lives"
    mixture = json.loads((out / "mixture.json").read_text())
    assert abs(sum(mixture["weights"].values()) - 1) < 1e-9
    by_source = {}
    for pool, weight in mixture["weights"].items():
        by_source[pool.split("/")[0]] = by_source.get(pool.split("/")[0], 0) + weight
    assert max(by_source, key=by_source.get) == "science"
    manifest = pq.read_table(out / "manifest.parquet").to_pylist()
    assert len(manifest) == mixture["documents"] and sum(r["repeats"] for r in manifest) >= 150 - len(by_source)
    assert {r["pool"] for r in manifest} == set(mixture["weights"])


def test_bad_input_names_the_file_and_line(tmp_path, capsys):
    corpus = tmp_path / "broken.jsonl"
    corpus.write_text('{"text": "fine"}\n{"text": 5}\n')
    bench = write_jsonl(demo_benchmark(5), tmp_path / "bench.jsonl")
    code = main(["curate", "--corpus", str(corpus), "--benchmark", str(bench), "--budget", "10",
                 "--embedder", "hashing", "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert code == 2 and "broken.jsonl" in error and "line 2" in error and "text" in error, error


def test_a_budget_or_seed_out_of_range_fails_before_any_work(tmp_path, capsys):
    bench = write_jsonl(demo_benchmark(5), tmp_path / "bench.jsonl")
    corpus = write_jsonl(demo_corpus(20), tmp_path / "corpus.jsonl")
    for extra, needle in ((["--budget", "1e30"], "budget"), (["--budget", "10", "--seed", str(10**30)], "seed"),
                          (["--budget", "1e30", "--budget-unit", "flops", "--model-parameters", "1"], "samples")):
        code = main(["curate", "--corpus", str(corpus), "--benchmark", str(bench), "--embedder", "hashing",
                     "--out", str(tmp_path / "out"), *extra])
        error = capsys.readouterr().err
        assert code == 2 and needle in error, (extra, error)
    assert not (tmp_path / "out" / "manifest.parquet").exists()


def test_the_budget_decides_keep_hard_or_easy_and_betrs_share_of_tokens(tmp_path, capsys):
    """The same corpus and target at a small and a large budget: prototypes keep the hard documents while
    the corpus has a unique document per document of budget and the easy ones beyond; BETR keeps the
    share of tokens that the budget sees at most four times (F_opt is far smaller at these budgets)."""
    corpus = write_jsonl(demo_corpus(300), tmp_path / "corpus.jsonl")
    bench = write_jsonl(demo_benchmark(30), tmp_path / "bench.jsonl")
    policies = {}
    for budget in (50, 3000):
        out = tmp_path / f"out-{budget}"
        assert main(["curate", "--corpus", str(corpus), "--benchmark", str(bench), "--budget", str(budget),
                     "--embedder", "hashing", "--prune-method", "prototypes", "--no-quality-pools", "--out", str(out)]) == 0
        assert "prune: keep " in capsys.readouterr().out
        policies[budget] = json.loads((out / "mixture.json").read_text())["budget_policy"]
    small, large = policies[50], policies[3000]
    assert small["prune"]["keep"] == "hard" and small["prune"]["reason"].startswith("abundant: 6 unique")
    assert large["prune"]["keep"] == "easy" and large["prune"]["reason"].startswith("scarce: 0.1 unique")
    tokens = json.loads((tmp_path / "out-50" / "mixture.json").read_text())["stages"]["betr"]["total_tokens"]
    assert abs(small["betr"]["token_fraction"] - small["budget_tokens"] / (4 * tokens)) < 0.01
    assert large["betr"]["token_fraction"] == 1.0 and "at most 4 times" in large["betr"]["reason"]
