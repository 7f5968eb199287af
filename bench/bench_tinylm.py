"""Tiny-LM pilots: trainer throughput, the cost of a pilot design, and the ranking experiment.

1. Throughput: training tokens per second of :func:`curation.tinylm.train_pilot` (the service's
   default config and the small one the tests use) against the fastest baseline we know for the
   same model, Hugging Face ``transformers``' GPT-2 (``GPT2LMHeadModel``, same width, layers,
   heads, context and vocabulary, same AdamW steps), interleaved in one process; on CUDA too
   when this machine has a GPU.
2. The cost of a 20-run design (:func:`curation.pilots.tiny_lm_design`) at 1M, 5M and 20M tokens
   in the largest run, from the measured throughput (the estimate the API gives before a job).
3. The ranking experiment (issue 13, larger than the test): BBC News's five sources as pools, two
   MMLU groups as the target; tiny-LM pilots at three sizes fit the laws (``select_law``), 16
   held-out Dirichlet(0.3) mixtures (``--concentrations 0.3 1`` adds Dirichlet(1)) at 4x the
   largest pilot size are trained with the same trainer;
   Spearman between predicted and measured target loss, and the time it took.

    .venv/bin/python bench/bench_tinylm.py
    .venv/bin/python bench/bench_tinylm.py --skip-ranking
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from harness import Run, interleave, shared_data_dir  # bench/harness.py, beside this script

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def gpt2_step_runner(config, device: str, steps: int):
    """``steps`` AdamW steps of an HF GPT-2 of ``config``'s shape on random tokens, as a callable."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=config.vocab_size, n_positions=config.context,
                                       n_embd=config.width, n_layer=config.layers, n_head=config.heads,
                                       resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0,
                                       eos_token_id=0)).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, betas=(0.9, 0.95))
    batch = torch.randint(2, config.vocab_size, (config.batch_size, config.context), device=device)

    def run():
        for _ in range(steps):
            loss = model(batch, labels=batch).loss
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
        return float(loss.detach())

    return run


def ours_runner(config, device: str, steps: int):
    from curation.tinylm import train_pilot

    rng = np.random.default_rng(0)
    documents = [rng.integers(2, config.vocab_size, config.tokens_per_step * steps, dtype=np.int64)]

    def run():
        return train_pilot(documents, [documents[0][:64]], config, max_tokens=config.tokens_per_step * steps,
                           device=device).tokens

    return run


def throughput(run: Run, devices: list[str], rounds: int) -> dict[str, float]:
    from curation.tinylm import TinyLMConfig

    configs = {"default (256 x 4)": TinyLMConfig(),
               "tests' small (w64, v2048, 128 x 8)": TinyLMConfig(width=64, vocab_size=2048, context=128,
                                                                  batch_size=8)}
    ours_speed = {}
    for device in devices:
        for label, config in configs.items():
            steps = 30 if device == "cpu" else 200
            tokens = steps * config.tokens_per_step
            comparison = interleave({"ours": ours_runner(config, device, steps),
                                     "hf_gpt2": gpt2_step_runner(config, device, steps)},
                                    rounds=rounds, run=run, warmup=True)
            ours, theirs = tokens / comparison.median_s("ours"), tokens / comparison.median_s("hf_gpt2")
            ours_speed[f"{device} {label}"] = ours
            print(f"{device:4s} {label:36s} {config.parameters / 1e6:5.2f}M params  {tokens:>8,} tokens/round  ours "
                  f"{ours:>9,.0f} tok/s  HF GPT-2 {theirs:>9,.0f} tok/s  ratio ours/HF {ours / theirs:.2f}  "
                  f"peak +{comparison.peak_above_mb('ours'):.0f} MiB", flush=True)
    return ours_speed


