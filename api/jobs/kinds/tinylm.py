"""Tiny-LM pilot parameters shared by ``pilots``, ``fit``, ``mixture`` and ``curate``, their checks,
and the estimate of what the runs cost before any work (:mod:`curation.tinylm`).

The estimate converts each run's size to tokens at the corpus's tokens per document and
divides by the training throughput of the model's config: the one the workers last measured
for it (every finished tiny-LM unit records its tokens per second), else a short calibration
run of the default config on this host (:func:`curation.tinylm.measure_throughput`, cached
for a day) scaled by training FLOPs per token (:attr:`~curation.tinylm.TinyLMConfig.flops_per_token`),
so that no request makes the web process train a large model.
"""
from __future__ import annotations

import time

from django.core.cache import cache
from rest_framework import serializers

from api.core.errors import ApplicationError, validation_error
from api.core.fields import StrictFloatField, StrictIntegerField
from api.datasets.models import Dataset
from curation.pools import DECILES
from curation.tinylm import TinyLMConfig, measure_throughput

CALIBRATION_SECONDS = 24 * 3600  # how long a calibration run on the web host stays cached
MAX_TOKENS_PER_STEP = 16_384
DEFAULT_CONFIG = TinyLMConfig()


class TinyLMParams(serializers.Serializer):
    """The tiny LM of every pilot run (defaults: :class:`curation.tinylm.TinyLMConfig`)."""

    vocab_size = StrictIntegerField(default=DEFAULT_CONFIG.vocab_size, min_value=1024, max_value=30522)
    width = StrictIntegerField(default=DEFAULT_CONFIG.width, min_value=16, max_value=512)
    layers = StrictIntegerField(default=DEFAULT_CONFIG.layers, min_value=1, max_value=8)
    heads = StrictIntegerField(default=DEFAULT_CONFIG.heads, min_value=1, max_value=16)
    context = StrictIntegerField(default=DEFAULT_CONFIG.context, min_value=16, max_value=1024)
    batch_size = StrictIntegerField(default=DEFAULT_CONFIG.batch_size, min_value=1, max_value=64, help_text=(
        f"windows of context tokens a step; batch_size x context at most {MAX_TOKENS_PER_STEP} (the logits of a "
        "step stay under 2 GB)"))
    learning_rate = StrictFloatField(default=DEFAULT_CONFIG.learning_rate, min_value=1e-5, max_value=0.1)

    def validate(self, data):
        if data["width"] % data["heads"]:
            raise serializers.ValidationError({"heads": f"width {data['width']} must be a multiple of heads"})
        if data["batch_size"] * data["context"] > MAX_TOKENS_PER_STEP:
            raise serializers.ValidationError({"batch_size": f"batch_size x context is at most "
                                                             f"{MAX_TOKENS_PER_STEP}"})
        return data


class PilotFields(serializers.Serializer):
    """Who makes the observations when ``metric`` (the tenant's own pilot runs) is not given."""

    pilot_model = serializers.ChoiceField(choices=["bigram", "tiny_lm"], default="bigram", help_text=(
        "without metric: bigram (a smoothed bigram model per designed mixture: seconds on a CPU, but it barely "
        "notices repetition) or tiny_lm (a tiny transformer trained per pilot run, on the gpu queue: measures "
        "repetition; see the job's estimate)"))
    pilot_runs = StrictIntegerField(default=20, min_value=4, max_value=200, help_text=(
        "tiny_lm: pilot runs (curation.pilots.pilot_design at pilot_tokens / 16, / 4 and pilot_tokens)"))
    pilot_tokens = StrictIntegerField(default=1_000_000, min_value=1, max_value=10**10, help_text=(
        "tiny_lm: tokens of the largest pilot run (at the corpus's tokens per document); the smallest runs are "
        "a sixteenth of it"))
    tiny_lm = TinyLMParams(required=False, help_text="tiny_lm: the model and optimiser of every run")


def config_of(params: dict) -> TinyLMConfig:
    """The tiny-LM config of normalised job params."""
    return TinyLMConfig(**params.get("tiny_lm") or {})