def design_cost(speed: dict[str, float]) -> None:
    from curation.pilots import tiny_lm_design

    pools = {f"source{i}": 5_000 for i in range(5)}
    for label, rate in speed.items():
        for largest_tokens in (1_000_000, 5_000_000, 20_000_000):
            per_document = 500
            runs = tiny_lm_design(pools, runs=20, largest=largest_tokens / per_document)
            tokens = sum(r["size"] * per_document for r in runs)
            print(f"20-run design, largest run {largest_tokens / 1e6:.0f}M tokens: {tokens / 1e6:6.1f}M tokens, "
                  f"{tokens / rate / 60:8.1f} min at {label} ({rate:,.0f} tok/s)", flush=True)


def ranking(config, pilot_docs: int, runs: int, heldout: int, seed: int, concentration: float) -> None:
    import json

    from scipy.stats import spearmanr

    from curation.laws import Pool
    from curation.laws.backtest import select_law
    from curation.pilots import pilot_design, tiny_lm_runs
    from curation.tinylm import tokenize

    data = shared_data_dir()
    rows = [json.loads(line) for line in open(data / "corpora" / "bbc_news.jsonl", encoding="utf-8")]
    sources = sorted({r["source"] for r in rows})
    pools = {s: tokenize([r["text"] for r in rows if r["source"] == s], config.vocab_size) for s in sources}
    targets = tokenize([json.loads(line)["text"] for name in ("mmlu_business_economics", "mmlu_politics_world")
                        for line in list(open(data / "benchmarks" / f"{name}.jsonl", encoding="utf-8"))[:250]],
                       config.vocab_size)
    sizes = [pilot_docs, 2 * pilot_docs, 4 * pilot_docs]
    started = time.perf_counter()
    design = pilot_design({s: len(d) for s, d in pools.items()}, runs=runs, sizes=sizes, seed=seed)
    observations = [o for o, _ in tiny_lm_runs(pools, targets, design, config, seed=seed)]
    pilots_s = time.perf_counter() - started
    law, report = select_law([Pool(s, len(d)) for s, d in pools.items()], observations, higher_is_better=False,
                             value_range=(0.0, float("inf")), seed=seed)
    mixtures = np.random.default_rng(seed + 1).dirichlet(np.full(len(sources), concentration), heldout)
    held = [{"mixture": dict(zip(sources, map(float, w))), "size": 4 * sizes[-1]} for w in mixtures]
    measured = [o.value for o, _ in tiny_lm_runs(pools, targets, held, config, seed=seed + 7)]
    predicted = [law.predict(r["mixture"], r["size"]).value for r in held]
    rho = spearmanr(predicted, measured).statistic
    print(f"ranking: {len(sources)} pools, pilots {runs} runs at {sizes} documents ({pilots_s:.0f} s), law "
          f"{law.kind}; {heldout} held-out Dirichlet({concentration:g}) mixtures at {4 * sizes[-1]} documents: "
          f"Spearman {rho:.3f}; "
          f"measured {min(measured):.3f}-{max(measured):.3f}, predicted {min(predicted):.3f}-{max(predicted):.3f} "
          f"nats per token; {time.perf_counter() - started:.0f} s in all", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-ranking", action="store_true")
    parser.add_argument("--pilot-docs", type=int, default=32, help="the smallest pilot size of the ranking run")
    parser.add_argument("--concentrations", type=float, nargs="+", default=[0.3],
                        help="Dirichlet concentrations of the held-out mixtures")
    args = parser.parse_args()
    import torch

    from curation.tinylm import TinyLMConfig

    run = Run("tiny-LM pilots")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; devices: {', '.join(devices)}")
    speed = throughput(run, devices, args.rounds)
    design_cost(speed)
    if not args.skip_ranking:
        for concentration in args.concentrations:
            ranking(TinyLMConfig(width=64, vocab_size=2048, context=128, batch_size=8), args.pilot_docs, runs=24,
                    heldout=16, seed=0, concentration=concentration)
    run.finish()


if __name__ == "__main__":
    main()