def pool_documents_estimate(corpus: Dataset, quality_pools: bool) -> dict[str, int]:
    """The pools' documents as creation can know them: the corpus's sources, split into equal deciles
    with quality pools (pruning and decontamination remove some later)."""
    sources = {name: n for name, n in corpus.source_counts.items() if n > 0}
    if not quality_pools:
        return sources
    return {f"{name}/q{d}": max(1, n // DECILES) for name, n in sources.items() for d in range(DECILES)}


def _throughput(config: TinyLMConfig) -> dict:
    """The freshest measured throughput of ``config``: the workers' (any device), else a cached
    calibration on this host."""
    measured = cache.get(_key(config, "worker"))
    if measured:
        return measured | {"source": f"measured by a worker's pilot runs on {measured['device']}"}
    calibrated = cache.get(_key(DEFAULT_CONFIG, "calibration"))
    if not calibrated:
        calibrated = measure_throughput(DEFAULT_CONFIG)
        cache.set(_key(DEFAULT_CONFIG, "calibration"), calibrated, CALIBRATION_SECONDS)
    scaled = calibrated["tokens_per_second"] * DEFAULT_CONFIG.flops_per_token / config.flops_per_token
    return calibrated | {"tokens_per_second": scaled, "source": (
        f"a calibration run of the default model on the web host ({calibrated['device']}), scaled by training "
        "FLOPs per token; the workers' own throughput replaces it after their first pilot run")}


def _key(config: TinyLMConfig, kind: str) -> str:
    return f"tiny-lm-throughput:{kind}:{config.key()}"


def record_throughput(run: dict, config: TinyLMConfig) -> None:
    """Keep a finished tiny-LM unit's tokens per second as the estimate's throughput (a worker calls this)."""
    cache.set(_key(config, "worker"), {"tokens_per_second": run["tokens_per_second"], "device": run["device"],
                                       "config": config.key(), "measured_at": time.time()}, None)


def check_and_estimate(tenant, corpus: Dataset, benchmarks: list[Dataset], params: dict, design) -> dict | None:
    """Refuse tiny-LM pilots that cannot run (runs too small to hold a document, more tokens than
    the tenant's ``max_pilot_tokens``), then estimate them: tokens and seconds per run and in all.
    ``design(pool_documents)`` is the runs; None without tiny-LM pilots. (A benchmark always holds
    text: ingest refuses a record whose text is empty or only whitespace.)"""
    if params.get("metric") or params.get("pilot_model") != "tiny_lm":
        return None
    per_document, config = corpus.tokens_per_sample, config_of(params)
    smallest = max(per_document, config.MIN_STEPS * config.tokens_per_step)
    if params["pilot_tokens"] / 16 < smallest:
        raise validation_error({"pilot_tokens": f"the smallest pilot run (pilot_tokens / 16) must hold a document "
                                                f"({per_document:.0f} tokens on this corpus) and train for "
                                                f"{config.MIN_STEPS} steps of {config.tokens_per_step} tokens: give "
                                                f"at least {int(16 * smallest) + 1}"})
    runs = design(pool_documents_estimate(corpus, bool(params.get("quality_pools"))))
    tokens = [int(round(run["size"] * per_document)) for run in runs]
    if sum(tokens) > tenant.max_pilot_tokens:
        raise ApplicationError("quota_exceeded", f"the pilot design trains {sum(tokens):,} tokens; the tenant may "
                               f"train {tenant.max_pilot_tokens:,} a job. Lower pilot_runs or pilot_tokens, or ask "
                               "the operator for a higher quota.",
                               detail={"quota": "pilot_tokens", "requested": sum(tokens),
                                       "limit": tenant.max_pilot_tokens, "field": "params.pilot_tokens"},
                               status_code=403)
    speed = _throughput(config)
    rate = speed["tokens_per_second"]
    return {"kind": "tiny_lm_pilots", "runs": len(runs), "parameters": config.parameters, "tokens": sum(tokens),
            "seconds": sum(tokens) / rate, "tokens_per_second": rate, "device": speed["device"],
            "throughput_source": speed["source"],
            "per_run": [{"index": i, "size": run["size"], "tokens": t, "seconds": t / rate, "purpose": run["purpose"]}
                        for i, (run, t) in enumerate(zip(runs, tokens))]}
